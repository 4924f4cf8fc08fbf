"""``sa-depot adopt``: :func:`sa_depot.migrate.adopt_column` for every file column, with a
progress bar."""

from __future__ import annotations

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from sa_depot.cli.base import CliState, pass_state
from sa_depot.cli.database import (
    application_metadata,
    database_engine,
    database_url_option,
    metadata_option,
    require_url,
)


@click.command("adopt", short_help="Register the files of existing rows in the file registry.")
@database_url_option
@metadata_option("metadata of the [gc] table")
@click.option("--batch-size", default=500, show_default=True, help="Rows per transaction.")
@click.option(
    "--restart",
    is_flag=True,
    help="Read every column from its first row again, even one adopted already (after raw "
    "SQL wrote rows).",
)
@click.option(
    "--no-check-files",
    is_flag=True,
    help="Do not ask the storages whether each file exists (faster; missing files are then "
    "registered too).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar; print the summary only.")
@pass_state
def adopt_command(
    state: CliState,
    database_url: str | None,
    metadata_specs: tuple[str, ...],
    batch_size: int,
    restart: bool,
    no_check_files: bool,
    quiet: bool,
) -> None:
    """Register in the file registry the files that existing rows use.

    Rows written before the registry existed (an earlier sa_depot, filedepot) or by raw SQL
    are not in it: until they are, a commit that lets go of one of their files checks the
    file columns before removing it, a query whose cost grows with the tables. Adoption reads
    each UploadedFileField column of the metadata in batches, in primary key order, and
    registers what each row uses. It deletes and changes nothing in the rows.

    A value it cannot register (text that is not JSON, a storage that is not configured, a
    file that does not exist) is reported with its table, primary key and reason, and the
    exit status is 1; the other rows are adopted. An interrupted run resumes where it
    stopped; a finished column is skipped unless --restart.

    \b
    sa-depot adopt --database-url sqlite:///app.sqlite --metadata myapp.models:Base.metadata
    """
    from sa_depot.database.collector import file_columns
    from sa_depot.migrate import AdoptionProgress, adopt_column

    settings = state.settings
    url = require_url(database_url or settings.database_url)
    specs = list(metadata_specs) or settings.gc_metadata
    if not specs:
        raise click.UsageError(
            "which tables hold files? pass --metadata MODULE:ATTRIBUTE (e.g. "
            "myapp.models:Base.metadata) or set [gc] metadata in the configuration"
        )
    if batch_size < 1:
        raise click.UsageError(f"--batch-size must be at least 1, not {batch_size}")
    engine = database_engine(url)
    reports: list[AdoptionProgress] = []
    try:
        state.configure_storages()
        columns = file_columns(application_metadata(specs))
        console = Console(stderr=True)
        with Progress(
            TextColumn("adopting {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("rows"),
            TimeElapsedColumn(),
            console=console,
            disable=quiet,
        ) as progress:
            for column in columns:
                name = f"{column.table.fullname}.{column.name}"
                task = progress.add_task(name, total=None)

                def show(report: AdoptionProgress, task: TaskID = task) -> None:
                    progress.update(task, total=report.total_rows, completed=report.rows_scanned)

                reports.append(
                    adopt_column(
                        engine,
                        column.table,
                        column.name,
                        batch_size=batch_size,
                        restart=restart,
                        check_files=not no_check_files,
                        progress=show,
                    )
                )
    finally:
        engine.dispose()

    issues = [issue for report in reports for issue in report.issues]
    for report in reports:
        if report.already_done:
            click.echo(f"{report.column}: adopted already (--restart reads it again)")
        else:
            click.echo(
                f"{report.column}: read {report.rows_scanned} rows, adopted "
                f"{report.rows_adopted}, registered {report.files_attached} file uses, "
                f"{len(report.issues)} problem(s)"
            )
    for issue in issues:
        click.echo(f"not adopted: {issue}", err=True)
    if issues:
        raise click.ClickException(
            f"{len(issues)} value(s) could not be registered (listed above); nothing was "
            "deleted, and the other rows were adopted"
        )


__all__ = ["adopt_command"]
