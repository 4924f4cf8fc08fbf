"""What the example tests share: a file to upload, and a browser round trip."""

from __future__ import annotations

import random
from pathlib import Path

from tests.cli.chromium import Browser, Page


def random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def upload_and_download_in_the_browser(
    browser: Browser, page_url: str, upload: Path, downloads: Path
) -> bytes:
    """Upload ``upload`` through the page's form, wait for its link in the list, click it
    and return the bytes the browser downloaded."""
    browser.call(
        "Browser.setDownloadBehavior",
        {"behavior": "allowAndName", "downloadPath": str(downloads), "eventsEnabled": True},
    )
    page: Page = browser.new_page()
    page.navigate(page_url)
    page.wait_for("document.readyState === 'complete' && !!document.querySelector('form')")
    page.call(
        "DOM.setFileInputFiles",
        {"files": [str(upload)], "objectId": page.element("input[type=file]")},
    )
    page.evaluate("document.querySelector('form button').click()")
    page.wait_for(
        "Array.from(document.querySelectorAll('#documents a'))"
        f".some(a => a.textContent === {upload.name!r})"
    )
    page.evaluate(
        f"Array.from(document.querySelectorAll('#documents a'))"
        f".find(a => a.textContent === {upload.name!r}).click()"
    )
    started = browser.wait_for_event("Browser.downloadWillBegin")
    assert started["suggestedFilename"] == upload.name
    browser.wait_for_event(
        "Browser.downloadProgress",
        lambda event: event.get("guid") == started["guid"] and event.get("state") == "completed",
    )
    return (downloads / started["guid"]).read_bytes()
