"""The one normalisation every stored filename goes through.

A stored filename names a download and a line in a listing; it is never a path on a disk
(storages name their files by id). So it keeps the user's name, accents, spaces, quotes and
all, and only loses what would mislead or break the places it is shown:

1. **The last path component.** A name is cut after its last ``/`` or ``\\`` (old browsers
   send the client's full path, ``C:\\Users\\me\\report.pdf``).
2. **HTML form escapes** (names carried by upload objects only: Werkzeug's ``FileStorage``,
   Starlette's ``UploadFile``, ``cgi.FieldStorage``). Browsers send a filename containing
   ``"``, CR or LF in ``multipart/form-data`` as ``%22``, ``%0D`` and ``%0A`` (the HTML
   Standard, "multipart/form-data encoding algorithm"). Werkzeug decodes ``%22``,
   python-multipart (Starlette, FastAPI) decodes nothing; both are decoded here, so that one
   upload gets one name whichever parser read it. Other ``%`` sequences are left alone:
   browsers do not escape ``%`` itself.
3. **Unicode NFC**, so that ``é`` typed on macOS (decomposed) and elsewhere (composed) are one
   name.
4. **Invisible and control characters.** Format characters (Unicode category ``Cf``: the
   bidirectional controls that make ``\\u202egnp.exe`` look like ``exe.png``, zero-width
   spaces and joiners, the byte order mark, soft hyphens...) are removed. A run of control
   characters (``Cc``: NUL, tab, CR, LF, DEL...) and line or paragraph separators (``Zl``,
   ``Zp``) becomes one space (``a\r\nb`` is ``a b``). Lone surrogates (``Cs``, from
   undecodable bytes) become U+FFFD.
5. **Spaces at both ends** are stripped. A name left empty, ``.`` or ``..`` is no name
   (``None``).
6. **At most 255 characters**, the extension kept when a long name is cut.

Nothing else changes: ``"``, ``'``, ``<``, ``%``, ``*`` and every letter of every script stay.
Werkzeug's ``secure_filename`` is the right tool for a name used as a path on disk, not
here: it keeps ASCII only (``résumé.pdf`` becomes ``resume.pdf``, ``文件.pdf`` becomes
``pdf``). Headers and HTML encode the name where it is used (``Content-Disposition``: see
:mod:`sa_depot.serving.representation`).
"""

from __future__ import annotations

import re
import unicodedata

#: The longest filename kept, in characters (the usual file-system limit, in bytes, of one
#: path component).
MAX_FILENAME_CHARS = 255
#: The longest extension kept whole when a long name is cut.
_MAX_EXTENSION_CHARS = 16

_FORM_ESCAPES = re.compile(r"%(22|0D|0A)", re.IGNORECASE)
_FORM_UNESCAPED = {"22": '"', "0D": "\r", "0A": "\n"}
_SEPARATORS = re.compile(r"[/\\]")


def normalize_filename(name: str | None) -> str | None:
    """The filename to store for ``name`` (see the module docs), or ``None`` if nothing is
    left of it. Normalising a normalised name changes nothing."""
    if not name:
        return None
    base = _SEPARATORS.split(name)[-1]
    if not (base.isascii() and base.isprintable()):
        # printable ASCII (most names) is already NFC and holds no control or format character
        base = _visible(unicodedata.normalize("NFC", base))
    base = base.strip()
    if base in ("", ".", ".."):
        return None
    return _shortened(base)


def unescape_form_filename(name: str) -> str:
    """Undo the escapes browsers apply to a filename in ``multipart/form-data``: ``%22``,
    ``%0D``, ``%0A`` (HTML Standard), as the name of an upload object needs."""
    return _FORM_ESCAPES.sub(lambda match: _FORM_UNESCAPED[match.group(1).upper()], name)


def _visible(name: str) -> str:
    kept: list[str] = []
    breaking = False  # inside a run of control characters
    for char in name:
        category = unicodedata.category(char)
        if category == "Cf":
            continue
        if category in ("Cc", "Zl", "Zp"):
            if not breaking:
                kept.append(" ")
            breaking = True
            continue
        breaking = False
        kept.append("\ufffd" if category == "Cs" else char)
    return "".join(kept)


def _shortened(name: str) -> str:
    if len(name) <= MAX_FILENAME_CHARS:
        return name
    stem, dot, extension = name.rpartition(".")
    if dot and stem and len(extension) < _MAX_EXTENSION_CHARS:
        suffix = "." + extension
        return name[: MAX_FILENAME_CHARS - len(suffix)].rstrip() + suffix
    return name[:MAX_FILENAME_CHARS].rstrip()


__all__ = ["MAX_FILENAME_CHARS", "normalize_filename", "unescape_form_filename"]
