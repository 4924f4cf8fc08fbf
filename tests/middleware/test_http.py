"""HTTP semantics (RFC 9110) of file responses, through waitress and requests."""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from werkzeug.http import http_date, parse_date

from sa_depot.io.interfaces import FileStorage
from sa_depot.manager import DepotManager
from sa_depot.middleware import DepotMiddleware, ServingPolicy
from tests.middleware.conftest import Served
from tests.middleware.helpers import TRACKING_BACKEND, TrackingStorage, content, eventually

SIZE = 300_000
DATA = content(SIZE)
MakeMiddleware = Callable[..., DepotMiddleware]


@pytest.fixture
def tracked() -> TrackingStorage:
    storage = DepotManager.configure("files", {"depot.backend": TRACKING_BACKEND})
    assert isinstance(storage, TrackingStorage)
    return storage


@pytest.fixture
def file_id(tracked: TrackingStorage) -> str:
    return tracked.create(DATA, filename="data.bin", content_type="application/octet-stream")


@pytest.fixture
def url(served: Served, make_middleware: MakeMiddleware, file_id: str) -> str:
    served.mount(make_middleware(chunk_size=16 * 1024))
    return f"/depot/files/{file_id}"


def assert_consistent_length(response: Any) -> None:
    assert "Transfer-Encoding" not in response.headers
    assert int(response.headers["Content-Length"]) == len(response.content)


# -- GET and HEAD ---------------------------------------------------------------------------
def test_get_serves_the_file_with_its_validators(
    served: Served, url: str, tracked: TrackingStorage, file_id: str
) -> None:
    response = served.get(url)
    assert response.status_code == 200
    assert response.content == DATA
    assert_consistent_length(response)
    assert response.headers["ETag"] == f'"{hashlib.sha256(DATA).hexdigest()}"'
    info = tracked.info(file_id)
    assert response.headers["Last-Modified"] == http_date(info.last_modified)
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "private, max-age=604800"


def test_the_filename_segment_is_accepted(served: Served, url: str) -> None:
    response = served.get(url + "/whatever-name.bin")
    assert response.status_code == 200
    assert response.content == DATA


def test_head_sends_the_headers_of_get_and_reads_nothing(
    served: Served, url: str, tracked: TrackingStorage
) -> None:
    tracked.reset_counters()
    response = served.head(url)
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["Content-Length"] == str(SIZE)
    assert response.headers["ETag"] == f'"{hashlib.sha256(DATA).hexdigest()}"'
    assert response.headers["Accept-Ranges"] == "bytes"
    assert tracked.bytes_read == 0
    assert tracked.closed == tracked.opened == 1


def test_every_opened_file_is_closed(served: Served, url: str, tracked: TrackingStorage) -> None:
    tracked.reset_counters()
    for headers in ({}, {"Range": "bytes=0-9"}, {"Range": "bytes=0-9,20-29"}, {"Range": "x"}):
        served.get(url, headers=headers)
    served.get(url, headers={"Range": f"bytes={SIZE}-"})
    served.get(url, headers={"If-None-Match": "*"})
    served.head(url)
    assert tracked.opened == 7
    assert eventually(lambda: tracked.closed == 7), tracked.closed


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_get_405_with_allow(served: Served, url: str, method: str) -> None:
    response = served.request(method, url, data=b"x")
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"
    assert_consistent_length(response)


# -- conditional requests -------------------------------------------------------------------
@pytest.mark.parametrize(
    "if_none_match",
    [
        "{etag}",
        'W/"{tag}"',  # weak comparison
        '"other", {etag}',  # a list
        '"a",W/"b" ,  {etag}',
        "*",
    ],
)
def test_if_none_match_gives_304(served: Served, url: str, if_none_match: str) -> None:
    etag = served.get(url).headers["ETag"]
    value = if_none_match.format(etag=etag, tag=etag.strip('"'))
    response = served.get(url, headers={"If-None-Match": value})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["ETag"] == etag
    assert response.headers["Cache-Control"] == "private, max-age=604800"


