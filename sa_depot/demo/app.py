"""The demo WSGI application: Werkzeug routing, one SQLAlchemy session per request.

``GET /`` lists the attachments; ``POST /upload`` stores the files of the form (one row each);
``POST /attachments/<id>/delete`` deletes a row, and sa_depot removes its files (the image's
thumbnail too) once the deletion is committed. ``/depot/...`` is served by DepotMiddleware.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlencode

import sqlalchemy as sa
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException, NotFound, RequestEntityTooLarge
from werkzeug.routing import Map, Rule
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from sa_depot.demo.models import STORAGE_NAME, demo_models
from sa_depot.demo.pages import Row, render_error, render_index
from sa_depot.exceptions import ConfigurationError, UnsupportedContent
from sa_depot.fields.upload import UploadedFile
from sa_depot.manager import DepotManager
from sa_depot.middleware import DepotMiddleware
from sa_depot.schema import metadata as sa_depot_metadata

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

_log = logging.getLogger(__name__)

#: Uploads larger than this are refused with 413.
MAX_UPLOAD_BYTES = 256 * 1024 * 1024
#: Pillow formats stored as images (with a thumbnail); anything else is a plain file.
IMAGE_FORMATS = frozenset({"PNG", "JPEG", "GIF", "WEBP", "BMP"})

_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}


class DemoApp:
    """The demo, on SQLite and a local storage in ``data_dir``.

    Registers the storage ``demo`` in :class:`DepotManager` (which must not hold one already)
    and makes the manager's middleware. Attributes useful to tests: :attr:`engine`,
    :attr:`storage`, :attr:`models`, :attr:`data_dir`.
    """

    def __init__(self, data_dir: str | Path) -> None:
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
        self.models = demo_models()
        self.engine = sa.create_engine(f"sqlite:///{self.data_dir / 'demo.sqlite'}")
        self.models.base.metadata.create_all(self.engine)
        sa_depot_metadata.create_all(self.engine)  # the removal journal
        self.url_map = Map(
            [
                Rule("/", endpoint="index", methods=["GET", "HEAD"]),
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
        request.max_content_length = MAX_UPLOAD_BYTES
        response = self._dispatch(request)
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        adapter = self.url_map.bind_to_environ(request.environ)
        try:
            endpoint, arguments = adapter.match()
            if request.method == "POST" and not self._same_origin(request):
                return self._error(403, "Forbidden", "the form was posted from another site")
            if endpoint == "index":
                return self.index(request)
            if endpoint == "upload":
                return self.upload(request)
            return self.delete(request, int(arguments["attachment_id"]))
        except RequestEntityTooLarge:
            limit = MAX_UPLOAD_BYTES // (1024 * 1024)
            return self._error(413, "Too large", f"the demo accepts uploads up to {limit} MiB")
        except HTTPException as exc:
            return self._error(exc.code or 500, exc.name, exc.description or "")

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
        page = render_index(
            rows,
            stored_files=len(self.storage.list()),
            storage_path=str(getattr(self.storage, "storage_path", "")),
            notice=request.args.get("notice"),
            error=request.args.get("error"),
        )
        return self._html(page)

    def _row(self, record: Any) -> Row:
        upload: UploadedFile = record.upload
        thumbnail_path = upload.get("thumbnail_path")
        return Row(
            id=record.id,
            name=upload.filename or record.name,
            content_type=upload.content_type,
            size=upload.content_length,
            uploaded_at=upload.uploaded_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
            download_url=self.middleware.url_for(upload.path, filename=upload.filename),
            thumbnail_url=self.middleware.url_for(thumbnail_path) if thumbnail_path else None,
            files=upload.files,
        )

    def upload(self, request: Request) -> Response:
        uploads = [item for item in request.files.getlist("files") if item.filename]
        if not uploads:
            return self._back(error="Choose at least one file to upload.")
        attachment = self.models.attachment
        with Session(self.engine) as session:  # an exception rolls back: the files go too
            for item in uploads:
                record = attachment(name=item.filename or "upload")
                if _is_image(item.stream):
                    try:
                        record.image = item
                    except UnsupportedContent:  # looked like an image, but Pillow gave up
                        item.stream.seek(0)
                        record.document = item
                else:
                    record.document = item
                session.add(record)
            session.commit()
        names = ", ".join(item.filename or "upload" for item in uploads)
        return self._back(notice=f"Uploaded {names}.")

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
        return self._back(notice=f"Deleted {name} and its {removed} stored {noun}.")

    # -- responses ---------------------------------------------------------------------------
    def _html(self, page: str, status: int = 200) -> Response:
        response = Response(page, status=status, content_type="text/html; charset=utf-8")
        response.headers.update(_PAGE_HEADERS)
        return response

    def _error(self, status: int, title: str, detail: str) -> Response:
        return self._html(render_error(status, title, detail), status)

    def _back(self, **message: str) -> Response:
        return redirect("/?" + urlencode(message), code=303)

    def __repr__(self) -> str:
        return f"<DemoApp data_dir={str(self.data_dir)!r}>"


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


def make_app(data_dir: str | Path) -> DemoApp:
    """The demo WSGI application, keeping its SQLite database and files in ``data_dir``."""
    return DemoApp(data_dir)


__all__ = ["DemoApp", "make_app"]
