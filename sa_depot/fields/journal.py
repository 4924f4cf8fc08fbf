"""The removal journal, at the path earlier documentation named.

It lives in :mod:`sa_depot.database.journal`.
"""

from sa_depot.database.journal import (
    PendingRemoval,
    RemovalReport,
    complete_removals,
    finish_pending_removals,
    finish_removals,
    pending,
    record_failures,
    record_removals,
)

__all__ = [
    "PendingRemoval",
    "RemovalReport",
    "complete_removals",
    "finish_pending_removals",
    "finish_removals",
    "pending",
    "record_failures",
    "record_removals",
]
