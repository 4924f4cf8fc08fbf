"""The file registry: which committed rows use which stored files, answered by key lookups.

Tables :data:`~sa_depot.database.schema.files` (one row per registered file, with its number
of uses) and :data:`~sa_depot.database.schema.attachments` (one row per row using a file,
keyed by a hash of the file's path and the row's table, column and primary key). Every
function here works on a Connection inside the caller's transaction, so that the registry
changes commit, or roll back, with the row changes they describe.

**Locking order.** Every change to the uses of a file happens while the transaction holds the
lock of that file's row in ``sa_depot_files`` (``SELECT ... FOR UPDATE`` by primary key), taken
after the lock of the user's row (which the flush or the statement already holds) and, for
several files, in path order. So two transactions releasing rows that share a file take turns
on it: the second waits for the first to commit, then reads the count the first left (a
locking read sees the latest committed state, at any isolation level) and, if it let go of
the last use, releases the file. Neither can both keep a file nobody uses (a leak) nor both
count on the other (the decision is made under the lock). A transaction attaching a file that
a committed transaction released meanwhile finds the file's row gone and its removal
journaled, and raises :class:`~sa_depot.exceptions.FileDiscarded`.

Every locking read (and the ``DELETE ... RETURNING`` that stands for one in
:func:`detach_rows`) finds rows by their primary key, so that InnoDB (MySQL, MariaDB) locks the
rows themselves and not the gaps between index entries, which would make transactions that
touch unrelated files wait for, and deadlock with, each other. Gaps are locked only where a
key is probed that may be absent: files the registry does not know yet.

**Files the registry does not know** (rows written before it existed, by filedepot, or by raw
SQL) are never released by the lifecycle: nothing proves that no other row uses them. They are
left to the collector, which reads the columns themselves, until an adoption
(:func:`sa_depot.migrate.adopt_column`) registers them.

Costs: a handful of statements per call, each a primary-key lookup of the paths and rows
involved (``IN`` lists of at most :data:`BATCH_SIZE` keys), whatever the number of rows a call
is given (:func:`register_new_rows`, :func:`detach_rows`: the rows of one flush or statement)
or the size of the tables.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

from sa_depot.database.references import canonical_path
from sa_depot.database.schema import attachments, files, pending_removals
from sa_depot.descriptor import split_path, storage_of
from sa_depot.exceptions import DepotError, FileDiscarded
from sa_depot.io.interfaces import utcnow
from sa_depot.manager import DepotManager

#: The row key of an attachment whose row the writer could not identify.
UNKNOWN_ROW = ""

#: ``IN`` lists are sent in batches of at most this many keys.
BATCH_SIZE = 500

#: The statements of every registration and release, built once: a statement object built
#: anew for each execution has its cache key computed anew too (most of the Python cost of a
#: statement on a fast database), a prebuilt one keeps it. ``IN`` lists are expanding bound
#: parameters (``paths``, ``keys``), given a batch at each execution.
_INSERT_FILES = files.insert()
_INSERT_ATTACHMENTS = attachments.insert()
_LOCK_FILES = (
    sa.select(files.c.path, files.c.refs)
    .where(files.c.path.in_(sa.bindparam("paths", expanding=True)))
    .order_by(files.c.path)
    .with_for_update()
)
_USED_FILES = sa.select(files.c.path).where(
    files.c.path.in_(sa.bindparam("paths", expanding=True)), files.c.refs > 0
)
_SET_USES = files.update().where(files.c.path == sa.bindparam("p")).values(refs=sa.bindparam("r"))
_DELETE_FILES = files.delete().where(files.c.path.in_(sa.bindparam("paths", expanding=True)))
_LOCK_ATTACHMENTS = (
    sa.select(attachments.c.key, attachments.c.uses)
    .where(attachments.c.key.in_(sa.bindparam("keys", expanding=True)))
    .order_by(attachments.c.key)
    .with_for_update()
)
_DELETE_ATTACHMENTS = attachments.delete().where(
    attachments.c.key.in_(sa.bindparam("keys", expanding=True))
)
#: Where the dialect has ``DELETE ... RETURNING``: the locking read of a row's own attachments
#: and their deletion in one statement (see :func:`detach_rows`).
_DELETE_ATTACHMENTS_RETURNING = _DELETE_ATTACHMENTS.returning(attachments.c.key, attachments.c.uses)
_DELETE_ATTACHMENTS_OF_PATHS = attachments.delete().where(
    attachments.c.path.in_(sa.bindparam("paths", expanding=True))
)
_SET_ATTACHMENT_USES = (
    attachments.update()
    .where(attachments.c.key == sa.bindparam("k"))
    .values(uses=sa.bindparam("u"))
)
_ADD_ATTACHMENT_USE = (
    attachments.update()
    .where(attachments.c.key == sa.bindparam("k"))
    .values(uses=attachments.c.uses + 1)
)
_LOCK_JOURNALED = (
    sa.select(pending_removals.c.path)
    .where(pending_removals.c.path.in_(sa.bindparam("paths", expanding=True)))
    .with_for_update(read=True)
)


@dataclass(frozen=True)
class RowRef:
    """A row's column, as the registry names it."""

    #: The table's full name (``schema.table`` when it has a schema).
    table: str
    column: str
    #: :func:`row_key` of the primary key, or :data:`UNKNOWN_ROW`.
    key: str

    def attachment_key(self, path: str) -> str:
        """The primary key of this row's attachment to ``path`` (registry form)."""
        text = "\0".join((path, self.table, self.column, self.key))
        return hashlib.sha256(text.encode()).hexdigest()

    def unknown(self) -> RowRef:
        """The same column, for rows whose key is unknown."""
        return RowRef(self.table, self.column, UNKNOWN_ROW)


