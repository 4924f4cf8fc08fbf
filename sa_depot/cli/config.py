"""The configuration of the ``sa-depot`` command: a file, then environment variables.

Where it comes from, each source overriding the previous one:

1. a file: ``--config PATH``, else ``$SA_DEPOT_CONFIG``, else ``./sa_depot.toml`` if present.
   TOML (one table per storage) or ini (filedepot's ``depot.`` keys), told apart by the
   extension (``.toml`` is TOML, anything else ini);
2. environment variables: ``SA_DEPOT_DATABASE_URL``, ``SA_DEPOT_DEFAULT_STORAGE``,
   ``SA_DEPOT_SECRET`` and ``SA_DEPOT_STORAGE__<NAME>__<OPTION>`` (one storage option);
3. command-line options (``--database-url``...), applied by the commands themselves.

The TOML form::

    database_url = "sqlite:///app.sqlite"
    default = "default"                 # optional: the first storage is the default

    [storages.default]                  # options of the backend's constructor
    storage_path = "/var/files"

    [storages.media]
    backend = "sa_depot.io.boto3.S3Storage"
    bucket = "media"

    [aliases]
    avatars = "media"

    [serve]                             # sa-depot serve
    host = "127.0.0.1"
    port = 8080
    mountpoint = "/depot"

    [serve.policies.media]              # a ServingPolicy per storage
    cache = "public"

    [gc]                                # sa-depot gc
    metadata = ["myapp.models:Base.metadata"]
    grace = "24h"

The ini form, as filedepot applications have it (``%(here)s`` is the file's directory)::

    [app:main]
    sqlalchemy.url = sqlite:///%(here)s/app.sqlite
    depot.storage_path = %(here)s/files              ; storage "default"
    depot.media.backend = sa_depot.io.boto3.S3Storage ; storage "media"
    depot.media.bucket = media
    sa_depot.default = media
    sa_depot.aliases.avatars = media
    sa_depot.serve.port = 8080
    sa_depot.gc.metadata = myapp.models:Base.metadata
"""

from __future__ import annotations

import configparser
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sa_depot.exceptions import ConfigurationError
from sa_depot.manager import DepotManager

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

ENV_CONFIG = "SA_DEPOT_CONFIG"
ENV_DATABASE_URL = "SA_DEPOT_DATABASE_URL"
ENV_DEFAULT_STORAGE = "SA_DEPOT_DEFAULT_STORAGE"
ENV_SECRET = "SA_DEPOT_SECRET"
ENV_STORAGE_PREFIX = "SA_DEPOT_STORAGE__"
#: The file read when neither ``--config`` nor ``$SA_DEPOT_CONFIG`` names one.
DEFAULT_CONFIG_FILE = "sa_depot.toml"
#: Where ``sa-depot serve`` serves files (``[serve] mountpoint``), as DepotMiddleware does.
DEFAULT_MOUNTPOINT = "/depot"

_TOP_LEVEL_KEYS = {"database_url", "default", "storages", "aliases", "serve", "gc"}
#: ``[gc]`` keys.
GC_KEYS = {"metadata", "grace", "storages"}
#: ``[serve]`` keys and the type their ini (string) values are read as.
SERVE_KEYS: dict[str, type] = {
    "host": str,
    "port": int,
    "mountpoint": str,
    "cache_max_age": int,
    "secret": str,
    "threads": int,
}
#: The ini sections searched for ``depot.`` keys, in order of preference.
_PREFERRED_SECTIONS = ("sa_depot", "app:main")


