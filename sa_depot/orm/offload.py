"""Storage I/O of the lifecycle, kept off the event loop under ``AsyncSession``.

SQLAlchemy's ``AsyncSession`` runs the synchronous ``Session`` inside a greenlet on the event
loop's thread (``sqlalchemy.util.greenlet_spawn``): its flushes, commits and rollbacks, and so
the lifecycle's events, run there, and the database driver's calls inside them are awaited
through ``await_only``, which hands the coroutine to the event loop and resumes the greenlet
with its result. :func:`storage_io` does the same for the lifecycle's storage calls (removing
files after a commit or a rollback, copying a file at a flush): called in such a greenlet, it
runs the call in a worker thread of :data:`pool` and lets the event loop serve other tasks until
it returns. Called anywhere else (a plain ``Session``), it just calls.

The pool is small on purpose: as many threads as the machine has cores (2 to 8). Storage calls
hash and copy what they move, and each thread holding the GIL makes the event loop's thread
wait for it: 8 threads storing 16 MiB each on 2 cores stall the loop for 70 to 130 ms, 2
threads for about 10 ms, for the same total time (benchmarks/RESULTS.md, "event loop").
:func:`configure_pool` changes its size (S3 uploads, which mostly wait on the network, may
want more).

:func:`on_event_loop` tells the set listener that content is being assigned in asynchronous
code, where storing it blocks the loop (see :func:`sa_depot.aio.store`).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

import sqlalchemy
from sqlalchemy.util.concurrency import await_only, in_greenlet

import sa_depot

P = ParamSpec("P")
T = TypeVar("T")


def in_async_session() -> bool:
    """Whether this code runs inside SQLAlchemy's greenlet (an ``AsyncSession`` call)."""
    if "greenlet" not in sys.modules:  # never imported: no AsyncSession has run
        return False
    return in_greenlet()


def on_event_loop() -> bool:
    """Whether this code runs on the thread of a running event loop, outside SQLAlchemy's
    greenlet: blocking here stalls every task of the loop."""
    # _get_running_loop (public in asyncio.events) answers None where get_running_loop
    # raises: this runs on every assignment of a file attribute, mostly without a loop
    if asyncio.events._get_running_loop() is None:
        return False
    return not in_async_session()


#: Threads of the pool by default: the machine's cores, 2 to 8.
DEFAULT_MAX_THREADS = max(2, min(8, os.cpu_count() or 1))


class StoragePool:
    """The worker threads that run storage I/O for asynchronous code, made on first use."""

    def __init__(self, max_threads: int = DEFAULT_MAX_THREADS) -> None:
        self.max_threads = max_threads
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    self.max_threads, thread_name_prefix="sa_depot storage"
                )
            return self._executor

    async def run(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Await ``function(*args, **kwargs)`` run in a thread of the pool, in a copy of the
        caller's context (as ``asyncio.to_thread``). Cancelling the await does not stop the
        call: it runs to its end in its thread."""
        call = functools.partial(contextvars.copy_context().run, function, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self.executor(), call)

    def resize(self, max_threads: int) -> None:
        """Use ``max_threads`` threads from now on (calls in progress finish where they are)."""
        if not isinstance(max_threads, int) or max_threads < 1:
            raise ValueError(f"max_threads={max_threads!r}: use an integer >= 1")
        with self._lock:
            old, self._executor = self._executor, None
            self.max_threads = max_threads
        if old is not None:
            old.shutdown(wait=False)


#: The pool of every asynchronous storage call: the lifecycle's under AsyncSession and
#: :func:`sa_depot.aio.store`.
pool = StoragePool()


def configure_pool(max_threads: int | None = None) -> None:
    """Resize :data:`pool` (``None``: back to :data:`DEFAULT_MAX_THREADS`)."""
    pool.resize(DEFAULT_MAX_THREADS if max_threads is None else max_threads)


def storage_io(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``function(*args, **kwargs)``, in a thread of :data:`pool` when called from an
    ``AsyncSession``'s greenlet (the event loop goes on meanwhile), else right here.
    Exceptions propagate as from a direct call."""
    if in_async_session():
        return await_only(pool.run(function, *args, **kwargs))
    return function(*args, **kwargs)


#: Frames of these files are not the user's: SQLAlchemy's (its attribute events, the
#: ``__init__`` it generates for mapped classes) and ours.
_LIBRARY_FILES = (
    *(os.path.dirname(m.__file__) + os.sep for m in (sqlalchemy, sa_depot) if m.__file__),
    "<sqlalchemy generated",
)


def user_stacklevel() -> int:
    """The ``stacklevel`` of ``warnings.warn`` that names the caller's first frame outside
    SQLAlchemy and sa_depot (the line that assigned the content), as seen from the function
    that calls this one."""
    level = 1
    frame = sys._getframe(2)  # the caller of our caller: where warn(stacklevel=2) would point
    while frame is not None and frame.f_code.co_filename.startswith(_LIBRARY_FILES):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level + 1


__all__ = [
    "DEFAULT_MAX_THREADS",
    "StoragePool",
    "configure_pool",
    "in_async_session",
    "on_event_loop",
    "pool",
    "storage_io",
    "user_stacklevel",
]
