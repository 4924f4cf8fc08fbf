"""The embedded promotion executor: a pool of worker threads inside the application.

It needs nothing installed and is the default (:mod:`sa_depot.orm.promotions`): the threads
start with the first submission (never at import), run each promotion as soon as it is
submitted and each retry once its back-off has passed, and stop at interpreter exit
(an :mod:`atexit` handler lets the running promotions finish) or at :meth:`shutdown`.

What it has not run when the process ends (retries still waiting, submissions of a killed
process) stays queued in the journal, for ``sa-depot promote`` or the next run: the journal,
not this pool, is the record of what is to do.
"""

from __future__ import annotations

import atexit
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence

import sqlalchemy as sa

from sa_depot.exceptions import ConfigurationError

_log = logging.getLogger(__name__)

#: A promotion job: runs the promotion of one path, returns the seconds to wait before
#: running it again (``None``: done, nothing to retry).
Job = Callable[[sa.Engine, str], "float | None"]


class EmbeddedExecutor:
    """Runs promotion jobs in ``workers`` daemon threads of this process (see the module
    docs).

    :param job: the job to run for each path (:func:`sa_depot.promotion.job.run`).
    :param workers: how many promotions run at once.
    :param engine: the engine promotions use, instead of the one whose commit submitted them.
        Required with ``AsyncSession``: the worker threads need a synchronous engine on the
        same database (``create_engine("postgresql+psycopg://...")`` beside
        ``create_async_engine("postgresql+asyncpg://...")``).
    """

    def __init__(self, job: Job, workers: int = 2, *, engine: sa.Engine | None = None) -> None:
        if workers < 1:
            raise ValueError(f"an EmbeddedExecutor needs at least one worker, not {workers}")
        self._job = job
        self._engine = engine
        self._workers = workers
        self._condition = threading.Condition()
        self._waiting: list[tuple[float, int, sa.Engine, str]] = []  # a heap, by due time
        self._order = itertools.count()
        self._threads: list[threading.Thread] = []
        self._running = 0
        self._stopping = False

    # -- the executor protocol ---------------------------------------------------------------
    def submit(self, engine: sa.Engine, paths: Sequence[str]) -> None:
        """Run the promotions of ``paths`` as soon as a worker is free.

        :raises RuntimeError: the executor was shut down.
        :raises ConfigurationError: ``engine`` is asynchronous and the executor was given no
            synchronous engine.
        """
        engine = self._engine or engine
        if engine.dialect.is_async:
            raise ConfigurationError(
                f"promotions committed through an AsyncSession on {engine.url.drivername} "
                "need a synchronous engine for the worker threads: set_executor("
                "EmbeddedExecutor(run, engine=create_engine(<a sync URL of that database>)))"
            )
        with self._condition:
            if self._stopping:
                raise RuntimeError("this EmbeddedExecutor was shut down: submit to a new one")
            self._start()
            now = time.monotonic()
            for path in paths:
                heapq.heappush(self._waiting, (now, next(self._order), engine, path))
            self._condition.notify_all()

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> None:
        """Stop: no new promotion starts; with ``wait``, wait (at most ``timeout`` seconds)
        for the running ones. Promotions not started stay queued in the journal."""
        with self._condition:
            self._stopping = True
            self._waiting.clear()
            self._condition.notify_all()
            threads = list(self._threads)
        atexit.unregister(self._at_exit)
        if wait:
            deadline = None if timeout is None else time.monotonic() + timeout
            for thread in threads:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                thread.join(left)

    # -- for tests and the command line -----------------------------------------------------
    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no promotion runs or waits (retries included); return ``False`` if
        ``timeout`` seconds passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._condition:
            while self._waiting or self._running:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._condition.wait(left)
            return True

    @property
    def started(self) -> bool:
        """Whether the worker threads were started (by a first submission)."""
        return bool(self._threads)

    # -- inside ------------------------------------------------------------------------------
    def _start(self) -> None:
        if self._threads:
            return
        for number in range(self._workers):
            thread = threading.Thread(
                target=self._work, name=f"sa_depot-promotion-{number}", daemon=True
            )
            self._threads.append(thread)
            thread.start()
        atexit.register(self._at_exit)

    def _at_exit(self) -> None:
        self.shutdown(wait=True, timeout=30)

    def _next(self) -> tuple[sa.Engine, str] | None:
        with self._condition:
            while True:
                if self._stopping:
                    return None
                now = time.monotonic()
                if self._waiting and self._waiting[0][0] <= now:
                    _, _, engine, path = heapq.heappop(self._waiting)
                    self._running += 1
                    return engine, path
                timeout = self._waiting[0][0] - now if self._waiting else None
                self._condition.wait(timeout)

    def _work(self) -> None:
        while True:
            found = self._next()
            if found is None:
                return
            engine, path = found
            delay: float | None = None
            try:
                delay = self._job(engine, path)
            except Exception:  # noqa: BLE001 - a worker thread must survive any job
                _log.exception("sa_depot: the promotion job of %s raised", path)
            with self._condition:
                self._running -= 1
                if delay is not None and not self._stopping:
                    due = time.monotonic() + delay
                    heapq.heappush(self._waiting, (due, next(self._order), engine, path))
                self._condition.notify_all()


__all__ = ["EmbeddedExecutor", "Job"]
