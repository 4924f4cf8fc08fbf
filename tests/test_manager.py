"""DepotManager: named storages, the default, aliases, configuration from strings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sa_depot import DepotManager
from sa_depot.exceptions import (
    ConfigurationError,
    InvalidFileId,
    StorageError,
    StorageNotFound,
)
from sa_depot.io.local import LocalFileStorage
from sa_depot.io.memory import MemoryFileStorage

MEMORY = {"depot.backend": "sa_depot.io.memory.MemoryFileStorage"}


def local_config(path: Path, **options: str) -> dict[str, str]:
    return {"depot.storage_path": str(path), **{f"depot.{k}": v for k, v in options.items()}}


# -- configure --------------------------------------------------------------------------------
def test_the_first_storage_configured_is_the_default(tmp_path: Path) -> None:
    first = DepotManager.configure("first", local_config(tmp_path / "first"))
    second = DepotManager.configure("second", MEMORY)

    assert DepotManager.get_default() == "first"
    assert DepotManager.get() is first
    assert DepotManager.get(None) is first
    assert DepotManager.get("second") is second
    assert DepotManager.names() == ["first", "second"]
    assert (first.storage_name, second.storage_name) == ("first", "second")


def test_configuring_a_name_twice_is_an_error() -> None:
    DepotManager.configure("media", MEMORY)
    with pytest.raises(ConfigurationError, match="'media' is already configured"):
        DepotManager.configure("media", MEMORY)


@pytest.mark.parametrize("name", ["", "a/b"])
def test_storage_names_must_be_non_empty_and_slash_free(name: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid storage name"):
        DepotManager.configure(name, MEMORY)


def test_a_name_already_used_by_an_alias_cannot_be_configured() -> None:
    DepotManager.configure("real", MEMORY)
    DepotManager.alias("nick", "real")
    with pytest.raises(ConfigurationError, match="already configured"):
        DepotManager.configure("nick", MEMORY)


# -- from_config ------------------------------------------------------------------------------
def test_the_default_backend_is_local_storage(tmp_path: Path) -> None:
    storage = DepotManager.from_config(local_config(tmp_path / "files"))
    assert isinstance(storage, LocalFileStorage)
    assert storage.storage_path == str(tmp_path / "files")
    assert DepotManager.names() == []  # from_config does not register


def test_a_dotted_backend_path_is_imported() -> None:
    assert isinstance(DepotManager.from_config(MEMORY), MemoryFileStorage)


def test_string_options_are_converted_to_the_annotated_types(tmp_path: Path) -> None:
    storage = DepotManager.from_config(local_config(tmp_path, fsync="false", chunk_size="1024"))
    assert isinstance(storage, LocalFileStorage)
    assert storage.fsync is False
    assert storage.chunk_size == 1024

    storage = DepotManager.from_config(local_config(tmp_path, fsync="1"))
    assert isinstance(storage, LocalFileStorage)
    assert storage.fsync is True


def test_values_that_are_not_strings_are_passed_unchanged(tmp_path: Path) -> None:
    config = {"depot.storage_path": tmp_path, "depot.fsync": False, "depot.chunk_size": 4096}
    storage = DepotManager.from_config(config)
    assert isinstance(storage, LocalFileStorage)
    assert (storage.fsync, storage.chunk_size) == (False, 4096)


def test_an_unconvertible_string_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="option 'chunk_size'.*'big'"):
        DepotManager.from_config(local_config(tmp_path, chunk_size="big"))
    with pytest.raises(ConfigurationError, match="option 'fsync'.*'perhaps'"):
        DepotManager.from_config(local_config(tmp_path, fsync="perhaps"))


def test_an_unknown_option_lists_the_accepted_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as raised:
        DepotManager.from_config(local_config(tmp_path, sync="false"))
    message = str(raised.value)
    assert "unknown option 'sync'" in message
    for accepted in ("storage_path", "fsync", "chunk_size"):
        assert accepted in message


def test_options_without_the_prefix_are_ignored_and_the_prefix_is_configurable(
    tmp_path: Path,
) -> None:
    config = {
        "files.storage_path": str(tmp_path / "files"),
        "files.fsync": "no",
        "depot.storage_path": "/ignored",
        "sqlalchemy.url": "sqlite://",
    }
    storage = DepotManager.configure("files", config, prefix="files.")
    assert isinstance(storage, LocalFileStorage)
    assert storage.storage_path == str(tmp_path / "files")
    assert storage.fsync is False


@pytest.mark.parametrize(
    ("backend", "message"),
    [
        ("LocalFileStorage", "not a dotted class path"),
        ("sa_depot.io.nowhere.Storage", "cannot import backend module 'sa_depot.io.nowhere'"),
        ("sa_depot.io.local.Missing", "is not a FileStorage class"),
        ("sa_depot.manager.DepotManager", "is not a FileStorage class"),
    ],
)
def test_a_wrong_backend_is_a_configuration_error(backend: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        DepotManager.from_config({"depot.backend": backend})


def test_a_missing_required_option_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="storage_path"):
        DepotManager.from_config({"depot.fsync": "true"})


@pytest.mark.parametrize(
    ("filedepot_path", "ours"),
    [
        ("depot.io.local.LocalFileStorage", LocalFileStorage),
        ("depot.io.memory.MemoryFileStorage", MemoryFileStorage),
    ],
)
def test_filedepot_backend_paths_map_to_ours(
    tmp_path: Path, filedepot_path: str, ours: type
) -> None:
    config = {"depot.backend": filedepot_path, "depot.storage_path": str(tmp_path)}
    assert type(DepotManager.from_config(config)) is ours


# -- default, get, get_file -------------------------------------------------------------------
def test_set_default(tmp_path: Path) -> None:
    DepotManager.configure("a", MEMORY)
    b = DepotManager.configure("b", MEMORY)

    DepotManager.set_default("b")

    assert DepotManager.get_default() == "b"
    assert DepotManager.get() is b


def test_set_default_to_an_unknown_name_fails_and_keeps_the_default() -> None:
    DepotManager.configure("a", MEMORY)
    with pytest.raises(StorageNotFound):
        DepotManager.set_default("zzz")
    assert DepotManager.get_default() == "a"


def test_no_default_without_storages() -> None:
    with pytest.raises(StorageNotFound, match="no default storage is configured") as raised:
        DepotManager.get_default()
    # the message says which call configures one
    assert "DepotManager.configure(name, {'depot.storage_path': ...})" in str(raised.value)
    assert "DepotManager.set_default(name)" in str(raised.value)
    with pytest.raises(StorageNotFound):
        DepotManager.get()


def test_create_false_configures_a_storage_that_creates_nothing(tmp_path: Path) -> None:
    storage = DepotManager.configure(
        "default", {"depot.storage_path": str(tmp_path / "absent")}, create=False
    )
    assert not (tmp_path / "absent").exists()
    with pytest.raises(StorageError, match="the storage directory does not exist"):
        storage.list()
    # the backend's own option is overridden: "create nothing" wins over the configuration
    s3 = DepotManager.from_config(
        {"depot.backend": "sa_depot.io.boto3.S3Storage", "depot.bucket": "media",
         "depot.create_bucket": "true"},
        create=False,
    )  # fmt: skip
    assert getattr(s3, "create_bucket", None) is False


def test_an_unknown_storage_lists_the_configured_ones() -> None:
    DepotManager.configure("images", MEMORY)
    DepotManager.configure("documents", MEMORY)

    with pytest.raises(StorageNotFound) as raised:
        DepotManager.get("videos")

    assert isinstance(raised.value, LookupError)
    assert str(raised.value) == "no storage named 'videos'; configured: 'images', 'documents'"
    assert raised.value.configured == ["images", "documents"]


def test_get_file_opens_storage_slash_id() -> None:
    storage = DepotManager.configure("docs", MEMORY)
    file_id = storage.create(b"content", "doc.txt")

    with DepotManager.get_file(f"docs/{file_id}") as stored:
        assert stored.read() == b"content"
        assert stored.filename == "doc.txt"


def test_get_file_errors() -> None:
    DepotManager.configure("docs", MEMORY)
    with pytest.raises(InvalidFileId, match="storage/file_id"):
        DepotManager.get_file("no-slash")
    with pytest.raises(StorageNotFound, match="'docs'"):
        DepotManager.get_file("other/1b4e28ba-2fa1-41d2-883f-0016d3cca427")
    with pytest.raises(InvalidFileId):
        DepotManager.get_file("docs/../../etc/passwd")
    with pytest.raises(FileNotFoundError):
        DepotManager.get_file("docs/1b4e28ba-2fa1-41d2-883f-0016d3cca427")


# -- aliases ----------------------------------------------------------------------------------
def test_an_alias_stands_for_its_storage() -> None:
    old = DepotManager.configure("old", MEMORY)
    new = DepotManager.configure("new", MEMORY)
    file_id = new.create(b"moved")

    DepotManager.alias("current", "old")
    assert DepotManager.resolve_alias("current") == "old"
    assert DepotManager.get("current") is old

    DepotManager.alias("current", "new")  # re-pointing moves every "current/..." path
    assert DepotManager.get("current") is new
    with DepotManager.get_file(f"current/{file_id}") as stored:
        assert stored.read() == b"moved"
    assert DepotManager.resolve_alias("new") == "new"
    assert DepotManager.names() == ["old", "new"]


def test_set_default_through_an_alias_stores_the_real_name() -> None:
    DepotManager.configure("a", MEMORY)
    DepotManager.configure("b", MEMORY)
    DepotManager.alias("main", "b")
    DepotManager.set_default("main")
    assert DepotManager.get_default() == "b"


def test_alias_errors() -> None:
    DepotManager.configure("a", MEMORY)
    DepotManager.configure("b", MEMORY)
    with pytest.raises(StorageNotFound, match="'missing'"):
        DepotManager.alias("x", "missing")
    with pytest.raises(ConfigurationError, match="'b' is a storage name"):
        DepotManager.alias("b", "a")


# -- reset ------------------------------------------------------------------------------------
@pytest.mark.parametrize("reset", [DepotManager.reset, DepotManager._clear])
def test_reset_forgets_everything(reset: object) -> None:
    DepotManager.configure("a", MEMORY)
    DepotManager.alias("x", "a")

    assert callable(reset)
    reset()

    assert DepotManager.names() == []
    assert DepotManager.resolve_alias("x") == "x"
    with pytest.raises(StorageNotFound):
        DepotManager.get_default()
    DepotManager.configure("a", MEMORY)  # the name is free again
    assert DepotManager.get_default() == "a"


# -- importing --------------------------------------------------------------------------------
IMPORT_PROBE = """
import json, os, sys, threading, warnings
warnings.simplefilter("error")
before = set(os.listdir("."))
import sa_depot
from sa_depot import DepotManager
print(json.dumps({
    "modules": sorted(sys.modules),
    "threads": threading.active_count(),
    "storages": DepotManager.names(),
    "new_files": sorted(set(os.listdir(".")) - before),
}))
"""


def test_importing_sa_depot_loads_no_driver_and_installs_nothing(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(Path(__file__).resolve().parents[1]), "PATH": ""},
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    heavy = {"sqlalchemy", "boto3", "botocore", "pymongo", "gridfs", "magic", "PIL", "werkzeug"}
    loaded = {name.split(".")[0] for name in report["modules"]}
    assert loaded & heavy == set()
    assert "sa_depot" in loaded
    assert report["threads"] == 1
    assert report["storages"] == []
    assert report["new_files"] == []


@pytest.mark.parametrize(
    "backend",
    [
        "sa_depot.io.local.LocalFileStorage",
        "sa_depot.io.memory.MemoryFileStorage",
        "sa_depot.io.boto3.S3Storage",
        "sa_depot.io.gridfs.GridFSStorage",
    ],
)
def test_create_nothing_options_are_constructor_options(backend: str) -> None:
    import importlib
    import inspect

    module, _, name = backend.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    parameters = inspect.signature(cls.__init__).parameters
    assert set(cls.create_nothing_options) <= set(parameters)
