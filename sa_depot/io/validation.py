"""Validation while content streams in: the rules a field declares, checked as the content is
read, once, on its way into the storage.

::

    from sa_depot.io.validation import (
        MiB, ContentTypes, Extensions, ImageDimensions, MaxSize, MinSize,
    )

    def no_spaces(candidate):                  # a user validator: None, or what is wrong
        if " " in candidate.filename:
            return "the filename has spaces"
        return None

    image: Mapped[UploadedFile | None] = mapped_column(UploadedFileField(validators=[
        MinSize(1), MaxSize(10 * MiB),
        ContentTypes("image/png", "image/jpeg"),
        Extensions(".png", ".jpg", ".jpeg"),
        ImageDimensions(max_width=4000, max_height=4000, max_pixels=12_000_000),
        no_spaces,
    ]))

A failed validation raises :class:`~sa_depot.exceptions.ValidationFailed` (a ``ValueError``)
listing every :class:`~sa_depot.exceptions.Violation` found, and stores nothing: the checks run
inside the storage's write, which a raising input aborts atomically on every backend (the
storage contract), so no file, partial or whole, is left.

**When each rule is checked.** The content is read once:

1. *the head*: the first bytes (:data:`~sa_depot.io.content_types.SNIFF_BYTES`, more for an
   image header) are read before anything is written. The content type is sniffed from them
   with the container rules of :mod:`sa_depot.io.content_types`; :class:`ContentTypes`,
   :class:`Extensions` and :class:`ImageDimensions` are checked, and so are :class:`MaxSize`
   and :class:`MinSize` when the size is known already (bytes, a seekable file). Violations
   found here are raised together, before anything is written and without reading further;
2. *while the content streams*: reading stops as soon as it passes :class:`MaxSize` (a 10 GiB
   upload to a 10 MiB field reads about 10 MiB), and the write is aborted;
3. *at the end of the content*: :class:`MinSize` and the user validators, which see the whole
   :class:`Candidate` (filename, types, head, length); their violations are raised together.

Files a field did not store itself (an ``UploadedFile(content)`` made elsewhere, then assigned
or written by an ORM-enabled statement) are checked in one go from the head of the stored file
and the length it recorded (:meth:`Validation.check_stored`), and removed if they fail.

Image dimensions are read from the image's header with Pillow (``pip install
'sa-depot[image]'``), which identifies the format and reads the header without decoding any
pixel: a decompression bomb (a small file declaring 100000 x 100000 pixels) is refused from
its first bytes. A header longer than what was read (a JPEG whose metadata precedes its frame
header) is read further, up to :attr:`ImageDimensions.header_limit`.
"""

from __future__ import annotations

import io
import os
import re
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sa_depot.exceptions import ConfigurationError, ValidationFailed, Violation
from sa_depot.io.content_types import SNIFF_BYTES, guess_content_type

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


class Candidate:
    """What validators see of a file being stored."""

    def __init__(
        self,
        filename: str,
        content_type: str,
        head: bytes,
        read: Callable[[int], bytes] | None,
        *,
        sniffed_type: str | None = None,
        content_length: int | None = None,
    ) -> None:
        #: The normalised filename (``'unnamed'`` for content without one).
        self.filename = filename
        #: The type the file will be stored with: the one declared (a FileIntent's, an
        #: upload's), else the sniffed one.
        self.content_type = content_type
        #: The type of the content itself, sniffed from its first bytes and refined by the
        #: filename (:func:`~sa_depot.io.content_types.guess_content_type`).
        self.sniffed_type = sniffed_type or guess_content_type(head, filename)
        #: The size in bytes: known at the end, or from the start for content whose size
        #: shows (bytes, a seekable file, a stored file); ``None`` until then.
        self.content_length = content_length
        self._head = head
        self._read = read

    @property
    def head(self) -> bytes:
        """The first bytes of the content read so far (at least
        :data:`~sa_depot.io.content_types.SNIFF_BYTES`, unless the content is shorter)."""
        return self._head

    @property
    def extension(self) -> str:
        """The filename's extension, lowercase with its dot (``'.jpg'``), or ``''``."""
        return os.path.splitext(self.filename)[1].lower()

    def read_head(self, size: int) -> bytes:
        """The first ``size`` bytes of the content (fewer if it is shorter), reading further
        if needed. Only while the head is checked: the bytes read are kept and written."""
        while len(self._head) < size and self._read is not None:
            data = self._read(size - len(self._head))
            if not data:
                self._read = None  # the end of the content
                break
            self._head += data
        return self._head[:size]


