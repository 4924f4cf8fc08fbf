"""Asynchronous code: storing content without blocking the event loop.

With ``AsyncSession``, sa_depot's guarantees hold as with ``Session`` (see docs/async.md): the
lifecycle's events run inside SQLAlchemy's greenlet, and the storage calls they make (removing
files after a commit or a rollback, copying a file at a flush) run in worker threads
(:mod:`sa_depot.orm.offload`). What remains on the caller is the upload itself: assigning
content to a file attribute stores it at once, which on the event loop would block every
task until the storage answers. Store it first with :func:`store`, in a worker thread, and
assign the :class:`~sa_depot.fields.upload.UploadedFile` it returns::

    content = await sa_depot.aio.store(upload_file, field=Document.content)
    session.add(Document(content=content))
    await session.commit()

The uploaded file is answered for as any fresh upload is (docs/orm.md): the transaction that
the object joins keeps it on commit and removes it on rollback; if nothing ever saves it (the
task was cancelled during the upload, the request failed before the assignment), it is
removed at the end of a later transaction, or at exit.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sa_depot.exceptions import ConfigurationError
from sa_depot.fields.interfaces import FileFilter
from sa_depot.fields.upload import UploadedFile
from sa_depot.orm.mapped import FileField
from sa_depot.orm.offload import configure_pool, pool

__all__ = ["configure", "store"]


def configure(*, max_threads: int | None = None) -> None:
    """Set the number of worker threads that run storage calls for asynchronous code
    (:func:`store`, and the lifecycle under ``AsyncSession``); ``None`` restores the default,
    the machine's cores (2 to 8). More threads stall the event loop longer (each holds the
    GIL while it hashes and copies), fewer queue uploads sooner: see docs/async.md."""
    configure_pool(max_threads)


async def store(
    content: Any,
    *,
    field: Any = None,
    storage: str | None = None,
    filters: Iterable[FileFilter] = (),
) -> UploadedFile:
    """Store ``content`` in a worker thread and return the UploadedFile to assign.

    :param content: what a file attribute accepts: bytes, a binary file object, a
        :class:`~sa_depot.io.utils.FileIntent`, a web framework's upload (Starlette's and
        FastAPI's ``UploadFile`` included: its file is read in the worker thread).
    :param field: the mapped attribute the result will be assigned to (``Document.content``),
        or its ``UploadedFileField``: the content is stored as that column stores it (its
        storage, upload type and filters, thumbnails included).
    :param storage: without ``field``, the name of the storage (default: the default one).
    :param filters: without ``field``, the filters to run (their work is done in the thread).

    Raises what the storage raises (:class:`~sa_depot.exceptions.StorageError`,
    :class:`~sa_depot.exceptions.UnsupportedContent`...), and
    :class:`~sa_depot.exceptions.ConfigurationError` for a ``field`` that holds no files or
    given with ``storage``/``filters``. The worker thread comes from sa_depot's pool of storage
    threads (:func:`configure`); cancelling the await leaves the upload to finish there, and
    the file, which nothing saved, is removed afterwards (see above).
    """
    if field is not None:
        if storage is not None or filters:
            raise ConfigurationError(
                "store(): give field=... or storage=/filters=, not both (the field's column "
                "decides where and how its content is stored)"
            )
        column_type = _file_field(field)
        return await pool.run(_upload_with, column_type, content)
    chosen = tuple(filters)
    return await pool.run(UploadedFile, content, storage, filters=chosen)


def _upload_with(column_type: FileField, content: Any) -> UploadedFile:
    uploaded = column_type.upload(content)
    assert isinstance(uploaded, UploadedFile)
    return uploaded


def _file_field(field: Any) -> FileField:
    """The column type behind ``field``: a mapped attribute, a Column or the type itself."""
    candidate = field
    prop = getattr(field, "property", None)  # an InstrumentedAttribute (Document.content)
    columns = getattr(prop, "columns", None)
    if columns:
        candidate = columns[0]
    candidate = getattr(candidate, "type", candidate)  # a Column
    if isinstance(candidate, FileField) and getattr(candidate, "sa_depot_file_field", False):
        return candidate
    raise ConfigurationError(
        f"store(field={field!r}): not a file attribute; pass the mapped attribute of an "
        "UploadedFileField column (Document.content) or the UploadedFileField itself"
    )
