"""filedepot 0.12.0's observable behaviour on small inputs (its result is the expected one):
names, reprs, options kept as given, the exceptions ``except ValueError`` catches, the
middleware's status lines and caching headers, aliases, ``UploadedImageWithThumb`` and the
descriptor's mutability."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from PIL import Image
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from werkzeug.test import Client

from sa_depot.fields.interfaces import FileFilter
from sa_depot.fields.specialized.image import UploadedImageWithThumb
from sa_depot.fields.sqlalchemy import UploadedFileField
from sa_depot.fields.upload import UploadedFile
from sa_depot.io.interfaces import FileStorage
from sa_depot.io.local import LocalFileStorage
from sa_depot.manager import DepotManager
from sa_depot.serving.policy import ServingPolicy
from tests.filedepot.conftest import image


def test_content_without_a_name_is_unnamed(memory: FileStorage) -> None:
    with memory.get(memory.create(b"data")) as stored:
        assert (stored.filename, stored.name) == ("unnamed", "unnamed")
    assert UploadedFile(b"data").filename == "unnamed"


def test_repr_of_a_stored_file(memory: FileStorage) -> None:
    file_id = memory.create(b"hello", filename="file.txt", content_type="text/plain")
    with memory.get(file_id) as stored:
        assert re.fullmatch(
            rf"<MemoryStoredFile:{file_id} filename=file\.txt content_type=text/plain "
            r"last_modified=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+00:00>",
            repr(stored),
        )


def test_local_storage_path_stays_as_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    storage = LocalFileStorage("./lfs")
    assert storage.storage_path == "./lfs"
    file_id = storage.create(b"x")
    monkeypatch.chdir("/")  # the files stay in the directory resolved at configuration
    assert storage.exists(file_id) and storage.root == str(tmp_path / "lfs")


def test_errors_filedepot_raised_as_value_errors(tmp_path: Path, memory: FileStorage) -> None:
    with pytest.raises(ValueError, match="'missing'"):
        DepotManager.alias("x", "missing")
    with pytest.raises(ValueError, match="'missing'"):
        UploadedFile(b"content", "missing")
    with pytest.raises(LookupError):  # what sa_depot raised before, still caught
        UploadedFile(b"content", "missing")

    storage = LocalFileStorage(tmp_path / "files", fsync=False)
    for damage in (b"{not json", b'{"blob": "../../etc/passwd"}'):
        file_id = storage.create(b"x")
        [metadata] = [p for p in (tmp_path / "files").rglob(f"{file_id}.json")]
        metadata.write_bytes(damage)
        with pytest.raises(ValueError, match="outside sa_depot"):
            storage.get(file_id)
        with pytest.raises(OSError):  # and still a StorageError, as before
            storage.get(file_id)
    legacy_id = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"  # filedepot's layout
    os.makedirs(tmp_path / "files" / legacy_id)
    (tmp_path / "files" / legacy_id / "file").write_bytes(b"x")
    (tmp_path / "files" / legacy_id / "metadata.json").write_text(
        json.dumps({"filename": "a", "last_modified": "yesterday"})
    )
    with pytest.raises(ValueError, match="invalid value"):
        storage.get(legacy_id)


def test_middleware_status_lines_and_caching_headers(memory: FileStorage) -> None:
    file_id = memory.create(b"cached", filename="Крупный.txt", content_type="text/plain")
    DepotManager.configure("shared", {"depot.backend": "depot.io.memory.MemoryFileStorage"})
    shared_id = DepotManager.get("shared").create(b"shared", filename="s.txt")
    app = DepotManager.make_middleware(
        None, cache_max_age=600, policies={"shared": ServingPolicy(cache="public")}
    )
    client = Client(app)

    private = client.get(f"/depot/default/{file_id}")
    assert private.status == "200 OK"
    assert private.headers["Cache-Control"] == "private, max-age=600"
    # no HTTP/1.0 proxy may keep a private file: already expired; browsers follow max-age
    assert private.headers["Expires"] == "Thu, 01 Jan 1970 00:00:00 GMT"
    assert private.headers["Content-Disposition"].startswith('inline; filename="Krupnyy.txt";')

    public = client.get(f"/depot/shared/{shared_id}")
    assert public.headers["Cache-Control"] == "public, max-age=600"
    assert public.expires is not None and public.last_modified is not None
    assert (public.expires - public.last_modified).total_seconds() >= 590

    not_modified = client.get(
        f"/depot/default/{file_id}", headers={"If-None-Match": private.headers["ETag"]}
    )
    assert not_modified.status == "304 Not Modified"
    assert not_modified.headers["Expires"] == "Thu, 01 Jan 1970 00:00:00 GMT"
    assert client.get("/depot/default/6ba7b810-9dad-11d1-80b4-00c04fd430c8").status == (
        "404 Not Found"
    )
    assert client.get("/depot/nowhere/x").status == "404 Not Found"
    assert client.get("/elsewhere").status == "404 Not Found"


# -- the ORM ---------------------------------------------------------------------------------
class WithGreeting(FileFilter):
    """Sets and deletes attributes, as filedepot's filters may."""

    def on_save(self, uploaded_file: UploadedFile) -> None:
        uploaded_file.hello = "world"
        uploaded_file.scratch = 1
        del uploaded_file.scratch
        with pytest.raises(AttributeError):
            del uploaded_file.never_set


