"""The Postgres event log: dagster-postgres's, holding its connection and taking check batches.

Why, measured with py-spy over ``bench_pipeline`` variant (d) (README, "Throughput"):

- dagster-postgres opens a new connection for every statement (``NullPool``: TCP connect and
  authentication, ~2 ms here, more across hosts). The sensor daemon looks up each key of a
  partition add request on its own, so this was 45 % of the daemon's busy time, and a part of
  every event a run worker stores. This class keeps one connection per storage (``pool_size``
  1, more while threads overlap), checked before use (``pool_pre_ping``) and renewed hourly: what
  dagster-postgres itself does for the webserver (``optimize_for_webserver``), for the daemon and
  the run workers too. One storage per process, so a handful of connections per deployment.
- its ``store_event_batch`` refuses check evaluations (an invariant), so a game batch's per-game
  WARN evaluations were stored one by one: an INSERT, a NOTIFY and an UPDATE, each on a new
  connection (43 % of a run worker's busy time). This class stores such a batch
  (``assets/check_events.py`` sends one because ``BATCHES_CHECK_EVALUATIONS`` is set) as one
  multi-row INSERT and Dagster's own ``store_asset_check_event`` per evaluation, in one
  transaction. Everything else goes to dagster-postgres unchanged.
- as on SQLite (``event_storage.RemembersTables``), a table once found is not looked up again:
  Dagster asks before every dynamic-partition lookup, a schema query each time; and the
  partition key list is cached and kept exact (``partition_key_cache``).

Same tables and schema as the stock class: an instance switches between the two freely.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._serdes import ConfigurableClassData
from dagster_postgres.event_log import PostgresEventLogStorage
from dagster_postgres.utils import (
    create_pg_engine,
    get_token_provider_from_config,
    pg_url_from_config,
)

from superhero_dagster.event_storage import (
    CHECK,
    RemembersTables,
    SharedIndexTransaction,
    event_kind_of,
)
from superhero_dagster.partition_key_cache import CachesPartitionKeys

#: The engine's pool: one connection kept, up to 10 more while threads overlap (closed on return).
POOL: Mapping[str, Any] = {
    "pool_size": 1,
    "max_overflow": 10,
    "pool_recycle": 3600,
    "pool_pre_ping": True,
}


class BatchingPostgresEventLogStorage(
    RemembersTables, CachesPartitionKeys, SharedIndexTransaction, PostgresEventLogStorage
):
    """``PostgresEventLogStorage`` with a pooled connection and batched check evaluations."""

    BATCHES_CHECK_EVALUATIONS = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        kwargs = {"isolation_level": "AUTOCOMMIT", **POOL}
        options = self._engine.url.query.get("options")
        if options:
            kwargs["connect_args"] = {"options": options}
        self._engine.dispose()
        self._engine = create_pg_engine(self.postgres_url, self._token_provider, **kwargs)

    @classmethod
    def from_config_value(  # ty: ignore[invalid-method-override]
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> BatchingPostgresEventLogStorage:
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )

    def dispose(self) -> None:
        super().dispose()
        self._engine.dispose()

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        if (
            len(events) > 1
            and all(event_kind_of(event) == CHECK for event in events)
            and len({event.run_id for event in events}) == 1
        ):
            self._store_check_batch(events)
            return
        super().store_event_batch(events)

    def _store_check_batch(self, events: Sequence[EventLogEntry]) -> None:
        insert = self.prepare_insert_event_batch(events)
        with self.index_transaction() as conn:
            # RETURNING gives the ids in the VALUES' order (what dagster-postgres relies on too).
            result = conn.execute(insert.returning(SqlEventLogStorageTable.c.id))
            event_ids = [int(row[0]) for row in result.fetchall()]
            if len(event_ids) != len(events):
                raise RuntimeError(f"the insert returned {len(event_ids)} ids for {len(events)}")
            with self._sharing_index(conn):
                for event, event_id in zip(events, event_ids, strict=True):
                    self.store_asset_check_event(event, event_id)
