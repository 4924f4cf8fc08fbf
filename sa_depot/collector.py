"""The collector, at the path applications name (``from sa_depot.collector import collect``).

It lives in :mod:`sa_depot.database.collector`, whose documentation says what it removes and
what it cannot see.
"""

from sa_depot.database.collector import (
    DEFAULT_GRACE,
    CollectorError,
    CollectReport,
    collect,
    file_columns,
    left_alone,
    load_metadata,
    parse_duration,
    sweep_plan,
    written_storages,
)

__all__ = [
    "DEFAULT_GRACE",
    "CollectReport",
    "CollectorError",
    "collect",
    "file_columns",
    "left_alone",
    "load_metadata",
    "parse_duration",
    "sweep_plan",
    "written_storages",
]