@pytest.fixture
def Avatar(engine: sa.Engine) -> type[Any]:
    """A model made for each test (the lifecycle equips the mappers made after it starts)."""

    class Base(DeclarativeBase):
        pass

    class Avatar(Base):
        __tablename__ = "avatars"
        id: Mapped[int] = mapped_column(primary_key=True)
        content: Mapped[UploadedFile | None] = mapped_column(
            UploadedFileField(upload_storage="avatar", filters=[WithGreeting()])
        )
        photo: Mapped[UploadedImageWithThumb | None] = mapped_column(
            UploadedFileField(upload_type=UploadedImageWithThumb)
        )

    Base.metadata.create_all(engine)
    return Avatar


def test_an_alias_records_its_storage_so_re_pointing_it_keeps_old_rows(
    engine: sa.Engine, memory: FileStorage, Avatar: type[Any]
) -> None:
    """filedepot's documented way to switch storages: point the alias at a new one."""
    DepotManager.configure("first", {"depot.backend": "depot.io.memory.MemoryFileStorage"})
    DepotManager.configure("second", {"depot.backend": "depot.io.memory.MemoryFileStorage"})
    DepotManager.alias("avatar", "first")
    with Session(engine) as session:
        session.add(Avatar(id=1, content=b"old"))
        session.commit()
    DepotManager.alias("avatar", "second")
    with Session(engine) as session:
        session.add(Avatar(id=2, content=b"new"))
        session.commit()
        old, new = session.get(Avatar, 1), session.get(Avatar, 2)
        assert old is not None and new is not None and old.content and new.content
        assert (old.content.depot_name, new.content.depot_name) == ("first", "second")
        assert old.content.file.read() == b"old" and new.content.file.read() == b"new"
        assert old.content.hello == "world" and "scratch" not in old.content
        for change in (
            lambda: setattr(old.content, "hello", "again"),
            lambda: delattr(old.content, "hello"),
            lambda: delattr(old.content, "never_set"),
            lambda: old.content.__setitem__("hello", "again"),
            lambda: old.content.update(hello="again"),
            lambda: old.content.pop("hello"),
        ):
            with pytest.raises(TypeError, match="immutable"):
                change()


def test_uploaded_image_with_thumb_as_filedepot(
    engine: sa.Engine, memory: FileStorage, Avatar: type[Any]
) -> None:
    DepotManager.alias("avatar", "default")
    DepotManager.make_middleware(None)
    with Session(engine) as session:
        avatar = Avatar(id=1, photo=image((2000, 1000), "JPEG"))
        session.add(avatar)
        session.commit()
        photo = avatar.photo
        assert photo is not None
        assert {"thumb_id", "thumb_path", "_thumb_public_url"} <= set(photo)
        assert photo["thumb_path"] == f"default/{photo['thumb_id']}"
        assert photo["_thumb_public_url"] is None
        assert photo.thumb_url == f"/depot/default/{photo['thumb_id']}"
        with photo.file as stored:  # larger than max_size: scaled down before storing
            assert Image.open(stored).size == (1024, 512)
            assert stored.content_type == "image/jpeg"
        with photo.thumb_file as thumb:
            assert Image.open(thumb).size == (128, 64)

        small = UploadedImageWithThumb(image((300, 200)))
        with small.file as stored:
            assert stored.read() == image((300, 200))  # fits: stored as it came

        session.add(Avatar(id=2, photo=UploadedFile(image((10, 10)))))
        with pytest.raises(sa.exc.StatementError) as raised:
            session.commit()
        assert isinstance(raised.value.orig, ValueError)
        assert "UploadedImageWithThumb" in str(raised.value.orig)
        session.rollback()
        assert session.get(Avatar, 2) is None


def test_image_rows_of_filedepot_and_of_earlier_sa_depot_both_work(
    engine: sa.Engine, memory: FileStorage, Avatar: type[Any]
) -> None:
    DepotManager.make_middleware(None)
    original, thumbnail = memory.create(image((50, 50))), memory.create(image((20, 20)))
    common = {
        "depot_name": "default",
        "file_id": original,
        "path": f"default/{original}",
        "filename": "a.png",
        "content_type": "image/png",
        "uploaded_at": "2024-05-04 10:21:07",
        "_public_url": None,
        "files": [f"default/{original}", f"default/{thumbnail}"],
    }
    filedepot_row = {**common, "thumb_id": thumbnail, "thumb_path": f"default/{thumbnail}"}
    filedepot_row["_thumb_public_url"] = None
    earlier_row = {**common, "thumbnail_id": thumbnail, "thumbnail_path": f"default/{thumbnail}"}
    earlier_row["thumbnail_url"] = None
    with engine.begin() as connection:
        for row_id, row in ((1, filedepot_row), (2, earlier_row)):
            connection.execute(
                sa.text("INSERT INTO avatars (id, photo) VALUES (:id, :photo)"),
                {"id": row_id, "photo": json.dumps(row)},
            )
    with Session(engine) as session:
        for row_id in (1, 2):
            avatar = session.get(Avatar, row_id)
            assert avatar is not None and isinstance(avatar.photo, UploadedImageWithThumb)
            assert avatar.photo.thumb_url == f"/depot/default/{thumbnail}"
            with avatar.photo.thumb_file as thumb:
                assert Image.open(thumb).size == (20, 20)
        earlier = session.get(Avatar, 2)
        assert earlier is not None and earlier.photo is not None
        assert earlier.photo.thumbnail_url == f"/depot/default/{thumbnail}"
