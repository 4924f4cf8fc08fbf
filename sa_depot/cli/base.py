"""What every ``sa-depot`` command shares: the command group that turns user errors into
messages, the lazily loaded configuration, and the parameter types."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
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


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|m|s)", re.IGNORECASE)
_UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}


class Duration(click.ParamType):  # type: ignore[type-arg]
    """A duration such as ``24h``, ``90m``, ``1h30m``, ``7d``, ``2w`` or ``0``."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, timedelta):
            return value
        text = str(value).strip().replace(" ", "")
        if text == "0":
            return timedelta(0)
        seconds = 0.0
        position = 0
        for match in _DURATION_PART.finditer(text):
            if match.start() != position:
                break
            seconds += float(match.group(1)) * _UNITS[match.group(2).lower()]
            position = match.end()
        if not text or position != len(text):
            self.fail(
                f"{value!r} is not a duration: use a number with a unit (s, m, h, d, w), "
                "e.g. 24h, 90m, 1h30m or 7d",
                param,
                ctx,
            )
        return timedelta(seconds=seconds)


DURATION = Duration()


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


__all__ = ["DURATION", "USER_ERRORS", "CliState", "DepotGroup", "Duration", "pass_state"]
