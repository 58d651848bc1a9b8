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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dagster._core.events import DagsterEventType
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._core.storage.sqlalchemy_compat import db_select
from dagster._serdes import ConfigurableClassData

#: Event types whose storage is "a row in both shards + asset tags + the asset table's latest
#: entry" (``SqlEventLogStorage.store_event``'s asset branch) and nothing else.
BATCHED_TYPES = frozenset(
    {
        DagsterEventType.ASSET_MATERIALIZATION,
        DagsterEventType.ASSET_OBSERVATION,
        DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
    }
)


class BatchingSqliteEventLogStorage(SqliteEventLogStorage):
    """``SqliteEventLogStorage`` whose ``store_event_batch`` is one transaction per shard."""

    @classmethod
    def from_config_value(  # ty: ignore[invalid-method-override]
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, str]
    ) -> BatchingSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """Consecutive asset events of one run in one write per shard; anything else as before.

        A run's planned events mix asset and asset-check events; order is kept by writing each
        stretch of batchable events together and every other event through ``store_event``.
        """
        stretch: list[EventLogEntry] = []
        for event in events:
            if _batchable(event) and (not stretch or stretch[0].run_id == event.run_id):
                stretch.append(event)
                continue
            self._write_stretch(stretch)
            stretch = []
            if _batchable(event):
                stretch.append(event)
            else:
                self.store_event(event)
        self._write_stretch(stretch)

    def _write_stretch(self, events: Sequence[EventLogEntry]) -> None:
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
            self._store_asset_event_tags(conn, events, event_ids)
            # The asset table keeps one row per asset: its latest event is enough.
            latest: dict[object, tuple[EventLogEntry, int]] = {}
            for event, event_id in zip(events, event_ids, strict=True):
                latest[event.get_dagster_event().asset_key] = (event, event_id)
            for event, event_id in latest.values():
                self._store_asset_event(conn, event, event_id)


def _batchable(event: EventLogEntry) -> bool:
    return (
        event.is_dagster_event
        and event.get_dagster_event().event_type in BATCHED_TYPES
        and event.get_dagster_event().asset_key is not None
    )
