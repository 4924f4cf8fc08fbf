"""The file server behind every front: WSGI (:mod:`sa_depot.middleware`), ASGI
(:mod:`sa_depot.asgi`) and the Flask extension (:mod:`sa_depot.flask`).

A front finds the path below its mountpoint (:meth:`FileServer.subpath`), turns its protocol's
request into a Werkzeug ``Request`` and sends the Werkzeug ``Response`` that
:meth:`FileServer.respond` returns. A request for ``<storage>/<file_id>[/<filename>]`` goes
through these steps, each in its own place:

1. routing and method (here): 404 for a malformed path, 405 for a method other than GET/HEAD;
2. access (here): signature (:mod:`~sa_depot.serving.signing`), storage and id lookup, then
   the policy's authorization hook (:mod:`~sa_depot.serving.policy`);
3. the file's representation (:mod:`~sa_depot.serving.representation`): type, filename and
   disposition, decided once; then a temporary redirect when the storage gives the file a
   public or presigned URL that carries them, or else
4. the response (:mod:`~sa_depot.serving.responder`): conditional requests, ranges, headers
   and body, proxied or handed to a front server.

The storage and the id come only from the configured storages
(:class:`~sa_depot.depots.Depots`) and the storage's own id validation, so no request can name
anything outside a configured storage.

:meth:`FileServer.respond` and iterating the body it returns do blocking I/O (the storage, the
authorization hook): an asynchronous front runs them in worker threads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

from werkzeug.datastructures import ResponseCacheControl
from werkzeug.exceptions import HTTPException
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from sa_depot.depots import Depots
from sa_depot.exceptions import (
    ConfigurationError,
    FileNotFound,
    InvalidFileId,
    StorageError,
    StorageNotFound,
)
from sa_depot.io.interfaces import DEFAULT_CHUNK_SIZE as MAX_CHUNK_SIZE
from sa_depot.io.interfaces import FileStorage, StoredFile
from sa_depot.serving.policy import ServingPolicy
from sa_depot.serving.representation import SANDBOX_CSP, describe
from sa_depot.serving.responder import SECURITY_HEADERS, Responder, plain_response
from sa_depot.serving.signing import UrlSigner, Verdict
from sa_depot.serving.urls import FileUrls, split_file_url_path, warn_about_root

logger = logging.getLogger("sa_depot.middleware")

#: One week, as in filedepot.
DEFAULT_CACHE_MAX_AGE = 7 * 24 * 3600
ALLOWED_METHODS = ("GET", "HEAD")
#: filedepot's block size: fewer reads and writes per response than 64 KiB (measured: 10 MiB
#: under gunicorn, 8% more requests a second), and still a bounded amount of memory.
DEFAULT_CHUNK_SIZE = 256 * 1024
DEFAULT_MAX_RANGES = 32

#: What :meth:`FileServer.respond` answers when the path names no stored file (``None``: 404).
NotFoundHandler = Callable[[], Response]


class FileServer:
    """Serves the files of the configured storages at ``<mountpoint>/<storage>/<file_id>``.

    The options are those of :class:`~sa_depot.middleware.DepotMiddleware`, which documents
    them; ``use_file_wrapper`` lets a WSGI front hand whole local files to the server's
    ``wsgi.file_wrapper``. Raises :class:`~sa_depot.exceptions.ConfigurationError` for
    inconsistent options (a policy requiring signatures without a secret, two names of one
    storage with different policies, ...).
    """

    def __init__(
        self,
        mountpoint: str = "/depot",
        cache_max_age: int = DEFAULT_CACHE_MAX_AGE,
        *,
        root_path: str = "",
        secret: str | bytes | None = None,
        previous_secrets: Sequence[str | bytes] = (),
        policy: ServingPolicy | None = None,
        policies: Mapping[str, ServingPolicy] | None = None,
        max_ranges: int = DEFAULT_MAX_RANGES,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        use_file_wrapper: bool = True,
    ) -> None:
        if not isinstance(mountpoint, str) or not mountpoint.startswith("/"):
            raise ConfigurationError(
                f"mountpoint {mountpoint!r} must be a URL path starting with '/', e.g. '/depot'"
            )
        check_serving_options(cache_max_age, max_ranges, chunk_size)
        self.cache_max_age = cache_max_age
        self.default_policy = policy if policy is not None else ServingPolicy()
        self.policies: dict[str, ServingPolicy] = dict(policies or {})
        self._signer = UrlSigner(secret, previous_secrets) if secret is not None else None
        if self._signer is None and previous_secrets:
            raise ConfigurationError("previous_secrets given without a current secret")
        for name, storage_policy in [("default", self.default_policy), *self.policies.items()]:
            if not isinstance(storage_policy, ServingPolicy):
                raise ConfigurationError(
                    f"the policy of {name!r} is a {type(storage_policy).__name__}, "
                    "not a ServingPolicy"
                )
            if storage_policy.require_signature and self._signer is None:
                raise ConfigurationError(
                    f"the policy of {name!r} requires signed URLs but no secret is configured: "
                    "pass secret=... to the middleware"
                )
        for name in self.policies:
            self.policy_for(name)  # two names of one storage with different policies: refuse now
        self.urls = FileUrls(mountpoint, root_path, self._signer, self.policy_for)
        #: The prefix of file URLs below the root, without a trailing slash ('' for '/').
        self.mountpoint = self.urls.mountpoint
        self.responder = Responder(
            chunk_size=chunk_size, max_ranges=max_ranges, use_file_wrapper=use_file_wrapper
        )

    # -- URLs --------------------------------------------------------------------------------
    def policy_for(self, storage: str) -> ServingPolicy:
        """The policy of ``storage`` (a storage name or an alias).

        A policy belongs to the storage, whichever name it was given under: one keyed by an
        alias also applies to URLs that use the storage's own name, and the other way round.
        Two names of one storage with different policies are refused (ConfigurationError)
        rather than letting the URL's choice of name pick the laxer one.
        """
        resolved = Depots.resolve_alias(storage)
        found = [
            policy for key, policy in self.policies.items() if Depots.resolve_alias(key) == resolved
        ]
        if not found:
            return self.default_policy
        if any(policy != found[0] for policy in found[1:]):
            names = sorted(k for k in self.policies if Depots.resolve_alias(k) == resolved)
            raise ConfigurationError(
                f"the serving policies given for {', '.join(map(repr, names))} differ, but they "
                f"all name storage {resolved!r}: give one policy per storage"
            )
        return found[0]

    def url_for(
        self, path: str, expires_in: float | None = None, filename: str | None = None
    ) -> str:
        """The URL of ``'storage/file_id'``: see :meth:`FileUrls.url_for
        <sa_depot.serving.urls.FileUrls.url_for>`."""
        return self.urls.url_for(path, expires_in=expires_in, filename=filename)

    def subpath(self, path: str) -> str | None:
        """The part of ``path`` (a request's path below its root, ``'/depot/files/<id>'``)
        after the mountpoint (``'files/<id>'``), or ``None`` when ``path`` is outside it."""
        prefix = self.mountpoint
        if path == prefix or path.startswith(prefix + "/"):
            return path[len(prefix) + 1 :]
        return None

    # -- requests ----------------------------------------------------------------------------
    def respond(
        self, request: Request, subpath: str, *, not_found: NotFoundHandler | None = None
    ) -> Response:
        """The response to ``request`` for ``subpath`` (``'<storage>/<file_id>[/<name>]'``).

        :param not_found: called for the answer when ``subpath`` names no stored file (not of
            that shape, an unknown storage, a malformed or absent id), instead of a 404: the
            Flask extension serves its older plain files there.
        """
        parsed = split_file_url_path(subpath)
        if parsed is None:
            if not_found is not None:
                return not_found()
            return plain_response(404, "Not Found: file URLs are <storage>/<file id>[/<name>]")
        if request.method not in ALLOWED_METHODS:
            return method_not_allowed()
        storage_name, candidates = parsed
        try:
            storage = Depots.get(storage_name)
        except StorageNotFound:
            return not_found() if not_found is not None else plain_response(404, "Not Found")
        policy = self.policy_for(storage_name)
        # the ids the path may name, in order (a key's last part or a download name)
        file_ids = [file_id for file_id in candidates if _is_file_id(storage, file_id)]
        refusal: Response | None = None
        for file_id in file_ids:
            refusal, signed_until = self._check_signature(
                request, f"{storage_name}/{file_id}", policy
            )
            if refusal is not None:
                continue
            try:
                stored = storage.get(file_id)
            except FileNotFound:
                continue
            except StorageError:
                return self._storage_failed(storage_name, file_id)
            return self.serve(request, stored, policy, signed_until=signed_until, storage=storage)
        if refusal is not None:
            return refusal
        return not_found() if not_found is not None else plain_response(404, "Not Found")

    def serve(
        self,
        request: Request,
        stored: StoredFile,
        policy: ServingPolicy,
        *,
        signed_until: int | None = None,
        storage: FileStorage | None = None,
    ) -> Response:
        """Steps 2 (the authorization hook, unless ``signed_until`` says a valid signature
        let the request in), 3 and 4 for an opened file, which the response owns (closed
        when it ends). ``storage`` gives the file a redirect to its public URL, if any."""
        try:
            if signed_until is None and policy.authorize is not None:
                refusal = self._authorize(policy, request, stored)
                if refusal is not None:
                    stored.close()
                    return refusal
            # one decision of type, filename and disposition for every path the bytes take
            representation = describe(stored.filename, stored.content_type, policy.inline_types)
            if policy.public_urls == "redirect" and storage is not None:
                # None when the storage has no URL, or none that carries these headers: proxy
                location = storage.public_url(stored, response=representation.overrides)
                if location:
                    stored.close()
                    return self._redirect(policy, location)
            cache_control = policy.cache_control(self.cache_max_age, signed_until)
            return self.responder.respond(request, stored, policy, cache_control, representation)
        except StorageError:
            stored.close()
            return self._storage_failed(storage.storage_name if storage else None, stored.file_id)
        except BaseException:
            stored.close()
            raise

    # -- the parts ---------------------------------------------------------------------------
    def _check_signature(
        self, request: Request, signed_path: str, policy: ServingPolicy
    ) -> tuple[Response | None, int | None]:
        """``(refusal, signed_until)``: the response refusing the request, if any, and the
        expiry of a valid signature it carries."""
        try:
            args = request.args if self._signer is not None else None
        except UnicodeDecodeError:  # raw non-UTF-8 bytes: no client makes such a query
            return plain_response(400, "Bad Request: the query string is not UTF-8"), None
        if self._signer is not None and args and ("signature" in args or "expires" in args):
            expires = args.get("expires", "")
            verdict = self._signer.verify(signed_path, expires, args.get("signature", ""))
            if verdict is not Verdict.VALID:
                reason = "the link has expired" if verdict is Verdict.EXPIRED else "bad signature"
                return self._denied(policy, reason), None
            return None, int(expires)
        if policy.require_signature:
            return self._denied(policy, "this file is served through signed links only"), None
        return None, None

    def _authorize(
        self, policy: ServingPolicy, request: Request, stored: StoredFile
    ) -> Response | None:
        """``None`` if the hook allows the request, else the response refusing it."""
        assert policy.authorize is not None
        try:
            allowed = policy.authorize(request, stored)
        except PermissionError:
            allowed = False
        except HTTPException as exc:  # the hook chose its own answer (401, 404...)
            response = exc.get_response(request.environ)
            response.headers["Cache-Control"] = "no-store"
            response.headers["Content-Security-Policy"] = SANDBOX_CSP
            response.headers.extend(SECURITY_HEADERS)
            return response
        # anything but True (a forgotten return gives None) denies: fail closed
        return None if allowed is True else self._denied(policy, "access denied")

    def _storage_failed(self, storage_name: str | None, file_id: str) -> Response:
        # the cause (host names, paths, credentials errors) goes to the log, not to the client
        logger.exception("storage %r failed while serving %r", storage_name, file_id)
        return plain_response(503, "Service Unavailable: the storage failed; try again later")

    def _denied(self, policy: ServingPolicy, reason: str) -> Response:
        if policy.deny_status == 404:
            return plain_response(404, "Not Found")
        return plain_response(403, f"Forbidden: {reason}")

    def _redirect(self, policy: ServingPolicy, location: str) -> Response:
        response = redirect(location, code=policy.redirect_status)
        cache = ResponseCacheControl()
        if policy.cache == "public" and policy.redirect_max_age > 0:
            cache.public = True
            cache.max_age = policy.redirect_max_age
        else:
            # a presigned target expires, and a restricted file's redirect must not be shared
            cache.no_store = True
        response.headers["Cache-Control"] = cache.to_header()
        response.headers.extend(SECURITY_HEADERS)
        return response


class ServerFront:
    """What every protocol front of a :class:`FileServer` shares: the server, its URLs and
    policies, and the warning about a root the front was not told about."""

    #: The application receiving requests outside the mountpoint (``None``: standalone).
    app: object | None
    #: The file server doing the work.
    server: FileServer
    _root_warned: bool = False

    @property
    def cache_max_age(self) -> int:
        return self.server.cache_max_age

    @property
    def default_policy(self) -> ServingPolicy:
        return self.server.default_policy

    @property
    def policies(self) -> dict[str, ServingPolicy]:
        return self.server.policies

    @property
    def urls(self) -> FileUrls:
        return self.server.urls

    @property
    def mountpoint(self) -> str:
        """The prefix of file URLs below the root, without a trailing slash ('' for '/')."""
        return self.server.mountpoint

    def policy_for(self, storage: str) -> ServingPolicy:
        """The policy of ``storage`` (a storage name or an alias).

        A policy belongs to the storage, whichever name it was given under: one keyed by an
        alias also applies to URLs that use the storage's own name, and the other way round.
        Two names of one storage with different policies are refused (ConfigurationError)
        rather than letting the URL's choice of name pick the laxer one.
        """
        return self.server.policy_for(storage)

    def url_for(
        self, path: str, expires_in: float | None = None, filename: str | None = None
    ) -> str:
        """The URL of ``'storage/file_id'`` (``filename`` names the download):
        ``<root><mountpoint>/<storage>/<file_id>``, the root being the current request's
        (WSGI ``SCRIPT_NAME``, ASGI ``root_path``) or ``root_path`` (see
        :mod:`sa_depot.serving.urls`).

        With ``expires_in`` (seconds) the URL is signed and refused after that time. A storage
        whose policy requires signatures gets its ``signed_url_expires_in`` by default.
        """
        return self.server.url_for(path, expires_in=expires_in, filename=filename)

    def check_root(self, root: str, what: str) -> None:
        """Warn, once, when a standalone front runs under a root other than its
        ``root_path`` (see :func:`~sa_depot.serving.urls.warn_about_root`)."""
        if self.app is None and root.rstrip("/") != self.urls.root_path and not self._root_warned:
            self._root_warned = True
            warn_about_root(root, self.urls, what)

    def __repr__(self) -> str:
        mode = "standalone" if self.app is None else f"wrapping {self.app!r}"
        return f"<{type(self).__name__} at {self.mountpoint or '/'!r} {mode}>"


def method_not_allowed() -> Response:
    """The 405 of every method but GET and HEAD, with its ``Allow`` header."""
    return plain_response(
        405,
        f"Method Not Allowed: files answer {' and '.join(ALLOWED_METHODS)}",
        [("Allow", ", ".join(ALLOWED_METHODS))],
    )


def check_serving_options(cache_max_age: int, max_ranges: int, chunk_size: int) -> None:
    """Raise :class:`~sa_depot.exceptions.ConfigurationError` for an option out of range."""
    if not isinstance(cache_max_age, int) or cache_max_age < 0:
        raise ConfigurationError(f"cache_max_age={cache_max_age!r}: use seconds >= 0")
    if not isinstance(max_ranges, int) or max_ranges < 1:
        raise ConfigurationError(f"max_ranges={max_ranges!r}: use an integer >= 1")
    if not isinstance(chunk_size, int) or chunk_size < 1 or chunk_size > MAX_CHUNK_SIZE:
        raise ConfigurationError(
            f"chunk_size={chunk_size!r}: use a number of bytes from 1 to {MAX_CHUNK_SIZE}"
        )


__all__ = [
    "ALLOWED_METHODS",
    "DEFAULT_CACHE_MAX_AGE",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_MAX_RANGES",
    "FileServer",
    "NotFoundHandler",
    "ServerFront",
    "check_serving_options",
    "method_not_allowed",
]


def _is_file_id(storage: FileStorage, file_id: str) -> bool:
    """Whether ``file_id`` is well formed for ``storage`` (no request made)."""
    try:
        storage.fileid(file_id)
    except InvalidFileId:
        return False
    return True
