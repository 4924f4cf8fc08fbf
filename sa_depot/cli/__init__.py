"""The ``sa-depot`` command line.

::

    sa-depot demo                       the demo web application (no configuration needed)
    sa-depot ls [STORAGE]               the configured storages, or the files of one
    sa-depot stat STORAGE/FILE_ID       one file's metadata (--verify checks its checksum)
    sa-depot copy SRC DST               copy the files of a storage into another (resumable)
    sa-depot gc --database-url URL      remove files no committed row references
    sa-depot adopt --database-url URL   register the files of existing rows in the registry
    sa-depot promote --database-url URL run queued promotions; --list, --retry-failed
    sa-depot serve                      serve the storages over HTTP (DepotMiddleware)

Storages come from a configuration file and environment variables: see
:mod:`sa_depot.cli.config` and docs/cli.md. Each command is one module of this package.
"""

from __future__ import annotations

import click

from sa_depot import __version__
from sa_depot.cli.adopt import adopt_command
from sa_depot.cli.base import CliState, DepotGroup
from sa_depot.cli.config import ENV_CONFIG
from sa_depot.cli.copy import copy_command
from sa_depot.cli.files import ls_command, stat_command
from sa_depot.cli.gc import gc_command
from sa_depot.cli.promote import promote_command
from sa_depot.cli.servers import demo_command, serve_command


@click.group(cls=DepotGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-c",
    "--config",
    "config_file",
    envvar=ENV_CONFIG,
    type=click.Path(dir_okay=False),
    help=f"Configuration file: TOML, or ini with depot.* keys [${ENV_CONFIG}, ./sa_depot.toml].",
)
@click.version_option(__version__, prog_name="sa-depot")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None) -> None:
    """sa_depot's command line: inspect, copy, collect and serve stored files, or run the
    demo."""
    ctx.obj = CliState(config_file=config_file)


cli.add_command(demo_command)
cli.add_command(ls_command)
cli.add_command(stat_command)
cli.add_command(serve_command)
cli.add_command(copy_command)
cli.add_command(gc_command)
cli.add_command(adopt_command)
cli.add_command(promote_command)


def main() -> None:
    """The ``sa-depot`` console script."""
    cli(prog_name="sa-depot")


__all__ = ["cli", "main"]
