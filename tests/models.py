"""Equipping classes mapped when their test module was imported.

Several suites uninstall the lifecycle after a module (tests/orm, tests/aio, ...), which strips
the listeners of every class mapped so far. Classes of another directory mapped at import time
are never mapped again: a fixture equips them before each test, as an application's classes
would be, once, at start-up.
"""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase

from sa_depot.orm.install import equip as equip_mapper
from sa_depot.orm.install import watch_mappers


def equip(base: type[DeclarativeBase]) -> None:
    """Join every mapped class of ``base``'s registry to the lifecycle (idempotent)."""
    watch_mappers()
    for mapper in base.registry.mappers:
        equip_mapper(mapper)