def test_if_none_match_that_differs_gives_the_file(served: Served, url: str) -> None:
    response = served.get(url, headers={"If-None-Match": '"nope", W/"other"'})
    assert response.status_code == 200
    assert response.content == DATA


def test_if_modified_since(served: Served, url: str) -> None:
    last_modified = served.get(url).headers["Last-Modified"]
    assert served.get(url, headers={"If-Modified-Since": last_modified}).status_code == 304
    date = parse_date(last_modified)
    assert date is not None
    later = http_date(date + timedelta(days=1))
    assert served.get(url, headers={"If-Modified-Since": later}).status_code == 304
    earlier = http_date(date - timedelta(seconds=1))
    response = served.get(url, headers={"If-Modified-Since": earlier})
    assert response.status_code == 200
    assert response.content == DATA
    garbage = served.get(url, headers={"If-Modified-Since": "yesterday-ish"})
    assert garbage.status_code == 200


def test_if_none_match_takes_precedence_over_if_modified_since(served: Served, url: str) -> None:
    last_modified = served.get(url).headers["Last-Modified"]
    response = served.get(
        url, headers={"If-None-Match": '"other"', "If-Modified-Since": last_modified}
    )
    assert response.status_code == 200


def test_if_match_and_if_unmodified_since_give_412(served: Served, url: str) -> None:
    first = served.get(url)
    etag, last_modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert served.get(url, headers={"If-Match": etag}).status_code == 200
    assert served.get(url, headers={"If-Match": "*"}).status_code == 200
    failed = served.get(url, headers={"If-Match": '"other"'})
    assert failed.status_code == 412
    assert_consistent_length(failed)
    assert served.get(url, headers={"If-Match": "W/" + etag}).status_code == 412  # strong only
    date = parse_date(last_modified)
    assert date is not None
    before = http_date(date - timedelta(seconds=1))
    assert served.get(url, headers={"If-Unmodified-Since": before}).status_code == 412
    assert served.get(url, headers={"If-Unmodified-Since": last_modified}).status_code == 200


# -- ranges ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("range_header", "start", "stop"),
    [
        ("bytes=10-19", 10, 20),
        ("bytes=0-0", 0, 1),
        (f"bytes={SIZE - 7}-", SIZE - 7, SIZE),  # open-ended
        ("bytes=-7", SIZE - 7, SIZE),  # suffix
        (f"bytes=-{SIZE * 2}", 0, SIZE),  # suffix longer than the file: all of it
        (f"bytes=100-{SIZE * 3}", 100, SIZE),  # end past the file: clipped
        ("bytes= 5 - 9 ", 5, 10),
    ],
)
def test_single_range_gives_206(
    served: Served, url: str, tracked: TrackingStorage, range_header: str, start: int, stop: int
) -> None:
    tracked.reset_counters()
    response = served.get(url, headers={"Range": range_header})
    assert response.status_code == 206
    assert response.content == DATA[start:stop]
    assert response.headers["Content-Range"] == f"bytes {start}-{stop - 1}/{SIZE}"
    assert_consistent_length(response)
    assert response.headers["Accept-Ranges"] == "bytes"
    assert "ETag" in response.headers
    # seek + read: only the range (rounded up to a chunk) is read, not the whole file
    assert tracked.bytes_read <= (stop - start) + 16 * 1024


def test_multiple_ranges_give_multipart_byteranges(served: Served, url: str) -> None:
    wanted = [(0, 10), (1000, 1500), (SIZE - 100, SIZE)]
    header = "bytes=0-9,1000-1499,-100"
    response = served.get(url, headers={"Range": header})
    assert response.status_code == 206
    assert_consistent_length(response)
    content_type = response.headers["Content-Type"]
    assert content_type.startswith("multipart/byteranges; boundary=")
    assert "Content-Range" not in response.headers
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + response.content
    )
    assert message.is_multipart()
    parts = list(message.iter_parts())
    assert len(parts) == len(wanted)
    for part, (start, stop) in zip(parts, wanted, strict=True):
        assert part["Content-Type"] == "application/octet-stream"
        assert part["Content-Range"] == f"bytes {start}-{stop - 1}/{SIZE}"
        assert part.get_payload(decode=True) == DATA[start:stop]


