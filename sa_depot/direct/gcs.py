"""Direct uploads to a :class:`~sa_depot.io.gcs.GCSStorage`: a V4 signed URL for one ``PUT``
of the whole object (GCS XML API, "Signed URLs"; signed locally with the service account's
key, no request). POST policies and resumable uploads are not offered yet."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sa_depot.exceptions import UploadRefused
from sa_depot.io.gcs import GCSStorage


def presigned_put(
    storage: GCSStorage, file_id: str, content_type: str, expires_in: int
) -> dict[str, Any]:
    """``{'method': 'PUT', 'url', 'headers'}``: the client PUTs the content to ``url`` with
    exactly ``headers`` (the ``Content-Type`` is signed).

    :raises UploadRefused: ``'unsupported'``: the storage's credentials cannot sign (they
        must be a service account's key).
    """
    storage.client  # noqa: B018 - resolves default credentials on first use
    credentials = storage._credentials
    if not hasattr(credentials, "sign_bytes") or not hasattr(credentials, "service_account_email"):
        raise UploadRefused(
            "unsupported",
            f"{storage.description}: signed uploads need service account credentials (a key "
            "file or dict), which hold the key that signs URLs",
        )
    url: str = storage.bucket.blob(storage.key(file_id)).generate_signed_url(
        version="v4",
        expiration=timedelta(seconds=expires_in),
        method="PUT",
        content_type=content_type,
        credentials=credentials,
        api_access_endpoint=storage.endpoint_url,
    )
    return {"method": "PUT", "url": url, "headers": {"Content-Type": content_type}}


__all__ = ["presigned_put"]
