"""Process-wide switches of the session lifecycle."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Settings:
    #: Write the removal journal (see :func:`configure`).
    journal: bool = True
    #: Check the file columns before removing files the registry does not know.
    check_references: bool = True


settings = Settings()


def configure(*, journal: bool | None = None, check_references: bool | None = None) -> None:
    """Change how the lifecycle works, process-wide.

    :param journal: with ``False``, files that a transaction let go of are still removed
        after the commit, but nothing is written to ``sa_depot_pending_removals``: a crash
        between the commit and the removals, or a failing removal, leaves the files to the
        collector's sweep (after its grace period) instead of its journal pass.
    :param check_references: with ``True`` (the default), before removing a file that a
        commit let go of but that the file registry does not know (rows written before it
        existed, by filedepot or by raw SQL, and not adopted yet), the lifecycle asks the file
        columns of every table it watches whether a committed row still references it, and
        keeps it if so: one ``LIKE`` query per column, whose cost grows with the tables.
        Adopting the rows (``sa-depot adopt``, :func:`sa_depot.migrate.adopt_files`) puts
        their files in the registry and makes the check unnecessary. With ``False`` such
        files are removed unchecked: only if no two rows can share a file. Files the registry
        knows are decided by index lookups whatever this says.
    """
    if journal is not None:
        settings.journal = journal
    if check_references is not None:
        settings.check_references = check_references


def reset() -> None:
    """Back to the defaults (for tests)."""
    configure(journal=True, check_references=True)


__all__ = ["Settings", "configure", "reset", "settings"]