@dataclass
class Settings:
    """Everything the command line was configured with."""

    #: ``{storage name: {option: value}}``, in configuration order; ``backend`` is an option.
    storages: dict[str, dict[str, Any]] = field(default_factory=dict)
    default: str | None = None
    aliases: dict[str, str] = field(default_factory=dict)
    database_url: str | None = None
    #: The ``[serve]`` table (host, port, mountpoint, cache_max_age, secret, threads, policies).
    serve: dict[str, Any] = field(default_factory=dict)
    #: ``sa-depot gc``: ``'module:attribute'`` specs of the MetaData holding file columns.
    gc_metadata: list[str] = field(default_factory=list)
    #: ``sa-depot gc``: the grace period, as written (``'24h'``).
    gc_grace: str | None = None
    #: ``sa-depot gc``: the storages to sweep (default: all).
    gc_storages: list[str] = field(default_factory=list)
    #: Where the settings came from, for messages.
    sources: list[str] = field(default_factory=list)

    def describe_sources(self) -> str:
        return ", ".join(self.sources) if self.sources else "no configuration file"


def find_config_file(
    explicit: str | os.PathLike[str] | None, cwd: Path | None = None
) -> Path | None:
    """The file to read: ``explicit`` (from ``--config`` or ``$SA_DEPOT_CONFIG``, which Click
    merges), else ``./sa_depot.toml`` if it exists, else none."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigurationError(
                f"configuration file {str(path)!r} does not exist (given by --config or "
                f"${ENV_CONFIG})"
            )
        return path
    candidate = (cwd or Path.cwd()) / DEFAULT_CONFIG_FILE
    return candidate if candidate.is_file() else None


def load_settings(
    config_file: str | os.PathLike[str] | None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read the configuration file (if any), then apply the environment variables."""
    environ = os.environ if environ is None else environ
    path = find_config_file(config_file)
    settings = Settings()
    if path is not None:
        settings = _read_toml(path) if path.suffix.lower() == ".toml" else _read_ini(path)
        settings.sources.append(str(path))
    _apply_environment(settings, environ)
    return settings


def configure_manager(settings: Settings, *, create: bool = True) -> list[str]:
    """Register the configured storages and aliases in :class:`DepotManager`; return the
    storage names.

    ``create=False`` configures storages that create nothing they lack, such as their
    directory or bucket (see :meth:`DepotManager.from_config`).
    """
    if not settings.storages:
        raise ConfigurationError(
            "no storage is configured: pass --config FILE (TOML with [storages.<name>] tables, "
            f"or ini with depot.* keys), set ${ENV_CONFIG}, create ./{DEFAULT_CONFIG_FILE}, or "
            f"set {ENV_STORAGE_PREFIX}<NAME>__<OPTION> variables"
        )
    for name, options in settings.storages.items():
        try:
            DepotManager.configure(name, storage_options(options), create=create)
        except ConfigurationError as exc:
            raise ConfigurationError(f"storage {name!r}: {exc}") from exc
    for alias, target in settings.aliases.items():
        DepotManager.alias(alias, target)
    if settings.default is not None:
        DepotManager.set_default(settings.default)
    return DepotManager.names()


