"""Files named by readable keys (``acme/2026/11/<uuid>.pdf``) are served at URLs whose path
shows the key, signed or not, next to UUID-named files whose URLs did not change."""

from __future__ import annotations

from collections.abc import Callable

from sa_depot.io.interfaces import FileStorage
from sa_depot.manager import DepotManager
from sa_depot.middleware import DepotMiddleware
from sa_depot.serving.policy import ServingPolicy
from tests.middleware.conftest import Served
from tests.middleware.test_routing import raw_get

MakeMiddleware = Callable[..., DepotMiddleware]
DATED = "{tenant}/{yyyy}/{mm}/{id}{ext}"


def test_a_keyed_file_is_served_at_its_key_with_and_without_a_filename(
    served: Served, make_middleware: MakeMiddleware, local: FileStorage
) -> None:
    served.mount(make_middleware())
    file_id = local.create(
        b"%PDF-1.4 keyed", "Résumé.pdf", key=DATED, key_values={"tenant": "acme"}
    )
    url = DepotManager.url_for(f"disk/{file_id}")
    assert url == f"/depot/disk/{file_id}"  # the key's '/' stay readable
    named = DepotManager.get_middleware().url_for(f"disk/{file_id}", filename="Résumé.pdf")
    assert named == f"/depot/disk/{file_id}/R%C3%A9sum%C3%A9.pdf"
    for path in (url, named):
        response = served.get(path)
        assert response.status_code == 200, path
        assert response.content == b"%PDF-1.4 keyed"
        assert "R%C3%A9sum%C3%A9.pdf" in response.headers["Content-Disposition"]


def test_a_key_whose_parent_is_also_a_key_is_served_as_itself(
    served: Served, make_middleware: MakeMiddleware, memory: FileStorage
) -> None:
    """``acme/<uuid>`` and ``acme/<uuid>/notes.txt`` are two files: a URL of three parts
    first reads its last part as the download name, then as part of the id."""
    served.mount(make_middleware())
    outer = memory.create(b"outer", "outer.txt", key="acme/{id}")
    with DepotManager.get("files").get(outer) as stored:
        inner = memory.write_copy(stored, file_id=f"{outer}/notes.txt").file_id
    memory.replace(inner, b"inner", "notes.txt")
    assert served.get(f"/depot/files/{outer}").content == b"outer"
    assert served.get(f"/depot/files/{outer}/outer.txt").content == b"outer"
    assert served.get(f"/depot/files/{inner}").content == b"inner"
    assert served.get(f"/depot/files/{inner}/notes.txt").content == b"inner"
    memory.delete(outer)
    assert served.get(f"/depot/files/{inner}").content == b"inner"
    assert served.get(f"/depot/files/{outer}").status_code == 404


def test_uuid_urls_keep_working(
    served: Served, make_middleware: MakeMiddleware, memory: FileStorage
) -> None:
    served.mount(make_middleware())
    file_id = memory.create(b"plain", "report.txt")
    assert DepotManager.url_for(f"files/{file_id}") == f"/depot/files/{file_id}"
    assert served.get(f"/depot/files/{file_id}/report.txt").content == b"plain"
    assert served.get(f"/depot/files/{file_id}").content == b"plain"
    assert served.get(f"/depot/files/{file_id}/other/name").status_code == 404


def test_signed_urls_of_keys_bind_the_whole_key(
    served: Served, make_middleware: MakeMiddleware, memory: FileStorage
) -> None:
    policies = {"files": ServingPolicy(require_signature=True, signed_url_expires_in=60)}
    served.mount(make_middleware(secret="s" * 32, policies=policies))
    file_id = memory.create(b"secret", "a.txt", key=DATED, key_values={"tenant": "acme"})
    other = memory.create(b"other", "a.txt", key=DATED, key_values={"tenant": "acme"})
    url = DepotManager.url_for(f"files/{file_id}", expires_in=60)
    assert served.get(url).content == b"secret"
    assert served.get(f"/depot/files/{file_id}").status_code in (403, 404)
    forged = url.replace(file_id, other)
    assert served.get(forged).status_code in (403, 404)


def test_keyed_urls_refuse_traversal(
    served: Served, make_middleware: MakeMiddleware, local: FileStorage
) -> None:
    served.mount(make_middleware())
    file_id = local.create(b"x", "a.txt", key=DATED, key_values={"tenant": "acme"})
    tenant, rest = file_id.split("/", 1)
    for path in (
        f"/depot/disk/{tenant}/../{file_id}",
        f"/depot/disk/{tenant}/%2e%2e/{file_id}",
        f"/depot/disk/.hidden/{rest}",
        f"/depot/disk/{tenant}//{rest}",
        f"/depot/disk/{tenant}%5c{rest}",
    ):
        status, _ = raw_get(served, path)
        assert status in (400, 404), (path, status)