@dataclass
class Release:
    """What :func:`detach` found."""

    #: Paths whose last use went: nothing uses them any more; journal their removal.
    released: list[str] = field(default_factory=list)
    #: Paths the registry does not know: left to the collector.
    unregistered: list[str] = field(default_factory=list)


def row_key(values: Sequence[Any]) -> str:
    """The primary key values of a row, as the registry records them (a JSON list)."""
    if len(values) == 1 and type(values[0]) is int:  # the usual key: what json.dumps gives
        return f"[{values[0]}]"
    return json.dumps([_plain(v) for v in values], separators=(",", ":"))


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)  # UUID, Decimal...


def canonical(paths: Iterable[str]) -> list[str]:
    """The registry's paths for ``paths`` (see :func:`canonical_path`), sorted, each once:
    the order in which their rows are locked."""
    return sorted({canonical_path(p) for p in paths})


def register_new(connection: sa.Connection, ref: RowRef, paths: Iterable[str]) -> None:
    """Register freshly stored files used by the row ``ref``: files nobody else can know
    yet (their ids were just made), so no lock is needed. Two plain ``INSERT`` statements."""
    register_new_rows(connection, [(ref, paths)])


def register_new_rows(
    connection: sa.Connection, rows: Iterable[tuple[RowRef, Iterable[str]]]
) -> None:
    """:func:`register_new` for several rows at once (the rows of one ``INSERT``): two
    ``INSERT`` statements in all, each given every row's parameters."""
    now = utcnow()
    new_files: list[dict[str, Any]] = []
    new_attachments: list[dict[str, Any]] = []
    for ref, paths in rows:
        wanted = canonical(paths)
        new_files.extend(
            {"path": p, "storage": storage_of(p), "refs": 1, "registered_at": now} for p in wanted
        )
        new_attachments.extend(_attachment(ref, p, now) for p in wanted)
    if new_files:
        connection.execute(_INSERT_FILES, new_files)
        connection.execute(_INSERT_ATTACHMENTS, new_attachments)


