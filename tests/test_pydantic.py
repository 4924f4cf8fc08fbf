"""UploadedFile in Pydantic v2 models and SQLModel: validated as instances only, serialised as
what a client may see (url, filename, content_type, content_length, checksum), and Pydantic
never imported by sa_depot itself."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, ValidationError
from sqlmodel import Field, Session, SQLModel, select

from sa_depot.fields import lifecycle
from sa_depot.fields.sqlalchemy import UploadedFileField
from sa_depot.fields.upload import UploadedFile
from sa_depot.io.utils import FileIntent
from sa_depot.manager import DepotManager
from sa_depot.orm import records

PUBLIC = {"url", "filename", "content_type", "content_length", "checksum"}


@pytest.fixture
def stored(tmp_path: Path) -> Iterator[UploadedFile]:
    DepotManager.configure("default", {"depot.storage_path": str(tmp_path / "files")})
    DepotManager.make_middleware(None)
    uploaded = UploadedFile(FileIntent(b"hello", "hello.txt", "text/plain"))
    yield uploaded
    assert uploaded.lifecycle is not None
    records.discard(uploaded.lifecycle)  # never saved: removed now rather than at exit


class DocumentOut(BaseModel):
    id: int
    content: UploadedFile
    thumbnail: UploadedFile | None = None


def test_a_response_model_shows_the_public_view_only(stored: UploadedFile) -> None:
    out = DocumentOut(id=1, content=stored)
    assert out.content is stored
    dumped = out.model_dump()
    assert dumped["content"] == {
        "url": f"/depot/{stored.path}",
        "filename": "hello.txt",
        "content_type": "text/plain",
        "content_length": 5,
        "checksum": stored.checksum,
    }
    assert dumped["thumbnail"] is None
    as_json = json.loads(out.model_dump_json())
    assert set(as_json["content"]) == PUBLIC
    for internal in ("file_id", "path", "depot_name", "files", "_public_url", "uploaded_at"):
        assert internal not in as_json["content"]
    assert stored.file_id not in json.dumps(as_json["content"]["filename"])


def test_validation_accepts_uploaded_files_only(stored: UploadedFile) -> None:
    descriptor = dict(stored)
    with pytest.raises(ValidationError, match="a descriptor given as a dict is refused"):
        DocumentOut(id=1, content=descriptor)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="cannot name a stored file"):
        DocumentOut.model_validate_json(json.dumps({"id": 1, "content": descriptor}))
    with pytest.raises(ValidationError, match="expected UploadedFile, not bytes"):
        DocumentOut(id=1, content=b"raw")  # type: ignore[arg-type]


def test_the_json_schema_describes_the_public_view() -> None:
    for mode in ("serialization", "validation"):
        schema = DocumentOut.model_json_schema(mode=mode)  # type: ignore[arg-type]
        content = schema["properties"]["content"]
        assert set(content["properties"]) == PUBLIC, mode
        assert set(content["required"]) == PUBLIC


def test_fastapi_documents_and_serialises_a_response_model(stored: UploadedFile) -> None:
    api = FastAPI()

    @api.get("/document", response_model=DocumentOut)
    def document() -> Any:
        return {"id": 7, "content": stored}

    client = TestClient(api)
    body = client.get("/document").json()
    assert body["content"]["url"] == f"/depot/{stored.path}"
    assert set(body["content"]) == PUBLIC
    openapi = client.get("/openapi.json").json()
    assert "UploadedFile" in json.dumps(openapi)


def test_sa_depot_does_not_import_pydantic() -> None:
    script = (
        "import sys, tempfile\n"
        "from sa_depot.manager import DepotManager\n"
        "from sa_depot.fields.upload import UploadedFile\n"
        "import sa_depot.fields.sqlalchemy, sa_depot.aio, sa_depot.asgi, sa_depot.middleware\n"
        "DepotManager.configure('default', {'depot.storage_path': tempfile.mkdtemp()})\n"
        "UploadedFile(b'x')\n"
        "assert 'pydantic' not in sys.modules and 'pydantic_core' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# -- SQLModel -------------------------------------------------------------------------------------
@pytest.fixture
def sqlmodel_classes() -> Iterator[tuple[Any, Any]]:
    """A table model with an UploadedFileField column and its read model, declared afresh."""
    metadata = sa.MetaData()

    class Base(SQLModel):
        pass

    Base.metadata = metadata

    class Document(Base, table=True):
        __tablename__ = f"sqlmodel_documents_{uuid.uuid4().hex[:8]}"
        id: int | None = Field(default=None, primary_key=True)
        title: str
        content: UploadedFile | None = Field(default=None, sa_column=sa.Column(UploadedFileField()))

    class DocumentRead(SQLModel):
        id: int
        title: str
        content: UploadedFile | None

    yield Document, DocumentRead
    lifecycle.uninstall()


def test_a_sqlmodel_table_with_a_file_column(
    stored: UploadedFile, sqlmodel_classes: tuple[Any, Any], tmp_path: Path
) -> None:
    Document, DocumentRead = sqlmodel_classes
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'models.sqlite'}")
    Document.metadata.create_all(engine)
    storage = DepotManager.get()
    before = set(storage.list())

    with Session(engine) as session:
        doc = Document(title="report", content=FileIntent(b"%PDF-1.4 ...", "r.pdf", None))
        session.add(doc)
        session.commit()
        session.refresh(doc)
        read = DocumentRead.model_validate(doc)
        old_path = doc.content.path
        assert read.model_dump()["content"] == {
            "url": f"/depot/{old_path}",
            "filename": "r.pdf",
            "content_type": "application/pdf",
            "content_length": 12,
            "checksum": doc.content.checksum,
        }

        doc.content = b"second version"  # replaced: the old file goes after the commit
        session.add(doc)
        session.commit()
        assert old_path.split("/", 1)[1] not in storage.list()

    with Session(engine) as session:
        loaded = session.exec(select(Document)).one()
        assert isinstance(loaded.content, UploadedFile)
        with loaded.content.file as stored_file:
            assert stored_file.read() == b"second version"
        session.delete(loaded)
        session.commit()
    assert set(storage.list()) == before  # the deleted row's file is gone too
    engine.dispose()
