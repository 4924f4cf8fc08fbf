"""``sa-depot copy``: :func:`sa_depot.io.copy.copy_files` on the command line."""

from __future__ import annotations

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from sa_depot.cli.base import CliState, human_size, pass_state
from sa_depot.exceptions import ConfigurationError
from sa_depot.io.copy import CopyProgress, copy_files
from sa_depot.io.interfaces import FileStorage
from sa_depot.manager import DepotManager


@click.command("copy", short_help="Copy the files of a storage into another, verified.")
@click.argument("source")
@click.argument("destination")
@click.option(
    "--id",
    "file_ids",
    multiple=True,
    metavar="FILE_ID",
    help="Copy only this file (repeatable) [every file of SOURCE].",
)
@click.option("--dry-run", is_flag=True, help="Report what would be copied; write nothing.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar; print the summary only.")
@pass_state
def copy_command(
    state: CliState,
    source: str,
    destination: str,
    file_ids: tuple[str, ...],
    dry_run: bool,
    quiet: bool,
) -> None:
    """Copy every file of the storage SOURCE into the storage DESTINATION.

    Files keep their ids and metadata, and each copy is checked against its SHA-256. Files
    the destination already holds with the same checksum are skipped, so running the same
    command again resumes an interrupted copy. A file that cannot be copied is reported,
    the others are copied, and the exit status is 1.

    \b
    sa-depot copy default media             every file of "default"
    sa-depot copy default media --id ID     only the given files
    sa-depot copy default media --dry-run   what would be copied
    """
    state.configure_storages()
    source_storage = DepotManager.get(source)
    destination_storage = DepotManager.get(destination)
    if DepotManager.resolve_alias(source) == DepotManager.resolve_alias(destination):
        raise ConfigurationError(
            f"{source!r} and {destination!r} are the same storage: nothing to copy"
        )
    ids = _source_ids(source, source_storage, file_ids) if file_ids else None
    if not dry_run:  # a new destination's directory or bucket is made now, not before
        destination_storage = state.creating_storage(destination)
    console = Console(stderr=True)
    progress = Progress(
        TextColumn(f"{'checking' if dry_run else 'copying'} {source} -> {destination}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("files"),
        TextColumn("{task.fields[size]}"),
        TimeElapsedColumn(),
        console=console,
        disable=quiet,
    )

    with progress:
        task = progress.add_task("copy", total=None, size="")

        def advance(step: CopyProgress) -> None:
            progress.update(
                task, completed=step.done, total=step.total, size=human_size(step.bytes_copied)
            )

        report = copy_files(
            source_storage, destination_storage, ids, progress=advance, dry_run=dry_run
        )

    copied, skipped = ("would copy", "would skip") if dry_run else ("copied", "skipped")
    click.echo(
        f"{copied} {len(report.copied)} file(s) ({human_size(report.bytes_copied)}), "
        f"{skipped} {len(report.skipped)} already in {destination} with the same checksum, "
        f"failed {len(report.failed)}"
    )
    for file_id, reason in report.failed.items():
        click.echo(f"failed {source}/{file_id}: {reason}", err=True)
    if not report.ok:
        raise click.ClickException(
            f"{len(report.failed)} file(s) could not be copied (listed above); the others "
            "were, and running the same command again retries the failed ones"
        )


def _source_ids(name: str, storage: FileStorage, file_ids: tuple[str, ...]) -> list[str]:
    """The ``--id`` values, each checked to name a file of the source: a typo is reported
    before anything is copied (running the command again could not fix it)."""
    for file_id in file_ids:
        if not storage.is_valid_id(file_id):
            raise ConfigurationError(
                f"--id {file_id!r} is not a file id of the source storage {name!r} (expected "
                f"{storage.id_format}); nothing was copied. 'sa-depot ls {name}' lists its ids"
            )
        if not storage.exists(file_id):
            raise ConfigurationError(
                f"--id {file_id!r}: the source storage {name!r} has no such file; nothing was "
                f"copied. 'sa-depot ls {name}' lists its ids"
            )
    return list(file_ids)


__all__ = ["copy_command"]
