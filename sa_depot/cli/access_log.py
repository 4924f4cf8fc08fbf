"""One line per request for ``sa-depot serve`` and ``sa-depot demo``, in the Common Log Format
of Apache and nginx (``host - - [time] "request line" status bytes``), so that a user sees
what the server answers.

The line is written when the application starts its response, as Paste's TransLogger does:
the body is handed to the server untouched (``wsgi.file_wrapper`` keeps sending files with
``sendfile``), and the size is the response's ``Content-Length`` (``-`` when unknown).
The ``signature`` of a signed URL is masked: a log must not grant access to private files.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

_SIGNATURE = re.compile(r"(?<=[?&]signature=)[^&]*")


class AccessLog:
    """Wrap the WSGI ``app`` and hand ``write`` one Common Log Format line per request."""

    def __init__(self, app: WSGIApplication, write: Callable[[str], None]) -> None:
        self.app = app
        self.write = write

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        def logging_start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            length = next((v for k, v in headers if k.lower() == "content-length"), "-")
            self.write(format_line(environ, status.split(" ", 1)[0], length))
            return start_response(status, headers, exc_info)

        return self.app(environ, logging_start_response)


def format_line(environ: WSGIEnvironment, status: str, length: str) -> str:
    """``127.0.0.1 - - [30/Nov/2026:10:24:52 +0000] "GET /depot/x HTTP/1.1" 200 1234``."""
    target = environ.get("REQUEST_URI") or _rebuilt_target(environ)
    target = _SIGNATURE.sub("***", target)
    method, protocol = environ.get("REQUEST_METHOD", "-"), environ.get("SERVER_PROTOCOL", "-")
    request_line = f"{method} {target} {protocol}"
    request_line = request_line.replace("\\", "\\\\").replace('"', '\\"')
    when = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime())
    host = environ.get("REMOTE_ADDR") or "-"
    return f'{host} - - [{when}] "{request_line}" {status} {length}'


def _rebuilt_target(environ: WSGIEnvironment) -> str:
    """The request target of a server that does not pass ``REQUEST_URI`` (PEP 3333 paths are
    latin-1 decoded bytes)."""
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    target = quote(path.encode("latin-1", "replace"), safe="/;=,@:!$&'()*+~-._")
    query = environ.get("QUERY_STRING")
    return f"{target}?{query}" if query else target


__all__ = ["AccessLog", "format_line"]
