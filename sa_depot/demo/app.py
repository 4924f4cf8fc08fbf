"""The demo WSGI application: Werkzeug routing, one SQLAlchemy session per request.

``GET /`` lists the attachments; ``POST /upload`` stores the files of the form (one row each);
``POST /attachments/<id>/delete`` deletes a row, and sa_depot removes its files (the image's
thumbnail too) once the deletion is committed. ``/depot/...`` is served by DepotMiddleware,
``/static/...`` are the page's stylesheet and script.

An upload posted by the page's script (``Accept: application/json``, so that it can show a
progress bar) is answered with JSON, ``{"ok": true, "message": ...}`` or ``{"ok": false,
"error": ...}``; a plain form post is redirected to the page. Either way the message waits on
the server for the next page (:mod:`sa_depot.demo.flash`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException, NotFound, RequestEntityTooLarge
from werkzeug.routing import Map, Rule
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from sa_depot.cli.base import human_size
from sa_depot.demo.flash import FlashMessages, Kind
from sa_depot.demo.models import STORAGE_NAME, declare_models
from sa_depot.demo.pages import Row, render_error, render_index
from sa_depot.exceptions import ConfigurationError, UnsupportedContent
from sa_depot.fields.upload import UploadedFile
from sa_depot.manager import DepotManager
from sa_depot.middleware import DepotMiddleware
from sa_depot.schema import metadata as sa_depot_metadata

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

_log = logging.getLogger(__name__)

#: Uploads larger than this (the whole form) are refused with 413, by default.
MAX_UPLOAD_BYTES = 256 * 1024 * 1024
#: Pillow formats stored as images (with a thumbnail); anything else is a plain file.
IMAGE_FORMATS = frozenset({"PNG", "JPEG", "GIF", "WEBP", "BMP"})
#: Their content types: a plain file of one of these types is an image that could not be
#: decoded.
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp"})

_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}
#: The page's stylesheet and script (sa_depot/demo/static), by URL name.
_STATIC = {"demo.css": "text/css; charset=utf-8", "demo.js": "text/javascript; charset=utf-8"}


class DemoApp:
    """The demo, on SQLite and a local storage in ``data_dir``.

    Registers the storage ``demo`` in :class:`DepotManager` (which must not hold one already)
    and makes the manager's middleware. ``max_upload_bytes`` bounds one upload (the whole
    form). Attributes useful to tests: :attr:`engine`, :attr:`storage`, :attr:`models`,
    :attr:`data_dir`.
    """

    def __init__(self, data_dir: str | Path, max_upload_bytes: int = MAX_UPLOAD_BYTES) -> None:
        if max_upload_bytes < 1:
            raise ConfigurationError(f"max_upload_bytes={max_upload_bytes}: use at least 1")
        self.max_upload_bytes = max_upload_bytes
        self.flash = FlashMessages()
        self.data_dir = Path(data_dir).resolve()
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot create the demo's data folder {str(self.data_dir)!r}: "
                f"{exc.strerror or exc}; choose another with --data-dir"
            ) from exc
        if STORAGE_NAME in DepotManager.names():
            raise ConfigurationError(
                f"a storage named {STORAGE_NAME!r} is already configured: the demo needs its own "
                "(call DepotManager.reset() first)"
            )
        self.storage = DepotManager.configure(
            STORAGE_NAME, {"depot.storage_path": str(self.data_dir / "files")}
        )
        self.models = declare_models()
        self.engine = sa.create_engine(f"sqlite:///{self.data_dir / 'demo.sqlite'}")
        self.models.base.metadata.create_all(self.engine)
        sa_depot_metadata.create_all(self.engine)  # the removal journal
        self.url_map = Map(
            [
                Rule("/", endpoint="index", methods=["GET", "HEAD"]),
                Rule("/static/<name>", endpoint="static", methods=["GET", "HEAD"]),
                Rule("/upload", endpoint="upload", methods=["POST"]),
                Rule(
                    "/attachments/<int:attachment_id>/delete", endpoint="delete", methods=["POST"]
                ),
            ]
        )
        self.middleware: DepotMiddleware = DepotManager.make_middleware(self._application)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return self.middleware(environ, start_response)

    # -- dispatch ----------------------------------------------------------------------------
    def _application(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        request = Request(environ)
        request.max_content_length = self.max_upload_bytes
        response = self._dispatch(request)
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        adapter = self.url_map.bind_to_environ(request.environ)
        try:
            endpoint, arguments = adapter.match()
            if request.method == "POST" and not self._same_origin(request):
                return self._failed(
                    request, 403, "Forbidden", "The form was posted from another site."
                )
            if endpoint == "index":
                return self.index(request)
            if endpoint == "static":
                return self.static(str(arguments["name"]))
            if endpoint == "upload":
                return self.upload(request)
            return self.delete(request, int(arguments["attachment_id"]))
        except RequestEntityTooLarge:
            limit = human_size(self.max_upload_bytes)
            return self._failed(request, 413, "Too large", f"The demo accepts up to {limit}.")
        except HTTPException as exc:
            return self._failed(request, exc.code or 500, exc.name, exc.description or "")

    @staticmethod
    def _same_origin(request: Request) -> bool:
        origin = request.headers.get("Origin")
        return origin is None or origin == request.host_url.rstrip("/")

    # -- pages -------------------------------------------------------------------------------
    def index(self, request: Request) -> Response:
        attachment = self.models.attachment
        with Session(self.engine) as session:
            records = session.scalars(sa.select(attachment).order_by(attachment.id.desc())).all()
            rows = [self._row(record) for record in records]
        response = self._html("")
        page = render_index(
            rows,
            stored_files=len(self.storage.list()),
            storage_path=str(getattr(self.storage, "storage_path", "")),
            message=self.flash.take(request, response),
            max_upload_bytes=self.max_upload_bytes,
        )
        response.set_data(page)
        return response

    def _row(self, record: Any) -> Row:
        upload: UploadedFile = record.upload
        thumbnail_path = upload.get("thumb_path") or upload.get("thumbnail_path")
        return Row(
            id=record.id,
            name=upload.filename or record.name,
            content_type=upload.content_type,
            size=upload.content_length,
            uploaded_at=upload.uploaded_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
            download_url=self.middleware.url_for(upload.path, filename=upload.filename),
            thumbnail_url=self.middleware.url_for(thumbnail_path) if thumbnail_path else None,
            view_url=self.middleware.url_for(upload.path) if thumbnail_path else None,
            thumbnail_error=_no_thumbnail(record),
            files=upload.files,
        )

    def static(self, name: str) -> Response:
        if name not in _STATIC:
            raise NotFound(f"no static file {name!r}")
        data = resources.files("sa_depot.demo").joinpath(f"static/{name}").read_bytes()
        response = Response(data, content_type=_STATIC[name])
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    def upload(self, request: Request) -> Response:
        uploads = [item for item in request.files.getlist("files") if item.filename]
        if not uploads:
            return self._after(request, "error", "Choose at least one file to upload.", 400)
        attachment = self.models.attachment
        stored: list[str] = []
        with Session(self.engine) as session:  # an exception rolls back: the files go too
            for item in uploads:
                record = attachment(name=item.filename or "upload")
                problem: str | None = None
                if _is_image(item.stream):
                    try:
                        record.image = item
                    except UnsupportedContent as exc:  # looked like an image, Pillow gave up
                        problem = _thumbnail_problem(exc)
                        item.stream.seek(0)
                        record.document = item
                else:
                    record.document = item
                record.name = record.upload.filename or record.name  # the stored name
                session.add(record)
                stored.append(record.name + (f" (no thumbnail: {problem})" if problem else ""))
            session.commit()
        return self._after(request, "notice", f"Uploaded {', '.join(stored)}.")

    def delete(self, request: Request, attachment_id: int) -> Response:
        with Session(self.engine) as session:
            record = session.get(self.models.attachment, attachment_id)
            if record is None:
                raise NotFound(f"attachment {attachment_id} does not exist (deleted already?)")
            name = record.name
            removed = len(record.upload.files)
            session.delete(record)
            session.commit()  # after the commit, sa_depot removes the row's files
        noun = "file" if removed == 1 else "files"
        return self._after(request, "notice", f"Deleted {name} and its {removed} stored {noun}.")

    # -- responses ---------------------------------------------------------------------------
    def _html(self, page: str, status: int = 200) -> Response:
        response = Response(page, status=status, content_type="text/html; charset=utf-8")
        response.headers.update(_PAGE_HEADERS)
        return response

    def _error(self, status: int, title: str, detail: str) -> Response:
        return self._html(render_error(status, title, detail), status)

    def _failed(self, request: Request, status: int, title: str, detail: str) -> Response:
        """An error page, or the JSON error the page's script asked for."""
        if _wants_json(request):
            return _json({"ok": False, "error": detail}, status)
        return self._error(status, title, detail)

    def _after(self, request: Request, kind: Kind, text: str, status: int = 200) -> Response:
        """The answer to a form: back to the page (303), or JSON for the page's script; the
        message waits for the next page either way (an error of the script stays on its
        page, which shows it)."""
        if _wants_json(request):
            response = _json({"ok": kind == "notice", kind: text}, status)
            if kind == "notice":
                self.flash.leave(response, kind, text)
            return response
        response = redirect("/", code=303)
        self.flash.leave(response, kind, text)
        return response

    def __repr__(self) -> str:
        return f"<DemoApp data_dir={str(self.data_dir)!r}>"


