"""Local files: the server's wsgi.file_wrapper, X-Accel-Redirect and X-Sendfile."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
from waitress.buffers import ReadOnlyFileBasedBuffer
from werkzeug.test import Client

from sa_depot.exceptions import ConfigurationError
from sa_depot.io.interfaces import FileStorage
from sa_depot.middleware import DepotMiddleware, ServingPolicy
from tests.middleware.conftest import Served
from tests.middleware.helpers import DOWNLOADS, content, eventually

MakeMiddleware = Callable[..., DepotMiddleware]
DATA = content(3 * 1024 * 1024 + 17)


@pytest.fixture
def file_id(local: FileStorage) -> str:
    return local.create(DATA, filename="big.bin", content_type="application/octet-stream")


def local_path(storage: FileStorage, file_id: str) -> str:
    with storage.get(file_id) as stored:
        path = stored.local_path
    assert path is not None
    return path


@pytest.mark.wsgi_only  # wsgi.file_wrapper
def test_whole_local_files_go_through_the_servers_file_wrapper(
    served: Served, make_middleware: MakeMiddleware, file_id: str
) -> None:
    served.mount(make_middleware())
    response = served.get(f"/depot/disk/{file_id}")
    assert response.status_code == 200
    assert response.content == DATA
    assert response.headers["Content-Length"] == str(len(DATA))
    assert isinstance(served.slot.returned[-1], ReadOnlyFileBasedBuffer)
    # waitress closes the wrapper, which closes the file
    assert eventually(lambda: served.slot.returned[-1].file.closed)


def test_ranges_of_local_files_are_read_by_the_middleware(
    served: Served, make_middleware: MakeMiddleware, file_id: str
) -> None:
    served.mount(make_middleware())
    start, stop = 1_000_000, 2_500_000
    response = served.get(f"/depot/disk/{file_id}", headers={"Range": f"bytes={start}-{stop - 1}"})
    assert response.status_code == 206
    assert response.content == DATA[start:stop]
    if served.front == "wsgi":  # ASGI has no file wrapper at all
        assert not isinstance(served.slot.returned[-1], ReadOnlyFileBasedBuffer)


@pytest.mark.wsgi_only  # wsgi.file_wrapper
def test_the_file_wrapper_can_be_turned_off(
    served: Served, make_middleware: MakeMiddleware, file_id: str
) -> None:
    served.mount(make_middleware(replace_wsgi_filewrapper=True))
    response = served.get(f"/depot/disk/{file_id}")
    assert response.content == DATA
    assert not isinstance(served.slot.returned[-1], ReadOnlyFileBasedBuffer)


class _Wrapper:
    """A ``wsgi.file_wrapper`` as PEP 3333 describes it: reads blocks, closes the file."""

    def __init__(self, filelike: Any, block_size: int = 8192) -> None:
        self.filelike, self.block_size = filelike, block_size

    def __iter__(self) -> Any:
        return iter(lambda: self.filelike.read(self.block_size), b"")

    def close(self) -> None:
        self.filelike.close()


def _recording_wrapper(wrapped: list[Any]) -> Callable[..., Any]:
    def file_wrapper(filelike: Any, block_size: int = 8192) -> Any:
        wrapped.append(filelike)
        return _Wrapper(filelike, block_size)

    return file_wrapper


def test_the_file_wrapper_gets_no_descriptor_so_servers_read_in_chunks(
    local: FileStorage, file_id: str
) -> None:
    # gunicorn calls sendfile() on anything with a fileno(): slower than reading in chunks
    # behind a reverse proxy on loopback (see _WithoutDescriptor)
    wrapped: list[Any] = []
    client = Client(DepotMiddleware())
    response = client.get(
        f"/depot/disk/{file_id}",
        environ_overrides={"wsgi.file_wrapper": _recording_wrapper(wrapped)},
    )
    assert response.data == DATA
    assert len(wrapped) == 1
    assert not hasattr(wrapped[0], "fileno")
    response.close()
    assert wrapped[0].closed


def test_a_file_of_one_chunk_is_read_by_the_middleware(local: FileStorage) -> None:
    small = local.create(b"a small file", filename="small.txt")
    wrapped: list[Any] = []
    client = Client(DepotMiddleware())
    response = client.get(
        f"/depot/disk/{small}", environ_overrides={"wsgi.file_wrapper": _recording_wrapper(wrapped)}
    )
    assert response.data == b"a small file"
    assert response.headers["Content-Length"] == "12"
    assert wrapped == []


def test_memory_files_never_reach_the_file_wrapper(memory: FileStorage) -> None:
    file_id = memory.create(b"in memory")
    wrapped: list[Any] = []

    def file_wrapper(filelike: Any, block_size: int = 8192) -> Any:
        wrapped.append(filelike)
        return iter(lambda: filelike.read(block_size), b"")

    client = Client(DepotMiddleware())
    response = client.get(
        f"/depot/files/{file_id}", environ_overrides={"wsgi.file_wrapper": file_wrapper}
    )
    assert response.data == b"in memory"
    assert wrapped == []


def test_x_accel_redirect_hands_the_file_to_nginx(
    served: Served, make_middleware: MakeMiddleware, local: FileStorage, file_id: str
) -> None:
    storage_path = local.storage_path  # type: ignore[attr-defined]
    policy = ServingPolicy(x_accel_redirect={storage_path: "/_depot_files/"})
    served.mount(make_middleware(policies={"disk": policy}))
    response = served.get(f"/depot/disk/{file_id}")
    relative = os.path.relpath(local_path(local, file_id), storage_path)
    assert response.status_code == 200
    assert response.headers["X-Accel-Redirect"] == "/_depot_files/" + relative.replace(os.sep, "/")
    assert response.content == b""
    assert response.headers["Content-Length"] == "0"
    # the headers nginx keeps from the application's response
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Content-Disposition"] == 'attachment; filename="big.bin"'
    assert response.headers["Cache-Control"] == "private, max-age=604800"
    # conditional requests are still answered by the middleware
    etag = response.headers["ETag"]
    not_modified = served.get(f"/depot/disk/{file_id}", headers={"If-None-Match": etag})
    assert not_modified.status_code == 304
    assert "X-Accel-Redirect" not in not_modified.headers


def test_unmapped_local_files_are_served_directly(
    served: Served, make_middleware: MakeMiddleware, tmp_path: Any, file_id: str
) -> None:
    policy = ServingPolicy(x_accel_redirect={str(tmp_path / "elsewhere"): "/_depot_files"})
    served.mount(make_middleware(policies={"disk": policy}))
    response = served.get(f"/depot/disk/{file_id}")
    assert "X-Accel-Redirect" not in response.headers
    assert response.content == DATA


def test_x_sendfile_names_the_local_path(
    served: Served, make_middleware: MakeMiddleware, local: FileStorage, file_id: str
) -> None:
    served.mount(make_middleware(policies={"disk": ServingPolicy(x_sendfile=True)}))
    response = served.get(f"/depot/disk/{file_id}")
    assert response.headers["X-Sendfile"] == local_path(local, file_id)
    assert response.content == b""


def test_a_front_server_gets_the_headers_of_a_proxied_response(local: FileStorage) -> None:
    storage_path = local.storage_path  # type: ignore[attr-defined]
    proxying = Client(DepotMiddleware())
    handing_off = [
        Client(DepotMiddleware(policy=ServingPolicy(x_accel_redirect={storage_path: "/_f/"}))),
        Client(DepotMiddleware(policy=ServingPolicy(x_sendfile=True))),
    ]
    names = ("Content-Type", "Content-Disposition", "Content-Security-Policy")
    for filename, content_type in DOWNLOADS:
        file_id = local.create(b"payload", filename=filename, content_type=content_type)
        proxied = proxying.get(f"/depot/disk/{file_id}")
        assert proxied.data == b"payload"
        for client in handing_off:
            handed = client.get(f"/depot/disk/{file_id}")
            assert handed.data == b""
            assert {"X-Accel-Redirect", "X-Sendfile"} & set(handed.headers.keys())
            for name in names:
                assert handed.headers.get(name) == proxied.headers.get(name), (filename, name)


def test_front_server_options_ignore_memory_files(
    served: Served, make_middleware: MakeMiddleware, memory: FileStorage
) -> None:
    file_id = memory.create(b"in memory")
    served.mount(make_middleware(policy=ServingPolicy(x_sendfile=True)))
    response = served.get(f"/depot/files/{file_id}")
    assert "X-Sendfile" not in response.headers
    assert response.content == b"in memory"


def test_front_server_options_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="not both"):
        ServingPolicy(x_sendfile=True, x_accel_redirect={"/var/files": "/_f"})
    with pytest.raises(ConfigurationError, match="absolute"):
        ServingPolicy(x_accel_redirect={"var/files": "/_f"})
    with pytest.raises(ConfigurationError, match="absolute"):
        ServingPolicy(x_accel_redirect={"/var/files": "_f"})
