"""Readable keys: stored files named by a template such as ``'{tenant}/{yyyy}/{mm}/{id}{ext}'``.

By default a storage names each file by a UUID (its ``new_file_id``). A *key template* names
it by what the application knows instead, so that a bucket listing or a directory reads
``acme/2026/11/1b4e28ba-2fa1-41d2-883f-0016d3cca427.pdf``. The file id is then that whole key,
``/`` included, everywhere an id goes: descriptors (``'storage/acme/2026/11/<uuid>.pdf'``, the
storage name ending at the first ``/``), URLs, ``sa-depot ls``.

Placeholders (:meth:`KeyTemplate.render`):

=============  ==========================================================================
``{id}``       a fresh UUID (``1b4e28ba-2fa1-41d2-883f-0016d3cca427``)
``{filename}`` the original filename, sanitised (see below): ``unnamed`` for content without
               a name (what every storage calls it), ``file`` if nothing is left of it
``{ext}``      its extension, lowercased, with its dot (``.pdf``); empty when it has none
``{yyyy}``     the year of the upload (UTC), ``{mm}`` its month, ``{dd}`` its day, zero-padded
``{<name>}``   any other name: the value the application passes (``key_values={'tenant':
               'acme'}``), sanitised like a filename, each ``/`` or ``\\`` made ``_``
=============  ==========================================================================

**Unique.** Every key holds a UUID, so no two uploads share one and none overwrites another:
a template without ``{id}`` gets a ``{id}/`` directory in front of its last part
(``'{tenant}/{filename}'`` names ``acme/<uuid>/report.pdf``, keeping the filename whole, as
filestore's ``{filename}`` keys do once made unique).

**Safe.** Values and filenames go through the one filename normalisation
(:func:`sa_depot.io.filenames.normalize_filename`: NFC, no control, bidirectional or
zero-width characters), lose their separators, leading dots and trailing dots and spaces, and
are cut to :data:`MAX_VALUE_BYTES`; a value left empty raises
:class:`~sa_depot.exceptions.InvalidKey` (nothing is stored). :func:`is_valid_key` accepts
as an id only keys of ``/`` separated parts, none empty, none starting with ``.`` (so no
``..``, and no clash with the storages' own ``.sa-depot-*`` directories), none ending with
``.`` or a space (which some file systems and Azure drop), without ``\\`` or invisible
characters, each at most :data:`MAX_SEGMENT_BYTES` and the whole at most
:data:`MAX_KEY_BYTES` in UTF-8, in Unicode NFC, holding a UUID. So a key can neither climb
out of a storage nor be an absolute path, and a plain UUID id stays what it was.

The template is applied once, by :meth:`FileStorage.store
<sa_depot.io.interfaces.FileStorage.store>` (the caller's ``key``, else a column's, carried by
:class:`~sa_depot.io.utils.KeyedContent`, else the storage's ``key_template``); a backend's
primitives only ever see the finished id.
"""

from __future__ import annotations

import re
import string
import unicodedata
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timezone

from sa_depot.exceptions import InvalidKey
from sa_depot.io.filenames import normalize_filename

__all__ = [
    "MAX_KEY_BYTES",
    "MAX_SEGMENT_BYTES",
    "MAX_VALUE_BYTES",
    "KeyTemplate",
    "as_key_template",
    "copy_template",
    "is_valid_key",
]

#: The longest key, in UTF-8 bytes: ``'<storage>/<key>'`` fits the 512 characters of the
#: registry's path column, and ``<prefix><key>`` the 1,024 bytes of an S3, GCS, Azure or Swift
#: object name.
MAX_KEY_BYTES = 400
#: The longest part between two ``/``, in UTF-8 bytes: a local storage adds up to 26 bytes
#: (``.json.<16 hex digits>.tmp``) within the 255 bytes of a file name.
MAX_SEGMENT_BYTES = 200
#: The longest sanitised value or filename put into a key, in UTF-8 bytes.
MAX_VALUE_BYTES = 120
#: The placeholders every template may use without the application passing them.
BUILTIN_PLACEHOLDERS = frozenset({"id", "filename", "ext", "yyyy", "mm", "dd"})

_UUID_IN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_EXTENSION = re.compile(r"\A[A-Za-z0-9]{1,16}\Z")
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
#: Printable ASCII but the backslash: what an ASCII key may hold.
_ASCII_VISIBLE = re.compile(r"[\x20-\x5b\x5d-\x7e]+")
_FORMATTER = string.Formatter()


