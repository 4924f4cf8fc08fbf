"""S3Storage against SeaweedFS: what the contract suite does not cover (request counts,
multipart uploads and copies, ranged reads, metadata encoding, options, URLs, errors)."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from sa_depot.exceptions import ConfigurationError, FileNotFound, StorageError
from sa_depot.io.boto3 import S3Storage
from sa_depot.io.objects import MAX_ENCODED_FILENAME, UPLOADS_DIR
from sa_depot.io.ranges import RangeSource
from sa_depot.manager import DepotManager
from tests.s3.conftest import MiB, RequestLog, make_storage, remove_prefix
from tests.s3server import SeaweedS3
from tests.streams import FailingStream, InputBroke

UUID = "1b4e28ba-2fa1-41d2-883f-0016d3cca427"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def keys_under(server: SeaweedS3, bucket: str, prefix: str) -> set[str]:
    client = server.client()
    found: set[str] = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found.update(item["Key"] for item in page.get("Contents", []))
    return found


def uploads_under(server: SeaweedS3, bucket: str, prefix: str) -> list[str]:
    uploads = server.client().list_multipart_uploads(Bucket=bucket, Prefix=prefix)
    return [upload["Key"] for upload in uploads.get("Uploads", [])]


# -- construction -----------------------------------------------------------------------------
def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_constructor_makes_no_network_call_and_the_first_use_reports_the_server_down() -> None:
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    storage = S3Storage(
        "some-bucket",
        endpoint_url=endpoint,
        access_key_id="k",
        secret_access_key="s",
        region_name="us-east-1",
        create_bucket=True,  # not even this, until the first use
        connect_timeout=1,
        max_attempts=1,
    )
    with pytest.raises(StorageError) as raised:
        storage.create(b"data")
    message = str(raised.value)
    assert "some-bucket" in message and endpoint in message
    assert "cannot connect to the server" in message


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"multipart_chunksize": 1024}, "at least 5242880"),
        ({"access_key_id": "only-the-key"}, "both access_key_id and secret_access_key"),
        ({"public_url": "https://cdn.example.com"}, "unsigned links"),
        ({"public_url": "cdn.example.com"}, "must be None, 'presigned'"),
        ({"extra_put_args": "{not json"}, "not a JSON object"),
        ({"presigned_expires": 0}, "between 1 second and 7 days"),
    ],
)
def test_bad_options_are_configuration_errors(options: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ConfigurationError, match="S3Storage") as raised:
        S3Storage("bucket", **options)
    assert complaint in str(raised.value)


def test_a_missing_boto3_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "boto3" else real(name, *a)
    )
    with pytest.raises(ConfigurationError, match=r"pip install boto3 .*'\.\[s3\]'"):
        S3Storage("bucket")


def test_configured_from_strings_like_an_ini_file(s3_server: SeaweedS3, s3_bucket: str) -> None:
    prefix = "ini-config/"
    storage = DepotManager.configure(
        "media",
        {
            "depot.backend": "depot.io.boto3.S3Storage",  # filedepot's path works too
            "depot.bucket": s3_bucket,
            "depot.prefix": prefix,
            "depot.endpoint_url": s3_server.endpoint_url,
            "depot.region_name": "us-east-1",
            "depot.access_key_id": s3_server.access_key_id,
            "depot.secret_access_key": s3_server.secret_access_key,
            "depot.multipart_threshold": str(6 * MiB),
            "depot.extra_put_args": '{"CacheControl": "max-age=60"}',
            "depot.max_attempts": "1",
        },
    )
    try:
        assert isinstance(storage, S3Storage)
        assert storage.multipart_threshold == 6 * MiB
        file_id = storage.create(b"configured", "c.txt")
        head = s3_server.client().head_object(Bucket=s3_bucket, Key=prefix + file_id)
        assert head["CacheControl"] == "max-age=60"
        assert "media" in storage.description
    finally:
        remove_prefix(s3_server, s3_bucket, prefix)


def test_create_bucket_creates_it_on_first_use(s3_server: SeaweedS3) -> None:
    bucket = f"sa-depot-new-{os.urandom(4).hex()}"
    storage = S3Storage(bucket, create_bucket=True, **s3_server.storage_options())
    names = {b["Name"] for b in s3_server.client().list_buckets()["Buckets"]}
    assert bucket not in names
    try:
        file_id = storage.create(b"in a new bucket")
        assert storage.get(file_id).read() == b"in a new bucket"
        # A second storage on the now existing bucket does not fail creating it again.
        again = S3Storage(bucket, create_bucket=True, **s3_server.storage_options())
        assert again.list() == [file_id]
    finally:
        s3_server.remove_bucket(bucket)


# -- requests per operation --------------------------------------------------------------------
def test_one_request_per_small_create_get_delete(s3: S3Storage, requests_log: RequestLog) -> None:
    file_id = s3.create(b"small content", "small.txt")
    assert requests_log.operations == ["PutObject"]

    requests_log.clear()
    with s3.get(file_id) as stored:
        assert stored.read() == b"small content"
        assert stored.checksum == sha256(b"small content")
    assert requests_log.operations == ["GetObject"]

    requests_log.clear()
    s3.delete(file_id)
    assert requests_log.operations == ["DeleteObject"]

    requests_log.clear()
    assert not s3.exists(file_id)
    assert requests_log.operations == ["HeadObject"]  # the bucket was seen already


def test_info_is_one_head_request(s3: S3Storage, requests_log: RequestLog) -> None:
    file_id = s3.create(b"%PDF-1.4 head only", "r.pdf")
    requests_log.clear()
    info = s3.info(file_id)
    assert requests_log.operations == ["HeadObject"]
    assert (info.filename, info.content_type, info.content_length) == (
        "r.pdf",
        "application/pdf",
        18,
    )
    assert info.checksum == sha256(b"%PDF-1.4 head only")


def test_opening_does_not_download_the_content(s3: S3Storage) -> None:
    """get() returns as soon as the headers arrive; the body streams on read."""
    data = os.urandom(12 * MiB)
    file_id = s3.create(data)
    with s3.get(file_id) as stored:
        assert stored.content_length == len(data)
        first = stored.read(1000)
    assert first == data[:1000]


# -- multipart --------------------------------------------------------------------------------
class OnlyOnce(io.RawIOBase):
    """Content that can be read once only, like a request body read from a socket."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._data.readinto(buffer)


