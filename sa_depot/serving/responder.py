"""Turn an opened :class:`~sa_depot.io.interfaces.StoredFile` into an HTTP response.

Conditional requests first (412, 304), then a hand-off to a front server when the policy asks
for one, then Range (206, multipart, 416), then the body: the server's ``wsgi.file_wrapper``
for a whole local file, otherwise chunked reads. The responder owns the stored file it is
given: it is closed when the response is complete (by the server, through the body's
``close``) or at once when no body is sent.
"""

from __future__ import annotations

import io
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, cast
from urllib.parse import quote

from werkzeug.datastructures import Headers, ResponseCacheControl
from werkzeug.http import HTTP_STATUS_CODES, http_date, parse_cache_control_header
from werkzeug.wrappers import Request, Response

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

from sa_depot.io.interfaces import StoredFile
from sa_depot.serving.body import Piece, StoredFileBody, multipart_byteranges
from sa_depot.serving.conditional import (
    Outcome,
    Validators,
    evaluate_preconditions,
    if_range_allows_range,
)
from sa_depot.serving.policy import ServingPolicy
from sa_depot.serving.ranges import ByteRange, UnsatisfiableRange, select_ranges
from sa_depot.serving.representation import SANDBOX_CSP, Representation

logger = logging.getLogger("sa_depot.middleware")

#: On every response of the middleware: browsers must not second-guess the Content-Type.
SECURITY_HEADERS = (("X-Content-Type-Options", "nosniff"),)


#: ``Expires`` of responses no shared cache may keep: already expired (RFC 9111 section 5.3).
EXPIRED = "Thu, 01 Jan 1970 00:00:00 GMT"


def with_reason_phrase(response: Response) -> Response:
    """``response`` with its status line's reason phrase as RFC 9110 and filedepot write it
    (``404 Not Found``, ``304 Not Modified``); Werkzeug would send ``404 NOT FOUND``."""
    code = response.status_code
    response.status = f"{code} {HTTP_STATUS_CODES.get(code, 'Unknown')}"
    return response


def wsgi_reply(
    response: Response, environ: WSGIEnvironment, start_response: StartResponse
) -> Iterable[bytes]:
    """Send ``response`` to a WSGI server (PEP 3333), its status line with the reason phrase
    of :func:`with_reason_phrase`.

    A :class:`FileResponse` of a GET goes straight to ``start_response`` with its body
    iterable (whose ``close`` the server calls): what Werkzeug's ``Response.__call__`` does
    with a direct-passthrough response, without its copies of the headers.
    """
    if (
        type(response) is FileResponse
        and response.status_code in (200, 206)
        and environ.get("REQUEST_METHOD") == "GET"
    ):
        code = response.status_code  # the reason phrase of with_reason_phrase, without
        # the status setter's parsing (a few percent of a small file's response)
        headers = response.get_wsgi_headers(environ)  # its own headers, as they are
        start_response(f"{code} {HTTP_STATUS_CODES[code]}", headers.to_wsgi_list())
        return cast("Iterable[bytes]", response.response)  # a FileResponse's body is bytes
    return with_reason_phrase(response)(environ, start_response)


def expires_for(cache_control: str) -> str:
    """The ``Expires`` header sent alongside ``cache_control`` (as filedepot did), for HTTP/1.0
    caches, which ignore ``Cache-Control``.

    A response shared caches may keep (``public, max-age=N``) expires in N seconds. Any other
    is already expired: an HTTP/1.0 proxy must not keep a private file, while browsers follow
    ``max-age``, which overrides ``Expires`` (RFC 9111 section 5.3).
    """
    max_age = _shared_max_age(cache_control)
    if max_age:
        return http_date(time.time() + max_age)
    return EXPIRED


@lru_cache(maxsize=256)
def _shared_max_age(cache_control: str) -> int | None:
    """The ``max-age`` of a ``Cache-Control`` value shared caches may keep, else ``None``
    (parsed once per value: a storage sends the same one on every request)."""
    parsed = parse_cache_control_header(cache_control, cls=ResponseCacheControl)
    if parsed.public and not parsed.no_store:
        return parsed.max_age
    return None


def plain_response(status: int, message: str, headers: Iterable[tuple[str, str]] = ()) -> Response:
    """A short text response for errors: never cached, never rendered as a document."""
    response = Response(message + "\n", status=status, content_type="text/plain; charset=utf-8")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = SANDBOX_CSP
    response.headers.extend(SECURITY_HEADERS)
    response.headers.extend(headers)
    return response