def is_valid_key(key: str) -> bool:
    """Whether ``key`` is a safe key (see the module docs): what every storage accepts as an
    id besides its own format."""
    if not key or _UUID_IN.search(key) is None:
        return False
    if key.isascii():  # the common case, without a look at each character's category
        return (
            len(key) <= MAX_KEY_BYTES
            and _ASCII_VISIBLE.fullmatch(key) is not None
            and all(_is_valid_segment(segment, ascii_only=True) for segment in key.split("/"))
        )
    try:
        if len(key.encode("utf-8")) > MAX_KEY_BYTES:
            return False
    except UnicodeEncodeError:  # a lone surrogate
        return False
    if not unicodedata.is_normalized("NFC", key):
        return False
    return all(_is_valid_segment(segment) for segment in key.split("/"))


def _is_valid_segment(segment: str, *, ascii_only: bool = False) -> bool:
    if not segment or segment[0] in ". " or segment[-1] in ". ":
        return False
    if ascii_only:  # the characters were checked already
        return len(segment) <= MAX_SEGMENT_BYTES
    if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
        return False
    return not any(char == "\\" or unicodedata.category(char) in _INVISIBLE for char in segment)


class KeyTemplate:
    """A template naming stored files, such as ``'{tenant}/{yyyy}/{mm}/{id}{ext}'``.

    Checked when made: placeholders are plain names (no ``{0}``, ``{a.b}``, ``{a!r}`` nor
    ``{a:>4}``), and the literal text is made of valid key parts (no leading ``/``, no ``//``,
    ``.`` or ``..`` part, no ``\\`` nor control character).

    :raises InvalidKey: naming what is wrong with ``template``.
    """

    __slots__ = ("_parts", "placeholders", "template")

    def __init__(self, template: str) -> None:
        if not isinstance(template, str) or not template.strip():
            raise InvalidKey(f"a key template must be a non-empty string, not {template!r}")
        #: The template as given.
        self.template = template
        if "{id}" not in template:
            head, slash, last = template.rpartition("/")
            template = f"{head}{slash}{{id}}/{last}"
        parts: list[tuple[str, str | None]] = []
        try:
            parsed = list(_FORMATTER.parse(template))
        except ValueError as exc:
            raise InvalidKey(f"key template {self.template!r} is malformed: {exc}") from exc
        for literal, name, spec, conversion in parsed:
            if name is not None and (not name.isidentifier() or spec or conversion):
                shown = "{" + name + (f"!{conversion}" if conversion else "")
                shown += (f":{spec}" if spec else "") + "}"
                raise InvalidKey(
                    f"key template {self.template!r}: {shown} is not a placeholder; use plain "
                    "names such as {tenant}, {yyyy}, {id}"
                )
            parts.append((literal, name))
        self._parts = tuple(parts)
        #: The names of the placeholders the template uses, ``{id}`` included.
        self.placeholders = frozenset(name for _, name in parts if name is not None)
        # the literal text with every placeholder standing for a harmless value
        sample = "".join(literal + ("x" if name else "") for literal, name in parts)
        if not all(_is_valid_segment(segment) for segment in sample.split("/")):
            raise InvalidKey(
                f"key template {self.template!r} makes unsafe keys: parts are separated by "
                "single '/', none may be empty, start with '.', end with '.' or a space, "
                f"hold '\\' or control characters, and each is at most {MAX_SEGMENT_BYTES} bytes"
            )

    @property
    def needs(self) -> frozenset[str]:
        """The placeholders the application must give values for."""
        return self.placeholders - BUILTIN_PLACEHOLDERS

    def render(
        self,
        *,
        filename: str | None = None,
        values: Mapping[str, object] | None = None,
        now: datetime | None = None,
        new_id: Callable[[], str] | None = None,
    ) -> str:
        """The key for one new file.

        :param filename: the original filename (``{filename}``, ``{ext}``).
        :param values: the application's values for its own placeholders.
        :param now: the upload time for ``{yyyy}``, ``{mm}``, ``{dd}`` (default: now, UTC).
        :param new_id: makes ``{id}`` (default: a random UUID).
        :raises InvalidKey: a placeholder has no value, a value is left empty once sanitised,
            or the key is longer than :data:`MAX_KEY_BYTES` or a part than
            :data:`MAX_SEGMENT_BYTES`.
        """
        given = dict(values or {})
        missing = sorted(self.needs - given.keys())
        if missing:
            raise InvalidKey(
                f"key template {self.template!r} needs a value for "
                + ", ".join("{" + name + "}" for name in missing)
                + ": pass key_values={"
                + ", ".join(f"{name!r}: ..." for name in missing)
                + "}"
            )
        moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
        name = sanitize_filename(filename)
        stem, dot, extension = name.rpartition(".")
        builtin = {
            "id": (new_id or _random_id)(),
            "filename": name,
            "ext": f".{extension.lower()}" if dot and stem and _EXTENSION.match(extension) else "",
            "yyyy": f"{moment.year:04d}",
            "mm": f"{moment.month:02d}",
            "dd": f"{moment.day:02d}",
        }
        pieces: list[str] = []
        for literal, placeholder in self._parts:
            pieces.append(literal)
            if placeholder is None:
                continue
            if placeholder in builtin and placeholder not in given:
                pieces.append(builtin[placeholder])
            else:
                pieces.append(sanitize_value(placeholder, given[placeholder]))
        key = "".join(pieces)
        if not is_valid_key(key):
            raise InvalidKey(
                f"key template {self.template!r} made {key!r}, which is not a valid key: at "
                f"most {MAX_KEY_BYTES} bytes in all and {MAX_SEGMENT_BYTES} per part between "
                "'/'; use shorter values or a shorter template"
            )
        return key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KeyTemplate) and other.template == self.template

    def __hash__(self) -> int:
        return hash(self.template)

    def __repr__(self) -> str:
        return f"KeyTemplate({self.template!r})"


