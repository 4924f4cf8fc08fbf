"""The session lifecycle: files live and die with the transaction that saved or replaced them.

What it guarantees, and where its limits lie, is documented in docs/orm.md. One module per
job:

* :mod:`~sa_depot.orm.records`: who answers for a fresh upload (its state transitions);
* :mod:`~sa_depot.orm.ledgers`: what each transaction and SAVEPOINT did to files, and what
  happens to them when it commits or rolls back;
* :mod:`~sa_depot.orm.session_events`: the Session events that open and close ledgers;
* :mod:`~sa_depot.orm.flush_events`: attribute and flush events of the mapped classes;
* :mod:`~sa_depot.orm.bulk`: ORM-enabled ``update()``/``delete()``/``insert()`` statements;
* :mod:`~sa_depot.orm.core_statements`: rows inserted through Core with the field type;
* :mod:`~sa_depot.orm.mapped`: which mapped attributes hold files (kept on each mapper);
* :mod:`~sa_depot.orm.install`: installing and removing every listener;
* :mod:`~sa_depot.orm.settings`: process-wide switches (:func:`configure`).

Beneath it, :mod:`sa_depot.database` keeps what needs no ORM: the file registry, the removal
journal and the collector.
"""
