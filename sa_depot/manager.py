"""DepotManager: the registry of named storages, and the hooks of the serving middleware.

Configure storages once at start-up::

    DepotManager.configure('default', {'depot.storage_path': '/var/files'})
    DepotManager.configure('media', {'depot.backend': 'sa_depot.io.boto3.S3Storage',
                                     'depot.bucket': 'media'})

The first storage configured is the default. Options come from plain dicts, as an ini file would
give them: values arriving as strings (``'false'``, ``'1024'``) are converted to the types the
backend's constructor declares (see :class:`sa_depot.depots.Depots`, which keeps the storages).

State is kept on the class, as in filedepot. Tests reset it with :meth:`DepotManager.reset`
(filedepot's ``_clear`` does the same).
"""

from __future__ import annotations

from typing import Any, ClassVar

from sa_depot.depots import DEFAULT_BACKEND, Depots, remove_paths
from sa_depot.exceptions import ConfigurationError


class DepotManager(Depots):
    """Named storages, a default, aliases (:class:`~sa_depot.depots.Depots`), and the hooks of
    the serving middleware."""

    _middleware: ClassVar[Any] = None

    # -- serving -----------------------------------------------------------------------------
    @classmethod
    def make_middleware(cls, app: Any = None, **options: Any) -> Any:
        """Wrap the WSGI ``app`` in a :class:`~sa_depot.middleware.DepotMiddleware` serving the
        configured storages, and remember it for :meth:`url_for`."""
        from sa_depot.middleware import DepotMiddleware

        middleware = DepotMiddleware(app, **options)
        cls.set_middleware(middleware)
        return middleware

    @classmethod
    def set_middleware(cls, mw: Any) -> None:
        """Register ``mw`` as the middleware :meth:`url_for` asks (filedepot's hook for a
        middleware made by hand; :meth:`make_middleware` calls it). Replaces any previous
        one, where filedepot raised ``RuntimeError``."""
        DepotManager._middleware = mw

    @classmethod
    def get_middleware(cls) -> Any:
        """The middleware made by :meth:`make_middleware`."""
        if cls._middleware is None:
            raise ConfigurationError(
                "no middleware: call DepotManager.make_middleware(app) before asking for URLs"
            )
        return cls._middleware

    @classmethod
    def url_for(cls, path: str, expires_in: float | None = None) -> str:
        """The URL that serves ``'storage/file_id'`` through the middleware.

        With ``expires_in`` (seconds) the URL is signed and stops working after that time.
        """
        return str(cls.get_middleware().url_for(path, expires_in=expires_in))

    # -- tests -------------------------------------------------------------------------------
    @classmethod
    def reset(cls) -> None:
        """Forget every storage, alias, the default and the middleware (for tests)."""
        Depots.reset()
        DepotManager._middleware = None

    @classmethod
    def _clear(cls) -> None:
        """filedepot's name for :meth:`reset`."""
        cls.reset()


#: filedepot's module-level shortcuts (``from depot.manager import get_file``).
get_depot = DepotManager.get
get_file = DepotManager.get_file
configure = DepotManager.configure
set_default = DepotManager.set_default


__all__ = [
    "DEFAULT_BACKEND",
    "DepotManager",
    "configure",
    "get_depot",
    "get_file",
    "remove_paths",
    "set_default",
]
