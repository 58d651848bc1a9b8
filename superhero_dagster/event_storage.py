"""The embedded (SQLite) event log with a batch write: a game batch's events in one go.

Extends Dagster's ``SqliteEventLogStorage`` (the default of an instance without a ``storage:`` key:
one SQLite file per run plus an ``index`` file mirroring the asset events), keeping its files and
schema, so a home written by the stock class reads the same through this one and back.

Why: with ``DAGSTER_EVENT_BATCH_SIZE`` set, Dagster hands the materializations of one asset over a
run's partition range to ``store_event_batch``; the stock SQLite class inherits the base fallback,
which calls ``store_event`` per event, i.e. a new engine, connection and commit per shard per game
(measured 27-34 ms per game here). This class writes the batch in one transaction per shard: all
rows into the run's file, the same rows into the index file with their ids, then the asset tags
and the asset table, using ``SqlEventLogStorage``'s own row, tag and asset helpers as
dagster-postgres's ``PostgresEventLogStorage.store_event_batch`` does. Anything it does not
recognise (other event types, several runs in one batch) goes to the stock one-by-one path.

A game batch's per-game check evaluations arrive as a batch too (``assets/check_events.py``, which
asks for ``BATCHES_CHECK_EVALUATIONS``): their rows go in as above, and each one's
``asset_check_executions`` row is updated by Dagster's own ``store_asset_check_event`` inside the
same index transaction (``index_connection`` hands it that connection instead of a new one).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from dagster._core.events import DagsterEventType
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._core.storage.sqlalchemy_compat import db_select
from dagster._serdes import ConfigurableClassData

from superhero_dagster.partition_key_cache import CachesPartitionKeys

#: Event types whose storage is "a row in both shards + asset tags + the asset table's latest
#: entry" (``SqlEventLogStorage.store_event``'s asset branch) and nothing else.
BATCHED_TYPES = frozenset(
    {
        DagsterEventType.ASSET_MATERIALIZATION,
        DagsterEventType.ASSET_OBSERVATION,
        DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
    }
)
#: Their kinds of stretch: rows + asset tables, or rows + the check's execution row.
ASSET, CHECK = "asset", "check"


class RemembersTables:
    """Mixed in before a ``SqlEventLogStorage``: ``has_table`` answers from memory once true."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Set before the storage's own __init__, which already asks for tables.
        self._tables_seen: set[str] = set()
        super().__init__(*args, **kwargs)

    def has_table(self, table_name: str) -> bool:
        """Remembered once true: Dagster asks before every check evaluation (``supports_asset_checks``)
        and every dynamic-partition lookup (the sensor daemon checks each key of an add request on
        its own), each time with a new engine and a schema read; measured 4-9 % of a run worker's
        and the daemon's busy time. Tables are never dropped while the storage is open (``wipe``
        deletes rows and run files, and forgets, to be safe); a missing table is asked again."""
        if table_name in self._tables_seen:
            return True
        found = super().has_table(table_name)  # type: ignore[misc]
        if found:
            self._tables_seen.add(table_name)
        return found

    def wipe(self) -> None:
        self._tables_seen.clear()
        super().wipe()  # type: ignore[misc]


class SharedIndexTransaction:
    """While a batch is written, Dagster's helpers that open their own index connection (the
    check-execution update) get the batch's open transaction instead, so they commit with it.

    Per thread: a storage is shared by the threads of the webserver and the daemon (batches are
    written by run workers, but be safe). Mixed in before the storage class."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Set before the storage's own __init__, which already opens the index.
        self._batch_index = threading.local()
        super().__init__(*args, **kwargs)

    def index_connection(self) -> AbstractContextManager[Any]:
        conn = getattr(self._batch_index, "conn", None)
        return nullcontext(conn) if conn is not None else super().index_connection()  # type: ignore[misc]

    @contextmanager
    def _sharing_index(self, conn: Any) -> Iterator[None]:
        self._batch_index.conn = conn
        try:
            yield
        finally:
            self._batch_index.conn = None


class BatchingSqliteEventLogStorage(
    RemembersTables, CachesPartitionKeys, SharedIndexTransaction, SqliteEventLogStorage
):
    """``SqliteEventLogStorage`` whose ``store_event_batch`` is one transaction per shard."""

    BATCHES_CHECK_EVALUATIONS = True

    @classmethod
    def from_config_value(  # ty: ignore[invalid-method-override]
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, str]
    ) -> BatchingSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """Consecutive asset events (or check evaluations) of one run in one write per shard;
        anything else as before.

        A run's planned events mix asset and asset-check events; order is kept by writing each
        stretch of one kind together and every other event through ``store_event``.
        """
        stretch: list[EventLogEntry] = []
        kind: str | None = None
        for event in events:
            event_kind = event_kind_of(event)
            if event_kind is not None and event_kind == kind and stretch[0].run_id == event.run_id:
                stretch.append(event)
                continue
            self._write_stretch(kind, stretch)
            stretch, kind = [], event_kind
            if event_kind is not None:
                stretch.append(event)
            else:
                self.store_event(event)
        self._write_stretch(kind, stretch)

    def _write_stretch(self, kind: str | None, events: Sequence[EventLogEntry]) -> None:
        if len(events) < 2:
            for event in events:
                self.store_event(event)
            return
        rows = [self._event_to_row(event) for event in events]
        with self.run_connection(events[0].run_id) as conn:
            conn.execute(SqlEventLogStorageTable.insert(), rows)
        # The index shard's ids are the events' storage ids (what store_event records too). SQLite
        # has one writer at a time: from the INSERT to the commit this transaction holds the write
        # lock, so its rows are the table's last len(rows) ids, ascending in insertion order.
        newest = (
            db_select([SqlEventLogStorageTable.c.id])
            .order_by(SqlEventLogStorageTable.c.id.desc())
            .limit(len(rows))
        )
        with self.index_transaction() as conn:
            conn.execute(SqlEventLogStorageTable.insert(), rows)
            event_ids = sorted(int(row[0]) for row in conn.execute(newest))
            if len(event_ids) != len(events):
                raise RuntimeError(f"index shard returned {len(event_ids)} ids for {len(events)}")
            if kind == CHECK:
                with self._sharing_index(conn):
                    for event, event_id in zip(events, event_ids, strict=True):
                        self.store_asset_check_event(event, event_id)
                return
            self._store_asset_event_tags(conn, events, event_ids)
            # The asset table keeps one row per asset: its latest event is enough.
            latest: dict[object, tuple[EventLogEntry, int]] = {}
            for event, event_id in zip(events, event_ids, strict=True):
                latest[event.get_dagster_event().asset_key] = (event, event_id)
            for event, event_id in latest.values():
                self._store_asset_event(conn, event, event_id)


def event_kind_of(event: EventLogEntry) -> str | None:
    """Which batch write stores ``event`` like ``store_event`` would; None: ``store_event`` itself.

    A check evaluation without a run (reported from outside a run) takes Dagster's other branch,
    an insert instead of an update: left to ``store_event``.
    """
    if not event.is_dagster_event:
        return None
    dagster_event = event.get_dagster_event()
    if dagster_event.event_type in BATCHED_TYPES and dagster_event.asset_key is not None:
        return ASSET
    if dagster_event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION and event.run_id:
        return CHECK
    return None
