"""UploadedImageWithThumb: an image whose descriptor owns a thumbnail.

``UploadedFileField(upload_type=UploadedImageWithThumb)`` stores each image and a thumbnail
fitting in :attr:`~UploadedImageWithThumb.thumbnail_size`, recorded under filedepot's keys
``thumbnail_id``, ``thumbnail_path`` and ``thumbnail_url``. Subclass it to change the size or
format. ``thumbnail_url`` is stored as ``None``; the attribute computes a fresh URL (see
:mod:`sa_depot.fields.filters.thumbnails`). Needs Pillow (``pip install 'sa-depot[image]'``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from sa_depot.fields.filters.thumbnails import store_thumbnail
from sa_depot.fields.upload import UploadedFile


class UploadedImageWithThumb(UploadedFile):
    """An UploadedFile that also stores a thumbnail of the image."""

    __slots__ = ()

    thumbnail_size: ClassVar[tuple[int, int]] = (128, 128)
    thumbnail_format: ClassVar[str] = "PNG"

    def process_content(
        self, content: Any, filename: str | None = None, content_type: str | None = None
    ) -> None:
        super().process_content(content, filename, content_type)
        file_id, path, url = store_thumbnail(self, self.thumbnail_size, self.thumbnail_format)
        self["thumbnail_id"] = file_id
        self["thumbnail_path"] = path
        self["thumbnail_url"] = url


__all__ = ["UploadedImageWithThumb"]
