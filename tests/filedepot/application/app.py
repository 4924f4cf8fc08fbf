# ruff: noqa: SIM115, UP031  (the code is written as filedepot's documentation writes it)
"""An application written against filedepot 0.12.0's documentation (getting started, database
fields, filters and custom attachments, thumbnails, aliases, the middleware), imports included.

It runs on filedepot as it is, and on sa_depot once ``depot`` is renamed ``sa_depot`` in its
imports (tests/filedepot/test_application.py does the rename and nothing else)::

    python app.py create DATABASE_URL FILES_DIR   # the fixture: made with filedepot
    python app.py check DATABASE_URL FILES_DIR    # reads, serves and changes those rows

Only the documented API is used; ``check`` asserts what filedepot's documentation promises.
"""

import io
import sys
from tempfile import SpooledTemporaryFile

from depot.fields.filters.thumbnails import WithThumbnailFilter
from depot.fields.interfaces import FileFilter
from depot.fields.specialized.image import UploadedImageWithThumb
from depot.fields.sqlalchemy import UploadedFileField
from depot.fields.upload import UploadedFile
from depot.io import utils
from depot.io.interfaces import FileStorage
from depot.io.utils import INMEMORY_FILESIZE, FileIntent
from depot.manager import DepotManager
from depot.middleware import FileServeApp
from PIL import Image
from sqlalchemy import Column, Integer, Unicode, create_engine
from sqlalchemy.orm import declarative_base, sessionmaker

Base = declarative_base()


class UploadedImageWithMaxSize(UploadedFile):
    """The guide's custom attachment: images at most 1024 px."""

    max_size = 1024

    def process_content(self, content, filename=None, content_type=None):
        __, filename, content_type = FileStorage.fileinfo(content)
        _, content = utils.file_from_content(content)
        uploaded_image = Image.open(content)
        if max(uploaded_image.size) >= self.max_size:
            uploaded_image.thumbnail((self.max_size, self.max_size), Image.BILINEAR)
            content = SpooledTemporaryFile(INMEMORY_FILESIZE)
            uploaded_image.save(content, uploaded_image.format)
        content.seek(0)
        super().process_content(content, filename, content_type)


class GuideThumbnailFilter(FileFilter):
    """The guide's filter: a thumbnail made from ``original_content``."""

    def __init__(self, size=(32, 32), format="PNG"):
        self.thumbnail_size = size
        self.thumbnail_format = format

    def on_save(self, uploaded_file):
        close_content, content = utils.file_from_content(uploaded_file.original_content)
        thumbnail = Image.open(content)
        thumbnail.thumbnail(self.thumbnail_size, Image.BILINEAR)
        thumbnail = thumbnail.convert("RGBA")
        thumbnail.format = self.thumbnail_format
        output = io.BytesIO()
        thumbnail.save(output, self.thumbnail_format)
        output.seek(0)
        if close_content:
            content.close()
        thumb_file_name = "thumb.%s" % self.thumbnail_format.lower()
        thumb_path, thumb_id = uploaded_file.store_content(output, thumb_file_name)
        thumb_url = DepotManager.get_middleware().url_for(thumb_path)
        uploaded_file["thumb_id"] = thumb_id
        uploaded_file["thumb_path"] = thumb_path
        uploaded_file["thumb_url"] = thumb_url


class Document(Base):
    __tablename__ = "document"

    uid = Column(Integer, autoincrement=True, primary_key=True)
    name = Column(Unicode(16), unique=True)
    content = Column(UploadedFileField)
    photo = Column(UploadedFileField(filters=[WithThumbnailFilter()]))
    sketch = Column(UploadedFileField(filters=[GuideThumbnailFilter()]))
    scaled = Column(UploadedFileField(upload_type=UploadedImageWithMaxSize))
    avatar = Column(UploadedFileField(upload_type=UploadedImageWithThumb, upload_storage="avatars"))


def website(environ, start_response):
    """The application's own pages: /download/<uid> serves a document from a view."""
    path = environ["PATH_INFO"]
    if path.startswith("/download/"):
        session = Session()
        document = session.get(Document, int(path.rsplit("/", 1)[1]))
        app = FileServeApp(document.content.file, 3600)
        session.close()
        return app(environ, start_response)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"the website"]


Session = sessionmaker()


def setup(database_url, files_dir, avatars):
    DepotManager.configure("default", {"depot.storage_path": files_dir + "/default"})
    DepotManager.configure("avatars_v1", {"depot.storage_path": files_dir + "/avatars_v1"})
    DepotManager.configure("avatars_v2", {"depot.storage_path": files_dir + "/avatars_v2"})
    DepotManager.alias("avatars", avatars)
    app = DepotManager.make_middleware(website)
    engine = create_engine(database_url)
    Session.configure(bind=engine)
    return engine, app


