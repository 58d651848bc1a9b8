"""Bulk deletion of ``games`` partitions and a run's key range read by row id: same result as
Dagster's own calls, on a real instance, and a loud failure if the Dagster internals they use move
(then adapt superhero_dagster/partitions.py, or fall back to Dagster's calls everywhere)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.event_log.schema import DynamicPartitionsTable
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage

from superhero_dagster import partition_key_cache
from superhero_dagster.instance_config import write_instance_yaml
from superhero_dagster.partitions import (
    GAMES_PARTITIONS_NAME,
    RangeByRowIdPartitions,
    delete_game_partitions,
    games_partitions,
    keys_in_range,
)


def test_the_internals_used_are_still_there(instance):
    from dagster._core.definitions.partitions.subset.key_ranges import KeyRangesPartitionsSubset
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_START_TAG

    assert isinstance(instance.event_log_storage, SqlEventLogStorage)
    assert {"id", "partitions_def_name", "partition"} <= set(DynamicPartitionsTable.c.keys())
    assert "key_ranges" in KeyRangesPartitionsSubset.__annotations__
    assert ASSET_PARTITION_RANGE_START_TAG == "dagster/asset_partition_range_start"


@pytest.fixture
def project_instance(tmp_path) -> Iterator[dg.DagsterInstance]:
    """An instance with this project's storage (init-instance's config), not Dagster's stock one."""
    write_instance_yaml(tmp_path / "home")
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path / "home"))) as inst:
        yield inst


def test_bulk_delete_removes_exactly_the_keys_asked_for(project_instance, monkeypatch):
    instance = project_instance
    keys = [str(uuid.UUID(int=i)) for i in range(1, 1201)]
    instance.add_dynamic_partitions(GAMES_PARTITIONS_NAME, keys)
    instance.add_dynamic_partitions("other", keys[:5])  # same keys, another definition
    monkeypatch.setattr(partition_key_cache, "DELETE_CHUNK", 100)  # several statements

    def per_key(name: str, key: str) -> None:
        raise AssertionError("took the per-key path on this project's storage")

    monkeypatch.setattr(instance, "delete_dynamic_partition", per_key)
    gone = [*keys[::2], "not-a-partition"]
    delete_game_partitions(instance, gone)
    assert instance.get_dynamic_partitions(GAMES_PARTITIONS_NAME) == keys[1::2]
    assert instance.get_dynamic_partitions("other") == keys[:5]
    delete_game_partitions(instance, [])  # nothing to do
    assert len(instance.get_dynamic_partitions(GAMES_PARTITIONS_NAME)) == 600


def test_another_storage_gets_dagsters_per_key_delete(instance):
    keys = [str(uuid.uuid4()) for _ in range(4)]
    instance.add_dynamic_partitions(GAMES_PARTITIONS_NAME, keys)
    delete_game_partitions(instance, keys[1:3])
    assert instance.get_dynamic_partitions(GAMES_PARTITIONS_NAME) == [keys[0], keys[3]]


def test_deleted_games_can_be_added_again(instance):
    keys = [str(uuid.uuid4()) for _ in range(3)]
    instance.add_dynamic_partitions(GAMES_PARTITIONS_NAME, keys)
    delete_game_partitions(instance, keys)
    assert not instance.has_dynamic_partition(GAMES_PARTITIONS_NAME, keys[0])
    instance.add_dynamic_partitions(GAMES_PARTITIONS_NAME, keys[:1])
    assert instance.get_dynamic_partitions(GAMES_PARTITIONS_NAME) == keys[:1]


@pytest.mark.postgres
def test_bulk_delete_on_postgres(tmp_path, postgres_db):
    home = tmp_path / "dagster_home"
    write_instance_yaml(home, storage="postgres", postgres_url=postgres_db)
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as pg:
        keys = [str(uuid.uuid4()) for _ in range(50)]
        pg.add_dynamic_partitions(GAMES_PARTITIONS_NAME, keys)
        delete_game_partitions(pg, keys[:40])
        assert pg.get_dynamic_partitions(GAMES_PARTITIONS_NAME) == keys[40:]
        assert keys_in_range(pg, GAMES_PARTITIONS_NAME, keys[41], keys[48]) == keys[41:49]


def test_a_key_range_read_by_row_id_is_dagsters_slice(instance):
    keys = [str(uuid.uuid4()) for _ in range(60)]
    for start in range(0, 60, 20):  # other definitions' rows between ours
        instance.add_dynamic_partitions(GAMES_PARTITIONS_NAME, keys[start : start + 20])
        instance.add_dynamic_partitions("other", [str(uuid.uuid4())])
    delete_game_partitions(instance, keys[30:35])  # gaps in the row ids
    live = instance.get_dynamic_partitions(GAMES_PARTITIONS_NAME)  # what Dagster slices a range of
    stock = dg.DynamicPartitionsDefinition(name=GAMES_PARTITIONS_NAME)
    for a, b in ((0, 0), (3, 41), (0, len(live) - 1), (28, 30)):
        assert keys_in_range(instance, GAMES_PARTITIONS_NAME, live[a], live[b]) == live[a : b + 1]
        with dg.partition_loading_context(dynamic_partitions_store=instance):
            ours = games_partitions.get_partition_keys_in_range(
                dg.PartitionKeyRange(live[a], live[b])
            )
            assert ours == stock.get_partition_keys_in_range(dg.PartitionKeyRange(live[a], live[b]))
    assert keys_in_range(instance, GAMES_PARTITIONS_NAME, live[5], live[2]) is None  # reversed
    assert keys_in_range(instance, GAMES_PARTITIONS_NAME, live[0], keys[31]) is None  # gone
    assert keys_in_range(instance, GAMES_PARTITIONS_NAME, live[0], "../../etc") is None
    assert keys_in_range(instance, "other", live[0], live[3]) is None  # not that definition's


