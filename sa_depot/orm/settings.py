"""Process-wide switches of the session lifecycle."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Settings:
    #: Write the removal journal (see :func:`configure`).
    journal: bool = True


settings = Settings()


def configure(*, journal: bool | None = None, check_references: bool | None = None) -> None:
    """Change how the lifecycle works, process-wide.

    :param journal: with ``False``, files that a transaction let go of are still removed
        after the commit, but nothing is written to ``sa_depot_pending_removals``: a crash
        between the commit and the removals, or a failing removal, leaves the files to the
        collector's sweep (after its grace period) instead of its journal pass.
    :param check_references: accepted for compatibility and ignored. Before the file
        registry, ``True`` made every commit that removed files search the file columns of
        every table for other rows using them (a scan); the registry answers that question
        with an index lookup, always.
    """
    if journal is not None:
        settings.journal = journal
    del check_references


def reset() -> None:
    """Back to the defaults (for tests)."""
    configure(journal=True)


__all__ = ["Settings", "configure", "reset", "settings"]
