"""File URLs that agree with the path the middleware answers, wherever it is mounted.

A file URL is ``<root><mountpoint>/<storage>/<file id>[/<filename>][?expires=...&signature=...]``
(a file id may hold ``/``: a readable key, see :func:`split_file_url_path`):

* ``mountpoint`` is where the middleware answers, below the root of the application it is
  part of: the request's path there (WSGI ``PATH_INFO``, PEP 3333) starts with it;
* the *root* is the path under which a server, a dispatcher or an outer framework mounts that
  application: the WSGI ``SCRIPT_NAME`` (ASGI ``root_path``) of the request being served when
  the URL is made while the middleware handles a request (a view of the application it
  wraps), else the ``root_path`` the middleware was given, for URLs made elsewhere (a FastAPI
  route next to a mounted middleware, a background job).

So ``app.mount("/files", WSGIMiddleware(DepotMiddleware(None, mountpoint="/",
root_path="/files")))`` serves and links ``/files/<storage>/<file id>``, and a WSGI application
run under ``SCRIPT_NAME=/app`` links ``/app/depot/...`` from its views without being told.
The ASGI front (:mod:`sa_depot.asgi`) reuses :class:`FileUrls` and :func:`request_root`, and
reads its root and path with :func:`asgi_root_and_path`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any
from urllib.parse import quote, urlencode

from sa_depot.depots import Depots
from sa_depot.exceptions import ConfigurationError
from sa_depot.serving.policy import ServingPolicy
from sa_depot.serving.representation import clean_filename
from sa_depot.serving.signing import UrlSigner

logger = logging.getLogger("sa_depot.middleware")

#: The root (SCRIPT_NAME, ASGI root_path) of the request the middleware is handling, if any.
_request_root: ContextVar[str | None] = ContextVar("sa_depot_request_root", default=None)
#: Characters of a path kept as they are in a URL (RFC 3986 pchar and '/').
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


def split_file_url_path(subpath: str) -> tuple[str, list[str]] | None:
    """``(storage name, candidate file ids)`` of ``'<storage>/<file id>[/<filename>]'``, the
    path below the mountpoint (decoded), or ``None`` when it is not of that shape.

    A file id may contain ``/`` (a readable key such as ``acme/2026/<uuid>.pdf``), so a path
    of three parts or more reads two ways: the last part naming the download, or the last
    part of the id. A server tries the candidates in order, the second only when the first
    names no file, so the likelier comes first: ``<id>/<name>`` for two parts after the
    storage (every URL made before keys existed), the whole key for more (the URL
    :meth:`FileUrls.url_for` makes for a key without a filename).
    """
    segments = subpath.split("/")
    if len(segments) < 2 or not all(segments):
        return None
    storage, rest = segments[0], segments[1:]
    if len(rest) == 1:
        return storage, rest
    whole, named = "/".join(rest), "/".join(rest[:-1])
    return storage, [named, whole] if len(rest) == 2 else [whole, named]


def url_path_prefix(value: str, option: str) -> str:
    """``value`` checked as a URL path prefix (``'/depot'``), without its trailing slash
    (``''`` for ``'/'`` or ``''``). Raises :class:`ConfigurationError` naming ``option``."""
    if not isinstance(value, str) or (value and not value.startswith("/")):
        raise ConfigurationError(
            f"{option} {value!r} must be a URL path starting with '/', e.g. '/depot'"
        )
    if any(char in value for char in "?#%") or not value.isprintable():
        raise ConfigurationError(
            f"{option} {value!r} must be a plain path without '?', '#', '%' or control characters"
        )
    return value.rstrip("/")


def asgi_root_and_path(scope: Mapping[str, Any]) -> tuple[str, str]:
    """The root of an ASGI HTTP request (its ``root_path``) and its path below that root,
    both decoded, as WSGI's ``SCRIPT_NAME`` and ``PATH_INFO`` would give them.

    The ASGI specification makes ``path`` the full path, root included (uvicorn since 0.26,
    Starlette's ``Mount``, hypercorn), but older servers gave the path below the root: as
    Starlette does, the root is taken off ``path`` when ``path`` starts with it, and ``path``
    is kept whole otherwise.
    """
    root = str(scope.get("root_path") or "").rstrip("/")
    path = str(scope.get("path") or "/")
    if root and (path == root or path.startswith(root + "/")):
        path = path[len(root) :]
    return root, path or "/"


@contextlib.contextmanager
def request_root(root: str) -> Iterator[None]:
    """While the body runs, URLs start with ``root``: the decoded ``SCRIPT_NAME`` (ASGI
    ``root_path``) of the request being handled. An empty root leaves the configured
    ``root_path`` in force (a proxy that strips a prefix without saying so)."""
    token = _request_root.set(root.rstrip("/") or None)
    try:
        yield
    finally:
        _request_root.reset(token)


class FileUrls:
    """Builds the URLs of files served at ``<root><mountpoint>/<storage>/<file id>``.

    :param mountpoint: the prefix below the application's root, as checked by
        :func:`url_path_prefix`.
    :param root_path: the root used outside a request: the path the application (or the
        middleware itself) is mounted under.
    :param signer: signs URLs (``None``: no URL can be signed).
    :param policy_for: the :class:`ServingPolicy` of a storage name, for storages that
        serve signed URLs only.
    """

    def __init__(
        self,
        mountpoint: str,
        root_path: str,
        signer: UrlSigner | None,
        policy_for: Callable[[str], ServingPolicy],
    ) -> None:
        self.mountpoint = url_path_prefix(mountpoint, "mountpoint")
        self.root_path = url_path_prefix(root_path, "root_path")
        self._signer = signer
        self._policy_for = policy_for

    @property
    def root(self) -> str:
        """The root URLs start with now: the current request's, else ``root_path``."""
        current = _request_root.get()
        return self.root_path if current is None else current

    def url_for(
        self, path: str, expires_in: float | None = None, filename: str | None = None
    ) -> str:
        """The URL of ``'storage/file_id'`` (``filename`` names the download).

        With ``expires_in`` (seconds) the URL is signed and refused after that time. A storage
        whose policy requires signatures gets its ``signed_url_expires_in`` by default.
        """
        storage, file_id = Depots.split_path(path)
        policy = self._policy_for(storage)
        if expires_in is None and policy.require_signature:
            expires_in = policy.signed_url_expires_in
            if expires_in is None:
                raise ConfigurationError(
                    f"storage {storage!r} serves signed URLs only: pass expires_in=... or set "
                    "signed_url_expires_in in its ServingPolicy"
                )
        # a key's '/' stays one: servers decode %2F before routing (WSGI PATH_INFO)
        url = (
            quote(self.root + self.mountpoint, safe=_PATH_SAFE)
            + f"/{quote(storage, safe='')}/{quote(file_id, safe='/')}"
        )
        name = clean_filename(filename)
        if name:
            url += "/" + quote(name, safe="")
        if expires_in is not None:
            if self._signer is None:
                raise ConfigurationError(
                    "signed URLs need a secret: create the middleware with secret=... "
                    "(DepotManager.make_middleware(app, secret=...))"
                )
            expires = self._signer.expiry(expires_in)
            signature = self._signer.sign(f"{storage}/{file_id}", expires)
            url += "?" + urlencode({"expires": expires, "signature": signature})
        return url


def warn_about_root(root: str, urls: FileUrls, what: str) -> None:
    """A standalone middleware that a framework mounts on a path it was not told about makes
    URLs that miss that path: say so (the fronts call it once). ``what`` names the root
    (``'SCRIPT_NAME'``, ``"ASGI root_path"``)."""
    if not root.rstrip("/"):  # a proxy stripping the configured root_path: as expected
        return
    mountpoint = urls.mountpoint
    logger.warning(
        "DepotMiddleware is mounted under %s %r, but its root_path is %r: the URLs "
        "made outside its requests (UploadedFile.url in the views of the framework that "
        "mounts it) are %s/<storage>/<file id>, while the files are served at "
        "%s/<storage>/<file id>. Pass root_path=%r (and mountpoint='/' to serve the files "
        "right under it).",
        what,
        root,
        urls.root_path,
        urls.root_path + mountpoint,
        root.rstrip("/") + mountpoint,
        root.rstrip("/"),
    )


__all__ = [
    "FileUrls",
    "asgi_root_and_path",
    "request_root",
    "url_path_prefix",
    "warn_about_root",
]
