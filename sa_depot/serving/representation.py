"""The headers that describe a served file and keep it from attacking the site.

* ``Content-Type`` is the stored type when it is a well-formed media type, else
  ``application/octet-stream``;
* ``Content-Disposition`` is ``inline`` only for the policy's allow-list of types that cannot
  run script, ``attachment`` otherwise, with an ASCII ``filename`` and an RFC 6266 / RFC 8187
  ``filename*`` when the name is not ASCII;
* every type outside the allow-list (HTML, SVG, XML, JavaScript, unknown types...) also gets a
  sandboxing ``Content-Security-Policy``, in case a browser renders it anyway.

``X-Content-Type-Options: nosniff`` goes on every response; the middleware adds it.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

from werkzeug.http import dump_options_header, parse_options_header, quote_header_value

from sa_depot.io.filenames import normalize_filename

#: A sandboxed, resource-less document: no script, no plugins, no same-origin access.
SANDBOX_CSP = "sandbox; default-src 'none'"

FALLBACK_CONTENT_TYPE = "application/octet-stream"

# RFC 9110 token characters: the media type and subtype must be made of them.
_MEDIA_TYPE_RE = re.compile(r"\A[!#$%&'*+.^_`|~0-9A-Za-z-]+/[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
# Characters that may not appear in a header value, or that confuse filename parsers.
_UNSAFE_FILENAME_CHARS = re.compile(r'[\x00-\x1f\x7f"\\/]')
# RFC 8187 attr-char, left unescaped in filename*.
_ATTR_CHAR_SAFE = "!#$&+-.^_`|~"


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
    """The ``Content-Disposition`` value for ``filename``.

    The plain ``filename`` parameter is ASCII for old clients (non-ASCII letters lose their
    accents; quotes, backslashes and other characters become ``_``); ``filename*`` carries
    the exact UTF-8 name (quotes included, percent-encoded as RFC 8187 says).
    """
    disposition = "inline" if inline else "attachment"
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
    decomposed = unicodedata.normalize("NFKD", name)
    chars = []
    for char in decomposed:
        if unicodedata.combining(char):
            continue  # the accent of a decomposed letter: "é" -> "e"
        chars.append(char if char.isascii() and char.isprintable() else "_")
    result = _UNSAFE_FILENAME_CHARS.sub("_", "".join(chars)).strip(" .")
    return result or "download"
