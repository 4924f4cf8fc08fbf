"""Messages shown once, on the page after an action ("Uploaded report.pdf."), kept on the
server: the browser holds only a random token in a cookie, so no link can make the page say
anything (a message in the URL would be text anybody could craft)."""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

from werkzeug.wrappers import Request, Response

#: The cookie holding the token of the message waiting for the next page.
COOKIE = "sa_depot_demo_flash"
#: Messages kept at most; older ones are dropped (a browser that never came back).
MAX_WAITING = 1000

Kind = Literal["notice", "error"]


@dataclass(frozen=True)
class Message:
    kind: Kind
    text: str


class FlashMessages:
    """Messages waiting for the next page of the browser that caused them."""

    def __init__(self) -> None:
        self._waiting: OrderedDict[str, Message] = OrderedDict()
        self._lock = threading.Lock()

    def leave(self, response: Response, kind: Kind, text: str) -> None:
        """Keep ``text`` for the next page that ``response``'s browser asks for."""
        token = secrets.token_urlsafe(16)
        with self._lock:
            self._waiting[token] = Message(kind, text)
            while len(self._waiting) > MAX_WAITING:
                self._waiting.popitem(last=False)
        response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/")

    def take(self, request: Request, response: Response) -> Message | None:
        """The message waiting for ``request``'s browser, if any; it is shown once."""
        token = request.cookies.get(COOKIE)
        if token is None:
            return None
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="Strict")
        with self._lock:
            return self._waiting.pop(token, None)


__all__ = ["COOKIE", "FlashMessages", "Message"]