class Validator:
    """A rule a field's files must follow. Subclass it for rules that look at the head
    (:meth:`check_head`) or at the whole :class:`Candidate` (:meth:`check_end`); a plain
    function ``f(candidate) -> str | None`` is a rule checked at the end (see
    :class:`UserValidator`)."""

    #: Reading stops past this many bytes (:class:`MaxSize`); ``None``: no limit.
    max_bytes: int | None = None

    def check_head(self, candidate: Candidate) -> Iterable[Violation]:
        """Violations found from the head (``candidate.content_length`` is ``None`` unless
        the size is known from the start)."""
        return ()

    def check_end(self, candidate: Candidate) -> Iterable[Violation]:
        """Violations found once the whole content was read (``content_length`` is set)."""
        return ()


def _size(count: int) -> str:
    for unit, factor in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if count >= factor:
            return f"{count} bytes ({count / factor:.1f} {unit})"
    return f"{count} byte" if count == 1 else f"{count} bytes"


def _positive(name: str, value: int | None, *, zero: bool = False) -> int | None:
    """``value`` checked as a limit: ``None``, or an integer >= 1 (>= 0 with ``zero``)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if zero else 1):
        least = 0 if zero else 1
        raise ConfigurationError(f"{name} is a whole number >= {least}, not {value!r}")
    return value


class MaxSize(Validator):
    """At most ``limit`` bytes. Reading stops just past the limit: a larger upload costs
    ``limit`` bytes of reading, not its size."""

    def __init__(self, limit: int) -> None:
        self.limit = self.max_bytes = _positive("max_size", limit, zero=True)

    def _check(self, length: int | None) -> list[Violation]:
        if length is None or self.limit is None or length <= self.limit:
            return []
        message = f"it is {_size(length)}, more than the {_size(self.limit)} allowed"
        return [Violation("max_size", self.limit, length, message)]

    def check_head(self, candidate: Candidate) -> Iterable[Violation]:
        return self._check(candidate.content_length)

    def check_end(self, candidate: Candidate) -> Iterable[Violation]:
        return self._check(candidate.content_length)

    def exceeded(self, read: int) -> Violation:
        """The violation of content that was still going after ``read`` bytes."""
        assert self.limit is not None
        message = (
            f"it is more than the {_size(self.limit)} allowed (reading stopped after {_size(read)})"
        )
        return Violation("max_size", self.limit, read, message)


class MinSize(Validator):
    """At least ``limit`` bytes (``MinSize(1)`` refuses empty files)."""

    def __init__(self, limit: int) -> None:
        self.limit = _positive("min_size", limit, zero=True)

    def _check(self, length: int | None) -> list[Violation]:
        assert self.limit is not None
        if length is None or length >= self.limit:
            return []
        message = f"it is {_size(length)}, less than the {_size(self.limit)} required"
        return [Violation("min_size", self.limit, length, message)]

    def check_head(self, candidate: Candidate) -> Iterable[Violation]:
        return self._check(candidate.content_length)

    def check_end(self, candidate: Candidate) -> Iterable[Violation]:
        return self._check(candidate.content_length)


class ContentTypes(Validator):
    """The content's type must be one of ``allowed`` (``'image/png'``, or ``'image/*'`` for a
    whole family). Checked on the type sniffed from the content, so that a renamed
    executable or a lying browser does not pass, and on the type the file will be stored
    and served with when it was declared otherwise."""

    def __init__(self, *allowed: str) -> None:
        if not allowed or not all(isinstance(a, str) and "/" in a for a in allowed):
            raise ConfigurationError(
                f"ContentTypes takes media types such as 'image/png' or 'image/*', not {allowed!r}"
            )
        self.allowed = tuple(a.strip().lower() for a in allowed)

    def allows(self, content_type: str) -> bool:
        media = content_type.partition(";")[0].strip().lower()
        family = media.partition("/")[0]
        return any(a in (media, f"{family}/*", "*/*") for a in self.allowed)

    def check_head(self, candidate: Candidate) -> Iterable[Violation]:
        listed = ", ".join(self.allowed)
        found: list[Violation] = []
        if not self.allows(candidate.sniffed_type):
            message = f"its content is {candidate.sniffed_type}, not one of {listed}"
            found.append(Violation("content_type", self.allowed, candidate.sniffed_type, message))
        declared = candidate.content_type
        if declared != candidate.sniffed_type and not self.allows(declared):
            message = f"it was declared as {declared}, not one of {listed}"
            found.append(Violation("content_type", self.allowed, declared, message))
        return found


