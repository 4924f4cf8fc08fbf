"""Storage I/O of the lifecycle, kept off the event loop under ``AsyncSession``.

SQLAlchemy's ``AsyncSession`` runs the synchronous ``Session`` inside a greenlet on the event
loop's thread (``sqlalchemy.util.greenlet_spawn``): its flushes, commits and rollbacks, and so
the lifecycle's events, run there, and the database driver's calls inside them are awaited
through ``await_only``, which hands the coroutine to the event loop and resumes the greenlet
with its result. :func:`storage_io` does the same for the lifecycle's storage calls (removing
files after a commit or a rollback, copying a file at a flush): called in such a greenlet, it
runs the call in a worker thread (``asyncio.to_thread``: the loop's default executor, a bounded
pool) and lets the event loop serve other tasks until it returns. Called anywhere else (a
plain ``Session``), it just calls.

:func:`on_event_loop` tells the set listener that content is being assigned in asynchronous
code, where storing it blocks the loop (see :func:`sa_depot.aio.store`).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
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
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return not in_async_session()


def storage_io(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``function(*args, **kwargs)``, in a worker thread when called from an
    ``AsyncSession``'s greenlet (the event loop goes on meanwhile), else right here.
    Exceptions propagate as from a direct call."""
    if in_async_session():
        return await_only(asyncio.to_thread(function, *args, **kwargs))
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


__all__ = ["in_async_session", "on_event_loop", "storage_io", "user_stacklevel"]
