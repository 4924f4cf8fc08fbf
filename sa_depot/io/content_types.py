"""The content type of new content: libmagic's answer, refined by the filename.

Without an explicit type, the type is decided from the first :data:`SNIFF_BYTES` bytes and
the filename:

1. libmagic (python-magic) names the format of the first bytes (``sniffed``);
2. the filename's extension names a type (``by_name``): :data:`CONTAINER_FORMATS` first, so
   that the answer does not depend on the machine's ``/etc/mime.types``, then :mod:`mimetypes`;
3. ``sniffed`` wins, unless it names only a *container* and ``by_name`` is a known
   specialisation of that container; then ``by_name`` wins. Neither: ``by_name``, else
   ``application/octet-stream``.

libmagic often cannot see past the container. It recognises a ``.docx`` only when its first
zip member is ``[Content_Types].xml`` or ``word/...`` (LibreOffice and several Python writers
put ``_rels/.rels`` first: libmagic says ``application/zip``), an ``.epub`` or ``.odt`` only
when ``mimetype`` is the first member, a ``.doc``, ``.xls`` or ``.msg`` often only as an OLE
compound file, an RSS feed as XML and a CSS or Markdown file as plain text. The containers and
what specialises them:

* zip archives: the formats listed under ``"zip"`` (Office Open XML, OpenDocument, EPUB, Java
  and Android archives);
* OLE compound files (``application/x-ole-storage``, ``application/CDFV2``,
  ``application/vnd.ms-office``): the formats listed under ``"ole"`` (Word, Excel, PowerPoint,
  Outlook, Windows Installer, Visio);
* XML (``text/xml``, ``application/xml``): the formats listed under ``"xml"`` and any other
  ``*/*+xml`` type; JSON (``application/json``): any ``*/*+json`` type (GeoJSON...);
* generic text (``text/plain`` and libmagic's guesses at source code, ``text/x-*``): the formats
  listed under ``"text"`` and any textual type (``text/*``, JSON, XML, JavaScript, YAML, TOML,
  ``+json``, ``+xml``);
* unidentified content (``application/octet-stream``): whatever the filename names.

Content that contradicts its name keeps the sniffed type: PNG bytes named ``.docx`` are
``image/png``, HTML named ``.jpg`` is ``text/html``, a zip archive named ``.csv`` stays
``application/zip``. A name can make a file more specific, never something else.
"""

from __future__ import annotations

import functools
import mimetypes
import os
import warnings
from collections.abc import Callable, Mapping
from types import MappingProxyType

#: How many leading bytes are given to libmagic.
SNIFF_BYTES = 2048
DEFAULT_CONTENT_TYPE = "application/octet-stream"

_OOXML = "application/vnd.openxmlformats-officedocument."
_ODF = "application/vnd.oasis.opendocument."

#: The formats built on each container, by filename extension, with their registered types.
CONTAINER_FORMATS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "zip": MappingProxyType(
            {
                ".docx": _OOXML + "wordprocessingml.document",
                ".dotx": _OOXML + "wordprocessingml.template",
                ".docm": "application/vnd.ms-word.document.macroEnabled.12",
                ".xlsx": _OOXML + "spreadsheetml.sheet",
                ".xltx": _OOXML + "spreadsheetml.template",
                ".xlsm": "application/vnd.ms-excel.sheet.macroEnabled.12",
                ".pptx": _OOXML + "presentationml.presentation",
                ".ppsx": _OOXML + "presentationml.slideshow",
                ".potx": _OOXML + "presentationml.template",
                ".pptm": "application/vnd.ms-powerpoint.presentation.macroEnabled.12",
                ".odt": _ODF + "text",
                ".ott": _ODF + "text-template",
                ".ods": _ODF + "spreadsheet",
                ".odp": _ODF + "presentation",
                ".odg": _ODF + "graphics",
                ".epub": "application/epub+zip",
                ".jar": "application/java-archive",
                ".apk": "application/vnd.android.package-archive",
            }
        ),
        "ole": MappingProxyType(
            {
                ".doc": "application/msword",
                ".dot": "application/msword",
                ".xls": "application/vnd.ms-excel",
                ".xlt": "application/vnd.ms-excel",
                ".ppt": "application/vnd.ms-powerpoint",
                ".pps": "application/vnd.ms-powerpoint",
                ".msg": "application/vnd.ms-outlook",
                ".msi": "application/x-msi",
                ".vsd": "application/vnd.visio",
            }
        ),
        "xml": MappingProxyType(
            {
                ".xml": "application/xml",
                ".svg": "image/svg+xml",
                ".rss": "application/rss+xml",
                ".atom": "application/atom+xml",
                ".xsd": "application/xml",
                ".xsl": "application/xslt+xml",
                ".xslt": "application/xslt+xml",
                ".xhtml": "application/xhtml+xml",
                ".kml": "application/vnd.google-earth.kml+xml",
                ".gpx": "application/gpx+xml",
            }
        ),
        "text": MappingProxyType(
            {
                ".txt": "text/plain",
                ".csv": "text/csv",
                ".tsv": "text/tab-separated-values",
                ".json": "application/json",
                ".geojson": "application/geo+json",
                ".md": "text/markdown",
                ".markdown": "text/markdown",
                ".js": "text/javascript",  # RFC 9239
                ".mjs": "text/javascript",
                ".css": "text/css",
                ".ics": "text/calendar",
                ".vtt": "text/vtt",
                ".yaml": "application/yaml",  # RFC 9512
                ".yml": "application/yaml",
                ".toml": "application/toml",
            }
        ),
    }
)

