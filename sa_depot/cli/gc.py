"""``sa-depot gc``: the collector (:func:`sa_depot.collector.collect`) on the command line."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Any

import click
from rich.console import Console

from sa_depot.cli.base import CliState, pass_state
from sa_depot.cli.database import (
    application_metadata,
    database_engine,
    database_url_option,
    metadata_option,
    require_url,
)
from sa_depot.exceptions import ConfigurationError
from sa_depot.promotion.job import promote


class GraceParam(click.ParamType):  # type: ignore[type-arg]
    """A duration as the collector reads it: ``24h``, ``30m``, ``2d``, ``1w``, ``90s``."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from sa_depot.collector import parse_duration

        if isinstance(value, timedelta):
            return value
        try:
            return parse_duration(str(value))
        except ConfigurationError as exc:
            self.fail(str(exc), param, ctx)


@click.command("gc", short_help="Remove the stored files that no committed row references.")
@database_url_option
@metadata_option("metadata of the [gc] table")
@click.option(
    "--grace",
    type=GraceParam(),
    help="Never remove files younger than this: longer than any transaction [24h].",
)
@click.option("--dry-run", is_flag=True, help="Report what would be removed; change nothing.")
@click.option(
    "--storage",
    "storage_names",
    multiple=True,
    help="Sweep this storage (repeatable) [the storages the file columns write to]. Name a "
    "storage no column writes to only if this database owns its files.",
)
@click.option(
    "--journal-only",
    is_flag=True,
    help="Only finish the removals recorded in the journal (no mark and sweep, no metadata).",
)
@click.option("-q", "--quiet", is_flag=True, help="Print the summary only, not every path.")
@pass_state
def gc_command(
    state: CliState,
    database_url: str | None,
    metadata_specs: tuple[str, ...],
    grace: timedelta | None,
    dry_run: bool,
    storage_names: tuple[str, ...],
    journal_only: bool,
    quiet: bool,
) -> None:
    """Remove the stored files that no committed row references.

    First it finishes the removals that the removal journal still lists (a process died
    between a commit and the removal of the files it replaced or deleted, or the storage
    failed). Then it marks every file referenced by the UploadedFileField columns of the
    given metadata and sweeps the configured storages: files referenced by no row and older
    than the grace period are removed.

    Only the storages the file columns write to are swept, unless --storage names others:
    a backup or another application's storage would otherwise be emptied. See docs/cli.md
    for when it is safe.
    """
    from sa_depot.collector import DEFAULT_GRACE, collect

    settings = state.settings
    url = require_url(database_url or settings.database_url)
    specs = list(metadata_specs) or settings.gc_metadata
    if not specs and not journal_only:
        raise click.UsageError(
            "which tables hold files? pass --metadata MODULE:ATTRIBUTE (e.g. "
            "myapp.models:Base.metadata) or set [gc] metadata in the configuration; "
            "--journal-only needs none"
        )
    if grace is None:
        grace = GraceParam().convert(settings.gc_grace, None, None) if settings.gc_grace else None
    engine = database_engine(url)  # a malformed URL or a missing SQLite file: said first
    try:
        state.configure_storages()
        metadata = application_metadata(specs) if not journal_only else []
        grace = grace if grace is not None else DEFAULT_GRACE
        named = list(storage_names or settings.gc_storages) or None
        if not journal_only:
            _announce_plan(metadata, named, grace)
        with Console(stderr=True).status("Collecting unreferenced files..."):
            report = collect(
                engine,
                metadata,
                named,
                grace=grace,
                dry_run=dry_run,
                sweep=not journal_only,
                # the metadata's models are imported: their queued files can be promoted
                promoter=None if journal_only else partial(promote, engine),
            )
    finally:
        engine.dispose()

    verb = "would remove" if dry_run else "removed"
    if not quiet:
        for path in report.journal_finished:
            click.echo(f"{verb} {path} (journaled removal)")
        for path in report.orphans:
            click.echo(f"{verb} {path} (unreferenced)")
        for path in report.incomplete:  # never in a dry run: nothing is looked for
            click.echo(f"{verb} {path} (left by an interrupted write)")
        for path, outcome in report.promotions:
            click.echo(f"promotion of {path}: {outcome} (stalled)")
        for path in report.missing:
            click.echo(f"missing {path} (referenced by a row, not in its storage)", err=True)
    click.echo(report.summary())
    for where, message in report.errors:
        click.echo(f"error: {where}: {message}", err=True)
    if report.errors:
        raise click.ClickException(
            f"{len(report.errors)} error(s) during the collection (listed above); the rest "
            "was done, and running sa-depot gc again retries"
        )


def _announce_plan(metadata: list[Any], named: list[str] | None, grace: timedelta) -> None:
    """Say on standard error which storages will be swept, and warn about a short grace."""
    from sa_depot.collector import file_columns, left_alone, sweep_plan, written_storages

    columns = file_columns(metadata)
    plan = sweep_plan(columns, named)
    written = written_storages(columns)
    for name in plan:
        why = "written by file columns" if name in written else "named by --storage"
        click.echo(f"will sweep {name} ({why})", err=True)
    for name in left_alone(plan):
        click.echo(
            f"will not sweep {name}: no file column writes to it (name it with --storage to "
            "sweep it)",
            err=True,
        )
    if grace < _SHORT_GRACE:
        click.echo(
            f"warning: --grace {_describe_grace(grace)} also removes files uploaded by "
            "transactions that have not committed yet (an upload in progress now loses its "
            "file); use it only when no application is writing",
            err=True,
        )


#: A grace period shorter than this gets a warning: it may be shorter than a transaction.
_SHORT_GRACE = timedelta(minutes=10)


def _describe_grace(grace: timedelta) -> str:
    return f"{int(grace.total_seconds())}s"


__all__ = ["gc_command"]