def change_file_before_first_part(
    s3: S3Storage, path: Any, *, drop_checksum: bool = False
) -> list[str]:
    """Flip a byte of ``path`` on disk just before the first UploadPart is signed (after the
    content was hashed), in the part that request sends; with ``drop_checksum``, also send the
    parts without their CRC32, as to a server that checks nothing. Returns the events seen."""
    seen: list[str] = []

    def change(request: Any, **kwargs: Any) -> None:
        if drop_checksum:
            for name in [n for n in request.headers if n.lower() == "x-amz-checksum-crc32"]:
                del request.headers[name]
        if not seen:  # the first byte of the part about to be signed
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.url).query)
            offset = (int(query["partNumber"][0]) - 1) * s3.multipart_chunksize
            with open(path, "r+b") as file:
                file.seek(offset)
                byte = file.read(1)
                file.seek(offset)
                file.write(bytes([byte[0] ^ 0xFF]))
        seen.append("changed")

    s3.client.meta.events.register("before-sign.s3.UploadPart", change)
    return seen


def test_a_rereadable_multipart_upload_goes_straight_to_its_key_with_its_checksum(
    s3: S3Storage, requests_log: RequestLog, s3_server: SeaweedS3, s3_bucket: str
) -> None:
    data = os.urandom(12 * MiB + 123)  # parts of 5, 5 and 2 MiB, sent at once
    file_id = s3.create(io.BytesIO(data), "big.bin")

    assert requests_log.operations == [
        "CreateMultipartUpload",
        "UploadPart",
        "UploadPart",
        "UploadPart",
        "CompleteMultipartUpload",
    ]
    with s3.get(file_id) as stored:
        assert stored.checksum == sha256(data)
        assert stored.filename == "big.bin"
        assert stored.read() == data
    assert keys_under(s3_server, s3_bucket, s3.prefix) == {s3.key(file_id)}
    assert uploads_under(s3_server, s3_bucket, s3.prefix) == []


