"""UploadedImageWithThumb: an image, shrunk to at most :attr:`~UploadedImageWithThumb.max_size`
pixels, whose descriptor owns a thumbnail (filedepot's ``UploadedImageWithThumb``).

``UploadedFileField(upload_type=UploadedImageWithThumb)`` stores each image (scaled down to fit
in ``max_size`` x ``max_size``, 1024 by default, when it is larger) and a thumbnail fitting in
:attr:`~UploadedImageWithThumb.thumbnail_size`, recorded under filedepot's keys ``thumb_id``,
``thumb_path`` and ``_thumb_public_url``; the attributes ``thumb_file`` (the opened thumbnail)
and ``thumb_url`` give them back. Subclass it to change the sizes or the thumbnail format.

``_thumb_public_url`` is stored as ``None``: ``thumb_url`` computes a fresh URL at each access
(see :func:`sa_depot.fields.upload.url_for_path`). Rows written by earlier sa_depot versions,
with ``thumbnail_id``/``thumbnail_path``/``thumbnail_url``, keep working: ``thumb_url`` and
``thumb_file`` read their thumbnail, and ``thumbnail_url`` still answers.

A column with this upload type stores only UploadedImageWithThumb descriptors: a plain
:class:`~sa_depot.fields.upload.UploadedFile` assigned to it is refused with a ``ValueError``
when the row is flushed, as in filedepot. Content that is not an image Pillow reads is refused
with :class:`~sa_depot.exceptions.UnsupportedContent` before anything is stored. Needs Pillow
(``pip install 'sa-depot[image]'``).
"""

from __future__ import annotations

import tempfile
from typing import IO, Any, ClassVar

from sa_depot.exceptions import UnsupportedContent
from sa_depot.fields.filters.thumbnails import SPOOL_LIMIT, _pillow, store_thumbnail
from sa_depot.fields.upload import UploadedFile, url_for_path
from sa_depot.io.interfaces import DEFAULT_CHUNK_SIZE, StoredFile
from sa_depot.io.utils import FileIntent, prepare_content
from sa_depot.manager import DepotManager


class UploadedImageWithThumb(UploadedFile):
    """An UploadedFile that stores an image no larger than :attr:`max_size`, and a thumbnail."""

    __slots__ = ()

    #: Images larger than this (width or height, in pixels) are scaled down to fit before
    #: they are stored.
    max_size: ClassVar[int] = 1024
    thumbnail_size: ClassVar[tuple[int, int]] = (128, 128)
    thumbnail_format: ClassVar[str] = "PNG"

    def process_content(
        self, content: Any, filename: str | None = None, content_type: str | None = None
    ) -> None:
        stream, filename, content_type = prepare_content(content, filename, content_type)
        # Pillow seeks: a bounded spool (memory, then disk) holds the upload while it is read
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_LIMIT) as spool:
            _copy(stream, spool)
            spool.seek(0)
            with _open_image(spool) as image:
                if max(image.size) > self.max_size:
                    with tempfile.SpooledTemporaryFile(max_size=SPOOL_LIMIT) as resized:
                        _shrink(image, self.max_size, resized)
                        super().process_content(FileIntent(resized, filename, content_type))
                else:
                    spool.seek(0)  # Pillow has read the header
                    super().process_content(FileIntent(spool, filename, content_type))
            spool.seek(0)
            file_id, path, url = store_thumbnail(
                self, self.thumbnail_size, self.thumbnail_format, source=spool
            )
        self["thumb_id"] = file_id
        self["thumb_path"] = path
        self["_thumb_public_url"] = url

    def _thumbnail_path(self) -> str:
        # rows written by earlier sa_depot versions have thumbnail_path instead
        path = self.get("thumb_path") or self.get("thumbnail_path")
        if not isinstance(path, str):
            raise AttributeError(f"{type(self).__name__} records no thumbnail (thumb_path)")
        return path

    @property
    def thumb_file(self) -> StoredFile:
        """The thumbnail, open for reading: close it (it is a context manager)."""
        return DepotManager.get_file(self._thumbnail_path())

    @property
    def thumb_url(self) -> str:
        """A URL serving the thumbnail, computed afresh at each access (the storage's public
        URL, else the middleware's); raises
        :class:`~sa_depot.exceptions.ConfigurationError` when there is neither."""
        saved = self.get("_thumb_public_url") or self.get("thumbnail_url")
        return url_for_path(self._thumbnail_path(), saved=saved)


def _copy(stream: IO[bytes], target: IO[bytes]) -> None:
    while chunk := stream.read(DEFAULT_CHUNK_SIZE):
        target.write(chunk)


def _shrink(image: Any, max_size: int, target: IO[bytes]) -> None:
    """Write ``image`` scaled down to fit in ``max_size`` x ``max_size``, in its own format."""
    image_format = image.format
    try:
        shrunk = image.copy()
        shrunk.thumbnail((max_size, max_size))
        shrunk.save(target, image_format)
    except (OSError, ValueError) as exc:
        raise UnsupportedContent(f"cannot scale the image down to {max_size} px: {exc}") from exc
    target.seek(0)


def _open_image(readable: IO[bytes]) -> Any:
    image_module = _pillow()
    try:
        return image_module.open(readable)
    except image_module.UnidentifiedImageError as exc:
        raise UnsupportedContent(
            f"cannot store an image: the file is not an image Pillow can read ({exc})"
        ) from exc
    except (image_module.DecompressionBombError, OSError, ValueError) as exc:
        raise UnsupportedContent(f"cannot store an image: {exc}") from exc


__all__ = ["UploadedImageWithThumb"]