def attach(
    connection: sa.Connection,
    ref: RowRef,
    paths: Iterable[str],
    *,
    verify_files: bool = True,
) -> None:
    """Record that the row ``ref`` uses files that may be used elsewhere already (a Core
    statement writing a loaded descriptor, an adoption). Idempotent for a row of known key.

    A file the registry does not know joins it, unless its removal is journaled or, with
    ``verify_files``, its storage (if configured here) does not have it: a transaction that
    let go of its last row may have committed while this one waited for the file's lock, then
    removed the file and completed its journal row (in that order, so one of the two checks
    sees it).

    :raises FileDiscarded: the row would point at a file that is going (``released``) or gone
        (``missing``).
    """
    wanted = canonical(paths)
    if not wanted:
        return
    counts = lock_files(connection, wanted)
    unknown = [p for p in wanted if p not in counts]
    if unknown:
        doomed = journaled(connection, unknown)
        if doomed:
            raise FileDiscarded(doomed[0], "released")
        if verify_files:
            for path in unknown:
                if _missing_from_storage(path):
                    raise FileDiscarded(path, "missing")
        _insert_missing_files(connection, unknown, utcnow())
        counts.update(lock_files(connection, unknown))
    now = utcnow()
    keys = {ref.attachment_key(p): p for p in wanted}
    found = _lock_attachments(connection, list(keys))
    added: list[str] = []
    if ref.key == UNKNOWN_ROW:  # one more use of the column's attachment of unknown rows
        for key, path in keys.items():
            if key in found:
                connection.execute(_ADD_ATTACHMENT_USE, {"k": key})
            else:
                connection.execute(_INSERT_ATTACHMENTS, _attachment(ref, path, now))
            added.append(path)
    else:
        fresh = [path for key, path in keys.items() if key not in found]
        if fresh:
            connection.execute(_INSERT_ATTACHMENTS, [_attachment(ref, p, now) for p in fresh])
        added = fresh
    _set_uses(connection, {p: counts[p] + 1 for p in added})


def detach(connection: sa.Connection, ref: RowRef, paths: Iterable[str]) -> Release:
    """Record that the row ``ref`` no longer uses ``paths``; return the files nobody uses
    any more (their registry rows deleted: the caller journals their removal in this same
    transaction) and those the registry does not know.

    The column's attachment of unknown rows (:data:`UNKNOWN_ROW`) stands for this row when
    none carries its key.
    """
    return detach_rows(connection, [(ref, paths)])