def test_a_file_changing_during_a_multipart_upload_stores_nothing(
    s3: S3Storage, requests_log: RequestLog, s3_server: SeaweedS3, s3_bucket: str, tmp_path: Any
) -> None:
    path = tmp_path / "moving.bin"
    path.write_bytes(os.urandom(11 * MiB))
    seen = change_file_before_first_part(s3, path)
    with path.open("rb") as file, pytest.raises(StorageError, match="changed while it was"):
        s3.create(file, "moving.bin")
    assert seen
    assert "AbortMultipartUpload" in requests_log.operations
    assert keys_under(s3_server, s3_bucket, s3.prefix) == set()
    assert uploads_under(s3_server, s3_bucket, s3.prefix) == []


def test_a_changed_part_is_refused_without_the_servers_checksum_check(
    s3: S3Storage, requests_log: RequestLog, s3_server: SeaweedS3, s3_bucket: str, tmp_path: Any
) -> None:
    # without its CRC32 the server takes any bytes: sa_depot's own check must refuse them
    path = tmp_path / "moving.bin"
    path.write_bytes(os.urandom(11 * MiB))
    change_file_before_first_part(s3, path, drop_checksum=True)
    with path.open("rb") as file, pytest.raises(StorageError, match="changed while it was being"):
        s3.create(file, "moving.bin")
    assert "AbortMultipartUpload" in requests_log.operations
    assert keys_under(s3_server, s3_bucket, s3.prefix) == set()
    assert uploads_under(s3_server, s3_bucket, s3.prefix) == []


def test_bytes_changed_during_the_upload_store_what_was_hashed(s3: S3Storage) -> None:
    data = os.urandom(11 * MiB)
    content = io.BytesIO(data)

    def change(**kwargs: Any) -> None:
        content.seek(0)
        content.write(b"another writer")

    s3.client.meta.events.register("before-sign.s3.UploadPart", change)
    file_id = s3.create(content, "moving.bin")
    assert content.getvalue() != data
    with s3.get(file_id) as stored:
        assert stored.checksum == sha256(data)
        assert stored.read() == data


def test_a_multipart_upload_from_a_file_leaves_it_read_and_sends_parts_in_order(
    s3: S3Storage, requests_log: RequestLog, tmp_path: Any
) -> None:
    data = os.urandom(12 * MiB + 5)
    path = tmp_path / "big.bin"
    path.write_bytes(b"skipped" + data)
    with path.open("rb") as file:
        file.seek(7)  # content starts at the file's position
        file_id = s3.create(file, "big.bin")
        assert file.tell() == 7 + len(data)
    assert requests_log.operations.count("UploadPart") == 3
    with s3.get(file_id) as stored:
        assert stored.checksum == sha256(data)
        assert stored.content_length == len(data)
        assert stored.read() == data


