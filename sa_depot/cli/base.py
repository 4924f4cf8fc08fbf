"""What every ``sa-depot`` command shares: the command group that turns user errors into
messages, the lazily loaded configuration, and the parameter types."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import click
import sqlalchemy.exc

from sa_depot.cli.config import Settings, configure_manager, load_settings, storage_options
from sa_depot.exceptions import DepotError
from sa_depot.io.interfaces import FileStorage
from sa_depot.manager import DepotManager

#: Exceptions that mean "the input or the environment is wrong", not "sa_depot has a bug":
#: they are reported as one line and exit code 1, without a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    DepotError,
    sqlalchemy.exc.ArgumentError,  # a malformed database URL
    sqlalchemy.exc.OperationalError,  # an unreachable or refusing database
    sqlalchemy.exc.NoSuchModuleError,  # a URL naming a driver that is not installed
)


#: ``ctx.meta`` key: whether the command line asked for JSON output (``--json``).
_WANTS_JSON = "sa_depot.json"


class ReportedError(click.ClickException):
    """A failure whose JSON output already says what went wrong (``stat --json --verify`` of
    a corrupt file prints its metadata with the reason): only the exit status and the line on
    standard error remain to be given."""


class DepotGroup(click.Group):
    """A command group reporting :data:`USER_ERRORS` as ``Error: <message>`` (exit code 1).

    With ``--json``, standard output stays JSON on every error path: a command that fails
    before printing its own JSON prints ``{"error": "<message>"}`` there (the message also
    goes to standard error, and the exit status is non-zero).
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[_WANTS_JSON] = "--json" in args
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ReportedError:
            raise
        except USER_ERRORS as exc:
            error = click.ClickException(_one_line(exc))
            _json_error(ctx, error.format_message())
            raise error from exc
        except click.ClickException as exc:
            _json_error(ctx, exc.format_message())
            raise


def _json_error(ctx: click.Context, message: str) -> None:
    if ctx.meta.get(_WANTS_JSON):
        click.echo(json.dumps({"error": message}))


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, sqlalchemy.exc.StatementError) and exc.orig is not None:
        text = f"database error: {exc.orig}"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


@dataclass
class CliState:
    """The ``obj`` of the Click context: options of the group, settings read on first use."""

    config_file: str | None = None
    _settings: Settings | None = field(default=None, repr=False)
    _configured: bool = False

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_file)
        return self._settings

    def configure_storages(self) -> list[str]:
        """Register the configured storages in :class:`DepotManager` (once per invocation).

        They create nothing they lack (a directory, a bucket): a command given a wrong path
        reports it instead of making an empty storage there. A command that writes asks
        :meth:`creating_storage` for its destination.

        The command line owns the process: whatever the manager held before is replaced.
        """
        if not self._configured:
            DepotManager.reset()
            configure_manager(self.settings, create=False)
            self._configured = True
        return DepotManager.names()

    def creating_storage(self, name: str) -> FileStorage:
        """Another instance of the configured storage ``name`` (or of the one an alias
        names), which creates its directory or bucket if missing: the destination of a copy,
        asked for once there is something to write."""
        self.configure_storages()
        target = DepotManager.resolve_alias(name)
        DepotManager.get(target)  # an unknown name: StorageNotFound listing the known ones
        storage = DepotManager.from_config(storage_options(self.settings.storages[target]))
        storage.storage_name = target
        return storage


pass_state = click.make_pass_decorator(CliState, ensure=True)


def human_size(size: int | None) -> str:
    """``1536`` -> ``'1.5 KiB'``; ``None`` (unknown) -> ``'?'``."""
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


__all__ = [
    "USER_ERRORS",
    "CliState",
    "DepotGroup",
    "ReportedError",
    "human_size",
    "pass_state",
]