def detach_rows(connection: sa.Connection, rows: Iterable[tuple[RowRef, Iterable[str]]]) -> Release:
    """:func:`detach` for several rows at once (the rows one flush or statement deletes or
    changes), as if they let go of their files one after the other: the file rows of every
    path are locked by one locking read (in path order), their attachments by another, and
    each kind of change is one statement for all the rows (per :data:`BATCH_SIZE` keys).

    Where the dialect has ``DELETE ... RETURNING`` (PostgreSQL, SQLite 3.35 and later,
    MariaDB) and every row's key is known, the locking read of the rows' own attachments and
    their deletion are one statement, ``DELETE ... WHERE key IN (...) RETURNING key, uses``:
    every attachment that read finds is deleted anyway. The locking contract (module docs)
    still holds, and no transaction waits where it did not:

    * the ``DELETE`` takes the locks the locking read took: exclusive locks on the same
      rows, found by their primary key (absent keys probed alike), at the same point (after
      the file rows, before any other change), kept until the transaction ends;
    * nobody else can be after those rows at the same time, so the order in which the
      ``DELETE`` visits them (no ``ORDER BY``; in practice the primary key's index order, as
      the locking read's) cannot matter: each belongs to a row whose lock the flush or
      statement holds (the keys are known), and each names a file whose row
      :func:`lock_files` just locked, which :func:`attach` and :func:`detach_rows` lock
      before any attachment. (The collector's :func:`forget` deletes attachments by path
      without that lock: the locking read waited on it exactly as the ``DELETE`` does.)

    The attachments of unknown rows (:data:`UNKNOWN_ROW`), shared by the column's rows whose
    key was not recorded, belong to no user row whose lock is held, and may lose only some
    of their uses: they keep the locking read and a ``DELETE`` of their own, as do dialects
    without ``DELETE ... RETURNING`` (MySQL).
    """
    release = Release()
    wanted = [(ref, canonical(paths)) for ref, paths in rows]
    every = sorted({path for _, paths in wanted for path in paths})
    if not every:
        return release
    counts = lock_files(connection, every)
    release.unregistered = [p for p in every if p not in counts]
    mine: dict[str, str] = {}  # attachment key -> path
    for ref, paths in wanted:
        mine.update((ref.attachment_key(p), p) for p in paths if p in counts)
    if not mine:
        return release
    merged = connection.dialect.delete_returning and all(
        ref.key != UNKNOWN_ROW for ref, _ in wanted
    )
    if merged:
        found = _delete_attachments(connection, list(mine))
    else:
        found = _lock_attachments(connection, list(mine))
    let_go: dict[str, int] = {}
    own = [key for key in mine if key in found]
    for key in own:
        let_go[mine[key]] = let_go.get(mine[key], 0) + found[key]
    delete = [] if merged else own  # attachment rows still to delete
    # A row written without its key, perhaps: the column's attachment of unknown rows stands
    # for it, one use per row that finds no attachment of its own.
    wanted_uses: dict[str, int] = {}  # stand-in key -> rows asking it for a use
    stand_ins: dict[str, str] = {}  # stand-in key -> path
    for ref, paths in wanted:
        if ref.key == UNKNOWN_ROW:
            continue
        for path in paths:
            if path in counts and ref.attachment_key(path) not in found:
                key = ref.unknown().attachment_key(path)
                stand_ins[key] = path
                wanted_uses[key] = wanted_uses.get(key, 0) + 1
    if stand_ins:
        fewer: dict[str, int] = {}
        for key, uses in _lock_attachments(connection, list(stand_ins)).items():
            taken = min(uses, wanted_uses[key])
            let_go[stand_ins[key]] = let_go.get(stand_ins[key], 0) + taken
            if uses > taken:
                fewer[key] = uses - taken
            else:
                delete.append(key)
        if fewer:
            connection.execute(
                _SET_ATTACHMENT_USES, [{"k": key, "u": uses} for key, uses in fewer.items()]
            )
    for batch in _batches(sorted(delete)):
        connection.execute(_DELETE_ATTACHMENTS, {"keys": batch})
    remaining = {path: counts[path] - uses for path, uses in let_go.items()}
    release.released = sorted(path for path, refs in remaining.items() if refs <= 0)
    for batch in _batches(release.released):
        connection.execute(_DELETE_FILES, {"paths": batch})
    _set_uses(connection, {p: refs for p, refs in sorted(remaining.items()) if refs > 0})
    return release


def lock_files(connection: sa.Connection, paths: Sequence[str]) -> dict[str, int]:
    """Lock the registry rows of ``paths`` (sorted, registry form) until the transaction
    ends; return the number of uses of each path that has one."""
    found: dict[str, int] = {}
    for batch in _batches(paths):
        for path, refs in connection.execute(_LOCK_FILES, {"paths": batch}):
            found[path] = int(refs)
    return found


def users_of(connection: sa.Connection, paths: Iterable[str]) -> set[str]:
    """Those of ``paths`` that some row uses, as ``connection`` sees them (registry form)."""
    used: set[str] = set()
    for batch in _batches(canonical(paths)):
        used.update(connection.execute(_USED_FILES, {"paths": batch}).scalars())
    return used


