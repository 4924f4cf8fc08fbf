"""The demo's HTML, rendered on the server (no script): one page with the upload form and the
list of attachments. Every value from the database or the request goes through ``escape``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from sa_depot.cli.base import human_size


@dataclass(frozen=True)
class Row:
    """One attachment, as the page shows it."""

    id: int
    name: str
    content_type: str
    size: int | None
    uploaded_at: str
    download_url: str
    thumbnail_url: str | None
    #: Every ``'storage/file_id'`` the attachment owns (the original, then its thumbnail).
    files: Sequence[str]


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222;
       padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
.lead { color: #555; margin-top: 0; }
form.upload { border: 2px dashed #99a; padding: 1rem; border-radius: .5rem; margin: 1.5rem 0; }
.notice { background: #e8f5e9; border-left: 4px solid #43a047; padding: .5rem 1rem; }
.error { background: #fdecea; border-left: 4px solid #e53935; padding: .5rem 1rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .5rem; border-bottom: 1px solid #ddd;
         vertical-align: middle; }
td.preview { width: 136px; height: 136px; text-align: center; }
img.thumb { max-width: 128px; max-height: 128px; }
.icon { display: inline-block; width: 96px; height: 96px; line-height: 96px; background: #eef;
        border-radius: .4rem; font-weight: bold; color: #557; }
.meta { color: #666; font-size: .9rem; }
code { font-size: .8rem; color: #666; }
button { cursor: pointer; }
button.delete { color: #b71c1c; }
footer { margin-top: 2rem; color: #666; font-size: .9rem; }
"""


def render_index(
    rows: Sequence[Row],
    *,
    stored_files: int,
    storage_path: str,
    notice: str | None,
    error: str | None,
) -> str:
    """The whole page."""
    messages = ""
    if notice:
        messages += f'<p class="notice" role="status">{escape(notice)}</p>'
    if error:
        messages += f'<p class="error" role="alert">{escape(error)}</p>'
    if rows:
        body = "".join(_row(row) for row in rows)
        listing = (
            '<table id="attachments"><thead><tr><th>Preview</th><th>File</th><th>Stored as</th>'
            "<th></th></tr></thead>"
            f"<tbody>{body}</tbody></table>"
        )
    else:
        listing = '<p id="empty">No attachments yet: upload a file or an image above.</p>'
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sa_depot demo</title>
<style>{STYLE}</style>
</head>
<body>
<h1>sa_depot demo</h1>
<p class="lead">Files attached to SQLAlchemy rows: stored when the row is committed, removed
(thumbnail included) when the row is deleted and the deletion committed.</p>
{messages}
<form class="upload" id="upload-form" method="post" action="/upload"
      enctype="multipart/form-data">
  <label for="files">Files or images:</label>
  <input type="file" id="files" name="files" multiple required>
  <button type="submit" id="upload-button">Upload</button>
  <div class="meta">Images get a thumbnail (UploadedImageWithThumb); other files are stored
  as they are (UploadedFileField).</div>
</form>
{listing}
<footer>
<p id="storage-count">Storage <code>demo</code> holds {stored_files} {
        "file" if stored_files == 1 else "files"
    } (originals and thumbnails), in <code>{escape(storage_path)}</code>.</p>
<p>Files are served by DepotMiddleware under <code>/depot/</code>.</p>
</footer>
</body>
</html>
"""


def _row(row: Row) -> str:
    if row.thumbnail_url:
        preview = (
            f'<img class="thumb" src="{escape(row.thumbnail_url)}" '
            f'alt="thumbnail of {escape(row.name)}">'
        )
    else:
        extension = row.name.rsplit(".", 1)[-1][:5].upper() if "." in row.name else "FILE"
        preview = f'<span class="icon">{escape(extension)}</span>'
    files = " ".join(row.files)
    stored_as = "<br>".join(f"<code>{escape(path)}</code>" for path in row.files)
    return f"""<tr class="attachment" data-id="{row.id}" data-files="{escape(files)}">
<td class="preview">{preview}</td>
<td><a class="download" href="{escape(row.download_url)}" download="{escape(row.name)}">{
        escape(row.name)
    }</a>
<div class="meta">{escape(row.content_type)}, {escape(_size(row.size))}, uploaded
{escape(row.uploaded_at)}</div></td>
<td>{stored_as}</td>
<td><form method="post" action="/attachments/{row.id}/delete">
<button type="submit" class="delete" aria-label="Delete {escape(row.name)}">Delete</button>
</form></td>
</tr>"""


def _size(size: int | None) -> str:
    return human_size(size) if size is not None else "size unknown"


def render_error(status: int, title: str, detail: str) -> str:
    """A small error page."""
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{status} '
        f"{escape(title)}</title><style>{STYLE}</style></head><body><h1>{status} "
        f'{escape(title)}</h1><p class="error">{escape(detail)}</p>'
        '<p><a href="/">Back to the demo</a></p></body></html>'
    )


__all__ = ["Row", "render_error", "render_index"]
