"""A per-process cache of each dynamic partitions definition's key list, kept exact by a version
row that every add and delete of this storage bumps in the same transaction.

Why: the daemon creates every game-batch run, and to log the run's planned materializations
Dagster resolves the run's key range by loading the definition's whole key list, once per asset
(three per run; 0.84 s each at 1M keys, read lean). The daemon rebuilds the stock
``DynamicPartitionsDefinition`` from the code location's snapshot, so the range read by row id of
``partitions.RangeByRowIdPartitions`` cannot reach it: the list has to be cheap instead. The
daemon and the webserver are long-lived, so each keeps the list and, on the next call, reads only
what changed: the version row and the rows added since (one statement). A run's creation then
costs the keys it adds, not the history.

How it stays exact (``tests/test_partition_key_cache.py``): the version row of a definition holds
``added`` and ``deleted`` counters and a ``generation`` (new when the row is first written, so a
wiped database is not mistaken for the old one). Adds and deletes through this storage take the
row's lock first and bump the counters in the transaction that changes the rows, so row ids are
handed out in commit order (Postgres assigns them before commit; SQLite has one writer), and each
deleted key is written to a journal under its number in the ``deleted`` count. A catch-up reads,
in one statement (one snapshot), the version row, the journal entries since the cached count and
the rows after the newest cached id; it applies them only when the generation is unchanged and
they account for both counters exactly. Anything else (a row that committed late, a reused SQLite
row id, a journal trimmed past the cache, a writer that did not count) reloads the list in full.

Limits: every process writing the partitions must use this storage class (the instance config
this project writes names it everywhere); a stock-class writer's deletes are not seen. Applying
deletes rebuilds the list in memory (no database read of it): 0.1 s at 1M keys. The cache costs
the keys' memory in each long-lived process (16.5 MB for the 100,000-partition cap, measured).
"""

from __future__ import annotations

import sys
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as db
from dagster._core.storage.event_log.schema import DynamicPartitionsTable

#: One row per dynamic partitions definition; in the event log's index database, next to
#: Dagster's ``dynamic_partitions`` table, so a change and its bump commit together.
VERSIONS = db.Table(
    "superhero_partition_versions",
    db.MetaData(),
    db.Column("partitions_def_name", db.Text, primary_key=True),
    db.Column("generation", db.Text, nullable=False),
    db.Column("added", db.BigInteger, nullable=False),
    db.Column("deleted", db.BigInteger, nullable=False),
)
#: Each deleted key under its number in its definition's ``deleted`` count, so a cache can apply
#: the deletes since it was read instead of reading the whole list again.
DELETES = db.Table(
    "superhero_partition_deletes",
    db.MetaData(),
    db.Column("partitions_def_name", db.Text, primary_key=True),
    db.Column("number", db.BigInteger, primary_key=True, autoincrement=False),
    db.Column("partition", db.Text, nullable=False),
)
#: Journal entries kept per definition; a cache further behind reloads in full.
JOURNAL_KEEP = 200_000
#: Keys per DELETE statement in a bulk delete.
DELETE_CHUNK = 500
#: Below every row id (BIGINT's least value): "all rows", and the version row's place in a union.
_BEFORE_EVERY_ID = -(2**63)
#: Journal entries sort between the version row and the rows: at ``number + _JOURNAL_AT`` (< 0).
_JOURNAL_AT = -(2**62)


