"""Range sources and readers: what a multipart upload reads its parts from, and the hashes of
what it sent."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import zlib
from pathlib import Path

import pytest

from sa_depot.io import ranges
from sa_depot.io.ranges import RangeReader, RangeSource

DATA = os.urandom(100_000)


def test_a_file_is_read_at_any_offset_from_its_position_and_left_after_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"head" + DATA)
    with path.open("rb") as file:
        file.seek(4 + 10)  # 10 bytes of the content were read already (a sniffed head)
        source = RangeSource.of(file, 10)
        assert source is not None and source.length == len(DATA)
        assert source.read_at(50_000, 7) == DATA[50_000:50_007]
        assert source.read_at(len(DATA) - 3, 100) == DATA[-3:]
        assert bytes(source.chunk_at(0, bytearray(16))) == DATA[:16]
        source.consumed()
        assert file.tell() == 4 + len(DATA)


def test_without_preadv_a_file_is_read_with_pread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ranges, "_HAS_PREADV", False)
    path = tmp_path / "f.bin"
    path.write_bytes(DATA)
    with path.open("rb") as file:
        source = RangeSource.of(file, 0)
        assert source is not None
        assert bytes(source.chunk_at(99_000, bytearray(4096))) == DATA[99_000:]


def test_bytes_in_memory_are_sliced_and_a_spooled_file_is_read_where_it_lies() -> None:
    source = RangeSource.of(io.BytesIO(DATA), 0)
    assert source is not None and source.read_at(5, 5) == DATA[5:10]
    with tempfile.SpooledTemporaryFile(max_size=1_000_000) as spooled:
        spooled.write(DATA)
        spooled.seek(0)
        source = RangeSource.of(spooled, 0)
        assert source is not None and source.read_at(99_990, 10) == DATA[-10:]
        assert not spooled._rolled  # type: ignore[attr-defined]  # not written to disk for it


def test_a_pipe_is_no_range_source() -> None:
    read_end, write_end = os.pipe()
    with os.fdopen(read_end, "rb") as pipe:
        os.close(write_end)
        assert RangeSource.of(pipe, 0) is None


def test_a_reader_hashes_the_pass_sent_after_it_is_told_so() -> None:
    source = RangeSource.of(io.BytesIO(DATA), 0)
    assert source is not None
    reader = RangeReader(source, 1000, 50_000)
    part = DATA[1000:51_000]
    assert len(reader) == 50_000
    assert reader.read(100) == part[:100]  # a pass before the request is signed: not counted
    reader.seek(0)
    assert reader.sent() == (0, 0, None)

    reader.sending(signed_sha256=None)  # unsigned: the pass sent is hashed with SHA-256 too
    while reader.read(16_384):
        pass
    assert reader.sent() == (50_000, zlib.crc32(part), hashlib.sha256(part).hexdigest())

    reader.seek(0)  # a retry: hashed afresh from the first byte
    reader.sending(signed_sha256="ab" * 32)
    reader.read(10)
    reader.seek(20)  # a pass that skips bytes stops counting where it skipped
    reader.read()
    assert reader.sent() == (10, zlib.crc32(part[:10]), "ab" * 32)