def copy_template(template: KeyTemplate, source_id: str) -> KeyTemplate:
    """How a column keyed by ``template`` names its copy of the file ``source_id`` (a row
    given another row's file stores a copy, and no application value comes with it).

    ``template`` itself when it needs no application value; else the source's own key with a
    fresh UUID in place of its UUID (``acme/2026/11/<uuid>.pdf`` copies to
    ``acme/2026/11/<new uuid>.pdf``); else, for a source named by a plain UUID, a UUID.
    """
    if not template.needs:
        return template
    found = list(_UUID_IN.finditer(source_id))
    if found and source_id != found[-1].group() and is_valid_key(source_id):
        start, end = found[-1].span()
        return KeyTemplate(_escaped(source_id[:start]) + "{id}" + _escaped(source_id[end:]))
    return KeyTemplate("{id}")


def _escaped(literal: str) -> str:
    return literal.replace("{", "{{").replace("}", "}}")


def as_key_template(value: KeyTemplate | str | None) -> KeyTemplate | None:
    """``value`` as a :class:`KeyTemplate` (a string is parsed; ``None`` stays ``None``)."""
    if value is None or isinstance(value, KeyTemplate):
        return value
    return KeyTemplate(value)


def sanitize_filename(filename: str | None) -> str:
    """The original filename as ``{filename}`` puts it in a key: normalised, without leading
    dots or trailing dots and spaces, at most :data:`MAX_VALUE_BYTES`; ``'file'`` when
    nothing is left."""
    return _sanitized(normalize_filename(filename)) or "file"


def sanitize_value(name: str, value: object) -> str:
    """An application value as ``{name}`` puts it in a key (raises :class:`InvalidKey` when
    nothing is left of it)."""
    text = value if isinstance(value, str) else str(value)
    cleaned = _sanitized(normalize_filename(text.replace("/", "_").replace("\\", "_")))
    if not cleaned:
        raise InvalidKey(
            f"the value {value!r} given for {{{name}}} is empty once made safe for a key "
            "(separators, dots at the ends and invisible characters are removed)"
        )
    return cleaned


def _sanitized(name: str | None) -> str:
    if not name:
        return ""
    name = name.lstrip(". ").rstrip(". ")
    if len(name.encode("utf-8")) <= MAX_VALUE_BYTES:
        return name
    stem, dot, extension = name.rpartition(".")
    suffix = f".{extension}" if dot and stem and _EXTENSION.match(extension) else ""
    body = stem if suffix else name
    budget = MAX_VALUE_BYTES - len(suffix)
    cut = body.encode("utf-8")[:budget].decode("utf-8", "ignore").rstrip(". ")
    return cut + suffix


def _random_id() -> str:
    return str(uuid.uuid4())