@dataclass(frozen=True)
class Responder:
    """Settings shared by every file response of a middleware.

    :param chunk_size: bytes read from the storage at a time.
    :param max_ranges: more ranges than this in one request are ignored (whole file sent).
    :param use_file_wrapper: hand whole local files to the server's ``wsgi.file_wrapper``.
    """

    chunk_size: int
    max_ranges: int
    use_file_wrapper: bool

    def respond(
        self,
        request: Request,
        stored: StoredFile,
        policy: ServingPolicy,
        cache_control: str,
        representation: Representation,
    ) -> Response:
        """The response serving ``stored`` under ``policy``, described by ``representation``
        (its type, filename and disposition, as any other path of the download gets them)."""
        try:
            return self._respond(request, stored, policy, cache_control, representation)
        except BaseException:
            stored.close()
            raise

    def _respond(
        self,
        request: Request,
        stored: StoredFile,
        policy: ServingPolicy,
        cache_control: str,
        representation: Representation,
    ) -> Response:
        length = _length_of(stored)
        validators = Validators.of(stored, length)
        # every name once: the list becomes Headers in one go (nine Headers.set calls, each
        # searching the list, were a tenth of a small file's response)
        fields = [
            *SECURITY_HEADERS,
            ("Cache-Control", cache_control),
            ("Expires", expires_for(cache_control)),
            ("ETag", validators.etag_header),
            ("Last-Modified", validators.last_modified_header),
        ]

        outcome = evaluate_preconditions(request, validators)
        if outcome is not Outcome.PROCEED:
            stored.close()
            if outcome is Outcome.NOT_MODIFIED:
                return Response(status=304, headers=Headers(fields))
            return plain_response(412, "Precondition Failed: the file has changed")

        fields.extend(representation.headers)
        can_range = length is not None and stored.seekable()
        fields.append(("Accept-Ranges", "bytes" if can_range else "none"))
        # the fields stay a list until the response is made: Headers checks every value as
        # it is added, once is enough

        handoff = _front_server_handoff(stored, policy)
        if handoff is not None:
            # the front server reads the file and answers Range itself; we send no body
            stored.close()
            fields += [handoff, ("Content-Length", "0")]
            return _headers_only(200, Headers(fields))

        if length is None or not can_range:
            return self._whole(request, stored, fields, length)

        selected: list[ByteRange] | None = None
        if (
            request.method == "GET"  # RFC 9110 section 14.2: Range is defined for GET only
            and "HTTP_RANGE" in request.environ  # most requests have none: nothing to parse
            and request.range is not None
            and if_range_allows_range(request, validators)
        ):
            try:
                selected = select_ranges(request.range, length, self.max_ranges)
            except UnsatisfiableRange as exc:
                stored.close()
                return plain_response(
                    416,
                    "Range Not Satisfiable: no requested range lies within the file",
                    [("Content-Range", exc.content_range)],
                )
        if selected is None:
            return self._whole(request, stored, fields, length)
        if len(selected) == 1:
            fields.append(("Content-Range", selected[0].content_range))
            return self._body(request, stored, fields, 206, [selected[0]])
        boundary, pieces = multipart_byteranges(selected, representation.content_type)
        if StoredFileBody(stored, pieces, self.chunk_size).length >= length:
            # the parts would weigh more than the file: the whole file is the cheaper answer
            return self._whole(request, stored, fields, length)
        multipart = ("Content-Type", f"multipart/byteranges; boundary={boundary}")
        fields = [multipart if name == "Content-Type" else (name, v) for name, v in fields]
        return self._body(request, stored, fields, 206, pieces)

    def _whole(
        self,
        request: Request,
        stored: StoredFile,
        fields: list[tuple[str, str]],
        length: int | None,
    ) -> Response:
        if length is None:
            # neither recorded nor measurable: stream to the end without a Content-Length
            if request.method == "HEAD":
                stored.close()
                return _headers_only(200, Headers(fields))
            body = StoredFileBody(stored, [], self.chunk_size, to_end=True)
            return Response(body, status=200, headers=Headers(fields), direct_passthrough=True)
        wrapper = request.environ.get("wsgi.file_wrapper")
        if (
            request.method == "GET"
            and self.use_file_wrapper
            and wrapper is not None
            and length > self.chunk_size  # a file of one chunk: one read costs less
            and _has_descriptor(stored)
        ):
            fields.append(("Content-Length", str(length)))
            app_iter = wrapper(_WithoutDescriptor(stored), self.chunk_size)
            return FileResponse(
                app_iter, status=200, headers=Headers(fields), direct_passthrough=True
            )
        return self._body(request, stored, fields, 200, [ByteRange(0, length, length)])

    def _body(
        self,
        request: Request,
        stored: StoredFile,
        fields: list[tuple[str, str]],
        status: int,
        pieces: list[Piece],
    ) -> Response:
        body = StoredFileBody(stored, pieces, self.chunk_size)
        fields.append(("Content-Length", str(body.length)))
        if request.method == "HEAD":
            stored.close()  # HEAD reads no content
            return _headers_only(status, Headers(fields))
        return FileResponse(body, status=status, headers=Headers(fields), direct_passthrough=True)


