"""DepotMiddleware: the WSGI file server of the storages configured in DepotManager.

``<mountpoint>/<storage>/<file_id>[/<filename>]`` serves a file; any other path under the
mountpoint is 404; a path outside it goes to the wrapped application untouched (404 when the
middleware runs standalone, without one). The mountpoint is matched against ``PATH_INFO``,
the path below where the application is mounted (``SCRIPT_NAME``), and URLs start with that
root (:mod:`sa_depot.serving.urls`), so that both agree under mounts and prefixes.

This module is the WSGI front of :class:`~sa_depot.serving.server.FileServer`, which does
the work (routing, access, representation, response) for every front: the ASGI one
(:mod:`sa_depot.asgi`) and the Flask extension (:mod:`sa_depot.flask`) answer the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from werkzeug.wrappers import Request

from sa_depot.exceptions import ConfigurationError
from sa_depot.io.interfaces import StoredFile
from sa_depot.serving.policy import ServingPolicy
from sa_depot.serving.representation import DEFAULT_INLINE_TYPES, describe
from sa_depot.serving.responder import Responder, plain_response, wsgi_reply
from sa_depot.serving.server import (
    ALLOWED_METHODS,
    DEFAULT_CACHE_MAX_AGE,
    DEFAULT_CHUNK_SIZE,
    DEFAULT_MAX_RANGES,
    FileServer,
    ServerFront,
    check_serving_options,
    method_not_allowed,
)
from sa_depot.serving.urls import request_root

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = [
    "ALLOWED_METHODS",
    "DEFAULT_CACHE_MAX_AGE",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_INLINE_TYPES",
    "DEFAULT_MAX_RANGES",
    "DepotMiddleware",
    "FileServeApp",
    "ServingPolicy",
]


class DepotMiddleware(ServerFront):
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

    app: WSGIApplication | None

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
        self.app = app
        #: The file server doing the work (shared by every front).
        self.server = FileServer(
            mountpoint,
            cache_max_age,
            root_path=root_path,
            secret=secret,
            previous_secrets=previous_secrets,
            policy=policy,
            policies=policies,
            max_ranges=max_ranges,
            chunk_size=chunk_size,
            use_file_wrapper=not replace_wsgi_filewrapper,
        )

    # -- WSGI --------------------------------------------------------------------------------
    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ, populate_request=False, shallow=True)
        root = request.root_path
        self.check_root(root, "SCRIPT_NAME")
        with request_root(root):  # URLs the wrapped application makes now start with it
            subpath = self.server.subpath(request.path)
            if subpath is None:
                if self.app is not None:
                    return self.app(environ, start_response)
                return wsgi_reply(plain_response(404, "Not Found"), environ, start_response)
            response = self.server.respond(request, subpath)
            return wsgi_reply(response, environ, start_response)


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
        check_serving_options(cache_max_age, max_ranges, chunk_size)
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
            response = method_not_allowed()
        else:
            cache_control = self.policy.cache_control(self.cache_expires)
            representation = describe(
                self.file.filename, self.file.content_type, self.policy.inline_types
            )
            response = self._responder.respond(
                request, self.file, self.policy, cache_control, representation
            )
        return wsgi_reply(response, environ, start_response)

    def __repr__(self) -> str:
        return f"<FileServeApp {self.file!r}>"
