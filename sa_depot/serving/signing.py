"""Signed, expiring URLs: HMAC-SHA256 over the file's path and the expiry time.

A signed URL reads ``<mountpoint>/<storage>/<file_id>?expires=<unix time>&signature=<hex>``.
The signature covers ``<storage>/<file_id>`` and the expiry, so changing either (or moving the
signature to another file) invalidates it; the filename segment is not covered, it only names
the download. Several secrets can be given for rotation: the first signs, all verify.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import math
import time
from collections.abc import Sequence

from sa_depot.exceptions import ConfigurationError

#: Separates this use of the secret from any other use the application makes of it.
_DOMAIN = b"sa_depot.middleware.signed-url.v1\x00"
#: Expiry times have at most this many digits (year 5138): longer values are refused unparsed.
_MAX_EXPIRES_DIGITS = 11


class Verdict(enum.Enum):
    """The outcome of checking a request's signature."""

    VALID = "valid"
    EXPIRED = "expired"
    INVALID = "invalid"


def _as_key(secret: str | bytes) -> bytes:
    key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if len(key) < 16:
        raise ConfigurationError(
            "the signing secret is shorter than 16 bytes: use a long random value, e.g. "
            "secrets.token_hex(32)"
        )
    return key


class UrlSigner:
    """Signs and verifies ``(path, expires)`` pairs.

    :param secret: the key that signs new URLs (str or bytes, at least 16 bytes).
    :param previous_secrets: older keys still accepted, so that rotating the secret does not
        break URLs already handed out.
    """

    def __init__(self, secret: str | bytes, previous_secrets: Sequence[str | bytes] = ()) -> None:
        self._keys = [_as_key(secret), *(_as_key(s) for s in previous_secrets)]

    def _signature(self, key: bytes, path: str, expires: int) -> str:
        message = _DOMAIN + path.encode("utf-8") + b"\x00" + str(expires).encode("ascii")
        return hmac.new(key, message, hashlib.sha256).hexdigest()

    def expiry(self, expires_in: float, now: float | None = None) -> int:
        """The expiry timestamp of a URL valid for ``expires_in`` seconds from ``now``."""
        if (
            isinstance(expires_in, bool)
            or not isinstance(expires_in, (int, float))
            or not math.isfinite(expires_in)
            or expires_in <= 0
        ):
            raise ConfigurationError(
                f"expires_in={expires_in!r}: give the URL's lifetime as a number of seconds > 0"
            )
        return math.ceil((time.time() if now is None else now) + expires_in)

    def sign(self, path: str, expires: int) -> str:
        """The signature of ``path`` valid until the unix time ``expires``."""
        return self._signature(self._keys[0], path, expires)

    def verify(self, path: str, expires: str, signature: str, now: float | None = None) -> Verdict:
        """Check the ``expires`` and ``signature`` query values of a request for ``path``.

        The signature is compared in constant time, and checked before the expiry so that a
        forged expiry is reported as tampering.
        """
        if not (expires.isascii() and expires.isdigit()) or len(expires) > _MAX_EXPIRES_DIGITS:
            return Verdict.INVALID
        expires_at = int(expires)
        given = signature.encode("utf-8", "replace")
        valid = False
        for key in self._keys:
            expected = self._signature(key, path, expires_at).encode("ascii")
            # every key is tried, whatever matched, so timing does not tell which key is current
            valid |= hmac.compare_digest(expected, given)
        if not valid:
            return Verdict.INVALID
        if expires_at < (time.time() if now is None else now):
            return Verdict.EXPIRED
        return Verdict.VALID