#: libmagic's answers that name a container (lowercase), and which one.
_CONTAINER_OF: Mapping[str, str] = MappingProxyType(
    {
        "application/zip": "zip",
        "application/x-zip": "zip",
        "application/x-zip-compressed": "zip",
        "application/x-ole-storage": "ole",
        "application/cdfv2": "ole",
        "application/cdfv2-unknown": "ole",
        "application/vnd.ms-office": "ole",
        "text/xml": "xml",
        "application/xml": "xml",
        "application/json": "json",
        "text/plain": "text",
        DEFAULT_CONTENT_TYPE: "unknown",
        "application/x-empty": "unknown",
    }
)
_BY_EXTENSION: Mapping[str, str] = MappingProxyType(
    {ext: kind for formats in CONTAINER_FORMATS.values() for ext, kind in formats.items()}
)
_TEXTUAL_SUBTYPES = frozenset(
    {"json", "xml", "javascript", "ecmascript", "x-javascript", "yaml", "x-yaml", "toml"}
)


@functools.lru_cache(maxsize=1)
def _magic_detector() -> Callable[[bytes], str] | None:
    """python-magic's ``from_buffer``, or ``None`` (with one warning) if libmagic is missing.

    Cached so that libmagic loads once; ``_magic_detector.cache_clear()`` resets it.
    """
    try:
        import magic

        detector = magic.Magic(mime=True)
    except (ImportError, OSError, AttributeError) as exc:  # python-magic raises ImportError
        warnings.warn(
            f"libmagic is unavailable ({exc}); content types will be guessed from filenames "
            "only. Install libmagic (Debian: libmagic1, macOS: brew install libmagic).",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
    return detector.from_buffer


def guess_content_type(head: bytes, filename: str | None) -> str:
    """The content type of content starting with ``head`` and named ``filename``.

    Follows the rule of the module docs; without libmagic, the filename alone decides.
    """
    by_name = type_from_filename(filename)
    detector = _magic_detector()
    sniffed = None
    if detector is not None and head:
        try:
            sniffed = detector(head[:SNIFF_BYTES])
        except Exception:  # noqa: BLE001 - libmagic can fail on odd input; sniffing is optional
            sniffed = None
    if sniffed and not (by_name and specialises(by_name, sniffed)):
        return sniffed
    return by_name or DEFAULT_CONTENT_TYPE


def type_from_filename(filename: str | None) -> str | None:
    """The type a filename's extension names: :data:`CONTAINER_FORMATS`, then mimetypes."""
    if not filename:
        return None
    extension = os.path.splitext(filename)[1].lower()
    return _BY_EXTENSION.get(extension) or mimetypes.guess_type(filename, strict=False)[0]


def specialises(by_name: str, sniffed: str) -> bool:
    """Whether ``by_name`` is a format built on the container ``sniffed`` names."""
    container = _container_of(sniffed)
    if container is None:
        return False
    if container == "unknown":
        return True
    if by_name in CONTAINER_FORMATS.get(container, {}).values():
        return True
    subtype = by_name.partition("/")[2]
    if container == "xml":
        return subtype == "xml" or subtype.endswith("+xml")
    if container == "json":
        return subtype.endswith("+json")
    if container == "text":
        return _is_textual(by_name)
    return False


def _container_of(sniffed: str) -> str | None:
    media = sniffed.partition(";")[0].strip().lower()
    if media.startswith("text/x-"):  # libmagic's guesses at source code: text all the same
        return "text"
    return _CONTAINER_OF.get(media)


def _is_textual(media: str) -> bool:
    main, _, subtype = media.partition("/")
    return main == "text" or subtype in _TEXTUAL_SUBTYPES or subtype.endswith(("+json", "+xml"))
