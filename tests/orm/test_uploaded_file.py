"""UploadedFile, the descriptor, on its own (no database)."""

from __future__ import annotations

import copy
import gc
import hashlib
import json
import pickle
from datetime import timezone

import pytest

from sa_depot.exceptions import ConfigurationError
from sa_depot.fields.interfaces import FileFilter
from sa_depot.fields.upload import UploadedFile
from sa_depot.io.utils import FileIntent
from sa_depot.manager import DepotManager
from sa_depot.orm.records import UploadState, abandoned_count, remove_abandoned
from tests.orm.conftest import Depot


def test_a_new_descriptor_describes_the_stored_file(depot: Depot) -> None:
    uploaded = UploadedFile(FileIntent(b"%PDF-1.4 tiny", "report.pdf", "application/pdf"))
    assert uploaded.path == f"default/{uploaded.file_id}" == uploaded["path"]
    assert uploaded.depot_name == "default"
    assert uploaded.filename == "report.pdf"
    assert uploaded.content_type == "application/pdf"
    assert uploaded.content_length == len(b"%PDF-1.4 tiny")
    assert uploaded.checksum == hashlib.sha256(b"%PDF-1.4 tiny").hexdigest()
    assert uploaded.uploaded_at.tzinfo == timezone.utc
    assert uploaded.files == (uploaded.path,)
    assert uploaded.depot is depot.storage
    assert depot.read(uploaded) == b"%PDF-1.4 tiny"
    assert depot.stored() == {uploaded.path}
    assert json.loads(json.dumps(uploaded))["file_id"] == uploaded.file_id
    assert uploaded.file_id == uploaded["file_id"]  # attribute and key access agree


def test_the_descriptor_is_immutable(depot: Depot) -> None:
    uploaded = UploadedFile(b"x")
    for mutate in (
        lambda: uploaded.__setitem__("filename", "y"),
        lambda: uploaded.__delitem__("filename"),
        lambda: uploaded.update(filename="y"),
        lambda: uploaded.pop("filename"),
        lambda: uploaded.clear(),
        lambda: uploaded.setdefault("new", 1),
        lambda: setattr(uploaded, "filename", "y"),
    ):
        with pytest.raises(TypeError, match="immutable"):
            mutate()
    assert uploaded.filename == "unnamed" and "new" not in uploaded


def test_a_storage_can_be_chosen_and_an_unknown_one_is_named(depot: Depot) -> None:
    from sa_depot.exceptions import StorageNotFound
    from sa_depot.manager import DepotManager

    DepotManager.configure("other", {"depot.backend": "sa_depot.io.memory.MemoryFileStorage"})
    other = UploadedFile(b"x", "other")
    assert other.depot_name == "other" and other.path.startswith("other/")
    assert depot.stored() == set()
    with pytest.raises(StorageNotFound, match="nowhere"):
        UploadedFile(b"x", "nowhere")


def test_url_is_the_middleware_url_for_a_storage_without_public_urls() -> None:
    DepotManager.configure("default", {"depot.backend": "sa_depot.io.memory.MemoryFileStorage"})
    uploaded = UploadedFile(b"x", filters=[SiblingFile()])
    assert uploaded["_public_url"] is None and uploaded["copy_url"] is None
    with pytest.raises(ConfigurationError, match="middleware"):
        _ = uploaded.url
    assert uploaded.copy_url is None  # a derivative's URL: None without a middleware, as stored
    DepotManager.make_middleware()
    row = UploadedFile(json.loads(json.dumps(dict(uploaded))))
    assert row.url == DepotManager.url_for(uploaded.path) == f"/depot/{uploaded.path}"
    assert row.copy_url == DepotManager.url_for(row["copy_path"])
    assert row["copy_url"] is None  # item access gives what the row stores


def test_a_url_an_old_row_saved_is_the_last_resort(depot: Depot) -> None:
    file_id = "1b4e28ba-2fa1-41d2-883f-0016d3cca427"
    old = UploadedFile(
        {"path": f"default/{file_id}", "file_id": file_id, "_public_url": "https://cdn/x"}
    )
    assert old.url == "https://cdn/x"  # no public URL, no middleware: what filedepot saved
    DepotManager.make_middleware()
    assert old.url == f"/depot/default/{file_id}"  # a fresh URL first: the saved one may expire


class SiblingFile(FileFilter):
    """Stores a copy of the file under filedepot's derivative keys ``copy_id/_path/_url``."""

    def on_save(self, uploaded_file: UploadedFile) -> None:
        with uploaded_file.file as stored:
            path, file_id = uploaded_file.store_content(stored.read())
        uploaded_file["copy_id"], uploaded_file["copy_path"] = file_id, path
        uploaded_file["copy_url"] = None


def test_copies_and_pickles_are_plain_references(depot: Depot) -> None:
    uploaded = UploadedFile(b"x")
    assert uploaded.lifecycle is not None
    for clone in (
        copy.copy(uploaded),
        copy.deepcopy(uploaded),
        pickle.loads(pickle.dumps(uploaded)),
    ):
        assert clone == uploaded and type(clone) is UploadedFile
        assert clone.lifecycle is None


def test_a_failing_filter_removes_everything_stored_so_far(depot: Depot) -> None:
    class Broken(FileFilter):
        def on_save(self, uploaded_file: UploadedFile) -> None:
            uploaded_file.store_content(b"derivative")
            raise RuntimeError("broken filter")

    with pytest.raises(RuntimeError, match="broken filter"):
        UploadedFile(b"original", filters=[Broken()])
    assert depot.stored() == set()


def test_filters_may_add_keys_and_derivatives_before_the_descriptor_freezes(
    depot: Depot,
) -> None:
    class Reversed(FileFilter):
        def on_save(self, uploaded_file: UploadedFile) -> None:
            with uploaded_file.file as stored:
                data = stored.read()
            path, file_id = uploaded_file.store_content(data[::-1])
            uploaded_file["reversed_path"] = path

    uploaded = UploadedFile(b"abc", filters=[Reversed()])
    assert uploaded.files == (uploaded.path, uploaded["reversed_path"])
    assert depot.stored() == set(uploaded.files)


def test_an_upload_nobody_keeps_is_removed_once_collected(depot: Depot) -> None:
    uploaded = UploadedFile(b"x")
    record = uploaded.lifecycle
    assert record is not None and record.state is UploadState.PENDING
    del uploaded
    gc.collect()
    assert abandoned_count() >= 1
    assert depot.stored() != set()  # the garbage collector only queued it
    remove_abandoned()
    assert depot.stored() == set()
    assert record.state is UploadState.DISCARDED


def test_a_descriptor_without_path_loads_as_is(depot: Depot) -> None:
    loaded = UploadedFile({"file_id": "x"})
    assert loaded.files == () and loaded.lifecycle is None
