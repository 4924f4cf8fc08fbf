"""The demo's HTML, rendered on the server: one page with the upload form (a drop zone) and
the list of attachments, and an error page. Every value from the database or the request goes
through ``escape``. The page works without script; ``static/demo.js`` adds drag and drop, the
progress bar, the size check before an upload and the full-size view of images."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from sa_depot.cli.base import human_size
from sa_depot.demo.flash import Message


@dataclass(frozen=True)
class Row:
    """One attachment, as the page shows it."""

    id: int
    name: str
    content_type: str
    size: int | None
    uploaded_at: str
    download_url: str
    #: The thumbnail of an image, if one was made.
    thumbnail_url: str | None
    #: The image itself, shown at full size (``None`` for other files).
    view_url: str | None
    #: Why an image has no thumbnail (it could not be decoded, or is of another format).
    thumbnail_error: str | None
    #: Every ``'storage/file_id'`` the attachment owns (the original, then its thumbnail).
    files: Sequence[str]


def _head(title: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<link rel="stylesheet" href="/static/demo.css">
<script src="/static/demo.js" defer></script>
</head>"""


def render_index(
    rows: Sequence[Row],
    *,
    stored_files: int,
    storage_path: str,
    message: Message | None,
    max_upload_bytes: int,
) -> str:
    """The whole page."""
    messages = ""
    if message is not None:
        role = "alert" if message.kind == "error" else "status"
        messages = f'<p class="{message.kind}" role="{role}">{escape(message.text)}</p>'
    if rows:
        listing = '<ul id="attachments">' + "".join(_row(row) for row in rows) + "</ul>"
    else:
        listing = '<p id="empty">No attachments yet: upload a file or an image above.</p>'
    limit = human_size(max_upload_bytes).replace(".0 ", " ")
    noun = "file" if stored_files == 1 else "files"
    return f"""{_head("sa_depot demo")}
<body>
<header>
<h1>sa_depot demo</h1>
<p class="lead">Files attached to SQLAlchemy rows: stored when the row is committed, removed
(thumbnail included) when the row is deleted and the deletion committed.</p>
</header>
<main>
<div id="messages" aria-live="polite">{messages}</div>
<form class="upload" id="upload-form" method="post" action="/upload"
      enctype="multipart/form-data" data-max-bytes="{max_upload_bytes}">
  <p class="drop-hint"><strong>Drop files or images here</strong>
  <span>or</span> <label for="files" class="choose">choose files</label></p>
  <input type="file" id="files" name="files" multiple required>
  <p class="limit" id="limit">Up to <strong>{escape(limit)}</strong> per upload. Images get a
  thumbnail (UploadedImageWithThumb); other files are stored as they are
  (UploadedFileField).</p>
  <p id="selection" class="meta" hidden></p>
  <div id="progress-box" hidden>
    <progress id="progress" max="100" value="0"></progress>
    <span id="progress-text" class="meta"></span>
  </div>
  <button type="submit" id="upload-button">Upload</button>
</form>
{listing}
</main>
<footer>
<p id="storage-count">Storage <code>demo</code> holds {stored_files} {noun} (originals and
thumbnails), in <code>{escape(storage_path)}</code>.</p>
<p>Files are served by DepotMiddleware under <code>/depot/</code>.</p>
</footer>
<dialog id="viewer" aria-label="Full-size image">
  <form method="dialog"><button id="viewer-close" aria-label="Close">Close</button></form>
  <img id="viewer-image" alt="">
  <p id="viewer-caption"></p>
</dialog>
</body>
</html>
"""


def _row(row: Row) -> str:
    if row.thumbnail_url:
        preview = (
            f'<img class="thumb" src="{escape(row.thumbnail_url)}" '
            f'alt="thumbnail of {escape(row.name)}">'
        )
        if row.view_url:
            preview = (
                f'<a class="view" href="{escape(row.view_url)}" '
                f'data-name="{escape(row.name)}" title="View full size">{preview}</a>'
            )
    else:
        extension = row.name.rsplit(".", 1)[-1][:5].upper() if "." in row.name else "FILE"
        preview = f'<span class="icon">{escape(extension)}</span>'
    note = ""
    if row.thumbnail_error:
        note = (
            f'<p class="no-thumbnail" role="note">No thumbnail: {escape(row.thumbnail_error)}.</p>'
        )

    files = " ".join(row.files)
    stored_as = "".join(f"<li><code>{escape(path)}</code></li>" for path in row.files)
    return f"""<li class="attachment" data-id="{row.id}" data-files="{escape(files)}">
<div class="preview">{preview}</div>
<div class="details">
<a class="download" href="{escape(row.download_url)}" download="{escape(row.name)}">{
        escape(row.name)
    }</a>
<p class="meta">{escape(row.content_type)}, {escape(_size(row.size))}, uploaded
<span class="when">{escape(row.uploaded_at)}</span></p>
{note}
<details class="stored"><summary>Stored as</summary><ul>{stored_as}</ul></details>
</div>
<form class="delete" method="post" action="/attachments/{row.id}/delete">
<button type="submit" class="delete" aria-label="Delete {escape(row.name)}">Delete</button>
</form>
</li>"""


def _size(size: int | None) -> str:
    return human_size(size) if size is not None else "size unknown"


def render_error(status: int, title: str, detail: str) -> str:
    """A small error page."""
    return (
        f"{_head(f'{status} {title}')}<body><main><h1>{status} {escape(title)}</h1>"
        f'<p class="error">{escape(detail)}</p>'
        '<p><a href="/">Back to the demo</a></p></main></body></html>'
    )


__all__ = ["Row", "render_error", "render_index"]
