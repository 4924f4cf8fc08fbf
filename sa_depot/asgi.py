"""The ASGI file server: :class:`DepotMiddleware` for Starlette, FastAPI and any ASGI server.

It answers as the WSGI middleware does (:mod:`sa_depot.middleware`), from the same code: both
are fronts of :class:`~sa_depot.serving.server.FileServer` (routing, signatures, policies,
authorization, Range and multipart ranges, conditional requests, HEAD, safety headers,
redirects, X-Accel-Redirect). This module only speaks ASGI:

* the request becomes a Werkzeug ``Request`` built from the ASGI scope, the root and the path
  below it read by :func:`~sa_depot.serving.urls.asgi_root_and_path`;
* storage I/O never runs on the event loop: :meth:`FileServer.respond
  <sa_depot.serving.server.FileServer.respond>` (storage lookup, authorization hook, seeks)
  runs in a worker thread, and so does each read of the body, one chunk (``chunk_size``,
  256 KiB by default) at a time. Worker threads come from AnyIO's pool, bounded by its default
  limiter (40 threads), so any ASGI server works, asyncio or Trio;
* the body is sent chunk by chunk, each ``send`` awaited before the next read: the server's
  flow control (uvicorn waits for its transport to drain) holds the reads back, so memory
  stays at about one chunk per response whatever the file size. A client that disconnects
  stops the reads.

Mount it in front of an application::

    app = sa_depot.asgi.make_middleware(app)            # files under /depot

or on a path of its own, files right under it::

    api.mount("/files", sa_depot.asgi.make_app(root_path="/files"))

Both register the middleware with :class:`~sa_depot.manager.DepotManager`, so that
``UploadedFile.url`` and ``DepotManager.url_for`` make URLs it serves.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping, Sequence
from typing import Any

import anyio
import anyio.to_thread
from werkzeug.wrappers import Request, Response

from sa_depot.manager import DepotManager
from sa_depot.serving.policy import ServingPolicy
from sa_depot.serving.responder import plain_response
from sa_depot.serving.server import (
    DEFAULT_CACHE_MAX_AGE,
    DEFAULT_CHUNK_SIZE,
    DEFAULT_MAX_RANGES,
    FileServer,
    ServerFront,
)
from sa_depot.serving.urls import asgi_root_and_path, request_root

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

__all__ = ["ASGIApp", "DepotMiddleware", "make_app", "make_middleware"]


class DepotMiddleware(ServerFront):
    """Serve the files of the configured storages under ``mountpoint``, over ASGI.

    :param app: the ASGI application receiving every request outside ``mountpoint`` (and
        every WebSocket and lifespan message); ``None`` makes the middleware a standalone file
        server, which answers lifespan messages itself and refuses WebSockets.
    :param mountpoint: the URL path prefix of files below the application's root (ASGI
        ``root_path``), ``'/depot'`` by default; ``'/'`` for a middleware that a framework
        mounts on a path of its own.
    :param root_path: the path the middleware is mounted under, for URLs made outside its
        requests: ``'/files'`` for ``app.mount("/files", ...)``.

    The other options are those of :class:`sa_depot.middleware.DepotMiddleware`
    (``cache_max_age``, ``secret``, ``previous_secrets``, ``policy``, ``policies``,
    ``max_ranges``, ``chunk_size``); they mean the same here. A policy's ``authorize`` hook
    is called in a worker thread with a Werkzeug ``Request`` built from the ASGI scope (its
    headers, path, query and client), as the WSGI middleware calls it.
    """

    app: ASGIApp | None

    def __init__(
        self,
        app: ASGIApp | None = None,
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
            use_file_wrapper=False,  # ASGI has no wsgi.file_wrapper
        )

    @classmethod
    def from_server(cls, server: FileServer, app: ASGIApp | None = None) -> DepotMiddleware:
        """An ASGI front of an existing :class:`~sa_depot.serving.server.FileServer`, such as
        the ``server`` of a WSGI :class:`sa_depot.middleware.DepotMiddleware`: one set of
        options, policies and secrets for an application that serves files over both."""
        front = cls.__new__(cls)
        front.app = app
        front.server = server
        return front

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if self.app is not None:
                await self.app(scope, receive, send)
            elif scope["type"] == "lifespan":
                await _answer_lifespan(receive, send)
            else:  # a WebSocket: refused before it is accepted (the server answers 403)
                await send({"type": "websocket.close", "code": 1008})
            return
        root, path = asgi_root_and_path(scope)
        self.check_root(root, "ASGI root_path")
        with request_root(root):  # URLs the wrapped application makes now start with it
            subpath = self.server.subpath(path)
            if subpath is None:
                if self.app is not None:
                    await self.app(scope, receive, send)
                    return
                response = plain_response(404, "Not Found")
                request = Request(wsgi_environ(scope, root, path))
            else:
                request = Request(wsgi_environ(scope, root, path), shallow=True)
                response = await anyio.to_thread.run_sync(self.server.respond, request, subpath)
            await send_response(response, request, receive, send)


def make_middleware(app: ASGIApp | None = None, **options: Any) -> DepotMiddleware:
    """Wrap the ASGI ``app`` in a :class:`DepotMiddleware` (``options`` as its constructor
    takes them) and register it with :class:`~sa_depot.manager.DepotManager`, whose
    ``url_for`` (and so ``UploadedFile.url``) then makes the URLs it serves."""
    middleware = DepotMiddleware(app, **options)
    DepotManager.set_middleware(middleware)
    return middleware


def make_app(root_path: str = "", **options: Any) -> DepotMiddleware:
    """A standalone file server to mount on a path of its own, serving the files right under
    it, registered as :func:`make_middleware` registers a middleware::

        api.mount("/files", make_app(root_path="/files"))

    :param root_path: the path it is mounted under (the URLs made outside its requests, in
        the routes of the application that mounts it, start with it). If that application
        runs under a prefix of its own (``FastAPI(root_path="/api")``), include it:
        ``"/api/files"``.
    """
    return make_middleware(None, mountpoint="/", root_path=root_path, **options)


# == the ASGI side of a request ==================================================================
def wsgi_environ(scope: Scope, root: str, path: str) -> dict[str, Any]:
    """The WSGI environment (PEP 3333) of an ASGI HTTP request without a body: what a
    Werkzeug ``Request`` reads (method, path, query, headers, client, server).

    ``SCRIPT_NAME`` and ``PATH_INFO`` carry the UTF-8 bytes of ``root`` and ``path`` as
    Latin-1 text, as WSGI servers pass them.
    """
    server = scope.get("server") or ("localhost", 80)
    client = scope.get("client")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope.get("method", "GET"),
        "SCRIPT_NAME": _latin1(root),
        "PATH_INFO": _latin1(path),
        "QUERY_STRING": bytes(scope.get("query_string") or b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1]) if len(server) > 1 and server[1] is not None else "80",
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "asgi.scope": scope,
    }
    if client:
        environ["REMOTE_ADDR"] = str(client[0])
        environ["REMOTE_PORT"] = str(client[1])
    for raw_name, raw_value in scope.get("headers") or ():
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        value = raw_value.decode("latin-1")
        key = name if name in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{name}"
        if key in environ:  # a repeated header: one comma-separated value (RFC 9110 5.3)
            value = environ[key] + ("; " if key == "HTTP_COOKIE" else ",") + value
        environ[key] = value
    return environ


def _latin1(text: str) -> str:
    return text.encode("utf-8", "surrogateescape").decode("latin-1")


async def send_response(response: Response, request: Request, receive: Receive, send: Send) -> None:
    """Send a Werkzeug ``response`` over ASGI: its WSGI status, headers and body exactly as
    the WSGI front would send them, the body read chunk by chunk in worker threads.

    The body is closed at the end (closing the stored file), whether it was sent whole, the
    client went away, or a read failed.
    """
    body, status, headers = response.get_wsgi_response(request.environ)
    try:
        await send(
            {
                "type": "http.response.start",
                "status": int(status.split(" ", 1)[0]),
                "headers": [
                    (name.lower().encode("latin-1"), value.encode("latin-1"))
                    for name, value in headers
                ],
            }
        )
        if isinstance(response.response, (list, tuple)):  # in memory: no I/O to move off
            for chunk in body:
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
        else:
            await _stream(iter(body), receive, send)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except OSError:  # the client went away (ASGI 2.4 servers raise on send): nothing to tell
        pass
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(close)


async def _stream(chunks: Iterator[bytes], receive: Receive, send: Send) -> None:
    """Send ``chunks``, each read in a worker thread once the previous one was sent; stop
    when the client disconnects. A read that fails (a truncated stored file) propagates, so
    that the server cuts the connection rather than end a short body as if it were whole."""
    failure: Exception | None = None
    async with anyio.create_task_group() as group:
        group.start_soon(_cancel_on_disconnect, receive, group.cancel_scope)
        try:
            while True:
                chunk = await anyio.to_thread.run_sync(_next_chunk, chunks)
                if chunk is None:
                    break
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except OSError:  # the client went away (ASGI 2.4 servers raise on send)
            pass
        except Exception as exc:  # noqa: BLE001 - raised below, outside the task group
            failure = exc  # (inside, AnyIO would wrap it in an ExceptionGroup)
        finally:
            group.cancel_scope.cancel()
    if failure is not None:
        raise failure


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            scope.cancel()
            return


def _next_chunk(chunks: Iterator[bytes]) -> bytes | None:
    return next(chunks, None)


async def _answer_lifespan(receive: Receive, send: Send) -> None:
    """A standalone file server has nothing to start or stop: it says so."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
