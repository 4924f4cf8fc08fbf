"""The named storages of this process: what :class:`~sa_depot.manager.DepotManager` keeps.

:class:`Depots` holds the storages, the default and the aliases; the serving layer reads it
without knowing the manager, so that :class:`~sa_depot.manager.DepotManager` (which adds the
middleware's hooks to it) can build the middleware without an import circle.

Configure storages once at start-up::

    DepotManager.configure('default', {'depot.storage_path': '/var/files'})
    DepotManager.configure('media', {'depot.backend': 'sa_depot.io.boto3.S3Storage',
                                     'depot.bucket': 'media'})

The first storage configured is the default. Options come from plain dicts, as an ini file would
give them: values arriving as strings (``'false'``, ``'1024'``) are converted to the types the
backend's constructor declares.

State is kept on the class, as in filedepot, and written on :class:`Depots` itself, so that
``DepotManager`` and ``Depots`` read the same storages. Tests reset it with
:meth:`DepotManager.reset` (filedepot's ``_clear`` does the same).
"""

from __future__ import annotations

import importlib
import inspect
import logging
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from sa_depot import descriptor
from sa_depot.exceptions import ConfigurationError, InvalidKey, StorageNotFound
from sa_depot.io.interfaces import FileStorage, StoredFile
from sa_depot.io.keys import as_key_template

_log = logging.getLogger(__name__)

DEFAULT_BACKEND = "sa_depot.io.local.LocalFileStorage"

#: filedepot backend paths, mapped to ours so that existing configurations keep working.
_FILEDEPOT_BACKENDS = {
    "depot.io.local.LocalFileStorage": "sa_depot.io.local.LocalFileStorage",
    "depot.io.memory.MemoryFileStorage": "sa_depot.io.memory.MemoryFileStorage",
    "depot.io.gridfs.GridFSStorage": "sa_depot.io.gridfs.GridFSStorage",
    "depot.io.boto3.S3Storage": "sa_depot.io.boto3.S3Storage",
    "depot.io.awss3.S3Storage": "sa_depot.io.boto3.S3Storage",
    "depot.io.gcs.GCSStorage": "sa_depot.io.gcs.GCSStorage",
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class Depots:
    """Named storages, a default and aliases (see the module docs)."""

    _depots: ClassVar[dict[str, FileStorage]] = {}
    _default_depot: ClassVar[str | None] = None
    _aliases: ClassVar[dict[str, str]] = {}

    # -- configuration -----------------------------------------------------------------------
    @classmethod
    def configure(
        cls, name: str, config: Mapping[str, Any], prefix: str = "depot.", *, create: bool = True
    ) -> FileStorage:
        """Create the storage ``name`` from ``config`` and register it.

        The first storage configured becomes the default. Configuring a name twice is an
        error: call :meth:`reset` first (tests) or pick another name. ``create=False``: see
        :meth:`from_config`.
        """
        if not isinstance(name, str) or not name or "/" in name:
            raise ConfigurationError(
                f"invalid storage name {name!r}: use a non-empty name without '/'"
            )
        if name in cls._depots or name in cls._aliases:
            raise ConfigurationError(
                f"a storage named {name!r} is already configured; call DepotManager.reset() "
                "to start over, or choose another name"
            )
        storage = cls.from_config(config, prefix, create=create)
        storage.storage_name = name
        cls._depots[name] = storage
        if cls._default_depot is None:
            Depots._default_depot = name
        return storage

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], prefix: str = "depot.", *, create: bool = True
    ) -> FileStorage:
        """Create (without registering) a storage from a dict of ``prefix``-ed options.

        ``<prefix>backend`` is the dotted path of the storage class (default: local storage);
        ``<prefix>key_template`` names new files by a template (``'{yyyy}/{mm}/{id}{ext}'``,
        see :mod:`sa_depot.io.keys`) and works with every backend; every other ``<prefix>``
        key is passed to its constructor, converted to the annotated type when it arrives as
        a string.

        ``create=False`` makes a storage that creates nothing it lacks (a local directory, an S3
        bucket; the backend's :attr:`~sa_depot.io.interfaces.FileStorage.create_nothing_options`
        override the configured ones): a missing one raises
        :class:`~sa_depot.exceptions.StorageError` when the storage is used. For tools that
        only look, so that a mistyped path is not taken for an empty storage.
        """
        options = {k[len(prefix) :]: v for k, v in config.items() if k.startswith(prefix)}
        backend_path = str(options.pop("backend", DEFAULT_BACKEND))
        try:
            key_template = as_key_template(options.pop("key_template", None) or None)
        except InvalidKey as exc:
            raise ConfigurationError(f"{prefix}key_template: {exc}") from exc
        backend = _import_backend(_FILEDEPOT_BACKENDS.get(backend_path, backend_path))
        kwargs = _coerce_options(backend, options)
        if not create:
            kwargs.update(backend.create_nothing_options)
        try:
            storage = backend(**kwargs)
        except TypeError as exc:
            raise ConfigurationError(f"cannot create {backend_path} from {kwargs}: {exc}") from exc
        if key_template is not None:
            storage.key_template = key_template
        return storage

    @classmethod
    def set_default(cls, name: str) -> None:
        """Make ``name`` (a storage or an alias of one) the default storage."""
        cls.get(name)
        Depots._default_depot = cls.resolve_alias(name)

    @classmethod
    def get_default(cls) -> str:
        """The name of the default storage."""
        if cls._default_depot is None:
            raise StorageNotFound(None, cls.names())
        return cls._default_depot

    @classmethod
    def get(cls, name: str | None = None) -> FileStorage:
        """The storage called ``name`` (an alias is followed); the default one for ``None``."""
        if name is None:
            name = cls.get_default()
        storage = cls._depots.get(cls.resolve_alias(name))
        if storage is None:
            raise StorageNotFound(name, cls.names())
        return storage

    @classmethod
    def names(cls) -> list[str]:
        """The configured storage names, in configuration order."""
        return list(cls._depots)

    @classmethod
    def alias(cls, alias: str, name: str) -> None:
        """Let ``alias`` stand for the storage ``name``.

        Files uploaded through the alias (``UploadedFileField(upload_storage=alias)``,
        ``UploadedFile(content, alias)``) record the storage it points to at that moment, as in
        filedepot: point the alias at a new storage later and new files go there, while the
        rows already written keep reading from the old one. Re-pointing an existing alias is
        allowed; shadowing a storage name is not. Raises :class:`StorageNotFound` (a
        ``ValueError`` and a ``LookupError``) if ``name`` is not configured.
        """
        if name not in cls._depots:
            raise StorageNotFound(name, cls.names())
        if alias in cls._depots:
            raise ConfigurationError(f"{alias!r} is a storage name and cannot be an alias")
        cls._aliases[alias] = name

    @classmethod
    def resolve_alias(cls, name: str) -> str:
        """The storage name ``name`` stands for (``name`` itself if it is no alias)."""
        return cls._aliases.get(name, name)

    @classmethod
    def split_path(cls, path: str) -> tuple[str, str]:
        """Split ``'storage/file_id'``; raises
        :class:`~sa_depot.exceptions.InvalidFileId` if malformed (see
        :func:`sa_depot.descriptor.split_path`)."""
        return descriptor.split_path(path)

    @classmethod
    def get_file(cls, path: str) -> StoredFile:
        """Open the file at ``'storage/file_id'``."""
        storage, file_id = cls.split_path(path)
        return cls.get(storage).get(file_id)

    @classmethod
    def reset(cls) -> None:
        """Forget every storage, alias and the default (for tests)."""
        Depots._depots = {}
        Depots._default_depot = None
        Depots._aliases = {}