class Extensions(Validator):
    """The filename must end with one of ``allowed`` (``'.jpg'``, ``'jpg'`` or
    ``'.tar.gz'``; case is ignored)."""

    def __init__(self, *allowed: str) -> None:
        if not allowed or not all(isinstance(a, str) and a.strip(".") for a in allowed):
            raise ConfigurationError(
                f"Extensions takes extensions such as '.jpg' or 'pdf', not {allowed!r}"
            )
        self.allowed = tuple("." + a.strip().lower().lstrip(".") for a in allowed)

    def check_head(self, candidate: Candidate) -> Iterable[Violation]:
        if candidate.filename.lower().endswith(self.allowed):
            return ()
        message = (
            f"its filename {candidate.filename!r} does not end with one of "
            f"{', '.join(self.allowed)}"
        )
        return [Violation("extension", self.allowed, candidate.extension, message)]


_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")


class ImageDimensions(Validator):
    """An image whose width, height and number of pixels are within the limits, read from
    its header (no pixel is decoded). Content that is no image Pillow identifies, or whose
    header does not end within :attr:`header_limit` bytes, is refused (rule ``'image'``);
    Pillow's own decompression bomb limit refuses larger images still."""

    def __init__(
        self,
        *,
        max_width: int | None = None,
        max_height: int | None = None,
        min_width: int | None = None,
        min_height: int | None = None,
        max_pixels: int | None = None,
        header_limit: int = MiB,
    ) -> None:
        self.limits = {
            "max_width": _positive("max_width", max_width),
            "max_height": _positive("max_height", max_height),
            "min_width": _positive("min_width", min_width),
            "min_height": _positive("min_height", min_height),
            "max_pixels": _positive("max_pixels", max_pixels),
        }
        #: Bytes read at most to find the header.
        self.header_limit = _positive("header_limit", header_limit) or MiB

    def check_head(self, candidate: Candidate) -> Iterable[Violation]:
        found = read_image_size(candidate, self.header_limit)
        if isinstance(found, Violation):
            return [found]
        width, height = found
        actual = {
            "max_width": width,
            "max_height": height,
            "min_width": width,
            "min_height": height,
            "max_pixels": width * height,
        }
        violations: list[Violation] = []
        for rule, limit in self.limits.items():
            if limit is None:
                continue
            value = actual[rule]
            too_big = rule.startswith("max_") and value > limit
            if too_big or (rule.startswith("min_") and value < limit):
                what = rule.partition("_")[2]
                word = "more" if too_big else "fewer"
                message = (
                    f"the image is {width} x {height} pixels: its {what} is {value}, {word} "
                    f"than the {limit} {'allowed' if too_big else 'required'}"
                )
                violations.append(Violation(rule, limit, value, message))
        return violations


def read_image_size(candidate: Candidate, header_limit: int = MiB) -> tuple[int, int] | Violation:
    """``(width, height)`` of the image ``candidate`` starts with, from its header, reading
    more of the head as needed (up to ``header_limit`` bytes); else the violation (rule
    ``'image'``, or ``'max_pixels'`` for what Pillow calls a decompression bomb)."""
    image_module = _pillow()
    size = max(len(candidate.head), SNIFF_BYTES)
    while True:
        head = candidate.read_head(size)
        try:
            with image_module.open(io.BytesIO(head)) as image:
                width, height = image.size
                return int(width), int(height)
        except image_module.DecompressionBombError as exc:
            match = _BOMB_PIXELS.search(str(exc))
            pixels = int(match.group(1)) if match else None
            limit = 2 * image_module.MAX_IMAGE_PIXELS if image_module.MAX_IMAGE_PIXELS else None
            message = f"the image is a decompression bomb: {exc}"
            return Violation("max_pixels", limit, pixels, message)
        except (OSError, EOFError, ValueError, SyntaxError, IndexError, TypeError):
            pass  # not identified: not an image, or a header longer than what was read
        if len(head) < size:  # the whole content was read
            message = "it is not an image Pillow can identify"
            return Violation("image", "an image", candidate.sniffed_type, message)
        if size >= header_limit:
            message = f"no image header ends within its first {_size(header_limit)}"
            return Violation("image", "an image", None, message)
        size = min(header_limit, max(64 * KiB, size * 8))


def _pillow() -> Any:
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - the image extra is installed in tests
        raise ConfigurationError(
            "ImageDimensions needs Pillow: pip install 'sa-depot[image]'"
        ) from exc
    return Image


class UserValidator(Validator):
    """A function ``check(candidate) -> str | None``, run once the whole content was read:
    ``None`` when the file is fine, else what is wrong with it, which becomes a violation
    named after the function (or ``name``)."""

    def __init__(self, check: Callable[[Candidate], str | None], name: str | None = None) -> None:
        self.check = check
        self.name = name or getattr(check, "__name__", None) or type(check).__name__

    def check_end(self, candidate: Candidate) -> Iterable[Violation]:
        problem = self.check(candidate)
        if problem is None:
            return ()
        return [Violation(self.name, None, None, str(problem))]


