"""What every ``sa-depot`` command shares: the command group that turns user errors into
messages, the lazily loaded configuration, and the parameter types."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import click
import sqlalchemy.exc

from sa_depot.cli.config import Settings, configure_manager, load_settings
from sa_depot.exceptions import DepotError
from sa_depot.manager import DepotManager

#: Exceptions that mean "the input or the environment is wrong", not "sa_depot has a bug":
#: they are reported as one line and exit code 1, without a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    DepotError,
    sqlalchemy.exc.ArgumentError,  # a malformed database URL
    sqlalchemy.exc.OperationalError,  # an unreachable or refusing database
    sqlalchemy.exc.NoSuchModuleError,  # a URL naming a driver that is not installed
)


class DepotGroup(click.Group):
    """A command group reporting :data:`USER_ERRORS` as ``Error: <message>`` (exit code 1)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except USER_ERRORS as exc:
            raise click.ClickException(_one_line(exc)) from exc


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

        The command line owns the process: whatever the manager held before is replaced.
        """
        if not self._configured:
            DepotManager.reset()
            configure_manager(self.settings)
            self._configured = True
        return DepotManager.names()


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


__all__ = ["USER_ERRORS", "CliState", "DepotGroup", "human_size", "pass_state"]
