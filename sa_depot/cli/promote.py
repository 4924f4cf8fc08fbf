"""``sa-depot promote``: a promotion worker reading the journal, with a progress bar; lists
queued and failed promotions and retries the failed ones (:mod:`sa_depot.promotion`)."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta

import click
import sqlalchemy as sa
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sa_depot.cli.base import CliState, pass_state
from sa_depot.cli.database import (
    application_metadata,
    database_engine,
    database_url_option,
    metadata_option,
    require_url,
)
from sa_depot.database import promotions as journal
from sa_depot.io.interfaces import utcnow
from sa_depot.promotion.job import Outcome, configure, promote


@click.command("promote", short_help="Run queued promotions; list or retry failed ones.")
@database_url_option
@metadata_option("metadata of the [gc] table")
@click.option("--list", "list_only", is_flag=True, help="List queued and failed promotions.")
@click.option(
    "--retry-failed", is_flag=True, help="Queue the failed promotions again (attempts reset)."
)
@click.option("--watch", is_flag=True, help="Keep running, looking for new promotions.")
@click.option(
    "--interval",
    default=2.0,
    show_default=True,
    help="Seconds between looks at the journal with --watch.",
)
@click.option(
    "--max-attempts",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Attempts before a promotion is marked failed.",
)
@click.option(
    "--backoff",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="Seconds before the first retry; doubled after each failure.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar; print the summary only.")
@pass_state
def promote_command(
    state: CliState,
    database_url: str | None,
    metadata_specs: tuple[str, ...],
    list_only: bool,
    retry_failed: bool,
    watch: bool,
    interval: float,
    max_attempts: int,
    backoff: float,
    quiet: bool,
) -> None:
    """Promote the queued files of columns declared with promote_to.

    Reads the promotion journal (sa_depot_promotions) and promotes each queued file whose
    back-off has passed: the file goes through its column's filters to the public storage
    and the row takes the promoted descriptor, unless it changed meanwhile. A failed attempt
    is retried after a back-off that doubles; after --max-attempts it is marked failed and
    listed by --list until --retry-failed. Without --watch, runs until nothing is queued
    (failed promotions do not count); the exit status is 1 if any is failed.

    The models must be importable: --metadata names them (as for gc).

    \b
    sa-depot promote --database-url sqlite:///app.sqlite --metadata myapp.models:Base
    sa-depot promote --list
    sa-depot promote --retry-failed --watch
    """
    settings = state.settings
    url = require_url(database_url or settings.database_url)
    specs = list(metadata_specs) or settings.gc_metadata
    engine = database_engine(url)
    try:
        state.configure_storages()
        if list_only:
            _print_listing(engine)
            return
        if not specs:
            raise click.UsageError(
                "which models hold the queued files? pass --metadata MODULE:ATTRIBUTE (e.g. "
                "myapp.models:Base.metadata) or set [gc] metadata in the configuration"
            )
        application_metadata(specs)  # imports the models: their columns' filters are needed
        configure(max_attempts=max_attempts, backoff=timedelta(seconds=backoff))
        if retry_failed:
            retried = journal.retry_failed(engine)
            click.echo(f"queued again: {len(retried)} failed promotion(s)")
        counts = _work(engine, watch=watch, interval=interval, quiet=quiet)
    finally:
        engine.dispose()
    click.echo(
        ", ".join(f"{outcome.value}: {counts[outcome]}" for outcome in Outcome if counts[outcome])
        or "nothing to promote"
    )
    failed = journal.listing(engine, states=[journal.FAILED])
    for row in failed:
        click.echo(
            f"failed: {row.path} after {row.attempts} attempt(s): {row.last_error}", err=True
        )
    if failed:
        raise click.ClickException(
            f"{len(failed)} promotion(s) failed (listed above); their files stay queued and "
            "served; fix the cause, then run sa-depot promote --retry-failed"
        )


def _work(engine: sa.Engine, *, watch: bool, interval: float, quiet: bool) -> Counter[Outcome]:
    counts: Counter[Outcome] = Counter()
    console = Console(stderr=True)
    with Progress(
        TextColumn("promoting"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        disable=quiet,
    ) as progress:
        task = progress.add_task("", total=0)
        while True:
            due = journal.due(engine)
            if due:
                total = progress.tasks[0].total or 0
                progress.update(task, total=total + len(due))
                for path in due:
                    outcome = promote(engine, path)
                    counts[outcome] += 1
                    progress.update(task, advance=1, description=_describe(counts))
                continue
            waiting = _next_retry(engine)
            if waiting is None and not watch:
                return counts
            pause = interval if waiting is None else min(waiting, interval) if watch else waiting
            time.sleep(max(pause, 0.05))


def _next_retry(engine: sa.Engine) -> float | None:
    """Seconds until the earliest queued promotion's back-off ends (``None``: none queued)."""
    queued = journal.listing(engine, states=[journal.QUEUED])
    if not queued:
        return None
    now = utcnow()
    return min(
        max(0.0, (row.next_attempt_at - now).total_seconds()) if row.next_attempt_at else 0.0
        for row in queued
    )


def _describe(counts: Counter[Outcome]) -> str:
    return " ".join(f"{o.value} {counts[o]}" for o in Outcome if counts[o])


def _print_listing(engine: sa.Engine) -> None:
    rows = journal.listing(engine)
    if not rows:
        click.echo("no queued or failed promotions")
        return
    table = Table("path", "state", "attempts", "queued at", "to", "last error")
    for row in rows:
        table.add_row(
            row.path,
            row.state,
            str(row.attempts),
            row.queued_at.strftime("%Y-%m-%d %H:%M:%S"),
            row.target,
            row.last_error or "",
        )
    Console(width=200).print(table)
    counts = Counter(row.state for row in rows)
    click.echo(f"queued: {counts[journal.QUEUED]}, failed: {counts[journal.FAILED]}")


__all__ = ["promote_command"]