def remove_paths(paths: Iterable[str]) -> list[tuple[str, BaseException]]:
    """Delete the files at ``'storage/file_id'`` paths, each on its own; return the failures
    as ``(path, error)``.

    A failure is logged and returned rather than raised: callers run after a commit or a
    rollback, where an exception would only hide the outcome of the transaction.
    """
    failures: list[tuple[str, BaseException]] = []
    for path in paths:
        try:
            storage_name, file_id = descriptor.split_path(path)
            Depots.get(storage_name).delete(file_id)
        except Exception as exc:  # noqa: BLE001 - reported to the caller, who records it
            _log.warning("sa_depot could not remove %s: %s", path, exc)
            failures.append((path, exc))
    return failures


def _import_backend(path: str) -> type[FileStorage]:
    module_name, _, class_name = path.rpartition(".")
    if not module_name:
        raise ConfigurationError(
            f"backend {path!r} is not a dotted class path such as {DEFAULT_BACKEND!r}"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import backend module {module_name!r}: {exc}") from exc
    backend = getattr(module, class_name, None)
    if not (isinstance(backend, type) and issubclass(backend, FileStorage)):
        raise ConfigurationError(f"{path!r} is not a FileStorage class")
    return backend


def _coerce_options(backend: type[FileStorage], options: dict[str, Any]) -> dict[str, Any]:
    """Convert string option values to the types ``backend.__init__`` declares."""
    init = backend.__init__
    signature = inspect.signature(init)
    try:
        hints = typing.get_type_hints(init)
    except Exception:  # noqa: BLE001 - unresolvable annotations: pass values through
        hints = {}
    params = signature.parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    known = [n for n, p in params.items() if n != "self" and p.kind is not p.VAR_KEYWORD]
    result: dict[str, Any] = {}
    for key, value in options.items():
        if key not in params and not accepts_any:
            raise ConfigurationError(
                f"unknown option {key!r} for {backend.__name__}; accepted: {', '.join(known)}"
            )
        hint = hints.get(key)
        result[key] = _coerce(key, value, hint) if isinstance(value, str) and hint else value
    return result


def _coerce(key: str, value: str, hint: Any) -> Any:
    candidates = _flatten_union(hint)
    text = value.strip()
    if type(None) in candidates and text.lower() in {"none", "null"}:
        return None
    for candidate in candidates:
        if candidate is bool:
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
        elif candidate in (int, float):
            try:
                return candidate(text)
            except ValueError:
                continue
        elif candidate is str or candidate is Any:
            return value
    if str in candidates or not candidates:
        return value
    names = ", ".join(getattr(c, "__name__", str(c)) for c in candidates)
    raise ConfigurationError(f"option {key!r}: cannot read {value!r} as {names}")


def _flatten_union(hint: Any) -> list[Any]:
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        flat: list[Any] = []
        for arg in typing.get_args(hint):
            flat.extend(_flatten_union(arg))
        return flat
    return [origin or hint]