class FileResponse(Response):
    """A 200 or 206 response carrying a file, whose headers the responder wrote in full
    (``Content-Length`` included, no ``Location``): they go to the server as they are.

    Werkzeug's :meth:`~werkzeug.wrappers.Response.get_wsgi_headers` copies the headers to
    resolve ``Location`` and ``Content-Location``, to drop ``Content-Length`` from 1xx, 204
    and 304 responses and to compute a missing ``Content-Length``: none of which applies
    to the responses the responder makes of this class, so the copy is skipped (it was a
    tenth of a small file's response). Any other status takes Werkzeug's way.
    """

    def get_wsgi_headers(self, environ: WSGIEnvironment) -> Headers:
        if self.status_code not in (200, 206):
            return super().get_wsgi_headers(environ)
        return self.headers


def _headers_only(status: int, headers: Headers) -> Response:
    """A response without a body that keeps the Content-Length set in ``headers``.

    (Giving Werkzeug ``b""`` would make it recompute Content-Length as 0.)
    """
    return Response([], status=status, headers=headers)


def _length_of(stored: StoredFile) -> int | None:
    """The recorded length, or the measured one for files stored without it (filedepot's)."""
    if stored.content_length is not None:
        return stored.content_length
    if not stored.seekable():
        return None
    length = stored.seek(0, io.SEEK_END)
    stored.seek(0)
    return length


class _WithoutDescriptor:
    """The file-like object a server's ``wsgi.file_wrapper`` gets: ``stored`` without its
    ``fileno``, so that the server reads it in chunks instead of calling ``sendfile``.

    Measured under gunicorn on loopback (where a Python server sits behind its reverse proxy),
    ``sendfile`` served a 10 MiB file at 178 requests/s, reads of 256 KiB at 211 (filedepot,
    whose files have no ``fileno``: 215). Zero-copy sending is the reverse proxy's job
    (``x_accel_redirect``, ``x_sendfile``). Servers whose wrapper streams from a thread of
    their own (waitress) still free the application's thread early.
    """

    def __init__(self, stored: StoredFile) -> None:
        self.stored = stored

    def read(self, size: int = -1) -> bytes:
        return self.stored.read(size)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self.stored.seek(offset, whence)

    def tell(self) -> int:
        return self.stored.tell()

    @property
    def closed(self) -> bool:
        return self.stored.closed

    def close(self) -> None:
        self.stored.close()


def _has_descriptor(stored: StoredFile) -> bool:
    """Whether ``stored`` is a real file the server can ``sendfile`` from."""
    if stored.local_path is None:
        return False
    try:
        stored.fileno()
    except (OSError, ValueError):  # io.UnsupportedOperation is both
        return False
    return True


def _front_server_handoff(stored: StoredFile, policy: ServingPolicy) -> tuple[str, str] | None:
    """The ``X-Accel-Redirect`` or ``X-Sendfile`` header for a local file, if configured."""
    path = stored.local_path
    if path is None or not (policy.x_sendfile or policy.x_accel_redirect):
        return None
    path = os.path.abspath(path)
    if policy.x_sendfile:
        if path.isascii() and path.isprintable():
            return "X-Sendfile", path
        logger.warning("X-Sendfile: %r is not an ASCII path; serving it directly", path)
        return None
    assert policy.x_accel_redirect is not None
    for directory, location in policy.x_accel_redirect.items():
        relative = os.path.relpath(path, os.path.abspath(directory))
        if relative == os.pardir or relative.startswith(os.pardir + os.sep):
            continue
        uri_path = quote(relative.replace(os.sep, "/"), safe="/")
        return "X-Accel-Redirect", location.rstrip("/") + "/" + uri_path
    logger.warning(
        "X-Accel-Redirect: %r is under none of the mapped directories %s; serving it directly",
        path,
        list(policy.x_accel_redirect),
    )
    return None
