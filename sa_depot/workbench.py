"""A private scratch directory for processing stored files with tools that need a path.

Pillow, ffmpeg or libreoffice want a file on local disk; stored files may live in S3. A
:class:`Workbench` is a temporary directory of its own (mode ``0700``), removed with
everything in it when the ``with`` block ends, whether it ends normally or by an exception::

    from sa_depot.workbench import Workbench

    with Workbench() as bench:
        source = bench.localized_file(DepotManager.get("queue"), file_id)
        subprocess.run(["ffmpeg", "-i", str(source), str(bench.path("out.webm"))], check=True)

:meth:`Workbench.localized_file` gives a local path to a stored file: the file itself when
its storage keeps it on local disk (no copy), else a copy streamed into the workbench in
chunks (memory stays bounded whatever the size). Treat the path as read-only: for a local
storage it is the stored file.

A promotion (:mod:`sa_depot.promotion`) runs the column's filters inside a workbench;
:func:`current` gives it to them (``None`` outside a promotion). The idea comes from
MediaGoblin's workbench, which its media processors use the same way.
"""

from __future__ import annotations

import contextvars
import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType

from sa_depot.io.interfaces import DEFAULT_CHUNK_SIZE, FileStorage

_current: contextvars.ContextVar[Workbench | None] = contextvars.ContextVar(
    "sa_depot_workbench", default=None
)


class Workbench:
    """A private temporary directory, made on entering the ``with`` block and removed on
    leaving it (see the module docs).

    :param parent: where to make it (default: the system's temporary directory,
        :func:`tempfile.gettempdir`).
    :raises RuntimeError: on using a workbench outside its ``with`` block.
    """

    def __init__(self, parent: str | os.PathLike[str] | None = None) -> None:
        self._parent = None if parent is None else os.fspath(parent)
        self._directory: Path | None = None
        self._token: contextvars.Token[Workbench | None] | None = None

    def __enter__(self) -> Workbench:
        self._directory = Path(tempfile.mkdtemp(prefix="sa_depot-workbench-", dir=self._parent))
        self._token = _current.set(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None
        directory, self._directory = self._directory, None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)

    @property
    def directory(self) -> Path:
        """The workbench's directory (exists only inside the ``with`` block)."""
        if self._directory is None:
            raise RuntimeError("this Workbench is not open: use it inside `with Workbench():`")
        return self._directory

    def path(self, name: str) -> Path:
        """A path for a file named ``name`` inside the workbench (nothing is created).

        :raises ValueError: ``name`` is not a plain file name (a separator, ``..``).
        """
        if not name or name in (".", "..") or os.sep in name or (os.altsep or os.sep) in name:
            raise ValueError(f"a workbench file name is a plain name, not {name!r}")
        return self.directory / name

    def localized_file(
        self, storage: FileStorage, file_id: str, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> Path:
        """A local path holding the stored file ``file_id`` of ``storage``: the stored file
        itself when the storage keeps it on local disk, else a copy streamed into the
        workbench (``chunk_size`` bytes at a time).

        :raises FileNotFoundError: (the storage's own error) the file does not exist.
        """
        with storage.get(file_id) as stored:
            local = stored.local_path
            if local is not None and os.path.isfile(local):
                return Path(local)
            handle, name = tempfile.mkstemp(prefix="local-", dir=self.directory)
            with os.fdopen(handle, "wb") as target:
                for chunk in stored.chunks(chunk_size):
                    target.write(chunk)
            return Path(name)


def localized_file(storage: FileStorage, file_id: str) -> Path:
    """:meth:`Workbench.localized_file` in the current workbench (inside a promotion, or a
    ``with Workbench()`` block of the caller).

    :raises RuntimeError: there is no current workbench.
    """
    bench = current()
    if bench is None:
        raise RuntimeError(
            "localized_file() needs a workbench: call it inside `with Workbench() as bench:` "
            "(bench.localized_file(...)) or in a promotion's filters"
        )
    return bench.localized_file(storage, file_id)


def current() -> Workbench | None:
    """The innermost open workbench of this thread or task, or ``None``."""
    return _current.get()


__all__ = ["Workbench", "current", "localized_file"]