def test_ranges_it_cannot_read_get_dagsters_answer(instance):
    """Reversed ranges and missing ends: Dagster's own result or error, not a silent empty run."""
    keys = [str(uuid.uuid4()) for _ in range(5)]
    instance.add_dynamic_partitions(GAMES_PARTITIONS_NAME, keys)
    stock = dg.DynamicPartitionsDefinition(name=GAMES_PARTITIONS_NAME)
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        reversed_range = dg.PartitionKeyRange(keys[3], keys[1])
        assert games_partitions.get_partition_keys_in_range(reversed_range) == (
            stock.get_partition_keys_in_range(reversed_range)
        )
        for missing in (
            dg.PartitionKeyRange(keys[0], "../../etc"),
            dg.PartitionKeyRange("x", keys[2]),
        ):
            with pytest.raises(dg.DagsterInvalidInvocationError, match="not a valid range"):
                games_partitions.get_partition_keys_in_range(missing)


def test_it_passes_for_dagsters_class_where_subsets_and_snapshots_are_concerned(instance):
    """The daemon and the webserver rebuild the stock class from snapshots: subsets serialized by
    either class must load in the other, and the snapshot must be the dynamic one."""
    from dagster._core.definitions.partitions.snap import PartitionsSnap

    keys = [str(uuid.uuid4()) for _ in range(4)]
    instance.add_dynamic_partitions(GAMES_PARTITIONS_NAME, keys)
    stock = dg.DynamicPartitionsDefinition(name=GAMES_PARTITIONS_NAME)
    assert isinstance(games_partitions, RangeByRowIdPartitions)
    assert games_partitions == stock and hash(games_partitions) == hash(stock)
    assert type(games_partitions).__name__ == type(stock).__name__
    snap = PartitionsSnap.from_def(games_partitions)
    assert type(snap.get_partitions_definition()) is dg.DynamicPartitionsDefinition
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        for writer, reader in ((games_partitions, stock), (stock, games_partitions)):
            serialized = writer.subset_with_partition_keys(keys[1:3]).serialize()
            assert reader.can_deserialize_subset(serialized, None, type(writer).__name__)
            assert set(reader.deserialize_subset(serialized).get_partition_keys()) == set(keys[1:3])


def test_a_range_run_never_loads_the_partition_list(instance, monkeypatch):
    """An in-process range run (what a run worker does, and here the run's creation too): no full
    key list is read by the planned events, the outputs or ``context.partition_keys``."""
    keys = [str(uuid.uuid4()) for _ in range(12)]
    instance.add_dynamic_partitions(GAMES_PARTITIONS_NAME, keys)
    seen: dict[str, list[str]] = {}

    @dg.asset(partitions_def=games_partitions, backfill_policy=dg.BackfillPolicy.single_run())
    def probe(context) -> None:  # unannotated: a string annotation is refused by Dagster
        seen["keys"] = list(context.partition_keys)

    @dg.asset(
        partitions_def=games_partitions,
        deps=[probe],
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def downstream(context) -> None:
        seen["downstream"] = list(context.partition_keys)

    def full_list(*args, **kwargs):
        raise AssertionError("the run loaded the whole partition list")

    monkeypatch.setattr(instance, "get_dynamic_partitions", full_list)
    tags = {
        "dagster/asset_partition_range_start": keys[2],
        "dagster/asset_partition_range_end": keys[9],
    }
    result = dg.materialize([probe, downstream], instance=instance, tags=tags)
    assert result.success
    assert seen["keys"] == seen["downstream"] == keys[2:10]
    monkeypatch.undo()
    materialized = instance.get_materialized_partitions(dg.AssetKey("probe"))
    assert materialized == set(keys[2:10])


def test_sqlite_reads_a_range_by_row_id(project_instance):
    """The plan the range read's speed rests on: the row ids between the ends, no index scan of
    the definition and no sort (100 ms at 1M keys before)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    keys = [str(uuid.uuid4()) for _ in range(5)]
    project_instance.add_dynamic_partitions(GAMES_PARTITIONS_NAME, keys)
    plans: list[str] = []

    def explain(conn, cursor, statement, parameters, context, executemany):
        if "dynamic_partitions" in statement and statement.lstrip().upper().startswith("SELECT"):
            rows = cursor.connection.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)
            plans.extend(row[-1] for row in rows)

    event.listen(Engine, "before_cursor_execute", explain)
    try:
        got = keys_in_range(project_instance, GAMES_PARTITIONS_NAME, keys[1], keys[3])
    finally:
        event.remove(Engine, "before_cursor_execute", explain)
    assert got == keys[1:4]
    plan = " | ".join(plans)
    assert "SEARCH dynamic_partitions USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)" in plan, plan
    assert "TEMP B-TREE" not in plan, plan