def _wants_json(request: Request) -> bool:
    return request.accept_mimetypes.best == "application/json"


def _json(data: dict[str, Any], status: int) -> Response:
    response = Response(json.dumps(data), status=status, content_type="application/json")
    response.headers.update({"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})
    return response


def _no_thumbnail(record: Any) -> str | None:
    """Why an attachment whose type says image has no thumbnail (``None``: it has one, or is
    no image)."""
    if record.image is not None or record.document is None:
        return None
    content_type = record.document.content_type
    if content_type in IMAGE_TYPES:
        return (
            f"the file says it is an image ({content_type}), but it could not be decoded; it "
            "is stored as a plain file"
        )
    if content_type.startswith("image/"):
        return (
            f"the demo makes thumbnails of PNG, JPEG, GIF, WebP and BMP images, not of "
            f"{content_type}"
        )
    return None


def _thumbnail_problem(exc: UnsupportedContent) -> str:
    """Pillow's reason, without the thumbnail filter's preamble."""
    return str(exc).split(": ", 1)[-1] or "the image could not be decoded"


def _is_image(stream: IO[bytes]) -> bool:
    """Whether Pillow recognises ``stream`` as a raster image (reads the header only)."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:  # without Pillow, every upload is a plain file
        return False
    position = stream.tell()
    try:
        with Image.open(stream) as image:
            return image.format in IMAGE_FORMATS
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return False
    finally:
        stream.seek(position)


def make_app(data_dir: str | Path, max_upload_bytes: int = MAX_UPLOAD_BYTES) -> DemoApp:
    """The demo WSGI application, keeping its SQLite database and files in ``data_dir`` and
    accepting uploads up to ``max_upload_bytes``."""
    return DemoApp(data_dir, max_upload_bytes)


__all__ = ["DemoApp", "make_app"]
