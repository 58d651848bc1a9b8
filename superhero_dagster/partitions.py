"""The ``games`` dynamic partitions: one partition per captured game, keyed by its token."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dagster as dg

from superhero_dagster.partition_key_cache import CachesPartitionKeys, walks_row_ids

GAMES_PARTITIONS_NAME = "games"


class RangeByRowIdPartitions(dg.DynamicPartitionsDefinition):
    """A ``DynamicPartitionsDefinition`` whose key ranges are read by row id.

    Why: a game-batch run names a key range, and Dagster resolves a range of a dynamic partitions
    definition by loading every key of the definition and slicing it. In a run worker (or an
    in-process run) that is three full reads per run, one per asset's output (0.84 s each at 1M
    keys, so the run's cost grew with the history). This reads the range's rows alone, in one
    statement: the two ends' row ids, then the rows between them, in row-id order, which is the
    order Dagster's list has. Anything it cannot answer that way (no instance in the loading
    context, a storage that is not SQL, an end that does not exist, a reversed range) goes to
    Dagster's own method, errors included.

    The class keeps Dagster's class name: serialized partition subsets carry the name of their
    definition's class and are refused by a definition of another name, and the daemon and the
    webserver rebuild the stock class from snapshots (so they, and the run they create, still use
    Dagster's method: the storage caches the key list for them, ``partition_key_cache``).
    """

    def get_partition_keys_in_range(
        self, partition_key_range: dg.PartitionKeyRange
    ) -> Sequence[str]:
        start, end = partition_key_range.start, partition_key_range.end
        if start != end and self.name is not None:
            with dg.partition_loading_context() as ctx:
                store = ctx.dynamic_partitions_store
            if isinstance(store, dg.DagsterInstance):
                keys = keys_in_range(store, self.name, start, end)
                if keys is not None:
                    return keys
        return super().get_partition_keys_in_range(partition_key_range)


RangeByRowIdPartitions.__name__ = RangeByRowIdPartitions.__qualname__ = (
    dg.DynamicPartitionsDefinition.__name__
)

#: Owned here so the sensor, the assets and the retention job agree on one definition.
games_partitions = RangeByRowIdPartitions(name=GAMES_PARTITIONS_NAME)


def _sql_storage(instance: dg.DagsterInstance) -> tuple[Any, Any] | None:
    """The instance's event log and Dagster's dynamic partitions table when the storage is one of
    Dagster's SQL storages (SQLite, Postgres, MySQL); None otherwise, or when a Dagster release
    moved them (callers then take the public, slower path)."""
    try:
        from dagster._core.storage.event_log.schema import DynamicPartitionsTable
        from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage
    except ImportError:
        return None
    storage = instance.event_log_storage
    if not isinstance(storage, SqlEventLogStorage):
        return None
    return storage, DynamicPartitionsTable


def delete_game_partitions(instance: dg.DagsterInstance, keys: Sequence[str]) -> None:
    """Delete many ``games`` partitions at once.

    Why not ``instance.delete_dynamic_partition`` per key: it is one connection and one DELETE per
    key, 6.6 ms each on SQLite here, so a retention pass over the 6,000 games of two minutes at
    50 games/s took 40 s; one ``DELETE ... IN`` per 500 keys took 13 ms per 1,000. Dagster has no
    bulk call; this project's storages have one (``partition_key_cache``: one transaction,
    counted for the key list caches of the daemon and the webserver). Any other storage gets
    Dagster's per-key call.
    """
    if not keys:
        return
    storage = instance.event_log_storage
    if isinstance(storage, CachesPartitionKeys):
        storage.delete_dynamic_partitions(GAMES_PARTITIONS_NAME, keys)
        return
    for key in keys:
        instance.delete_dynamic_partition(GAMES_PARTITIONS_NAME, key)


def _end_id(conn: Any, table: Any, *, newest: bool) -> int | None:
    import sqlalchemy as db

    query = (
        db.select(table.c.id)
        .where(walks_row_ids(GAMES_PARTITIONS_NAME))
        .order_by(table.c.id.desc() if newest else table.c.id.asc())
        .limit(1)
    )
    found = conn.execute(query).scalar()
    return None if found is None else int(found)


def _count(conn: Any, table: Any, at_most: int) -> int:
    import sqlalchemy as db

    if at_most <= 0:
        return 0
    rows = (
        db.select(table.c.id)
        .where(table.c.partitions_def_name == GAMES_PARTITIONS_NAME)
        .limit(at_most)
        .subquery()
    )
    return int(conn.execute(db.select(db.func.count()).select_from(rows)).scalar_one())


def end_partition_id(instance: dg.DagsterInstance, *, newest: bool) -> int | None:
    """Row id of the newest (or oldest) ``games`` partition, None when there is none. Row ids only
    grow, so ``newest - oldest + 1`` bounds the live set from above.

    Why not ``get_paginated_dynamic_partitions(limit=1)``: SQLite answers it from the (name, key)
    index and sorts every key of the definition by id first: 75 ms at 1M keys, 9.6x the sensor's
    whole tick at 10k. Through :func:`~superhero_dagster.partition_key_cache.walks_row_ids` the
    planner walks the row ids from one end and stops at the first ``games`` row (2 ms at 1M;
    ``tests/test_partition_cap.py`` checks the plan).
    """
    sql = _sql_storage(instance)
    if sql is None:
        from dagster._core.types.pagination import StorageIdCursor

        page = instance.get_paginated_dynamic_partitions(
            GAMES_PARTITIONS_NAME, limit=1, ascending=not newest
        )
        if not page.results:
            return None
        return StorageIdCursor.from_cursor(page.cursor).storage_id
    storage, table = sql
    with storage.index_connection() as conn:
        return _end_id(conn, table, newest=newest)


def count_game_partitions(instance: dg.DagsterInstance, at_most: int) -> int:
    """How many ``games`` partitions exist, counted up to ``at_most`` (the answer is exact below
    it, ``at_most`` otherwise).

    Why bounded: Dagster has no count, only the full list (1M keys at 2.7 s). This counts the
    definition's rows in its unique index with a LIMIT, so it costs at most ``at_most`` index
    entries (the cap: a few ms) whatever the history; other storages take the full list.
    """
    sql = _sql_storage(instance)
    if sql is None:
        return max(0, min(at_most, len(instance.get_dynamic_partitions(GAMES_PARTITIONS_NAME))))
    storage, table = sql
    with storage.index_connection() as conn:
        return _count(conn, table, at_most)


def live_game_partitions(instance: dg.DagsterInstance, cap: int, adding: int = 0) -> int:
    """The live ``games`` partitions (at most ``cap``), exact wherever it decides whether
    ``adding`` more fit under ``cap``.

    The row-id span (:func:`end_partition_id` at both ends) is an upper bound: when the span plus
    ``adding`` fits, it is the answer. Otherwise they are counted (:func:`count_game_partitions`,
    up to ``cap``), so a gap, such as an old game retention kept, can never make a roomy set look
    full. One connection for all of it (a new engine per connection on SQLite).
    """
    sql = _sql_storage(instance)
    if sql is None:
        return count_game_partitions(instance, cap)
    storage, table = sql
    with storage.index_connection() as conn:
        newest = _end_id(conn, table, newest=True)
        if newest is None:
            return 0
        oldest = _end_id(conn, table, newest=False)
        span = newest - (oldest if oldest is not None else newest) + 1
        return span if span + adding <= cap else _count(conn, table, cap)


def keys_in_range(
    instance: dg.DagsterInstance, name: str, start: str, end: str
) -> list[str] | None:
    """The partitions of ``name`` from ``start`` to ``end`` (inclusive, in the order they were
    added), or None when this cannot be read cheaply (not a SQL storage, an end not found, a
    reversed range).

    One statement, so one snapshot, as Dagster's single list read is: both ends' row ids as
    subqueries, then the rows between them. Same order as Dagster's list (row id), checked against
    it by ``tests/test_partitions_delete.py``.
    """
    sql = _sql_storage(instance)
    if sql is None:
        return None
    import sqlalchemy as db

    storage, table = sql
    mine = table.c.partitions_def_name == name

    def row_id(key: str) -> Any:
        return (
            db.select(table.c.id).where(db.and_(mine, table.c.partition == key)).scalar_subquery()
        )

    in_range = db.and_(walks_row_ids(name), table.c.id.between(row_id(start), row_id(end)))
    query = db.select(table.c.partition).where(in_range).order_by(table.c.id.asc())
    with storage.index_connection() as conn:
        keys = [row[0] for row in conn.execute(query)]
    if not keys or keys[0] != start or keys[-1] != end:
        return None
    return keys
