"""A serving policy belongs to its storage, whatever name (storage or alias) it is given under."""

from __future__ import annotations

import pytest
from werkzeug.test import Client

from sa_depot.exceptions import ConfigurationError
from sa_depot.manager import DepotManager
from sa_depot.middleware import DepotMiddleware, ServingPolicy

SECRET = "s" * 32


@pytest.fixture
def private_id() -> str:
    storage = DepotManager.configure(
        "private_files", {"depot.backend": "sa_depot.io.memory.MemoryFileStorage"}
    )
    DepotManager.alias("invoices", "private_files")
    return storage.create(b"secret invoice", filename="invoice.txt")


@pytest.mark.parametrize("policy_key", ["invoices", "private_files"])
@pytest.mark.parametrize("url_name", ["invoices", "private_files"])
def test_a_policy_applies_under_every_name_of_its_storage(
    private_id: str, policy_key: str, url_name: str
) -> None:
    middleware = DepotMiddleware(
        None, secret=SECRET, policies={policy_key: ServingPolicy(require_signature=True)}
    )
    client = Client(middleware)
    unsigned = client.get(f"/depot/{url_name}/{private_id}")
    assert unsigned.status_code == 403
    assert b"secret invoice" not in unsigned.data
    signed = client.get(middleware.url_for(f"{url_name}/{private_id}", expires_in=60))
    assert signed.status_code == 200
    assert signed.data == b"secret invoice"


def test_different_policies_for_two_names_of_one_storage_are_refused(private_id: str) -> None:
    with pytest.raises(ConfigurationError, match="give one policy per storage"):
        DepotMiddleware(
            None,
            secret=SECRET,
            policies={
                "invoices": ServingPolicy(require_signature=True),
                "private_files": ServingPolicy(),
            },
        )


def test_an_alias_made_after_the_middleware_still_gets_its_storages_policy() -> None:
    storage = DepotManager.configure(
        "vault", {"depot.backend": "sa_depot.io.memory.MemoryFileStorage"}
    )
    file_id = storage.create(b"vaulted")
    middleware = DepotMiddleware(
        None, secret=SECRET, policies={"vault": ServingPolicy(require_signature=True)}
    )
    DepotManager.alias("strongroom", "vault")
    assert Client(middleware).get(f"/depot/strongroom/{file_id}").status_code == 403
