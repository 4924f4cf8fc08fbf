"""The session lifecycle's public switches, at the path applications name.

The lifecycle itself is the package :mod:`sa_depot.orm` (one module per job); this module
keeps the names applications and tests call: :func:`configure`, :func:`uninstall`,
:func:`install_for_mapper`, :func:`installed_mappers` and :func:`watch_mappers`.
"""

from sa_depot.orm.install import install_for_mapper, installed_mappers, uninstall, watch_mappers
from sa_depot.orm.settings import Settings, configure, settings

__all__ = [
    "Settings",
    "configure",
    "install_for_mapper",
    "installed_mappers",
    "settings",
    "uninstall",
    "watch_mappers",
]
