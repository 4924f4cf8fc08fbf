"""URLs and served paths agree wherever the middleware is mounted: under a WSGI SCRIPT_NAME
(a dispatcher, a server's prefix), inside FastAPI/Starlette through ``app.mount``, and for the
UploadedFile.url of a row."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from a2wsgi import WSGIMiddleware
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.test import Client

from sa_depot.exceptions import ConfigurationError
from sa_depot.fields.sqlalchemy import UploadedFileField
from sa_depot.fields.upload import UploadedFile
from sa_depot.manager import DepotManager
from sa_depot.middleware import DepotMiddleware
from sa_depot.schema import metadata as sa_depot_metadata

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


@pytest.fixture
def file_id() -> str:
    DepotManager.configure("media", {"depot.backend": "sa_depot.io.memory.MemoryFileStorage"})
    return DepotManager.get("media").create(b"mounted content", filename="note.txt")


@pytest.fixture
def document_class() -> type[Any]:
    """A mapped class declared for the test (sa_depot's session hooks come with it)."""

    class Base(DeclarativeBase):
        pass

    class Document(Base):
        __tablename__ = "mounted_documents"
        id: Mapped[int] = mapped_column(primary_key=True)
        content: Mapped[UploadedFile | None] = mapped_column(UploadedFileField())

    return Document


@pytest.fixture
def engine(tmp_path: Path, document_class: type[Any]) -> Iterator[sa.Engine]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'documents.sqlite'}")
    document_class.metadata.create_all(engine)
    sa_depot_metadata.create_all(engine)
    yield engine
    engine.dispose()


def url_reporting_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """A view that answers with the URL of the file its query names."""
    middleware = DepotManager.get_middleware()
    url = middleware.url_for(f"media/{environ['QUERY_STRING']}", filename="note.txt")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [url.encode()]


def test_a_wsgi_application_under_a_prefix_links_what_it_serves(file_id: str) -> None:
    """SCRIPT_NAME=/app (a dispatcher here; gunicorn or uWSGI do the same): URLs made in the
    application's views start with it, and the middleware serves them."""
    app = DepotManager.make_middleware(url_reporting_app)
    client = Client(DispatcherMiddleware(lambda e, s: [], {"/app": app}))

    url = client.get(f"/app/view?{file_id}").get_data(as_text=True)
    assert url == f"/app/depot/media/{file_id}/note.txt"
    response = client.get(url)
    assert response.status_code == 200
    assert response.get_data() == b"mounted content"
    # outside a request, nothing says where the application is mounted
    assert DepotManager.url_for(f"media/{file_id}") == f"/depot/media/{file_id}"


def test_root_path_gives_the_prefix_to_urls_made_outside_requests(file_id: str) -> None:
    app = DepotManager.make_middleware(url_reporting_app, root_path="/app/")
    client = Client(DispatcherMiddleware(lambda e, s: [], {"/app": app}))
    url = DepotManager.url_for(f"media/{file_id}")
    assert url == f"/app/depot/media/{file_id}"
    assert client.get(url).get_data() == b"mounted content"
    # a proxy that strips the prefix without setting SCRIPT_NAME: root_path still applies
    assert Client(app).get(f"/view?{file_id}").get_data(as_text=True).startswith("/app/depot/")


def test_fastapi_mount_serves_what_uploaded_file_url_says(
    file_id: str, engine: sa.Engine, document_class: type[Any]
) -> None:
    """The recipe of docs/serving.md: the middleware mounted on a path of its own."""
    depot = DepotManager.make_middleware(None, mountpoint="/", root_path="/depot")
    api = FastAPI()
    api.mount("/depot", WSGIMiddleware(depot))  # type: ignore[arg-type]

    @api.get("/documents/{document_id}")
    def document_url(document_id: int) -> dict[str, str]:
        with Session(engine) as session:
            document = session.get(document_class, document_id)
            assert document is not None and document.content is not None
            return {"url": document.content.url}

    with Session(engine) as session:
        document = document_class(content=b"a row's file")
        session.add(document)
        session.commit()
        document_id, path = document.id, document.content.path

    client = TestClient(api)
    url = client.get(f"/documents/{document_id}").json()["url"]
    assert url == f"/depot/{path}"
    response = client.get(url)
    assert response.status_code == 200
    assert response.content == b"a row's file"
    assert client.get(f"/depot/media/{file_id}").content == b"mounted content"


def test_a_mount_the_middleware_was_not_told_about_is_logged(
    file_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    depot = DepotManager.make_middleware(None)  # mountpoint /depot, root_path ''
    api = FastAPI()
    api.mount("/files", WSGIMiddleware(depot))  # type: ignore[arg-type]
    client = TestClient(api)
    with caplog.at_level(logging.WARNING, logger="sa_depot.middleware"):
        assert client.get(f"/files/depot/media/{file_id}").status_code == 200
        assert client.get(f"/files/depot/media/{file_id}").status_code == 200
    (warning,) = [r for r in caplog.records if "SCRIPT_NAME" in r.getMessage()]
    assert "root_path='/files'" in warning.getMessage()


def test_root_paths_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="root_path 'files' must be a URL path"):
        DepotMiddleware(None, root_path="files")
    with pytest.raises(ConfigurationError, match="without '\\?'"):
        DepotMiddleware(None, root_path="/a?b")
    assert DepotMiddleware(None, mountpoint="/", root_path="/").url_for("m/x") == "/m/x"
