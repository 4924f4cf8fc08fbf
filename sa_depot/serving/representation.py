"""The headers that describe a served file and keep it from attacking the site.

* ``Content-Type`` is the stored type when it is a well-formed media type, else
  ``application/octet-stream``;
* ``Content-Disposition`` is ``inline`` only for the policy's allow-list of types that cannot
  run script, ``attachment`` otherwise, with an ASCII ``filename`` (transliterated, as
  filedepot's) and an RFC 6266 / RFC 8187 ``filename*`` when the name is not ASCII; every
  response and URL that carries the header gets it from :func:`make_content_disposition`;
* every type outside the allow-list (HTML, SVG, XML, JavaScript, unknown types...) also gets a
  sandboxing ``Content-Security-Policy``, in case a browser renders it anyway.

:func:`describe` decides all three once per request, and every path a download takes uses its
answer: the proxied response, the response handed to a front server (X-Accel-Redirect,
X-Sendfile), and the redirect to a storage's own URL, which carries the type and disposition
as :class:`~sa_depot.io.interfaces.ResponseOverrides`. Storages that store headers with each
object (S3's ``ContentDisposition``) take them from here too.

``X-Content-Type-Options: nosniff`` goes on every response; the middleware adds it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote

from anyascii import anyascii
from werkzeug.http import dump_options_header, parse_options_header, quote_header_value

from sa_depot.io.filenames import normalize_filename
from sa_depot.io.stored import ResponseOverrides

#: A sandboxed, resource-less document: no script, no plugins, no same-origin access.
SANDBOX_CSP = "sandbox; default-src 'none'"

FALLBACK_CONTENT_TYPE = "application/octet-stream"

#: Types a browser may display in the page's origin: raster images, audio, video, PDF and
#: plain text. None of them can run script. Everything else is sent as an attachment.
DEFAULT_INLINE_TYPES: frozenset[str] = frozenset(
    {
        # raster images (not SVG, which is a document that can run script)
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/avif",
        "image/bmp",
        "image/x-icon",
        "image/vnd.microsoft.icon",
        # audio
        "audio/mpeg",
        "audio/mp4",
        "audio/aac",
        "audio/ogg",
        "audio/opus",
        "audio/wav",
        "audio/x-wav",
        "audio/wave",
        "audio/webm",
        "audio/flac",
        "audio/x-flac",
        # video
        "video/mp4",
        "video/webm",
        "video/ogg",
        "video/quicktime",
        # documents that cannot script the page
        "application/pdf",
        "text/plain",
    }
)

# RFC 9110 token characters: the media type and subtype must be made of them.
_MEDIA_TYPE_RE = re.compile(r"\A[!#$%&'*+.^_`|~0-9A-Za-z-]+/[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
# Characters that may not appear in a header value, or that confuse filename parsers.
_UNSAFE_FILENAME_CHARS = re.compile(r'[\x00-\x1f\x7f"\\/]')
# RFC 9110 token: the disposition type.
_TOKEN_RE = re.compile(r"\A[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
# RFC 8187 attr-char, left unescaped in filename*.
_ATTR_CHAR_SAFE = "!#$&+-.^_`|~"


@dataclass(frozen=True)
class Representation:
    """What the browser is told about one file, whichever path its bytes take.

    :param content_type: the ``Content-Type`` value.
    :param content_disposition: the ``Content-Disposition`` value (RFC 6266).
    :param inline: whether the type may be shown in the page (else an attachment, sandboxed).
    """

    content_type: str
    content_disposition: str
    inline: bool

    @property
    def headers(self) -> list[tuple[str, str]]:
        """``Content-Type``, ``Content-Disposition`` and, for an attachment, the sandbox CSP."""
        headers = [
            ("Content-Type", self.content_type),
            ("Content-Disposition", self.content_disposition),
        ]
        if not self.inline:
            headers.append(("Content-Security-Policy", SANDBOX_CSP))
        return headers

    @property
    def overrides(self) -> ResponseOverrides:
        """The headers a storage's URL must make the store send (the CSP cannot travel)."""
        return ResponseOverrides(
            content_type=self.content_type, content_disposition=self.content_disposition
        )


