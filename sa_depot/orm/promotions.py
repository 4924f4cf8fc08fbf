"""Where the promotions a commit journaled are sent: the process's promotion executor.

A column declared with ``promote_to`` stores new content in its queue storage and journals a
promotion in the same transaction (:mod:`sa_depot.database.promotions`). Once the root
transaction commits, the ledger (:mod:`sa_depot.orm.ledgers`) hands the journaled paths to
:func:`submit`, which passes them to the executor set with :func:`set_executor`, or else to
the default one: the embedded worker pool (:class:`sa_depot.promotion.EmbeddedExecutor`),
made on first use by the factory that ``UploadedFileField(promote_to=...)`` installs.

Submitting is a hint, never the record: the journal row is. A submission lost with its
process (a kill after the commit) leaves the row to ``sa-depot promote`` or the collector,
and submitting a path whose row is gone (its transaction rolled back, or promoted already)
does nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import sqlalchemy as sa

_log = logging.getLogger(__name__)


class PromotionExecutor(Protocol):
    """Runs promotions somewhere: in this process's worker threads, or a job queue's
    workers (:mod:`sa_depot.promotion.dramatiq`)."""

    def submit(self, engine: sa.Engine, paths: Sequence[str]) -> None:
        """Run the promotions of the queued files ``paths`` journaled in ``engine``'s
        database, soon. Must not block on the promotions themselves."""
        ...

    def shutdown(self, wait: bool = True) -> None:
        """Stop taking work; with ``wait``, let running promotions finish."""
        ...


@dataclass
class _Dispatch:
    #: The executor promotions go to (set, or the default once made).
    executor: PromotionExecutor | None = None
    #: The default executor, if this module made it (it shuts it down).
    default: PromotionExecutor | None = None
    #: What makes the default executor.
    factory: Callable[[], PromotionExecutor] | None = None


_lock = threading.Lock()
_state = _Dispatch()


def set_executor(executor: PromotionExecutor | None) -> None:
    """Send promotions to ``executor`` from now on (``None``: back to the default). The
    executor replaced is not shut down: its owner does that."""
    with _lock:
        _state.executor = executor if executor is not None else _state.default


def use_default(factory: Callable[[], PromotionExecutor]) -> None:
    """Make the default executor with ``factory`` when first needed (idempotent: the first
    factory stays)."""
    with _lock:
        if _state.factory is None:
            _state.factory = factory


def executor() -> PromotionExecutor | None:
    """The executor promotions go to: the one set, else the default (made now), else
    ``None`` when no column with ``promote_to`` exists in this process."""
    with _lock:
        if _state.executor is None and _state.factory is not None:
            _state.executor = _state.default = _state.factory()
        return _state.executor


def submit(engine: sa.Engine, paths: Sequence[str]) -> None:
    """Hand the promotions of ``paths`` (journaled by a transaction that committed) to the
    executor. A failing executor is logged, not raised: the commit succeeded, and the
    journal keeps the promotions for ``sa-depot promote``."""
    if not paths:
        return
    found = executor()
    if found is None:
        _log.warning(
            "sa_depot: %d promotion(s) journaled but no promotion executor in this process; "
            "run `sa-depot promote` to process them",
            len(paths),
        )
        return
    try:
        found.submit(engine, paths)
    except Exception as exc:  # noqa: BLE001 - the commit succeeded: never hide that
        _log.warning(
            "sa_depot could not submit %d promotion(s) (%s); they stay queued in "
            "sa_depot_promotions for `sa-depot promote`: %s",
            len(paths),
            exc,
            ", ".join(paths),
        )


def shutdown(wait: bool = True) -> None:
    """Shut the default executor down (if it was made) and forget it; the next promotion
    makes a new one. Tests call this to start from a clean state."""
    with _lock:
        default, _state.default = _state.default, None
        if _state.executor is default:
            _state.executor = None
    if default is not None:
        default.shutdown(wait=wait)


def reset() -> None:
    """Shut the default executor down and forget every executor and factory (tests)."""
    shutdown()
    with _lock:
        _state.executor = _state.default = _state.factory = None


__all__ = [
    "PromotionExecutor",
    "executor",
    "reset",
    "set_executor",
    "shutdown",
    "submit",
    "use_default",
]
