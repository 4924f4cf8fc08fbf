"""Drive Debian's headless Chromium over the DevTools protocol, with no extra package.

Chromium is started with ``--remote-debugging-pipe``: it reads protocol messages on file
descriptor 3 and writes them on 4, each a JSON object followed by a NUL byte. A thread reads
the replies and events; :meth:`Browser.call` sends a command and waits for its reply.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.browser import HEADLESS_FLAGS

FLAGS = [*HEADLESS_FLAGS, "--disable-dev-shm-usage", "--remote-debugging-pipe"]


def _above_four(fd: int) -> int:
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


class ProtocolError(Exception):
    """Chromium answered a command with an error."""


class Browser:
    """A headless Chromium process and its DevTools pipe."""

    def __init__(self, executable: str, user_data_dir: Path) -> None:
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()
        # move the child's ends above 3 and 4, so that putting them there clobbers nothing
        to_browser_read = _above_four(to_browser_read)
        from_browser_write = _above_four(from_browser_write)
        # bash (dash redirects single-digit descriptors only) puts our pipe ends on the
        # descriptors 3 and 4 Chromium expects
        script = (
            f'exec "$@" 3<&{to_browser_read} 4>&{from_browser_write} '
            f"{to_browser_read}<&- {from_browser_write}>&-"
        )
        self.process = subprocess.Popen(
            ["bash", "-c", script, "bash", executable, *FLAGS, f"--user-data-dir={user_data_dir}"],
            pass_fds=(to_browser_read, from_browser_write),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._next_id = 0
        self._replies: dict[int, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        self._send_lock = threading.Lock()
        self._reader = threading.Thread(target=self._read_messages, daemon=True)
        self._reader.start()

    # -- the protocol ------------------------------------------------------------------------
    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session_id: str | None = None,
        timeout: float = 30,
    ) -> dict[str, Any]:
        with self._send_lock:
            self._next_id += 1
            message_id = self._next_id
            message: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
            if session_id:
                message["sessionId"] = session_id
            os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        with self._changed:
            if not self._changed.wait_for(lambda: message_id in self._replies, timeout):
                raise TimeoutError(f"no reply to {method} within {timeout} s")
            reply = self._replies.pop(message_id)
        if "error" in reply:
            raise ProtocolError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    def wait_for_event(
        self,
        method: str,
        predicate: Callable[[dict[str, Any]], bool] = lambda params: True,
        timeout: float = 30,
    ) -> dict[str, Any]:
        found: list[dict[str, Any]] = []

        def seen() -> bool:
            for event in self.events:
                if event.get("method") == method and predicate(event.get("params", {})):
                    found.append(event["params"])
                    return True
            return False

        with self._changed:
            if not self._changed.wait_for(seen, timeout):
                raise TimeoutError(f"no {method} event within {timeout} s")
        return found[0]

    def _read_messages(self) -> None:
        buffer = b""
        while True:
            try:
                data = os.read(self._from_browser, 65536)
            except OSError:
                data = b""
            if not data:
                with self._changed:
                    self._changed.notify_all()
                return
            buffer += data
            *messages, buffer = buffer.split(b"\0")
            with self._changed:
                for raw in messages:
                    message = json.loads(raw)
                    if "id" in message:
                        self._replies[message["id"]] = message
                    else:
                        self.events.append(message)
                self._changed.notify_all()

    # -- pages -------------------------------------------------------------------------------
    def new_page(self) -> Page:
        target = self.call("Target.createTarget", {"url": "about:blank"})
        attached = self.call(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        page = Page(self, attached["sessionId"])
        page.call("Page.enable")
        page.call("Runtime.enable")
        return page

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10)
        except (TimeoutError, ProtocolError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_browser)
        self._reader.join(timeout=10)
        os.close(self._from_browser)
        if self.process.stderr is not None:
            self.process.stderr.close()


class Page:
    """One tab, through its flattened DevTools session."""

    def __init__(self, browser: Browser, session_id: str) -> None:
        self.browser = browser
        self.session_id = session_id

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.browser.call(method, params, session_id=self.session_id)

    def navigate(self, url: str) -> None:
        result = self.call("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise ProtocolError(f"cannot open {url}: {result['errorText']}")

    def evaluate(self, expression: str) -> Any:
        """The JSON value of ``expression`` (awaited when it is a promise)."""
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            raise ProtocolError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def element(self, selector: str) -> str:
        """The remote object id of the first element matching ``selector``."""
        result = self.call(
            "Runtime.evaluate", {"expression": f"document.querySelector({json.dumps(selector)})"}
        )
        object_id = result["result"].get("objectId")
        if not object_id:
            raise ProtocolError(f"no element matches {selector!r}")
        return str(object_id)

    def wait_for(self, expression: str, timeout: float = 30) -> Any:
        """Evaluate ``expression`` until it is truthy (a navigation in between is tolerated)
        and return its value."""
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression)
            except ProtocolError as exc:  # e.g. the context went away with a navigation
                last_error = exc
                value = None
            if value:
                return value
            time.sleep(0.1)
        raise TimeoutError(f"{expression} stayed false for {timeout} s (last error: {last_error})")
