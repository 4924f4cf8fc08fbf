"""Debian's headless Chromium, as every browser test starts it."""

from __future__ import annotations

import shutil

#: Headless, and kept off the network: without the background-networking flags Chromium keeps
#: trying hosts this machine cannot reach.
HEADLESS_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def find_chromium() -> str | None:
    """The Chromium executable, or ``None`` when it is not installed."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None
