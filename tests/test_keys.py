"""Key templates (:mod:`sa_depot.io.keys`): what they make of the application's values and of
uploaded filenames, what they refuse, and the keyed layout of a local storage."""

from __future__ import annotations

import os
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from sa_depot.exceptions import ConfigurationError, InvalidKey
from sa_depot.io.keys import (
    MAX_KEY_BYTES,
    MAX_SEGMENT_BYTES,
    MAX_VALUE_BYTES,
    KeyTemplate,
    is_valid_key,
)
from sa_depot.io.local import LocalFileStorage
from sa_depot.io.memory import MemoryFileStorage
from sa_depot.manager import DepotManager

FIXED_ID = "1b4e28ba-2fa1-41d2-883f-0016d3cca427"
NOW = datetime(2026, 3, 7, 23, 30, tzinfo=timezone(timedelta(hours=-2)))  # 8 March in UTC


def render(template: str, filename: str | None = None, **values: object) -> str:
    return KeyTemplate(template).render(
        filename=filename, values=values, now=NOW, new_id=lambda: FIXED_ID
    )


def test_placeholders() -> None:
    assert render("{tenant}/{yyyy}/{mm}/{dd}/{id}{ext}", "Scan.JPEG", tenant="acme") == (
        f"acme/2026/03/08/{FIXED_ID}.jpeg"
    )
    assert render("{id}-{filename}", "report.pdf") == f"{FIXED_ID}-report.pdf"
    assert render("{id}{ext}", None) == FIXED_ID  # no filename: no extension
    assert render("{id}{ext}", "archive.tar.gz") == f"{FIXED_ID}.gz"
    assert render("{id}{ext}", "weird.ext!") == FIXED_ID  # only plain extensions
    assert render("n{user_id}/{id}", user_id=42) == f"n42/{FIXED_ID}"


def test_a_template_without_id_gets_one_in_front_of_its_last_part() -> None:
    assert render("{tenant}/{filename}", "report.pdf", tenant="t") == f"t/{FIXED_ID}/report.pdf"
    assert render("{filename}", "report.pdf") == f"{FIXED_ID}/report.pdf"
    template = KeyTemplate("{tenant}/{filename}")
    made = {template.render(filename="a.pdf", values={"tenant": "t"}) for _ in range(50)}
    assert len(made) == 50


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\report.pdf", "report.pdf"),
        (".bashrc", "bashrc"),
        ("trailing dots...", "trailing dots"),
        ("\u202egnp.exe", "gnp.exe"),
        ("a\r\nb.txt", "a b.txt"),
        ("Cafe\u0301.txt", "Café.txt"),
        ("..", "unnamed"),
    ],
)
def test_filenames_are_sanitised_by_the_one_normalisation(filename: str, expected: str) -> None:
    # an unusable name becomes what every stored file without a name is called: 'unnamed'
    from sa_depot.io.utils import DEFAULT_FILENAME

    storage = MemoryFileStorage()
    file_id = storage.create(b"x", filename, key="{id}/{filename}")
    assert file_id.split("/")[1] == expected.replace("unnamed", DEFAULT_FILENAME)
    assert render("{id}/{filename}", filename).split("/")[1] in (expected, "file")


def test_long_names_are_cut_in_bytes_keeping_the_extension() -> None:
    key = render("{id}/{filename}", "é" * 300 + ".pdf")
    name = key.split("/")[1]
    assert name.endswith(".pdf") and len(name.encode()) <= MAX_VALUE_BYTES
    assert is_valid_key(key)


def test_values_lose_separators_and_invisible_characters() -> None:
    assert render("{tenant}/{id}", tenant="acme/../../x") == f"acme_.._.._x/{FIXED_ID}"
    assert render("{tenant}/{id}", tenant="a\\b") == f"a_b/{FIXED_ID}"
    assert render("{tenant}/{id}", tenant="\u200bacme\u202e") == f"acme/{FIXED_ID}"
    assert render("{tenant}/{id}", tenant="...hidden") == f"hidden/{FIXED_ID}"
    assert render("{tenant}/{id}", tenant="/") == f"_/{FIXED_ID}"
    for empty in ("", ".", "..", " . ", "\u202e"):
        with pytest.raises(InvalidKey, match="tenant"):
            render("{tenant}/{id}", tenant=empty)


def test_a_missing_value_names_the_placeholder_and_how_to_pass_it() -> None:
    with pytest.raises(InvalidKey, match=r"\{tenant\}.*key_values=\{'tenant': \.\.\.\}"):
        render("{tenant}/{id}")


@pytest.mark.parametrize(
    "template",
    [
        "",
        " ",
        "../{id}",
        "/{id}",
        "a//{id}",
        "./{id}",
        "{id}/",
        ".hidden/{id}",
        "{a.b}/{id}",
        "{0}/{id}",
        "{}/{id}",
        "{x!r}/{id}",
        "{x:>4}/{id}",
        "{id",
        "a\\b/{id}",
        "a\x00/{id}",
        "trailing./{id}",
    ],
)
def test_malformed_templates_are_refused(template: str) -> None:
    with pytest.raises(InvalidKey, match="key template"):
        KeyTemplate(template)