def image(size, color, image_format="PNG"):
    output = io.BytesIO()
    Image.new("RGB", size, color).save(output, image_format)
    return output.getvalue()


def request(app, path, headers=()):
    """A GET as a WSGI server makes it; returns (status, headers, body)."""
    environ = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": True,
    }
    for name, value in headers:
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    answer = {}

    def start_response(status, response_headers, exc_info=None):
        answer["status"] = status
        answer["headers"] = dict(response_headers)

    body = app(environ, start_response)
    try:
        data = b"".join(body)
    finally:
        if hasattr(body, "close"):
            body.close()
    return answer["status"], answer["headers"], data


def create(database_url, files_dir):
    engine, app = setup(database_url, files_dir, avatars="avatars_v1")
    Base.metadata.create_all(engine)
    depot = DepotManager.get()
    depot.create(FileIntent(b"HELLO WORLD", "file.txt", "text/plain"))
    session = Session()
    session.add(
        Document(
            name="report",
            content=FileIntent(b"quarterly numbers", "report.txt", "text/plain"),
            photo=image((300, 200), (200, 30, 30)),
            sketch=image((64, 64), (30, 200, 30)),
            scaled=image((1500, 500), (30, 30, 200)),
            # a file object: filedepot's UploadedImageWithThumb closes bytes content too early
            avatar=io.BytesIO(image((300, 300), (120, 120, 0))),
        )
    )
    session.add(Document(name="to delete", content=b"short lived"))
    session.commit()


def check(database_url, files_dir):
    engine, app = setup(database_url, files_dir, avatars="avatars_v2")  # the alias moved on
    session = Session()

    # rows written before: files read back, derivatives served through the middleware
    report = session.query(Document).filter_by(name="report").one()
    assert report.content.file.read() == b"quarterly numbers"
    assert report.content.filename == "report.txt"
    assert report.content.content_type == "text/plain"
    assert DepotManager.get_file(report.content.path).read() == b"quarterly numbers"
    status, headers, body = request(app, report.content.url)
    assert status.startswith("200") and body == b"quarterly numbers", status
    status, headers, body = request(app, report.content.url, [("If-None-Match", headers["ETag"])])
    assert status.startswith("304"), status
    status, headers, body = request(app, "/download/%d" % report.uid)
    assert status.startswith("200") and body == b"quarterly numbers", status
    assert request(app, "/about")[2] == b"the website"

    status, headers, body = request(app, report.photo.thumb_128x128_url)
    assert status.startswith("200") and Image.open(io.BytesIO(body)).size == (128, 85)
    assert Image.open(DepotManager.get_file(report.sketch.thumb_path)).size == (32, 32)
    assert request(app, report.sketch.thumb_url)[0].startswith("200")
    assert Image.open(report.scaled.file).size == (1024, 341)

    # the alias was re-pointed: the old avatar is still read from the storage it went to
    assert report.avatar.depot_name == "avatars_v1"
    assert Image.open(report.avatar.thumb_file).size == (128, 128)
    status, headers, body = request(app, report.avatar.thumb_url)
    assert status.startswith("200") and Image.open(io.BytesIO(body)).size == (128, 128)
    assert request(app, report.avatar.url)[0].startswith("200")

    # new rows, with the same columns; an alias now leading elsewhere
    avatar = io.BytesIO(image((50, 50), (0, 0, 0)))
    new = Document(name="new", content=open(__file__, "rb"), avatar=avatar)
    session.add(new)
    session.commit()
    assert new.content.filename == "app.py"
    assert new.avatar.depot_name == "avatars_v2"
    assert DepotManager.get("avatars_v2").exists(new.avatar.thumb_id)

    # replacing and deleting: the old files go once the transaction commits
    old_path = report.content.path
    report.content = b"new numbers"
    session.commit()
    assert report.content.file.read() == b"new numbers"
    storage_name, old_id = old_path.split("/", 1)
    assert not DepotManager.get(storage_name).exists(old_id)

    doomed = session.query(Document).filter_by(name="to delete").one()
    doomed_id = doomed.content.file_id
    session.delete(doomed)
    session.commit()
    assert not DepotManager.get().exists(doomed_id)

    # a rollback removes what the transaction uploaded
    rolled = Document(name="rolled back", content=b"never committed")
    session.add(rolled)
    session.flush()
    rolled_id = rolled.content.file_id
    session.rollback()
    assert not DepotManager.get().exists(rolled_id)
    session.close()
    print("checked")


if __name__ == "__main__":
    {"create": create, "check": check}[sys.argv[1]](sys.argv[2], sys.argv[3])