def journaled(connection: sa.Connection, paths: Sequence[str]) -> list[str]:
    """Those of ``paths`` whose removal a committed transaction journaled (a locking read,
    so that the latest committed state is seen at any isolation level)."""
    found: list[str] = []
    for batch in _batches(paths):
        found.extend(connection.execute(_LOCK_JOURNALED, {"paths": batch}).scalars())
    return sorted(set(found))


def forget(connection: sa.Connection, paths: Iterable[str]) -> None:
    """Delete every registry row of ``paths``: their files were removed where no event could
    see (the collector swept them)."""
    wanted = canonical(paths)
    for batch in _batches(wanted):
        connection.execute(_DELETE_ATTACHMENTS_OF_PATHS, {"paths": batch})
        connection.execute(_DELETE_FILES, {"paths": batch})


def _missing_from_storage(path: str) -> bool:
    """Whether the storage of ``path``, configured in this process, lacks the file (a storage
    this process does not know, or cannot ask, counts as having it)."""
    try:
        storage_name, file_id = split_path(path)
        return not DepotManager.get(storage_name).exists(file_id)
    except DepotError:
        return False


def _attachment(ref: RowRef, path: str, now: datetime) -> dict[str, Any]:
    return {
        "key": ref.attachment_key(path),
        "path": path,
        "table_name": ref.table,
        "column_name": ref.column,
        "row_key": ref.key,
        "uses": 1,
        "attached_at": now,
    }


def _lock_attachments(connection: sa.Connection, keys: Sequence[str]) -> dict[str, int]:
    """Lock the attachments of ``keys`` that exist; return their uses."""
    found: dict[str, int] = {}
    for batch in _batches(sorted(keys)):
        for key, uses in connection.execute(_LOCK_ATTACHMENTS, {"keys": batch}):
            found[key] = int(uses)
    return found


def _delete_attachments(connection: sa.Connection, keys: Sequence[str]) -> dict[str, int]:
    """Delete the attachments of ``keys`` that exist (``DELETE ... RETURNING``: the dialect
    must have it); return the uses they had."""
    found: dict[str, int] = {}
    for batch in _batches(sorted(keys)):
        for key, uses in connection.execute(_DELETE_ATTACHMENTS_RETURNING, {"keys": batch}):
            found[key] = int(uses)
    return found


def _set_uses(connection: sa.Connection, refs: dict[str, int]) -> None:
    """Set the number of uses of locked file rows."""
    if refs:
        connection.execute(_SET_USES, [{"p": path, "r": count} for path, count in refs.items()])


def _insert_missing_files(connection: sa.Connection, paths: Sequence[str], now: datetime) -> None:
    """Insert registry rows (no uses yet) for those of ``paths`` that have none (another
    transaction may be inserting the same path: the database's own conflict handling
    decides)."""
    rows = [{"path": p, "storage": storage_of(p), "refs": 0, "registered_at": now} for p in paths]
    dialect = connection.dialect.name
    statement: Any
    if dialect == "postgresql":
        statement = postgresql.insert(files).on_conflict_do_nothing(index_elements=["path"])
    elif dialect in ("mysql", "mariadb"):
        statement = mysql.insert(files).prefix_with("IGNORE")
    elif dialect == "sqlite":
        statement = sqlite.insert(files).on_conflict_do_nothing(index_elements=["path"])
    else:
        present = lock_files(connection, paths)
        rows = [row for row in rows if row["path"] not in present]
        statement = files.insert()
    if rows:
        connection.execute(statement, rows)


def _batches(keys: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(keys), BATCH_SIZE):
        yield keys[start : start + BATCH_SIZE]


__all__ = [
    "BATCH_SIZE",
    "UNKNOWN_ROW",
    "Release",
    "RowRef",
    "attach",
    "canonical",
    "detach",
    "detach_rows",
    "forget",
    "journaled",
    "lock_files",
    "register_new",
    "register_new_rows",
    "row_key",
    "users_of",
]