def test_only_satisfiable_ranges_are_sent(served: Served, url: str) -> None:
    response = served.get(url, headers={"Range": f"bytes=0-9,{SIZE + 10}-"})
    assert response.status_code == 206
    # one range left: a plain 206, never a one-part multipart
    assert response.headers["Content-Range"] == f"bytes 0-9/{SIZE}"
    assert response.content == DATA[:10]


@pytest.mark.parametrize(
    "range_header",
    [
        "bytes=0-99,50-149",  # overlapping
        "bytes=500-599,0-9",  # out of order
        "bytes=abc",  # malformed
        "bytes=9-1",  # last < first
        "bytes=",
        "items=0-9",  # unknown unit
        "bytes=" + ",".join(f"{i * 10}-{i * 10 + 1}" for i in range(40)),  # > max_ranges
    ],
)
def test_ranges_refused_give_the_whole_file(served: Served, url: str, range_header: str) -> None:
    response = served.get(url, headers={"Range": range_header})
    assert response.status_code == 200
    assert response.content == DATA
    assert "Content-Range" not in response.headers
    assert_consistent_length(response)


def test_max_ranges_is_configurable(
    served: Served, make_middleware: MakeMiddleware, file_id: str
) -> None:
    served.mount(make_middleware(max_ranges=2))
    url = f"/depot/files/{file_id}"
    assert served.get(url, headers={"Range": "bytes=0-1,5-6"}).status_code == 206
    assert served.get(url, headers={"Range": "bytes=0-1,5-6,9-10"}).status_code == 200


def test_multipart_larger_than_the_file_gives_the_file(
    served: Served, make_middleware: MakeMiddleware, tracked: TrackingStorage
) -> None:
    small = tracked.create(b"0123456789" * 20)
    served.mount(make_middleware())
    response = served.get(f"/depot/files/{small}", headers={"Range": "bytes=0-1,10-11,20-21"})
    assert response.status_code == 200
    assert response.content == b"0123456789" * 20


@pytest.mark.parametrize("range_header", [f"bytes={SIZE}-", f"bytes={SIZE}-{SIZE + 5}"])
def test_unsatisfiable_range_gives_416(served: Served, url: str, range_header: str) -> None:
    response = served.get(url, headers={"Range": range_header})
    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{SIZE}"
    assert_consistent_length(response)


def test_if_range_with_the_current_etag_or_date_allows_the_range(served: Served, url: str) -> None:
    first = served.get(url)
    for validator in (first.headers["ETag"], first.headers["Last-Modified"]):
        response = served.get(url, headers={"Range": "bytes=0-9", "If-Range": validator})
        assert response.status_code == 206, validator
        assert response.content == DATA[:10]


def test_if_range_with_another_validator_gives_the_whole_file(served: Served, url: str) -> None:
    first = served.get(url)
    date = parse_date(first.headers["Last-Modified"])
    assert date is not None
    for validator in (
        '"another"',
        "W/" + first.headers["ETag"],  # If-Range compares strongly: weak never matches
        http_date(date - timedelta(seconds=1)),
    ):
        response = served.get(url, headers={"Range": "bytes=0-9", "If-Range": validator})
        assert response.status_code == 200, validator
        assert response.content == DATA


def test_range_with_matching_if_none_match_gives_304(served: Served, url: str) -> None:
    etag = served.get(url).headers["ETag"]
    response = served.get(url, headers={"Range": "bytes=0-9", "If-None-Match": etag})
    assert response.status_code == 304


