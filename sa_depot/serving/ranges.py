"""Byte ranges: which parts of a file a request gets (RFC 9110 section 14).

The Range header is parsed by Werkzeug, which already returns ``None`` for a malformed header
and for ranges that overlap or are out of ascending order. Such a header is ignored and the
whole file sent (RFC 9110 section 14.2 lets a server ignore any Range it will not honour); so
is one asking for more than ``max_ranges`` parts, or whose multipart answer would be no
smaller than the whole file. 416 is reserved for a Range that no part of the file satisfies.

An empty representation ignores Range: it answers 200 with its empty body, whatever ranges were
asked for. RFC 9110 section 14.1.3 makes only a suffix range satisfiable on zero bytes, and a 206
cannot describe zero bytes, so the strict answer to ``bytes=0-`` would be 416; but media players
and download managers send ``bytes=0-`` blindly, and Werkzeug (2.0, pallets/werkzeug#1937) and
Rack (rack/rack#2159) answer an empty file with 200 for that reason, as RFC 9110 section
14.2 allows (a server may ignore Range).
"""

from __future__ import annotations

from dataclasses import dataclass

from werkzeug.datastructures import ContentRange, Range


@dataclass(frozen=True)
class ByteRange:
    """``start`` to ``stop`` (exclusive) within a file of ``complete_length`` bytes."""

    start: int
    stop: int
    complete_length: int

    @property
    def length(self) -> int:
        return self.stop - self.start

    @property
    def content_range(self) -> str:
        return ContentRange("bytes", self.start, self.stop, self.complete_length).to_header()


class UnsatisfiableRange(Exception):
    """No requested range overlaps the file: answer 416 with ``Content-Range: bytes */len``."""

    def __init__(self, complete_length: int) -> None:
        super().__init__(f"no requested range lies within the {complete_length} bytes")
        self.complete_length = complete_length

    @property
    def content_range(self) -> str:
        return ContentRange("bytes", None, None, self.complete_length).to_header()


def select_ranges(requested: Range | None, length: int, max_ranges: int) -> list[ByteRange] | None:
    """The satisfiable ranges of ``requested``, in request order; ``None`` for the whole file
    (always for an empty file, ``length == 0``).

    Raises :class:`UnsatisfiableRange` when ranges were asked for and none is satisfiable.
    """
    if requested is None or requested.units != "bytes" or len(requested.ranges) > max_ranges:
        return None
    if length == 0:
        return None  # an empty representation ignores Range (see the module docs)
    selected: list[ByteRange] = []
    for start, stop in requested.ranges:
        if start < 0:  # suffix range "-N": the last N bytes, or the whole file if shorter
            start, stop = max(0, length + start), length
        elif stop is None or stop > length:
            stop = length
        if start < length:
            selected.append(ByteRange(start, stop, length))
    if not selected:
        raise UnsatisfiableRange(length)
    return selected