ValidatorLike = Validator | Callable[[Candidate], "str | None"]


class Validation:
    """The validators of one field, and the files that passed them."""

    def __init__(self, validators: Iterable[ValidatorLike] = ()) -> None:
        self.validators: tuple[Validator, ...] = tuple(_as_validator(v) for v in validators)
        limits = [v.max_bytes for v in self.validators if v.max_bytes is not None]
        #: Reading stops past this many bytes.
        self.max_bytes: int | None = min(limits) if limits else None
        self._max_rule = next(
            (v for v in self.validators if isinstance(v, MaxSize) and v.limit == self.max_bytes),
            None,
        )
        # The lifecycle records of files this validation passed (weakly: they come and go
        # with their UploadedFile), so that assigning them again checks nothing twice.
        self._passed: weakref.WeakSet[Any] = weakref.WeakSet()

    def __bool__(self) -> bool:
        return bool(self.validators)

    def __repr__(self) -> str:
        return f"<Validation of {len(self.validators)} rule(s)>"

    # -- the three stages --------------------------------------------------------------------
    def check_head(self, candidate: Candidate) -> None:
        """Stage 1: raise :class:`ValidationFailed` with what the head shows."""
        _raise_if([v for rule in self.validators for v in rule.check_head(candidate)])

    def reader(self, stream: Any, candidate: Candidate) -> io.RawIOBase:
        """Stages 2 and 3: ``stream`` (the whole content, head included) read through the
        limits, with the end checks at its end."""
        return _ValidatingReader(stream, self, candidate)

    def check_end(self, candidate: Candidate) -> None:
        _raise_if([v for rule in self.validators for v in rule.check_end(candidate)])

    def check_stored(self, stored: Any, content_length: int | None = None) -> None:
        """Check a stored file (a :class:`~sa_depot.io.interfaces.StoredFile`) in one go:
        its head, and its recorded length (``content_length``, else the file's own).

        :raises ValidationFailed: with every violation.
        """
        head = b""
        while len(head) < SNIFF_BYTES and (data := stored.read(SNIFF_BYTES - len(head))):
            head += data
        candidate = Candidate(
            stored.filename or "unnamed",
            stored.content_type,
            head,
            stored.read,
            content_length=stored.content_length if content_length is None else content_length,
        )
        _raise_if(
            [
                v
                for rule in self.validators
                for stage in (rule.check_head, rule.check_end)
                for v in stage(candidate)
            ]
        )

    # -- which files passed ------------------------------------------------------------------
    def mark_passed(self, token: object) -> None:
        """Remember that the file of ``token`` (its lifecycle record) passed."""
        if token is not None:
            self._passed.add(token)

    def has_passed(self, token: object) -> bool:
        return token is not None and token in self._passed


def _as_validator(value: object) -> Validator:
    if isinstance(value, Validator):
        return value
    if callable(value):
        return UserValidator(value)
    raise ConfigurationError(
        f"a validator is a sa_depot.io.validation.Validator (MaxSize(10 * MiB), "
        f"ContentTypes('image/*')...) or a function of the candidate file, not {value!r}"
    )


def _raise_if(violations: Sequence[Violation]) -> None:
    if violations:
        raise ValidationFailed(violations)


class _ValidatingReader(io.RawIOBase):
    """Reads ``inner`` no further than just past the size limit, then checks the end."""

    def __init__(self, inner: Any, validation: Validation, candidate: Candidate) -> None:
        super().__init__()
        self._inner = inner
        self._validation = validation
        self._candidate = candidate
        self._count = 0
        self._ended = False

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        if self._ended or size == 0:
            return b""
        limit = self._validation.max_bytes
        if limit is not None:
            size = max(1, min(size, limit + 1 - self._count))
        data = self._inner.read(size)
        if not data:
            self._ended = True
            self._candidate.content_length = self._count
            self._validation.check_end(self._candidate)
            return b""
        self._count += len(data)
        if limit is not None and self._count > limit:
            self._ended = True
            rule = self._validation._max_rule
            assert rule is not None
            raise ValidationFailed([rule.exceeded(self._count)])
        return bytes(data)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


__all__ = [
    "GiB",
    "KiB",
    "MiB",
    "Candidate",
    "ContentTypes",
    "Extensions",
    "ImageDimensions",
    "MaxSize",
    "MinSize",
    "UserValidator",
    "Validation",
    "Validator",
    "read_image_size",
]