def storage_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options of one storage of the settings, as :meth:`DepotManager.configure` takes
    them (``depot.``-prefixed)."""
    return {f"depot.{key}": value for key, value in options.items()}


# -- TOML ------------------------------------------------------------------------------------
def _read_toml(path: Path) -> Settings:
    try:
        with path.open("rb") as stream:
            data = tomllib.load(stream)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path}: not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror or exc}") from exc
    unknown = sorted(set(data) - _TOP_LEVEL_KEYS)
    if unknown:
        raise ConfigurationError(
            f"{path}: unknown key(s) {', '.join(unknown)}; expected "
            f"{', '.join(sorted(_TOP_LEVEL_KEYS))}"
        )
    settings = Settings()
    storages = _table(data, "storages", path)
    for name, options in storages.items():
        if not isinstance(options, dict):
            raise ConfigurationError(
                f"{path}: storages.{name} must be a table of options ([storages.{name}])"
            )
        settings.storages[name] = dict(options)
    for alias, target in _table(data, "aliases", path).items():
        settings.aliases[alias] = _string(target, f"aliases.{alias}", path)
    if "default" in data:
        settings.default = _string(data["default"], "default", path)
    if "database_url" in data:
        settings.database_url = _string(data["database_url"], "database_url", path)
    serve = _table(data, "serve", path)
    _check_serve_keys(serve, path)
    settings.serve = dict(serve)
    _read_gc_table(settings, _table(data, "gc", path), path)
    return settings


def _read_gc_table(settings: Settings, gc: Mapping[str, Any], path: Path) -> None:
    unknown = sorted(set(gc) - GC_KEYS)
    if unknown:
        raise ConfigurationError(
            f"{path}: unknown [gc] key(s) {', '.join(unknown)}; expected "
            f"{', '.join(sorted(GC_KEYS))}"
        )
    settings.gc_metadata = _string_list(gc.get("metadata", []), "gc.metadata", path)
    settings.gc_storages = _string_list(gc.get("storages", []), "gc.storages", path)
    if "grace" in gc:
        settings.gc_grace = _string(gc["grace"], "gc.grace", path)


def _string_list(value: object, key: str, path: Path) -> list[str]:
    if isinstance(value, str):
        return value.split()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigurationError(f"{path}: {key} must be a list of strings, not {value!r}")
    return list(value)


def _table(data: Mapping[str, Any], key: str, path: Path) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigurationError(f"{path}: {key} must be a table ([{key}])")
    return value


def _string(value: object, key: str, path: Path) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(f"{path}: {key} must be a string, not {value!r}")
    return value


def _check_serve_keys(serve: Mapping[str, Any], path: Path) -> None:
    allowed = {*SERVE_KEYS, "policies"}
    unknown = sorted(set(serve) - allowed)
    if unknown:
        raise ConfigurationError(
            f"{path}: unknown [serve] key(s) {', '.join(unknown)}; expected "
            f"{', '.join(sorted(allowed))}"
        )
    policies = serve.get("policies", {})
    if not isinstance(policies, dict) or not all(isinstance(v, dict) for v in policies.values()):
        raise ConfigurationError(
            f"{path}: serve.policies must hold one table per storage ([serve.policies.<name>])"
        )


# -- ini -------------------------------------------------------------------------------------
def _read_ini(path: Path) -> Settings:
    parser = configparser.ConfigParser(
        defaults={"here": str(path.resolve().parent)},
        interpolation=configparser.BasicInterpolation(),
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep option case
    try:
        with path.open(encoding="utf-8") as stream:
            parser.read_file(stream)
    except configparser.Error as exc:
        raise ConfigurationError(f"{path}: not a valid ini file: {exc}") from exc
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror or exc}") from exc
    section = _ini_section(parser, path)
    settings = Settings()
    try:
        items = [(k, v) for k, v in parser.items(section) if k != "here"]
    except configparser.Error as exc:
        raise ConfigurationError(f"{path}: [{section}]: {exc}") from exc
    default_options: dict[str, Any] = {}
    named: dict[str, dict[str, Any]] = {}
    for key, value in items:
        if key.startswith("depot."):
            rest = key[len("depot.") :]
            name, dot, option = rest.rpartition(".")
            if not dot:
                default_options[option] = value
            elif name and option:
                named.setdefault(name, {})[option] = value
            else:
                raise ConfigurationError(f"{path}: [{section}] {key}: use depot.<name>.<option>")
        elif key.startswith("sa_depot."):
            _read_ini_setting(settings, key[len("sa_depot.") :], value, path, section)
        elif key == "sqlalchemy.url" and settings.database_url is None:
            settings.database_url = value
    if default_options:
        settings.storages["default"] = default_options
    for name, options in named.items():
        if name in settings.storages:
            raise ConfigurationError(
                f"{path}: storage 'default' is configured by depot.<option> keys; do not "
                "also use depot.default.<option>"
            )
        settings.storages[name] = options
    return settings


def _ini_section(parser: configparser.ConfigParser, path: Path) -> str:
    for preferred in _PREFERRED_SECTIONS:
        if parser.has_section(preferred):
            return preferred
    with_keys = [
        name
        for name in parser.sections()
        if any(k.startswith(("depot.", "sa_depot.")) for k in parser.options(name))
    ]
    if len(with_keys) == 1:
        return with_keys[0]
    if not with_keys:
        raise ConfigurationError(
            f"{path}: no section holds depot.* keys; put them in [sa_depot] or [app:main]"
        )
    raise ConfigurationError(
        f"{path}: several sections hold depot.* keys ({', '.join(with_keys)}); keep them in "
        "[sa_depot] or [app:main]"
    )


def _read_ini_setting(settings: Settings, key: str, value: str, path: Path, section: str) -> None:
    if key == "database_url":
        settings.database_url = value
    elif key == "default":
        settings.default = value
    elif key.startswith("aliases.") and len(key) > len("aliases."):
        settings.aliases[key[len("aliases.") :]] = value
    elif key == "gc.metadata":
        settings.gc_metadata = value.split()
    elif key == "gc.storages":
        settings.gc_storages = value.split()
    elif key == "gc.grace":
        settings.gc_grace = value
    elif key.startswith("serve.") and key[len("serve.") :] in SERVE_KEYS:
        name = key[len("serve.") :]
        settings.serve[name] = _convert(value, SERVE_KEYS[name], f"sa_depot.{key}", path)
    else:
        raise ConfigurationError(
            f"{path}: [{section}] unknown key sa_depot.{key}; expected sa_depot.database_url, "
            "sa_depot.default, sa_depot.aliases.<alias>, sa_depot.gc.<metadata|grace|storages> "
            "or sa_depot.serve.<" + "|".join(SERVE_KEYS) + ">"
        )


def _convert(value: str, kind: type, key: str, path: Path | str) -> Any:
    if kind is int:
        try:
            return int(value)
        except ValueError:
            raise ConfigurationError(f"{path}: {key} must be an integer, not {value!r}") from None
    return value


# -- the environment -------------------------------------------------------------------------
def _apply_environment(settings: Settings, environ: Mapping[str, str]) -> None:
    used: list[str] = []
    for variable in sorted(environ):
        if not variable.startswith(ENV_STORAGE_PREFIX):
            continue
        name, sep, option = variable[len(ENV_STORAGE_PREFIX) :].partition("__")
        if not (sep and name and option):
            raise ConfigurationError(
                f"environment variable {variable}: use {ENV_STORAGE_PREFIX}<NAME>__<OPTION>, "
                f"e.g. {ENV_STORAGE_PREFIX}DEFAULT__STORAGE_PATH=/var/files"
            )
        storage = _storage_key(settings, name)
        settings.storages.setdefault(storage, {})[option.lower()] = environ[variable]
        used.append(variable)
    if environ.get(ENV_DATABASE_URL):
        settings.database_url = environ[ENV_DATABASE_URL]
        used.append(ENV_DATABASE_URL)
    if environ.get(ENV_DEFAULT_STORAGE):
        settings.default = environ[ENV_DEFAULT_STORAGE]
        used.append(ENV_DEFAULT_STORAGE)
    if environ.get(ENV_SECRET):
        settings.serve["secret"] = environ[ENV_SECRET]
        used.append(ENV_SECRET)
    if used:
        settings.sources.append("environment (" + ", ".join(used) + ")")


def _storage_key(settings: Settings, name: str) -> str:
    """The storage an environment variable's ``NAME`` means: a configured storage whose name
    matches case-insensitively, else the lowercased name."""
    for existing in settings.storages:
        if existing.lower() == name.lower():
            return existing
    return name.lower()


__all__ = [
    "DEFAULT_CONFIG_FILE",
    "DEFAULT_MOUNTPOINT",
    "ENV_CONFIG",
    "ENV_DATABASE_URL",
    "ENV_DEFAULT_STORAGE",
    "ENV_SECRET",
    "ENV_STORAGE_PREFIX",
    "Settings",
    "configure_manager",
    "find_config_file",
    "load_settings",
    "storage_options",
]
