"""Promotions run by Dramatiq workers (extra ``sa-depot[dramatiq]``).

Why Dramatiq: retries with exponential back-off and a maximum number of retries are built in
(its ``Retries`` middleware), it runs on Redis or RabbitMQ, it is small (a worker is a
process of threads, no beat, no result backend needed) and it ships type hints. Celery does
more than promotions need, with far more configuration; RQ has no back-off of its own.

One module of the application declares the broker and the executor; both the web processes
and the workers import it::

    # myapp/tasks.py
    import dramatiq
    from sa_depot.promotion import set_executor
    from sa_depot.promotion.dramatiq import DramatiqExecutor, redis_broker

    from myapp.database import engine
    import myapp.models  # noqa: F401 - the workers need the mapped classes

    broker = redis_broker("redis://127.0.0.1:6379/0")
    dramatiq.set_broker(broker)
    promotions = DramatiqExecutor(broker, engine)
    set_executor(promotions)

and the workers run ``dramatiq myapp.tasks``. A message carries only the queued file's path:
the worker promotes it with its own engine (:func:`sa_depot.promotion.promote`). A failed
attempt is counted in the journal and raised, so that Dramatiq retries it after its back-off;
the last attempt (the policy's ``max_attempts``) leaves the promotion ``failed`` in the
journal (``sa-depot promote --list``) and the message done.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dramatiq
import sqlalchemy as sa

from sa_depot.exceptions import DepotError
from sa_depot.promotion.job import Outcome, policy, promote

#: The Dramatiq queue promotions go to, unless told otherwise.
DEFAULT_QUEUE = "sa_depot_promotions"


def redis_broker(url: str, *, namespace: str = "dramatiq", **options: Any) -> dramatiq.Broker:
    """A Dramatiq ``RedisBroker`` on ``url`` (``redis://host:port/db``), typed (Dramatiq's
    constructor is not annotated); ``options`` are its other keyword arguments
    (``heartbeat_timeout``, ``maintenance_chance``...). It connects at the first message, not
    here."""
    from dramatiq.brokers.redis import RedisBroker

    broker: dramatiq.Broker = RedisBroker(  # type: ignore[no-untyped-call]
        url=url, namespace=namespace, **options
    )
    return broker


class PromotionFailed(DepotError, RuntimeError):
    """A promotion attempt failed and will be retried (its error is in the journal)."""


class DramatiqExecutor:
    """Sends promotions to Dramatiq workers (see the module docs).

    :param broker: the Dramatiq broker (a ``RedisBroker``, a ``RabbitmqBroker``).
    :param engine: the engine the workers promote with (the application's database).
    :param queue_name: the Dramatiq queue of the promotion actor.
    :param actor_name: the actor's name, unique on the broker.
    :param min_backoff: milliseconds before the first retry; it doubles after each failure
        up to ``max_backoff`` (Dramatiq's ``Retries`` middleware, with jitter).
    :param max_attempts: attempts before the promotion is ``failed`` (default: the policy's,
        :func:`sa_depot.promotion.configure`).
    """

    def __init__(
        self,
        broker: dramatiq.Broker,
        engine: sa.Engine,
        *,
        queue_name: str = DEFAULT_QUEUE,
        actor_name: str = "sa_depot_promote",
        min_backoff: int = 2_000,
        max_backoff: int = 600_000,
        max_attempts: int | None = None,
    ) -> None:
        self.engine = engine
        self.max_attempts = max_attempts
        attempts = max_attempts or policy.max_attempts
        self.actor: dramatiq.Actor[[str], str] = dramatiq.Actor(
            self.perform,
            broker=broker,
            actor_name=actor_name,
            queue_name=queue_name,
            priority=0,
            options={
                "max_retries": attempts - 1,
                "min_backoff": min_backoff,
                "max_backoff": max_backoff,
                "retry_when": _retry_when(attempts),
            },
        )

    def submit(self, engine: sa.Engine, paths: Sequence[str]) -> None:
        """Send one message per path (the workers use their own engine)."""
        for path in paths:
            self.actor.send(path)

    def shutdown(self, wait: bool = True) -> None:
        """Nothing to stop here: the broker and the workers are the application's."""

    def perform(self, path: str) -> str:
        """The actor: promote ``path``; raise :class:`PromotionFailed` for Dramatiq to retry
        a failed attempt. Returns the outcome's name."""
        outcome = promote(self.engine, path, max_attempts=self.max_attempts)
        if outcome is Outcome.FAILED:
            raise PromotionFailed(
                f"the promotion of {path} failed (see last_error in sa_depot_promotions); "
                "Dramatiq retries it after its back-off"
            )
        return str(outcome.value)


def _retry_when(attempts: int) -> object:
    def retry_when(retries: int, exc: BaseException) -> bool:
        return isinstance(exc, PromotionFailed) and retries < attempts

    return retry_when


__all__ = ["DEFAULT_QUEUE", "DramatiqExecutor", "PromotionFailed", "redis_broker"]
