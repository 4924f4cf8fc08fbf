"""Upload tokens: what a direct upload's slot promises, signed so that the browser cannot
change it.

A token reads ``sadu1.<payload>.<signature>``: itsdangerous's URL-safe serializer (HMAC-SHA256,
the secret's key derived with a salt of its own, so that the secret can sign other things
too) over a compact JSON payload naming the field, the storage and file id the server chose,
the declared name, type, size and checksum, the size limit, the multipart upload id and the
expiry time. Several secrets can be given for rotation: the first signs, all verify.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sa_depot import descriptor
from sa_depot.exceptions import ConfigurationError, UploadRefused

#: Every token starts with this: a string assigned to a file attribute is read as a token
#: only when it does (any other string stays content, as before).
PREFIX = "sadu1."
#: The salt separating this use of the secret from the application's other uses of it.
_SALT = "sa_depot.direct-upload.v1"


@dataclass(frozen=True)
class DirectUpload:
    """What a verified token says (made by :meth:`TokenSigner.load`, never by hand).

    Assign it, or the token string itself, to the field it was issued for.
    """

    #: The token, as the client sends it back.
    token: str
    #: The field it was issued for: ``'module.Class.attribute'``.
    field: str
    #: The storage the browser uploads to (the field's upload storage) and the file id the
    #: server chose there.
    storage: str
    file_id: str
    #: What the client declared (the filename and type are stored in the descriptor; the
    #: size and checksum, when declared, must match).
    filename: str | None
    content_type: str | None
    size: int | None
    checksum: str | None
    #: The largest size the slot allows, in bytes (``None``: no limit beyond the field's).
    max_size: int | None
    #: The multipart upload's id, for multipart slots.
    upload_id: str | None
    #: Unix time after which the token is refused.
    expires: int
    issuer: TokenSigner | None = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def path(self) -> str:
        """``'storage/file_id'`` of the staged object."""
        return descriptor.join_path(self.storage, self.file_id)


class TokenSigner:
    """Signs and reads upload tokens.

    :param secret: the key that signs new tokens (str or bytes, at least 16 bytes).
    :param previous_secrets: older keys still accepted, so that rotating the secret does not
        break uploads in progress.
    :raises ConfigurationError: a secret is too short, or itsdangerous is not installed.
    """

    def __init__(self, secret: str | bytes, previous_secrets: Sequence[str | bytes] = ()) -> None:
        if importlib.util.find_spec("itsdangerous") is None:
            raise ConfigurationError(
                "direct uploads need itsdangerous, which is not installed: pip install "
                "itsdangerous (or install sa-depot with its direct extra)"
            )
        from itsdangerous import URLSafeSerializer

        keys = [_as_key(secret), *(_as_key(s) for s in previous_secrets)]
        # itsdangerous signs with the last key and verifies with all of them
        self._serializer = URLSafeSerializer(list(reversed(keys)), salt=_SALT)

    def dump(self, claims: Mapping[str, Any]) -> str:
        """The token of ``claims`` (the fields of :class:`DirectUpload`, short keys)."""
        return PREFIX + str(self._serializer.dumps(dict(claims)))

    def load(self, token: object, now: float | None = None) -> DirectUpload:
        """The :class:`DirectUpload` of ``token``.

        :raises UploadRefused: ``'forged'`` (not a token, not signed with one of the secrets,
            or altered) or ``'expired'``.
        """
        from itsdangerous import BadSignature

        if not isinstance(token, str) or not token.startswith(PREFIX):
            raise UploadRefused("forged", "this is not an upload token")
        try:
            claims = self._serializer.loads(token[len(PREFIX) :])
            upload = DirectUpload(
                token=token,
                field=str(claims["f"]),
                storage=str(claims["s"]),
                file_id=str(claims["i"]),
                filename=_optional_str(claims.get("n")),
                content_type=_optional_str(claims.get("t")),
                size=_optional_int(claims.get("z")),
                checksum=_optional_str(claims.get("c")),
                max_size=_optional_int(claims.get("m")),
                upload_id=_optional_str(claims.get("u")),
                expires=int(claims["e"]),
                issuer=self,
            )
        except BadSignature:
            raise UploadRefused(
                "forged", "the token's signature does not match: it was altered or not made here"
            ) from None
        except (KeyError, TypeError, ValueError):
            raise UploadRefused("forged", "the token's content is not an upload slot") from None
        if upload.expires <= (time.time() if now is None else now):
            raise UploadRefused(
                "expired", "the upload slot has expired: ask for a new one and upload again"
            )
        return upload


def claims_of(
    *,
    field: str,
    storage: str,
    file_id: str,
    expires: int,
    filename: str | None = None,
    content_type: str | None = None,
    size: int | None = None,
    checksum: str | None = None,
    max_size: int | None = None,
    upload_id: str | None = None,
) -> dict[str, Any]:
    """The short-keyed claims :meth:`TokenSigner.dump` signs (``None`` values left out)."""
    claims = {
        "f": field,
        "s": storage,
        "i": file_id,
        "e": expires,
        "n": filename,
        "t": content_type,
        "z": size,
        "c": checksum,
        "m": max_size,
        "u": upload_id,
    }
    return {k: v for k, v in claims.items() if v is not None}


def _as_key(secret: str | bytes) -> bytes:
    key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if len(key) < 16:
        raise ConfigurationError(
            "the upload token secret is shorter than 16 bytes: use a long random value, e.g. "
            "secrets.token_hex(32)"
        )
    return key


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)


def _optional_int(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("not an integer")
    return value


__all__ = ["PREFIX", "DirectUpload", "TokenSigner", "claims_of"]