@lru_cache(maxsize=1024)
def describe(
    filename: str | None,
    content_type: str | None,
    inline_types: frozenset[str] = DEFAULT_INLINE_TYPES,
) -> Representation:
    """The :class:`Representation` of a file named ``filename`` of type ``content_type``,
    shown inline only if its type is in ``inline_types`` (a policy's allow-list).

    Decided once per distinct ``(filename, content_type, inline_types)`` (a cache of the last
    1,024): a file is usually downloaded many times, and the decision is pure."""
    safe_type = safe_content_type(content_type)
    inline = is_inline(safe_type, inline_types)
    return Representation(safe_type, content_disposition(filename, inline), inline)


def media_type(content_type: str) -> str:
    """The lowercase ``type/subtype`` of ``content_type``, without parameters."""
    mimetype, _ = parse_options_header(content_type)
    return mimetype


def safe_content_type(content_type: str | None) -> str:
    """``content_type`` rebuilt from its parsed parts, or octet-stream if it is malformed.

    Stored types come from uploads and may be anything; rebuilding them drops line breaks and
    other header injection, and an unparseable type must not be guessed at.
    """
    if not content_type or not content_type.isascii() or not content_type.isprintable():
        return FALLBACK_CONTENT_TYPE
    mimetype, params = parse_options_header(content_type)
    if not _MEDIA_TYPE_RE.match(mimetype):
        return FALLBACK_CONTENT_TYPE
    return dump_options_header(mimetype, params)


def is_inline(content_type: str, inline_types: frozenset[str]) -> bool:
    """Whether ``content_type`` is in the allow-list of types shown inline."""
    return media_type(content_type) in inline_types


def content_disposition(filename: str | None, inline: bool) -> str:
    """The ``Content-Disposition`` value for ``filename``, ``inline`` or ``attachment``."""
    return make_content_disposition("inline" if inline else "attachment", filename)


def make_content_disposition(disposition: str, filename: str | None) -> str:
    """A ``Content-Disposition`` header value (RFC 6266): ``disposition`` (``'inline'`` or
    ``'attachment'``) and the download name ``filename`` (filedepot's
    ``depot.utils.make_content_disposition``, always well-formed).

    The name is normalised as stored filenames are (see :func:`clean_filename`). The plain
    ``filename`` parameter is its ASCII transliteration for old clients (``'Крупный.txt'`` ->
    ``"Krupnyy.txt"``, by anyascii, as filedepot does; quotes, backslashes and other characters
    a quoted string cannot hold become ``_``); ``filename*`` (RFC 8187) carries the exact
    UTF-8 name when it differs (quotes included, percent-encoded). Without a name, the value
    is the disposition alone. Raises ``ValueError`` for a disposition that is not an RFC 9110
    token (it would corrupt the header).
    """
    if not _TOKEN_RE.match(disposition):
        raise ValueError(f"invalid disposition type {disposition!r}: use 'inline' or 'attachment'")
    name = clean_filename(filename)
    if not name:
        return disposition
    fallback = _ascii_fallback(name)
    # always quoted: some clients mishandle a bare token filename
    value = f"{disposition}; filename={quote_header_value(fallback, allow_token=False)}"
    if fallback != name:
        value += "; filename*=UTF-8''" + quote(name, safe=_ATTR_CHAR_SAFE)
    return value


def clean_filename(filename: str | None) -> str:
    """``filename`` normalised as stored filenames are
    (:func:`~sa_depot.io.filenames.normalize_filename`: the last path component, without
    invisible or control characters), or ``''``. Rows written before that normalisation, or
    by filedepot, may hold anything."""
    return normalize_filename(filename) or ""


def _ascii_fallback(name: str) -> str:
    """``name`` transliterated to printable ASCII: ``'é'`` -> ``'e'``, ``'Ж'`` -> ``'Zh'``."""
    ascii_name = "".join(c if c.isprintable() else "_" for c in anyascii(name))
    result = _UNSAFE_FILENAME_CHARS.sub("_", ascii_name).strip(" .")
    return result or "download"
