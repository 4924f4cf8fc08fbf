"""Validators (ETag, Last-Modified) and conditional requests, in RFC 9110 section 13's order.

Header values are parsed by Werkzeug (``Request.if_match``, ``if_none_match``,
``if_modified_since``, ``parse_date``, ``unquote_etag``); this module only applies the rules.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache

from werkzeug.http import http_date, parse_date, quote_etag, unquote_etag
from werkzeug.wrappers import Request

from sa_depot.io.interfaces import StoredFile


@dataclass(frozen=True)
class Validators:
    """The validators of one stored file.

    The ETag is strong, the hex SHA-256 of the content, when the file has a checksum. Files
    stored without one (filedepot's) get a weak ETag derived from id, modification time and
    length: good enough to revalidate a cache, never to combine byte ranges.
    """

    etag: str
    weak: bool
    last_modified: datetime

    @classmethod
    def of(cls, stored: StoredFile, length: int | None) -> Validators:
        modified = stored.last_modified
        if modified.tzinfo is None:
            modified = modified.replace(tzinfo=timezone.utc)
        modified = modified.replace(microsecond=0)  # HTTP dates have whole seconds
        if stored.checksum:
            return cls(etag=stored.checksum, weak=False, last_modified=modified)
        identity = f"{stored.file_id}\x00{modified.isoformat()}\x00{length}".encode()
        return cls(
            etag=hashlib.sha256(identity).hexdigest()[:32], weak=True, last_modified=modified
        )

    @property
    def etag_header(self) -> str:
        return quote_etag(self.etag, weak=self.weak)

    @property
    def last_modified_header(self) -> str:
        return _http_date(self.last_modified)


@lru_cache(maxsize=1024)
def _http_date(moment: datetime) -> str:
    """``http_date(moment)``, formatted once per distinct moment (a file keeps its own)."""
    return http_date(moment)


class Outcome(enum.Enum):
    """What the preconditions of a request call for."""

    PROCEED = 200
    NOT_MODIFIED = 304
    PRECONDITION_FAILED = 412


#: The WSGI keys of the request headers RFC 9110 section 13.2.2 evaluates.
_PRECONDITION_KEYS = (
    "HTTP_IF_MATCH",
    "HTTP_IF_UNMODIFIED_SINCE",
    "HTTP_IF_NONE_MATCH",
    "HTTP_IF_MODIFIED_SINCE",
)


def evaluate_preconditions(request: Request, validators: Validators) -> Outcome:
    """RFC 9110 section 13.2.2, steps 1 to 4, for a GET or HEAD of an existing file."""
    environ = request.environ
    if not any(key in environ for key in _PRECONDITION_KEYS):
        return Outcome.PROCEED  # most requests carry no precondition: nothing to parse
    if _precondition_fails(request, validators):
        return Outcome.PRECONDITION_FAILED
    if request.method in ("GET", "HEAD") and _not_modified(request, validators):
        return Outcome.NOT_MODIFIED
    return Outcome.PROCEED


def _precondition_fails(request: Request, validators: Validators) -> bool:
    """Steps 1 and 2: If-Match (strong comparison), else If-Unmodified-Since."""
    if_match = request.if_match
    if if_match:
        # a weak validator only matches "*"
        matches = if_match.star_tag or (not validators.weak and if_match.is_strong(validators.etag))
        return not matches
    since = request.if_unmodified_since
    return since is not None and validators.last_modified > since


def _not_modified(request: Request, validators: Validators) -> bool:
    """Steps 3 and 4: If-None-Match (weak comparison, "*"), else If-Modified-Since."""
    if_none_match = request.if_none_match
    if if_none_match:
        return if_none_match.contains_weak(validators.etag)
    since = request.if_modified_since
    return since is not None and validators.last_modified <= since


def if_range_allows_range(request: Request, validators: Validators) -> bool:
    """RFC 9110 section 13.1.5: whether the Range of the request may be honoured.

    Without If-Range, yes. With an entity tag it must match ours by strong comparison (weak
    tags never do); with a date it must equal Last-Modified exactly.
    """
    value = request.headers.get("If-Range")
    if value is None:
        return True
    date = parse_date(value)
    if date is not None:
        return date == validators.last_modified
    tag, weak = unquote_etag(value.strip())
    return not weak and not validators.weak and tag == validators.etag
