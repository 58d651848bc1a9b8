"""The ``games`` dynamic partitions: one partition per captured game, keyed by its token."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dagster as dg

GAMES_PARTITIONS_NAME = "games"
#: Keys per DELETE statement (SQLite's default limit on bound parameters is far above this).
_DELETE_CHUNK = 500

#: Owned here so the sensor, the assets and the retention job agree on one definition.
games_partitions = dg.DynamicPartitionsDefinition(name=GAMES_PARTITIONS_NAME)


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
    bulk call, so on its SQL storages (SQLite, Postgres, MySQL) this issues the same statement its
    own method does, over a chunk of keys, on the same table; other storages get the per-key call.
    ``tests/test_partitions_delete.py`` pins the Dagster internals used.
    """
    if not keys:
        return
    sql = _sql_storage(instance)
    if sql is None:
        for key in keys:
            instance.delete_dynamic_partition(GAMES_PARTITIONS_NAME, key)
        return
    import sqlalchemy as db

    storage, table = sql
    with storage.index_connection() as conn:
        for start in range(0, len(keys), _DELETE_CHUNK):
            chunk = list(keys[start : start + _DELETE_CHUNK])
            conn.execute(
                table.delete().where(
                    db.and_(
                        table.c.partitions_def_name == GAMES_PARTITIONS_NAME,
                        table.c.partition.in_(chunk),
                    )
                )
            )


def _end_id(conn: Any, table: Any, *, newest: bool) -> int | None:
    import sqlalchemy as db

    query = (
        db.select(table.c.id)
        .where(db.func.coalesce(table.c.partitions_def_name, "") == GAMES_PARTITIONS_NAME)
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
    whole tick at 10k. Comparing ``coalesce(name, '')`` (the column is NOT NULL, so the same rows)
    keeps the planner off that index: it walks the row ids from one end and stops at the first
    ``games`` row (2 ms at 1M; ``tests/test_partition_cap.py`` checks the plan).
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


def game_keys_in_range(instance: dg.DagsterInstance, start: str, end: str) -> list[str] | None:
    """The ``games`` partitions from ``start`` to ``end`` (inclusive, in the order they were added),
    or None when this cannot be read cheaply (not a SQL storage, a key not found).

    Why not ``context.partition_keys``: for a key range of a dynamic partitions definition Dagster
    loads every partition of the definition and slices it (2.7 s at 1M partitions, once per call).
    This reads the two ends' row ids, then the rows between them: the run's games only. Same order
    as Dagster's (row id), checked against it by ``tests/test_partitions_delete.py``.
    """
    sql = _sql_storage(instance)
    if sql is None:
        return None
    import sqlalchemy as db

    storage, table = sql
    mine = table.c.partitions_def_name == GAMES_PARTITIONS_NAME
    with storage.index_connection() as conn:
        ends = dict(
            conn.execute(
                db.select(table.c.partition, table.c.id).where(
                    db.and_(mine, table.c.partition.in_([start, end]))
                )
            ).fetchall()
        )
        if start not in ends or end not in ends or ends[start] > ends[end]:
            return None
        rows = conn.execute(
            db.select(table.c.partition)
            .where(db.and_(mine, table.c.id.between(ends[start], ends[end])))
            .order_by(table.c.id.asc())
        )
        return [row[0] for row in rows]


def run_game_keys(context: dg.AssetExecutionContext) -> list[str]:
    """The games of this run: for a run over one key range (the sensor's batches) read by row id
    (:func:`game_keys_in_range`), for any other run (one game, a backfill's subset) from Dagster."""
    from dagster._core.definitions.partitions.subset.key_ranges import KeyRangesPartitionsSubset
    from dagster._core.storage.tags import (
        ASSET_PARTITION_RANGE_END_TAG,
        ASSET_PARTITION_RANGE_START_TAG,
    )

    run = context.run
    start = run.tags.get(ASSET_PARTITION_RANGE_START_TAG)
    end = run.tags.get(ASSET_PARTITION_RANGE_END_TAG)
    subset = run.partitions_subset
    one_range = subset is None or (
        isinstance(subset, KeyRangesPartitionsSubset)
        and list(subset.key_ranges) == [dg.PartitionKeyRange(start or "", end or "")]
    )
    if start and end and one_range:
        keys = game_keys_in_range(context.instance, start, end)
        if keys is not None:
            return keys
    return list(context.partition_keys)
