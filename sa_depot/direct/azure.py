"""Direct uploads to an :class:`~sa_depot.io.azure.AzureBlobStorage`: the blob's URL with a
service SAS allowing only to create and write that one blob, for one ``Put Blob`` of the whole
content (Azure docs, "Create a service SAS" and "Put Blob": up to 5,000 MiB in one request).
Block lists (Azure's multipart) are not offered yet."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from sa_depot.exceptions import UploadRefused
from sa_depot.io.azure import SAS_CLOCK_SKEW, AzureBlobStorage


def presigned_put(
    storage: AzureBlobStorage, file_id: str, content_type: str, expires_in: int
) -> dict[str, Any]:
    """``{'method': 'PUT', 'url', 'headers'}``: the client PUTs the content to ``url`` with
    exactly ``headers`` (``x-ms-blob-type: BlockBlob`` and the ``Content-Type``).

    :raises UploadRefused: ``'unsupported'``: the storage has no account key to sign with.
    """
    from azure.storage.blob import BlobSasPermissions, generate_blob_sas

    if not (storage.account_name and storage._account_key):
        raise UploadRefused(
            "unsupported",
            f"{storage.description}: signed uploads need the account name and key",
        )
    key = storage.key(file_id)
    now = datetime.now(timezone.utc)
    sas = generate_blob_sas(
        storage.account_name,
        storage.container,
        key,
        account_key=storage._account_key,
        permission=BlobSasPermissions(create=True, write=True),
        start=now - SAS_CLOCK_SKEW,
        expiry=now + timedelta(seconds=expires_in),
    )
    blob_url: str = storage.client.get_blob_client(key).url
    headers = {"x-ms-blob-type": "BlockBlob", "Content-Type": content_type}
    return {"method": "PUT", "url": f"{blob_url}?{sas}", "headers": headers}


__all__ = ["presigned_put"]
