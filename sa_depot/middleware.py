"""DepotMiddleware: the WSGI file server of the storages configured in DepotManager.

``<mountpoint>/<storage>/<file_id>[/<filename>]`` serves a file; any other path under the
mountpoint is 404; a path outside it goes to the wrapped application untouched (404 when the
middleware runs standalone, without one). The mountpoint is matched against ``PATH_INFO``,
the path below where the application is mounted (``SCRIPT_NAME``), and URLs start with that
root (:mod:`sa_depot.serving.urls`), so that both agree under mounts and prefixes.

A request goes through these steps, each in its own place:

1. routing and method (here): 404 for a malformed path, 405 for a method other than GET/HEAD;
2. access (here): signature (:mod:`sa_depot.serving.signing`), storage and id lookup, then
   the policy's authorization hook (:mod:`sa_depot.serving.policy`);
3. the file's representation (:mod:`sa_depot.serving.representation`): type, filename and
   disposition, decided once; then a temporary redirect when the storage gives the file a
   public or presigned URL that carries them, or else
4. the response (:mod:`sa_depot.serving.responder`): conditional requests, ranges, headers
   and body, proxied or handed to a front server.

The storage and the id come only from :class:`~sa_depot.manager.DepotManager` and the
storage's own id validation, so no request can name anything outside a configured storage.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from werkzeug.datastructures import ResponseCacheControl
from werkzeug.exceptions import HTTPException
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from sa_depot.exceptions import (
    ConfigurationError,
    FileNotFound,
    InvalidFileId,
    StorageError,
    StorageNotFound,
)
from sa_depot.io.interfaces import DEFAULT_CHUNK_SIZE as MAX_CHUNK_SIZE
from sa_depot.io.interfaces import StoredFile
from sa_depot.manager import DepotManager
from sa_depot.serving.policy import ServingPolicy
from sa_depot.serving.representation import (
    DEFAULT_INLINE_TYPES,
    SANDBOX_CSP,
    describe,
)
from sa_depot.serving.responder import (
    SECURITY_HEADERS,
    Responder,
    plain_response,
    with_reason_phrase,
)
from sa_depot.serving.signing import UrlSigner, Verdict
from sa_depot.serving.urls import FileUrls, request_root

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["DEFAULT_INLINE_TYPES", "DepotMiddleware", "FileServeApp", "ServingPolicy"]

logger = logging.getLogger("sa_depot.middleware")

#: One week, as in filedepot.
DEFAULT_CACHE_MAX_AGE = 7 * 24 * 3600
ALLOWED_METHODS = ("GET", "HEAD")
DEFAULT_CHUNK_SIZE = 64 * 1024
DEFAULT_MAX_RANGES = 32


class DepotMiddleware:
    """Serve the files of the configured storages under ``mountpoint``.

    :param app: the WSGI application receiving every request outside ``mountpoint``; ``None``
        makes the middleware a standalone file server.
    :param mountpoint: the URL path prefix of files below the application's root
        (``SCRIPT_NAME``), ``'/depot'`` by default; ``'/'`` for a middleware that a framework
        mounts on a path of its own.
    :param root_path: the path the application (or the middleware itself) is mounted under,
        for URLs made outside the middleware's requests: ``'/files'`` for
        ``app.mount("/files", WSGIMiddleware(...))``. URLs made while the middleware handles a
        request use that request's ``SCRIPT_NAME`` when it has one.
    :param cache_max_age: ``max-age`` of file responses, in seconds, unless a policy says
        otherwise.
    :param secret: the key of signed URLs (``url_for(path, expires_in=...)``); at least 16
        bytes. Without it no URL can be signed and no storage can require signatures.
    :param previous_secrets: older keys still accepted while a rotation is under way.
    :param policy: the :class:`ServingPolicy` of storages without one of their own.
    :param policies: ``{storage name: ServingPolicy}``. Aliases follow their storage.
    :param max_ranges: a Range asking for more parts than this is ignored (whole file sent).
    :param chunk_size: bytes read from a storage at a time.
    :param replace_wsgi_filewrapper: ``True`` never uses the server's ``wsgi.file_wrapper``
        (filedepot's option name; for servers whose wrapper misbehaves).
    """

    def __init__(
        self,
        app: WSGIApplication | None = None,
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
        replace_wsgi_filewrapper: bool = False,
    ) -> None:
        if not isinstance(mountpoint, str) or not mountpoint.startswith("/"):
            raise ConfigurationError(
                f"mountpoint {mountpoint!r} must be a URL path starting with '/', e.g. '/depot'"
            )
        _check_serving_options(cache_max_age, max_ranges, chunk_size)
        self.app = app
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
        self._root_warned = False
        self._responder = Responder(
            chunk_size=chunk_size,
            max_ranges=max_ranges,
            use_file_wrapper=not replace_wsgi_filewrapper,
        )

    # -- URLs --------------------------------------------------------------------------------
    def policy_for(self, storage: str) -> ServingPolicy:
        """The policy of ``storage`` (a storage name or an alias).

        A policy belongs to the storage, whichever name it was given under: one keyed by an
        alias also applies to URLs that use the storage's own name, and the other way round.
        Two names of one storage with different policies are refused (ConfigurationError)
        rather than letting the URL's choice of name pick the laxer one.
        """
        resolved = DepotManager.resolve_alias(storage)
        found = [
            policy
            for key, policy in self.policies.items()
            if DepotManager.resolve_alias(key) == resolved
        ]
        if not found:
            return self.default_policy
        if any(policy != found[0] for policy in found[1:]):
            names = sorted(k for k in self.policies if DepotManager.resolve_alias(k) == resolved)
            raise ConfigurationError(
                f"the serving policies given for {', '.join(map(repr, names))} differ, but they "
                f"all name storage {resolved!r}: give one policy per storage"
            )
        return found[0]

    def url_for(
        self, path: str, expires_in: float | None = None, filename: str | None = None
    ) -> str:
        """The URL of ``'storage/file_id'`` (``filename`` names the download):
        ``<root><mountpoint>/<storage>/<file_id>``, the root being the current request's
        ``SCRIPT_NAME`` or ``root_path`` (see :mod:`sa_depot.serving.urls`).

        With ``expires_in`` (seconds) the URL is signed and refused after that time. A storage
        whose policy requires signatures gets its ``signed_url_expires_in`` by default.
        """
        return self.urls.url_for(path, expires_in=expires_in, filename=filename)

    # -- WSGI --------------------------------------------------------------------------------
    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ, populate_request=False, shallow=True)
        root = request.root_path
        if self.app is None and root.rstrip("/") != self.urls.root_path and not self._root_warned:
            self._warn_about_root(root)
        with request_root(root):  # URLs the wrapped application makes now start with it
            path = request.path
            prefix = self.mountpoint
            if not (path == prefix or path.startswith(prefix + "/")):
                if self.app is not None:
                    return self.app(environ, start_response)
                return with_reason_phrase(plain_response(404, "Not Found"))(environ, start_response)
            response = self._handle(request, path[len(prefix) + 1 :])
            return with_reason_phrase(response)(environ, start_response)

    def _warn_about_root(self, root: str) -> None:
        """A standalone middleware that a framework mounts on a path it was not told about
        makes URLs that miss that path: say so, once."""
        self._root_warned = True
        if not root.rstrip("/"):  # a proxy stripping the configured root_path: as expected
            return
        logger.warning(
            "DepotMiddleware is mounted under SCRIPT_NAME %r, but its root_path is %r: the URLs "
            "made outside its requests (UploadedFile.url in the views of the framework that "
            "mounts it) are %s/<storage>/<file id>, while the files are served at "
            "%s/<storage>/<file id>. Pass root_path=%r (and mountpoint='/' to serve the files "
            "right under it).",
            root,
            self.urls.root_path,
            self.urls.root_path + self.mountpoint,
            root.rstrip("/") + self.mountpoint,
            root.rstrip("/"),
        )

    def _handle(self, request: Request, subpath: str) -> Response:
        segments = subpath.split("/")
        if len(segments) not in (2, 3) or not all(segments):
            return plain_response(404, "Not Found: file URLs are <storage>/<file id>[/<name>]")
        if request.method not in ALLOWED_METHODS:
            return plain_response(
                405,
                f"Method Not Allowed: files answer {' and '.join(ALLOWED_METHODS)}",
                [("Allow", ", ".join(ALLOWED_METHODS))],
            )
        storage_name, file_id = segments[0], segments[1]
        try:
            storage = DepotManager.get(storage_name)
        except StorageNotFound:
            return plain_response(404, "Not Found")
        policy = self.policy_for(storage_name)

        signed_until = None
        try:
            args = request.args if self._signer is not None else None
        except UnicodeDecodeError:  # raw non-UTF-8 bytes: no client makes such a query
            return plain_response(400, "Bad Request: the query string is not UTF-8")
        if self._signer is not None and args and ("signature" in args or "expires" in args):
            expires = args.get("expires", "")
            verdict = self._signer.verify(
                f"{storage_name}/{file_id}", expires, args.get("signature", "")
            )
            if verdict is not Verdict.VALID:
                reason = "the link has expired" if verdict is Verdict.EXPIRED else "bad signature"
                return self._denied(policy, reason)
            signed_until = int(expires)
        elif policy.require_signature:
            return self._denied(policy, "this file is served through signed links only")

        try:
            stored = storage.get(file_id)
        except (InvalidFileId, FileNotFound):
            return plain_response(404, "Not Found")
        except StorageError:
            return self._storage_failed(storage_name, file_id)
        try:
            if signed_until is None and policy.authorize is not None:
                refusal = self._authorize(policy, request, stored)
                if refusal is not None:
                    stored.close()
                    return refusal
            # one decision of type, filename and disposition for every path the bytes take
            representation = describe(stored.filename, stored.content_type, policy.inline_types)
            if policy.public_urls == "redirect":
                # None when the storage has no URL, or none that carries these headers: proxy
                location = storage.public_url(stored, response=representation.overrides)
                if location:
                    stored.close()
                    return self._redirect(policy, location)
            cache_control = policy.cache_control(self.cache_max_age, signed_until)
            return self._responder.respond(request, stored, policy, cache_control, representation)
        except StorageError:
            stored.close()
            return self._storage_failed(storage_name, file_id)
        except BaseException:
            stored.close()
            raise

    # -- the parts ---------------------------------------------------------------------------
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

    def _storage_failed(self, storage_name: str, file_id: str) -> Response:
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

    def __repr__(self) -> str:
        mode = "standalone" if self.app is None else f"wrapping {self.app!r}"
        return f"<DepotMiddleware at {self.mountpoint or '/'!r} {mode}>"


class FileServeApp:
    """A WSGI application serving one stored file: filedepot's ``FileServeApp``, for
    applications that serve a file from a view of their own (after checking who may see it)::

        def download(request, document_id):
            document = load(document_id)          # the application's own access rules
            return FileServeApp(document.content.file, cache_max_age=3600)

    It answers GET and HEAD as :class:`DepotMiddleware` answers a file: conditional requests
    (304, 412), Range (206, 416), ``ETag``, ``Last-Modified``, ``Cache-Control`` with
    ``Expires``, a safe ``Content-Type`` and ``Content-Disposition`` (see
    :mod:`sa_depot.serving`), and 405 for other methods. It owns ``storedfile``: the file is
    closed when the response ends. One instance answers one request.

    :param storedfile: the opened :class:`~sa_depot.io.interfaces.StoredFile`.
    :param cache_max_age: ``max-age`` in seconds, unless ``policy`` sets one.
    :param replace_wsgi_filewrapper: ``True`` never uses the server's ``wsgi.file_wrapper``.
    :param policy: caching and inline types (:class:`ServingPolicy`); its ``authorize`` and
        ``require_signature`` are the view's business and are not applied here. The default
        caches privately, where filedepot sent ``public``.
    :param chunk_size: bytes read from the storage at a time.
    :param max_ranges: a Range asking for more parts than this gets the whole file.

    The attributes filedepot's had are kept: ``file``, ``filename``, ``last_modified``,
    ``content_length``, ``content_type``, ``cache_expires``, ``replace_wsgi_filewrapper``.
    """

    def __init__(
        self,
        storedfile: StoredFile,
        cache_max_age: int = DEFAULT_CACHE_MAX_AGE,
        replace_wsgi_filewrapper: bool = False,
        *,
        policy: ServingPolicy | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        max_ranges: int = DEFAULT_MAX_RANGES,
    ) -> None:
        _check_serving_options(cache_max_age, max_ranges, chunk_size)
        if not isinstance(storedfile, StoredFile):
            raise ConfigurationError(
                f"FileServeApp serves a StoredFile (storage.get(file_id), uploaded.file), not "
                f"{type(storedfile).__name__}"
            )
        self.file = storedfile
        self.filename = storedfile.filename
        self.last_modified = storedfile.last_modified
        self.content_length = storedfile.content_length
        self.content_type = storedfile.content_type
        self.cache_expires = cache_max_age
        self.replace_wsgi_filewrapper = replace_wsgi_filewrapper
        self.policy = policy if policy is not None else ServingPolicy()
        self._responder = Responder(
            chunk_size=chunk_size,
            max_ranges=max_ranges,
            use_file_wrapper=not replace_wsgi_filewrapper,
        )

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ, populate_request=False, shallow=True)
        if request.method not in ALLOWED_METHODS:
            self.file.close()
            response = plain_response(
                405,
                f"Method Not Allowed: files answer {' and '.join(ALLOWED_METHODS)}",
                [("Allow", ", ".join(ALLOWED_METHODS))],
            )
        else:
            cache_control = self.policy.cache_control(self.cache_expires)
            representation = describe(
                self.file.filename, self.file.content_type, self.policy.inline_types
            )
            response = self._responder.respond(
                request, self.file, self.policy, cache_control, representation
            )
        return with_reason_phrase(response)(environ, start_response)

    def __repr__(self) -> str:
        return f"<FileServeApp {self.file!r}>"


def _check_serving_options(cache_max_age: int, max_ranges: int, chunk_size: int) -> None:
    if not isinstance(cache_max_age, int) or cache_max_age < 0:
        raise ConfigurationError(f"cache_max_age={cache_max_age!r}: use seconds >= 0")
    if not isinstance(max_ranges, int) or max_ranges < 1:
        raise ConfigurationError(f"max_ranges={max_ranges!r}: use an integer >= 1")
    if not isinstance(chunk_size, int) or chunk_size < 1 or chunk_size > MAX_CHUNK_SIZE:
        raise ConfigurationError(
            f"chunk_size={chunk_size!r}: use a number of bytes from 1 to {MAX_CHUNK_SIZE}"
        )