def test_head_ignores_range(served: Served, url: str) -> None:
    response = served.head(url, headers={"Range": "bytes=0-9"})
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(SIZE)


#: Range headers a client may send for a file whose length it does not know yet.
EMPTY_FILE_RANGES = [
    "bytes=0-",
    "bytes=0-0",
    "bytes=0-1",
    "bytes=0-1023",
    "bytes=1-",
    "bytes=100-199",
    "bytes=-1",
    "bytes=-500",
    "bytes=0-0,5-9",
    "bytes=0-9,-5",
    "bytes=0-,100-",
]


@pytest.mark.parametrize("storage_name", ["files", "disk"])
def test_an_empty_file_ignores_range_and_answers_200(
    served: Served,
    make_middleware: MakeMiddleware,
    tracked: TrackingStorage,
    local: FileStorage,
    storage_name: str,
) -> None:
    storage = tracked if storage_name == "files" else local
    empty = storage.create(b"", filename="empty.txt")
    served.mount(make_middleware())
    url = f"/depot/{storage_name}/{empty}"
    plain = served.get(url)
    assert plain.status_code == 200
    for range_header in EMPTY_FILE_RANGES:
        for response in (
            served.get(url, headers={"Range": range_header}),
            served.head(url, headers={"Range": range_header}),
            served.get(url, headers={"Range": range_header, "If-Range": plain.headers["ETag"]}),
        ):
            assert response.status_code == 200, (range_header, response.status_code)
            assert response.content == b""
            assert response.headers["Content-Length"] == "0"
            assert "Content-Range" not in response.headers
            assert response.headers["ETag"] == plain.headers["ETag"]
            assert response.headers["Content-Type"] == plain.headers["Content-Type"]


# -- files without checksum (stored by filedepot) -------------------------------------------
def test_file_without_checksum_gets_a_weak_etag(
    served: Served, make_middleware: MakeMiddleware, tracked: TrackingStorage
) -> None:
    legacy = tracked.create(DATA)
    tracked.forget_checksum(legacy, length=True)
    served.mount(make_middleware())
    url = f"/depot/files/{legacy}"
    response = served.get(url)
    assert response.status_code == 200
    assert response.content == DATA
    assert response.headers["Content-Length"] == str(SIZE)  # measured
    etag = response.headers["ETag"]
    assert etag.startswith('W/"')
    assert served.get(url, headers={"If-None-Match": etag}).status_code == 304
    assert served.get(url, headers={"If-None-Match": etag[2:]}).status_code == 304
    # a weak validator cannot make a Range conditional
    ranged = served.get(url, headers={"Range": "bytes=0-9", "If-Range": etag})
    assert ranged.status_code == 200
    plain_range = served.get(url, headers={"Range": "bytes=0-9"})
    assert plain_range.status_code == 206
    assert plain_range.content == DATA[:10]


# -- caching --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (ServingPolicy(), "private, max-age=60"),
        (ServingPolicy(cache="public"), "public, max-age=60"),
        (ServingPolicy(cache="public", max_age=5), "public, max-age=5"),
        (ServingPolicy(cache="no-store"), "no-store"),
    ],
)
def test_cache_control_per_storage(
    served: Served,
    make_middleware: MakeMiddleware,
    tracked: TrackingStorage,
    file_id: str,
    policy: ServingPolicy,
    expected: str,
) -> None:
    other = DepotManager.configure("other", {"depot.backend": TRACKING_BACKEND})
    other_id = other.create(b"other")
    served.mount(make_middleware(cache_max_age=60, policies={"files": policy}))
    assert served.get(f"/depot/files/{file_id}").headers["Cache-Control"] == expected
    # storages without a policy of their own keep the default
    assert served.get(f"/depot/other/{other_id}").headers["Cache-Control"] == "private, max-age=60"
    partial = served.get(f"/depot/files/{file_id}", headers={"Range": "bytes=0-0"})
    assert partial.headers["Cache-Control"] == expected
