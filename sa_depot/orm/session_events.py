"""The Session events that open and close ledgers (:mod:`sa_depot.orm.ledgers`)."""

from __future__ import annotations

from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.orm.base import instance_state

from sa_depot.orm import ledgers, records
from sa_depot.orm.flush_events import answer_for
from sa_depot.orm.mapped import file_fields_of
from sa_depot.orm.offload import storage_io


def on_before_attach(session: Session, instance: object) -> None:
    """An object joins the session: its fresh uploads are now the transaction's to answer for."""
    state = instance_state(instance)
    fields = file_fields_of(state.mapper)
    if not fields:
        return
    transaction = ledgers.current_boundary(session)
    if transaction is None:  # pragma: no cover - attaching always begins a transaction
        return
    for key in fields:
        answer_for(state.dict.get(key), session, transaction)


def on_after_commit(session: Session) -> None:
    ledgers.mark_committed(session)


def on_after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    ledgers.transaction_ended(session, transaction)
    if transaction.parent is None and records.abandoned_count():  # no idle trip to a thread
        storage_io(records.remove_abandoned)


__all__ = ["on_after_commit", "on_after_transaction_end", "on_before_attach"]