@dataclass
class KeyList:
    """One definition's keys as of its version row's (generation, added, deleted), with each
    key's position."""

    label: tuple[str | None, int, int]
    keys: list[str] = field(default_factory=list)
    newest_id: int = 0
    positions: dict[str, int] = field(default_factory=dict)

    def extend(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Append rows of ``(row id, ..., key)``, in row-id order (whole lists: in C loops)."""
        if not rows:
            return
        start = len(self.keys)
        new = [row[-1] for row in rows]
        self.keys.extend(new)
        self.positions.update(zip(new, range(start, start + len(new)), strict=True))
        self.newest_id = int(rows[-1][0])

    def remove(self, keys: Sequence[str]) -> None:
        """Drop deleted keys. New list and positions objects: lists already handed out keep
        theirs (positions are only ever added to in place, and those lists check them)."""
        gone = set(keys)
        self.keys = [key for key in self.keys if key not in gone]
        self.positions = dict(zip(self.keys, range(len(self.keys)), strict=True))


class IndexedKeys(list):
    """The list handed to callers: a copy of the cached keys whose ``index`` and ``in`` look the
    key's position up instead of scanning.

    Why: Dagster resolves a key range as ``keys[keys.index(start) : keys.index(end) + 1]``, and
    a new run's keys are at the end, so each ``index`` compared every key (a third of the
    daemon's range resolution at 1M keys, after the cache). Only a whole-list ``index`` is looked
    up, and a position is used only when the copy still holds that key there (a caller may have
    changed its copy); anything else is ``list``'s.
    """

    def __init__(self, keys: list[str], positions: dict[str, int]) -> None:
        super().__init__(keys)
        self._positions = positions

    def index(self, value: Any, start: Any = 0, stop: Any = sys.maxsize) -> int:
        whole = start == 0 and stop == sys.maxsize
        at = self._positions.get(value) if whole and isinstance(value, str) else None
        if at is not None and at < len(self) and self[at] == value:
            return at
        return super().index(value, start, stop)

    def __contains__(self, value: object) -> bool:
        at = self._positions.get(value) if isinstance(value, str) else None
        if at is not None and at < len(self) and self[at] == value:
            return True
        return super().__contains__(value)


def _raw_rows(conn: Any, query: Any) -> list[tuple[Any, ...]]:
    """The rows of ``query`` from the driver's own cursor, as plain tuples: SQLAlchemy's row
    objects took most of a full key list read (2.3 s at 1M keys; 0.84 s with its driver-level
    call, which still wraps each row)."""
    compiled = query.compile(dialect=conn.dialect)
    params: Any = (
        tuple(compiled.params[name] for name in compiled.positiontup or ())
        if compiled.positional
        else compiled.params
    )
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute(str(compiled), params)
        return cursor.fetchall()
    finally:
        cursor.close()


def walks_row_ids(name: str) -> Any:
    """``partitions_def_name = name`` in a form that keeps SQLite on the row ids.

    Compared plainly, SQLite answers a condition on the name plus a row-id range from the (name,
    key) index: it reads every key of the definition and sorts them (66 ms for a catch-up, 100 ms
    for a range, 75 ms for an end id at 1M keys). Through ``coalesce`` (the column is NOT NULL, so
    the same rows) the index does not apply and the row-id range or order is walked instead
    (1-5 ms). Used wherever rows of a definition are read by id (here and ``partitions``); the
    plans are asserted in the tests.
    """
    return db.func.coalesce(DynamicPartitionsTable.c.partitions_def_name, "") == name


def _upsert(conn: Any) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(VERSIONS)


class CachesPartitionKeys:
    """Mixed in before a ``SqlEventLogStorage`` (SQLite or Postgres): ``get_dynamic_partitions``
    from a cache, and the adds and deletes that keep it exact."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._key_lists: dict[str, KeyList] = {}
        self._key_lists_lock = threading.Lock()
        self._versions_ready = False
        super().__init__(*args, **kwargs)

    # -- the version row and the journal -------------------------------------------------------

    def _ensure_tables(self, conn: Any) -> None:
        if not self._versions_ready:
            conn.execute(db.schema.CreateTable(VERSIONS, if_not_exists=True))
            conn.execute(db.schema.CreateTable(DELETES, if_not_exists=True))
            self._versions_ready = True

    def _lock_version(self, conn: Any, name: str) -> int:
        """Create the definition's row, or take its lock by a no-op update: later writers wait
        here, before their rows get ids. Returns the ``deleted`` count, now stable."""
        stmt = _upsert(conn).values(
            partitions_def_name=name, generation=uuid.uuid4().hex, added=0, deleted=0
        )
        locked = stmt.on_conflict_do_update(
            index_elements=[VERSIONS.c.partitions_def_name],
            set_={"added": VERSIONS.c.added},
        ).returning(VERSIONS.c.deleted)
        return int(conn.execute(locked).scalar_one())

    # -- writes ---------------------------------------------------------------------------------

    def add_dynamic_partitions(
        self, partitions_def_name: str, partition_keys: Sequence[str]
    ) -> None:
        """Dagster's add (new keys only, in the order given), counted in the version row."""
        if not partition_keys:
            return
        self._check_partitions_table()  # type: ignore[attr-defined]
        table = DynamicPartitionsTable
        mine = table.c.partitions_def_name == partitions_def_name
        with self.index_transaction() as conn:  # type: ignore[attr-defined]
            self._ensure_tables(conn)
            self._lock_version(conn, partitions_def_name)
            existing = {
                row[0]
                for row in conn.execute(
                    db.select(table.c.partition).where(
                        db.and_(mine, table.c.partition.in_(list(partition_keys)))
                    )
                )
            }
            new = [key for key in dict.fromkeys(partition_keys) if key not in existing]
            if not new:
                return
            conn.execute(
                table.insert(),
                [{"partitions_def_name": partitions_def_name, "partition": k} for k in new],
            )
            conn.execute(
                VERSIONS.update()
                .where(VERSIONS.c.partitions_def_name == partitions_def_name)
                .values(added=VERSIONS.c.added + len(new))
            )

    def delete_dynamic_partition(self, partitions_def_name: str, partition_key: str) -> None:
        self.delete_dynamic_partitions(partitions_def_name, [partition_key])

    def delete_dynamic_partitions(
        self, partitions_def_name: str, partition_keys: Sequence[str]
    ) -> int:
        """Delete many keys of one definition (Dagster has no bulk call; one DELETE per key cost
        6.6 ms each on SQLite), journal them and count them; returns how many existed."""
        if not partition_keys:
            return 0
        self._check_partitions_table()  # type: ignore[attr-defined]
        table = DynamicPartitionsTable
        mine = table.c.partitions_def_name == partitions_def_name
        gone: list[str] = []
        with self.index_transaction() as conn:  # type: ignore[attr-defined]
            self._ensure_tables(conn)
            deleted = self._lock_version(conn, partitions_def_name)
            for start in range(0, len(partition_keys), DELETE_CHUNK):
                chunk = list(partition_keys[start : start + DELETE_CHUNK])
                result = conn.execute(
                    table.delete()
                    .where(db.and_(mine, table.c.partition.in_(chunk)))
                    .returning(table.c.partition)
                )
                gone.extend(row[0] for row in result)
            if not gone:
                return 0
            journal = DELETES.c.partitions_def_name == partitions_def_name
            conn.execute(
                DELETES.insert(),
                [
                    {
                        "partitions_def_name": partitions_def_name,
                        "number": deleted + i,
                        "partition": key,
                    }
                    for i, key in enumerate(gone, start=1)
                ],
            )
            conn.execute(
                DELETES.delete().where(
                    db.and_(journal, DELETES.c.number <= deleted + len(gone) - JOURNAL_KEEP)
                )
            )
            conn.execute(
                VERSIONS.update()
                .where(VERSIONS.c.partitions_def_name == partitions_def_name)
                .values(deleted=VERSIONS.c.deleted + len(gone))
            )
        return len(gone)

    def wipe(self) -> None:
        """Dagster's wipe empties the partitions table; the version rows and the journal go with
        it (a later add starts a new generation), and so do this process's lists."""
        super().wipe()  # type: ignore[misc]
        with self._key_lists_lock:
            self._key_lists.clear()
            self._versions_ready = False
            with self.index_transaction() as conn:  # type: ignore[attr-defined]
                self._ensure_tables(conn)
                conn.execute(VERSIONS.delete())
                conn.execute(DELETES.delete())

    # -- reads ----------------------------------------------------------------------------------

    def get_dynamic_partitions(self, partitions_def_name: str) -> Sequence[str]:
        self._check_partitions_table()  # type: ignore[attr-defined]
        with self._key_lists_lock, self.index_connection() as conn:  # type: ignore[attr-defined]
            self._ensure_tables(conn)
            cached = self._key_lists.get(partitions_def_name)
            if cached is None or not self._caught_up(conn, partitions_def_name, cached):
                cached = self._load(conn, partitions_def_name)
                self._key_lists[partitions_def_name] = cached
            return IndexedKeys(cached.keys, cached.positions)

    def _changes(
        self, conn: Any, name: str, after_id: int, after_number: int
    ) -> tuple[tuple[str | None, int, int], list[str], list[tuple[Any, ...]]]:
        """The definition's version, the keys journalled as deleted after ``after_number`` and
        the rows ``(id, 0, 0, key)`` after ``after_id``, in one statement, so one snapshot: a
        change can never be in one and not the others.

        Shaped for SQLite's planner (its plan is checked in ``tests/test_partition_key_cache.py``):
        one ordering column puts the version row first (an id no row has), then the journal
        (at negative places), then the rows by id, so the union is a merge of ordered inputs, not
        a sort of the whole list (0.76 s instead of 1.4 s for 1M keys); and the rows are read by
        row id from ``after_id`` on (:func:`walks_row_ids`): a catch-up reads what was added.
        """
        table = DynamicPartitionsTable
        zero = db.literal(0, db.BigInteger)
        version = db.select(
            db.literal(_BEFORE_EVERY_ID, db.BigInteger).label("place"),
            VERSIONS.c.added,
            VERSIONS.c.deleted,
            VERSIONS.c.generation.label("text"),
        ).where(VERSIONS.c.partitions_def_name == name)
        journal = db.select(DELETES.c.number + _JOURNAL_AT, zero, zero, DELETES.c.partition).where(
            db.and_(DELETES.c.partitions_def_name == name, DELETES.c.number > after_number)
        )
        rows = db.select(table.c.id, zero, zero, table.c.partition).where(
            db.and_(walks_row_ids(name), table.c.id > after_id)
        )  # fmt: skip
        found = _raw_rows(conn, db.union_all(version, journal, rows).order_by("place"))
        label: tuple[str | None, int, int] = (None, 0, 0)
        if found and found[0][0] == _BEFORE_EVERY_ID:
            label = (found[0][3], int(found[0][1]), int(found[0][2]))
            del found[0]
        split = next((i for i, row in enumerate(found) if row[0] > 0), len(found))
        return label, [row[3] for row in found[:split]], found[split:]

    def _caught_up(self, conn: Any, name: str, cached: KeyList) -> bool:
        """Apply the deletes and adds since ``cached`` was read, if they account for the
        version's counters exactly; False when it has to be reloaded."""
        old_generation, old_added, old_deleted = cached.label
        label, deleted_keys, new = self._changes(conn, name, cached.newest_id, old_deleted)
        generation, added, deleted = label
        if (
            generation != old_generation
            or deleted - old_deleted != len(deleted_keys)
            or added - old_added != len(new)
        ):
            return False
        if deleted_keys:
            cached.remove(deleted_keys)
        cached.extend(new)
        cached.label = label
        return True

    def _load(self, conn: Any, name: str) -> KeyList:
        """The whole list, with the version it is at."""
        label, _, rows = self._changes(conn, name, _BEFORE_EVERY_ID, -_JOURNAL_AT)
        loaded = KeyList(label=label)
        loaded.extend(rows)
        return loaded
