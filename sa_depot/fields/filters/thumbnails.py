"""Thumbnails: derivative images stored next to the original and owned by its descriptor.

``UploadedFileField(filters=[WithThumbnailFilter((128, 128), "PNG")])`` stores, for each image
assigned, a thumbnail that fits in 128x128 (aspect ratio kept) and records it under
filedepot's keys ``thumb_128x128_id``, ``thumb_128x128_path`` and ``thumb_128x128_url``. The
thumbnail is listed in the descriptor's ``files``, so it is rolled back and deleted together
with the original.

The ``_url`` key is stored as ``None``: the attribute ``uploaded.thumb_128x128_url`` computes a
fresh URL from ``thumb_128x128_path`` at each access (a stored presigned or signed URL would
expire; see :mod:`sa_depot.fields.upload`).

Needs Pillow (``pip install 'sa-depot[image]'``), imported only when a thumbnail is made.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from typing import IO, Any

from sa_depot.exceptions import ConfigurationError, UnsupportedContent
from sa_depot.fields.interfaces import DepotFileInfo, FileFilter

#: Files larger than this are spooled to disk, not memory, while Pillow reads them.
SPOOL_LIMIT = 8 * 1024 * 1024


def _pillow() -> Any:
    try:
        from PIL import Image
    except ImportError as exc:
        raise ConfigurationError(
            "thumbnails need Pillow, which is not installed: pip install 'sa-depot[image]'"
        ) from exc
    return Image


def make_thumbnail(source: IO[bytes], size: tuple[int, int], image_format: str) -> bytes:
    """Read an image from ``source`` and return a thumbnail fitting in ``size``, encoded in
    ``image_format`` (a Pillow format name: ``'PNG'``, ``'JPEG'``, ``'WEBP'``...)."""
    image_module = _pillow()
    readable: Any = source
    with contextlib.ExitStack() as stack:
        if not _seekable(source):  # Pillow seeks: copy streams that cannot (bounded memory)
            spooled = stack.enter_context(tempfile.SpooledTemporaryFile(max_size=SPOOL_LIMIT))
            shutil.copyfileobj(source, spooled)
            spooled.seek(0)
            readable = spooled
        try:
            with image_module.open(readable) as image:
                image.draft("RGB", size)  # JPEG decodes at a reduced scale: less memory, time
                image.thumbnail(size)
                if image_format.upper() in {"JPEG", "JPG"} and image.mode not in {"RGB", "L"}:
                    image = image.convert("RGB")
                output = io.BytesIO()
                image.save(output, image_format)
        except image_module.UnidentifiedImageError as exc:
            raise UnsupportedContent(
                f"cannot make a thumbnail: the file is not an image Pillow can read ({exc})"
            ) from exc
        except (image_module.DecompressionBombError, OSError, ValueError) as exc:
            raise UnsupportedContent(f"cannot make a {image_format} thumbnail: {exc}") from exc
    return output.getvalue()


def store_thumbnail(
    uploaded_file: DepotFileInfo,
    size: tuple[int, int],
    image_format: str,
    source: IO[bytes] | None = None,
) -> tuple[str, str, None]:
    """Make a thumbnail of ``uploaded_file``'s content, store it as one of its files and
    return ``(file_id, path, url)``; ``url``, the value to store under filedepot's ``*_url``
    key, is always ``None``: the attribute computes a fresh URL when read.

    :param source: the image to read instead of the stored file (a seekable copy the caller
        holds already, which saves reading the file back from the storage).
    """
    if source is not None:
        data = make_thumbnail(source, size, image_format)
    else:
        with uploaded_file.file as stored:
            data = make_thumbnail(stored, size, image_format)
    extension = image_format.lower()
    content_type = _pillow().MIME.get(image_format.upper(), "application/octet-stream")
    path, file_id = uploaded_file.store_content(
        data, f"thumb_{size[0]}x{size[1]}.{extension}", content_type
    )
    return file_id, path, None


def _seekable(stream: Any) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, ValueError):
        return False


class WithThumbnailFilter(FileFilter):
    """Store a thumbnail of every image saved through the column.

    :param size: the box the thumbnail fits in, ``(width, height)``.
    :param format: the Pillow format it is encoded in.
    """

    def __init__(self, size: tuple[int, int] = (128, 128), format: str = "PNG") -> None:
        width, height = size
        if width <= 0 or height <= 0:
            raise ValueError(f"thumbnail size must be positive, not {size!r}")
        self.thumbnail_size = (int(width), int(height))
        self.thumbnail_format = format

    @property
    def key_prefix(self) -> str:
        return f"thumb_{self.thumbnail_size[0]}x{self.thumbnail_size[1]}"

    def on_save(self, uploaded_file: DepotFileInfo) -> None:
        file_id, path, url = store_thumbnail(
            uploaded_file, self.thumbnail_size, self.thumbnail_format
        )
        uploaded_file[f"{self.key_prefix}_id"] = file_id
        uploaded_file[f"{self.key_prefix}_path"] = path
        uploaded_file[f"{self.key_prefix}_url"] = url

    def __repr__(self) -> str:
        return f"WithThumbnailFilter({self.thumbnail_size!r}, {self.thumbnail_format!r})"


__all__ = ["WithThumbnailFilter", "make_thumbnail", "store_thumbnail"]