def test_a_file_emptied_after_its_size_was_read_is_stored_empty(
    s3: S3Storage, requests_log: RequestLog, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "emptied.bin"
    path.write_bytes(os.urandom(11 * MiB))
    sized = RangeSource.of

    def size_then_empty(stream: Any, already_read: int) -> RangeSource | None:
        source = sized(stream, already_read)
        os.truncate(path, 0)  # another writer, after the size was taken
        return source

    monkeypatch.setattr(RangeSource, "of", size_then_empty)
    with path.open("rb") as file:
        file_id = s3.create(file, "emptied.bin")
    assert "CreateMultipartUpload" not in requests_log.operations
    with s3.get(file_id) as stored:
        assert stored.read() == b""
        assert stored.checksum == sha256(b"")


def test_a_read_once_multipart_upload_copies_the_checksum_into_place(
    s3: S3Storage, requests_log: RequestLog, s3_server: SeaweedS3, s3_bucket: str
) -> None:
    data = os.urandom(12 * MiB + 123)
    file_id = s3.create(OnlyOnce(data), "big.bin")

    assert requests_log.operations == [
        "CreateMultipartUpload",
        "UploadPart",
        "UploadPart",
        "UploadPart",
        "CompleteMultipartUpload",
        "CopyObject",
        "DeleteObject",
    ]
    with s3.get(file_id) as stored:
        assert stored.checksum == sha256(data)
        assert stored.filename == "big.bin"
        assert stored.read() == data
    # The temporary object is gone; only the file remains, and no upload is pending.
    assert keys_under(s3_server, s3_bucket, s3.prefix) == {s3.key(file_id)}
    assert uploads_under(s3_server, s3_bucket, s3.prefix) == []


def test_content_of_exactly_the_threshold_is_one_put(
    s3: S3Storage, requests_log: RequestLog
) -> None:
    data = os.urandom(s3.multipart_threshold)
    file_id = s3.create(data)
    assert requests_log.operations == ["PutObject"]
    assert s3.info(file_id).checksum == sha256(data)


def test_objects_above_the_single_copy_limit_are_copied_in_parts(
    s3: S3Storage, requests_log: RequestLog
) -> None:
    s3.max_single_copy = 6 * MiB  # stands for S3's 5 GiB
    s3.copy_part_size = 5 * MiB
    data = os.urandom(11 * MiB)
    file_id = s3.create(OnlyOnce(data), "copied in parts.bin")

    assert requests_log.operations.count("UploadPartCopy") == 3
    assert "CopyObject" not in requests_log.operations
    with s3.get(file_id) as stored:
        assert stored.read() == data
        assert (stored.checksum, stored.filename) == (sha256(data), "copied in parts.bin")


def test_a_multipart_upload_failing_half_way_is_aborted(
    s3: S3Storage, requests_log: RequestLog, s3_server: SeaweedS3, s3_bucket: str
) -> None:
    with pytest.raises(InputBroke):  # the input's exception, unchanged
        s3.create(FailingStream(11 * MiB), "partial.bin")

    assert "AbortMultipartUpload" in requests_log.operations
    assert s3.list() == []
    assert keys_under(s3_server, s3_bucket, s3.prefix) == set()
    assert uploads_under(s3_server, s3_bucket, s3.prefix) == []


def test_a_failing_multipart_replace_keeps_the_previous_version(s3: S3Storage) -> None:
    old = os.urandom(6 * MiB)
    file_id = s3.create(old, "old.bin")
    with pytest.raises(InputBroke):
        s3.replace(file_id, FailingStream(11 * MiB), "new.bin")
    with s3.get(file_id) as stored:
        assert (stored.filename, stored.checksum) == ("old.bin", sha256(old))
        assert stored.read() == old


def test_too_many_parts_is_a_clear_error(s3: S3Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sa_depot.io.boto3.MAX_PARTS", 2)
    with pytest.raises(StorageError, match="more than 2 parts .* raise multipart_chunksize"):
        s3.create(io.BytesIO(os.urandom(16 * MiB)))
    assert s3.list() == []


# -- reading ----------------------------------------------------------------------------------
def test_seek_issues_one_ranged_get(s3: S3Storage, requests_log: RequestLog) -> None:
    data = os.urandom(3 * MiB)
    file_id = s3.create(data)
    requests_log.clear()
    with s3.get(file_id) as stored:
        assert stored.read(10) == data[:10]
        stored.seek(2 * MiB)
        assert stored.read(100) == data[2 * MiB : 2 * MiB + 100]
        assert stored.read(50) == data[2 * MiB + 100 : 2 * MiB + 150]  # same body, no request
        stored.seek(0, io.SEEK_END)
        assert stored.read() == b""  # nothing past the end: no request either
    assert [op for op, _ in requests_log.sent] == ["GetObject", "GetObject"]
    ranges = [headers.get("Range") for _, headers in requests_log.sent]
    assert ranges == [None, f"bytes={2 * MiB}-"]


def test_a_replace_between_ranged_reads_is_reported_not_mixed(s3: S3Storage) -> None:
    file_id = s3.create(b"a" * 100_000)
    with s3.get(file_id) as stored:
        assert stored.read(10) == b"a" * 10
        s3.replace(file_id, b"b" * 100_000)
        stored.seek(50_000)
        with pytest.raises(StorageError, match="replaced while it was being read"):
            stored.read(10)


def test_a_missing_file_is_file_not_found(s3: S3Storage) -> None:
    with pytest.raises(FileNotFound):
        s3.get(UUID)
    with pytest.raises(FileNotFound):
        s3.info(UUID)


# -- metadata ---------------------------------------------------------------------------------
def test_filenames_are_percent_encoded_in_object_metadata(
    s3: S3Storage, s3_server: SeaweedS3, s3_bucket: str
) -> None:
    file_id = s3.create(b"x", "résumé 履歴書.pdf")
    head = s3_server.client().head_object(Bucket=s3_bucket, Key=s3.key(file_id))
    assert (
        head["Metadata"]["x-depot-filename"] == "r%C3%A9sum%C3%A9%20%E5%B1%A5%E6%AD%B4%E6%9B%B8.pdf"
    )
    assert head["Metadata"]["x-depot-sha256"] == sha256(b"x")
    assert s3.info(file_id).filename == "résumé 履歴書.pdf"


@pytest.mark.parametrize(
    ("size", "max_single_copy"),
    [(100, None), (6 * MiB, None), (11 * MiB, 6 * MiB)],
    ids=["PutObject", "multipart-CopyObject", "multipart-UploadPartCopy"],
)
def test_objects_carry_their_download_headers_on_every_upload_path(
    s3: S3Storage, s3_server: SeaweedS3, s3_bucket: str, size: int, max_single_copy: int | None
) -> None:
    """What an unsigned or override-less URL of the object answers: its type, its filename and
    the disposition decision the middleware makes by default (attachment for HTML)."""
    if max_single_copy is not None:
        s3.max_single_copy = max_single_copy
        s3.copy_part_size = 5 * MiB
    data = os.urandom(size)
    file_id = s3.create(data, "Résumé 2024.html", content_type="text/html")
    head = s3_server.client().head_object(Bucket=s3_bucket, Key=s3.key(file_id))
    assert head["ContentType"] == "text/html"
    assert head["ContentDisposition"] == (
        "attachment; filename=\"Resume 2024.html\"; filename*=UTF-8''R%C3%A9sum%C3%A9%202024.html"
    )
    s3.replace(file_id, data, filename="photo.png", content_type="image/png")
    head = s3_server.client().head_object(Bucket=s3_bucket, Key=s3.key(file_id))
    assert (head["ContentType"], head["ContentDisposition"]) == (
        "image/png",
        'inline; filename="photo.png"',
    )


def test_an_overlong_filename_is_shortened_keeping_its_extension(s3: S3Storage) -> None:
    filename = "書" * 400 + ".pdf"  # 3,600 characters percent-encoded; S3 allows 2 KiB
    file_id = s3.create(b"x", filename)
    stored_name = s3.info(file_id).filename
    assert stored_name is not None
    assert stored_name.endswith(".pdf") and stored_name.startswith("書")
    assert len(stored_name.encode()) * 3 <= MAX_ENCODED_FILENAME
    with s3.get(file_id) as stored:  # the object's disposition names the stored name
        disposition = stored.object_headers.content_disposition
        assert disposition is not None
        assert disposition.endswith("filename*=UTF-8''" + urllib.parse.quote(stored_name))


def test_objects_written_by_filedepot_are_read(
    s3: S3Storage, s3_server: SeaweedS3, s3_bucket: str
) -> None:
    s3_server.client().put_object(
        Bucket=s3_bucket,
        Key=s3.key(UUID),
        Body=b"from filedepot",
        ContentType="text/plain",
        Metadata={"x-depot-filename": "caf%C3%A9.txt", "x-depot-modified": "2020-01-02 03:04:05"},
    )
    with s3.get(UUID) as stored:
        assert stored.read() == b"from filedepot"
        assert stored.filename == "café.txt"
        assert stored.last_modified == datetime(2020, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
        assert stored.checksum is None  # filedepot stored none
    assert s3.list() == [UUID]


def test_list_paginates_strips_the_prefix_and_ignores_foreign_keys(
    s3: S3Storage, requests_log: RequestLog, s3_server: SeaweedS3, s3_bucket: str
) -> None:
    ids = {s3.create(f"file {n}".encode()) for n in range(25)}
    client = s3_server.client()
    client.put_object(Bucket=s3_bucket, Key=s3.prefix + "not-a-file-id", Body=b"x")
    client.put_object(Bucket=s3_bucket, Key=s3.prefix + "nested/" + UUID, Body=b"x")
    client.put_object(Bucket=s3_bucket, Key=s3.prefix + UPLOADS_DIR + UUID, Body=b"x")
    client.put_object(Bucket=s3_bucket, Key=UUID, Body=b"outside the prefix")
    try:
        s3.list_page_size = 10
        requests_log.clear()
        # a nested name is a readable key: listed (the collector checks who wrote it)
        assert sorted(s3.list()) == sorted({*ids, "nested/" + UUID})
        assert requests_log.operations == ["ListObjectsV2"] * 3
    finally:
        client.delete_object(Bucket=s3_bucket, Key=UUID)


# -- options ----------------------------------------------------------------------------------
def test_private_by_default_sends_no_acl_and_unsigned_reads_are_refused(
    s3: S3Storage, requests_log: RequestLog
) -> None:
    file_id = s3.create(b"private")
    assert all("x-amz-acl" not in headers for _, headers in requests_log.sent)
    url = f"{s3.endpoint_url}/{s3.bucket}/{s3.key(file_id)}"
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(url, timeout=10)
    assert raised.value.code == 403
    with s3.get(file_id) as stored:
        assert stored.public_url is None  # served through the middleware


def test_presigned_public_url_serves_the_file(s3_server: SeaweedS3, s3_bucket: str) -> None:
    storage = make_storage(s3_server, s3_bucket, public_url="presigned", presigned_expires=120)
    try:
        file_id = storage.create(b"signed for two minutes")
        with storage.get(file_id) as stored:
            url = stored.public_url
        assert url is not None and "X-Amz-Signature=" in url and "X-Amz-Expires=120" in url
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.read() == b"signed for two minutes"
    finally:
        remove_prefix(s3_server, s3_bucket, storage.prefix)


def test_public_base_url_needs_a_public_policy_and_sends_it(
    s3_server: SeaweedS3, s3_bucket: str
) -> None:
    storage = make_storage(
        s3_server,
        s3_bucket,
        prefix="public files/",
        policy="public-read",
        public_url="https://cdn.example.com/media/",
    )
    log = RequestLog(storage.client)
    try:
        file_id = storage.create(b"public")
        assert log.sent[0][0] == "PutObject"
        assert log.sent[0][1]["x-amz-acl"] == "public-read"
        with storage.get(file_id) as stored:
            assert stored.public_url == f"https://cdn.example.com/media/public%20files/{file_id}"
    finally:
        remove_prefix(s3_server, s3_bucket, storage.prefix)


@pytest.mark.parametrize("size", [1000, 6 * MiB], ids=["single-put", "multipart"])
def test_storage_class_encryption_and_extra_args_apply_to_every_upload(
    s3_server: SeaweedS3, s3_bucket: str, size: int
) -> None:
    storage = make_storage(
        s3_server,
        s3_bucket,
        storage_class="STANDARD_IA",
        server_side_encryption="AES256",
        extra_put_args={"CacheControl": "max-age=3600"},
        multipart_threshold=5 * MiB,
        multipart_chunksize=5 * MiB,
    )
    try:
        file_id = storage.create(os.urandom(size))
        head = s3_server.client().head_object(Bucket=s3_bucket, Key=storage.key(file_id))
        assert head["StorageClass"] == "STANDARD_IA"
        assert head["ServerSideEncryption"] == "AES256"
        assert head["CacheControl"] == "max-age=3600"
    finally:
        remove_prefix(s3_server, s3_bucket, storage.prefix)


# -- errors -----------------------------------------------------------------------------------
OPERATIONS = {
    "create": lambda s: s.create(b"x"),
    "get": lambda s: s.get(UUID),
    "delete": lambda s: s.delete(UUID),
    "exists": lambda s: s.exists(UUID),
    "info": lambda s: s.info(UUID),
    "list": lambda s: s.list(),
}


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_a_missing_bucket_is_named(s3_server: SeaweedS3, operation: str) -> None:
    DepotManager.configure(
        "media",
        {
            "depot.backend": "sa_depot.io.boto3.S3Storage",
            "depot.bucket": "no-such-bucket-here",
            **{f"depot.{k}": v for k, v in s3_server.storage_options().items()},
        },
    )
    with pytest.raises(StorageError) as raised:
        OPERATIONS[operation](DepotManager.get("media"))
    message = str(raised.value)
    assert "'media'" in message and "no-such-bucket-here" in message
    assert "the bucket does not exist" in message


@pytest.mark.parametrize(
    ("credentials", "hint"),
    [
        ({"secret_access_key": "wrong-secret"}, "check secret_access_key"),
        ({"access_key_id": "unknown-key"}, "check access_key_id"),
    ],
)
@pytest.mark.parametrize("operation", ["create", "get", "list"])
def test_wrong_credentials_are_named(
    s3_server: SeaweedS3, s3_bucket: str, credentials: dict[str, str], hint: str, operation: str
) -> None:
    storage = S3Storage(s3_bucket, **s3_server.storage_options(**credentials))
    with pytest.raises(StorageError) as raised:
        OPERATIONS[operation](storage)
    assert hint in str(raised.value)
    assert s3_bucket in str(raised.value)


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_a_server_that_is_down_is_reported(operation: str) -> None:
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    storage = S3Storage(
        "bucket-of-a-dead-server",
        endpoint_url=endpoint,
        access_key_id="k",
        secret_access_key="s",
        region_name="us-east-1",
        connect_timeout=1,
        max_attempts=2,
    )
    with pytest.raises(StorageError, match="cannot connect to the server, is it running"):
        OPERATIONS[operation](storage)


# -- maintenance ------------------------------------------------------------------------------
def test_remove_incomplete_aborts_stale_uploads_and_temporary_objects(
    s3: S3Storage, s3_server: SeaweedS3, s3_bucket: str
) -> None:
    client = s3_server.client()
    kept = s3.create(b"a real file")
    stale_key = f"{s3.prefix}{UPLOADS_DIR}{UUID}.0123"
    client.create_multipart_upload(Bucket=s3_bucket, Key=stale_key)
    client.put_object(Bucket=s3_bucket, Key=stale_key + "-done", Body=b"left by a crash")

    assert s3.remove_incomplete() == []  # younger than a day: maybe still in progress
    removed = s3.remove_incomplete(older_than=timedelta(0))

    assert sorted(removed) == [stale_key, stale_key + "-done"]
    assert uploads_under(s3_server, s3_bucket, s3.prefix) == []
    assert keys_under(s3_server, s3_bucket, s3.prefix) == {s3.key(kept)}


def test_threads_share_one_storage(s3: S3Storage) -> None:
    results: dict[int, bool] = {}

    def work(n: int) -> None:
        data = os.urandom(1000 + n)
        file_id = s3.create(data)
        with s3.get(file_id) as stored:
            results[n] = stored.read() == data

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == {n: True for n in range(8)}