def test_keys_too_long_are_refused() -> None:
    with pytest.raises(InvalidKey, match=f"{MAX_SEGMENT_BYTES} per part"):
        render("{a}{b}/{id}", a="x" * MAX_VALUE_BYTES, b="y" * MAX_VALUE_BYTES)
    with pytest.raises(InvalidKey, match=f"at most {MAX_SEGMENT_BYTES} bytes"):
        KeyTemplate("{id}" + "x" * MAX_SEGMENT_BYTES)
    with pytest.raises(InvalidKey, match=f"{MAX_KEY_BYTES} bytes"):
        render("abcdefghij/" * 40 + "{id}")


@pytest.mark.parametrize(
    ("key", "valid"),
    [
        (FIXED_ID, True),
        (f"acme/2026/{FIXED_ID}.pdf", True),
        (f"Société/{FIXED_ID}/Résumé final.pdf", True),
        ("acme/2026/report.pdf", False),  # no UUID: not a key sa_depot made
        (f"acme/../{FIXED_ID}", False),
        (f"/{FIXED_ID}", False),
        (f"{FIXED_ID}/", False),
        (f"a//{FIXED_ID}", False),
        (f".sa-depot-uploads/{FIXED_ID}", False),
        (f"a /{FIXED_ID}", False),
        (f"a\\{FIXED_ID}", False),
        (f"a\u202e/{FIXED_ID}", False),
        (f"a\x7f/{FIXED_ID}", False),
        (f"Cafe\u0301/{FIXED_ID}", False),  # not NFC: one key, one spelling
        (f"a\udc80/{FIXED_ID}", False),
        ("a" * (MAX_SEGMENT_BYTES + 1) + f"/{FIXED_ID}", False),
    ],
)
def test_is_valid_key(key: str, valid: bool) -> None:
    assert is_valid_key(key) is valid
    assert MemoryFileStorage().is_valid_id(key) is valid


def test_the_key_template_option(tmp_path: Path) -> None:
    storage = DepotManager.from_config(
        {"depot.storage_path": str(tmp_path / "files"), "depot.key_template": "{yyyy}/{id}{ext}"}
    )
    file_id = storage.create(b"x", "Report.PDF")
    year, name = file_id.split("/")
    assert year == f"{datetime.now(timezone.utc):%Y}" and name.endswith(".pdf")
    assert uuid.UUID(name.removesuffix(".pdf"))
    assert (tmp_path / "files" / "keys" / year / f"{name}.json").is_file()
    assert storage.create(b"y", key="custom/{id}").startswith("custom/")  # the caller's wins
    with pytest.raises(ConfigurationError, match="depot.key_template"):
        DepotManager.from_config({"depot.backend": "memory", "depot.key_template": "../{id}"})


def test_local_keys_nest_under_keys_and_a_key_below_another_survives_its_deletion(
    tmp_path: Path,
) -> None:
    storage = LocalFileStorage(tmp_path / "files", fsync=False)
    outer = storage.create(b"outer", key="acme/{id}")
    source = MemoryFileStorage()
    with source.get(source.create(b"inner", "notes.txt")) as stored:
        inner = storage.write_copy(stored, file_id=f"{outer}/notes.txt").file_id
    assert (tmp_path / "files" / "keys" / outer / "notes.txt.json").is_file()
    assert sorted(storage.list()) == sorted([outer, inner])
    storage.delete(outer)
    assert storage.list() == [inner]
    with storage.get(inner) as stored:
        assert stored.read() == b"inner"


def test_local_remove_incomplete_sweeps_keyed_leftovers_only(tmp_path: Path) -> None:
    storage = LocalFileStorage(tmp_path / "files", fsync=False)
    file_id = storage.create(b"kept", key="acme/{yyyy}/{id}")
    directory = tmp_path / "files" / "keys" / file_id.rpartition("/")[0]
    name = file_id.rpartition("/")[2]
    stale_blob = directory / f"{name}.0123456789abcdef"
    stale_tmp = directory / f"{name}.json.0123456789abcdef.tmp"
    for path in (stale_blob, stale_tmp):
        path.write_bytes(b"left by a crash")
        old = time.time() - 7200
        os.utime(path, (old, old))
    removed = storage.remove_incomplete(timedelta(hours=1))
    assert sorted(removed) == sorted([str(stale_blob), str(stale_tmp)])
    with storage.get(file_id) as stored:
        assert stored.read() == b"kept"
    assert storage.list() == [file_id]


def test_a_keyed_path_splits_at_its_first_slash() -> None:
    from sa_depot import descriptor

    path = f"default/acme/2026/{FIXED_ID}.pdf"
    assert descriptor.split_path(path) == ("default", f"acme/2026/{FIXED_ID}.pdf")
    data = {"path": path}
    descriptor.complete_loaded(data)
    assert data["depot_name"] == "default" and data["files"] == (path,)
    assert list(descriptor.paths_in(f'{{"path": "{path}"}}')) == [path]


def test_copy_template() -> None:
    from sa_depot.io.keys import copy_template

    keyed = KeyTemplate("{tenant}/{id}{ext}")
    other = "2b4e28ba-2fa1-41d2-883f-0016d3cca427"
    made = copy_template(keyed, f"a{{b}}/{FIXED_ID}.pdf").render(new_id=lambda: other)
    assert made == f"a{{b}}/{other}.pdf"  # the source's shape, braces kept literally
    assert copy_template(keyed, FIXED_ID).render(new_id=lambda: other) == other
    free = KeyTemplate("{yyyy}/{id}")
    assert copy_template(free, f"x/{FIXED_ID}") is free  # needs no value: the column's own
