"""Bulk deletion of ``games`` partitions and a run's key range read by row id: same result as
Dagster's own calls, on a real instance, and a loud failure if the Dagster internals they use move
(then adapt superhero_dagster/partitions.py, or fall back to Dagster's calls everywhere)."""

from __future__ import annotations

import uuid

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.event_log.schema import DynamicPartitionsTable
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage

from superhero_dagster import partitions
from superhero_dagster.instance_config import write_instance_yaml
from superhero_dagster.partitions import (
    GAMES_PARTITIONS_NAME,
    delete_game_partitions,
    game_keys_in_range,
    games_partitions,
    run_game_keys,
)


def test_the_internals_used_are_still_there(instance):
    from dagster._core.definitions.partitions.subset.key_ranges import KeyRangesPartitionsSubset
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_START_TAG

    assert isinstance(instance.event_log_storage, SqlEventLogStorage)
    assert {"id", "partitions_def_name", "partition"} <= set(DynamicPartitionsTable.c.keys())
    assert "key_ranges" in KeyRangesPartitionsSubset.__annotations__
    assert ASSET_PARTITION_RANGE_START_TAG == "dagster/asset_partition_range_start"


def test_bulk_delete_removes_exactly_the_keys_asked_for(instance, monkeypatch):
    keys = [str(uuid.UUID(int=i)) for i in range(1, 1201)]
    instance.add_dynamic_partitions(GAMES_PARTITIONS_NAME, keys)
    instance.add_dynamic_partitions("other", keys[:5])  # same keys, another definition
    monkeypatch.setattr(partitions, "_DELETE_CHUNK", 100)  # several statements

    def per_key(name: str, key: str) -> None:
        raise AssertionError("took the per-key path on a SQL storage")

    monkeypatch.setattr(instance, "delete_dynamic_partition", per_key)
    gone = [*keys[::2], "not-a-partition"]
    delete_game_partitions(instance, gone)
    assert instance.get_dynamic_partitions(GAMES_PARTITIONS_NAME) == keys[1::2]
    assert instance.get_dynamic_partitions("other") == keys[:5]
    delete_game_partitions(instance, [])  # nothing to do
    assert len(instance.get_dynamic_partitions(GAMES_PARTITIONS_NAME)) == 600


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
        assert game_keys_in_range(pg, keys[41], keys[48]) == keys[41:49]


def test_a_key_range_read_by_row_id_is_dagsters_slice(instance):
    keys = [str(uuid.uuid4()) for _ in range(60)]
    for start in range(0, 60, 20):  # other definitions' rows between ours
        instance.add_dynamic_partitions(GAMES_PARTITIONS_NAME, keys[start : start + 20])
        instance.add_dynamic_partitions("other", [str(uuid.uuid4())])
    delete_game_partitions(instance, keys[30:35])  # gaps in the row ids
    live = instance.get_dynamic_partitions(GAMES_PARTITIONS_NAME)  # what Dagster slices a range of
    for a, b in ((0, 0), (3, 41), (0, len(live) - 1), (28, 30)):
        assert game_keys_in_range(instance, live[a], live[b]) == live[a : b + 1]
    assert game_keys_in_range(instance, live[5], live[2]) is None  # reversed
    assert game_keys_in_range(instance, live[0], keys[31]) is None  # an end that is gone
    assert game_keys_in_range(instance, live[0], "../../etc") is None


def test_a_range_run_takes_its_games_by_row_id(instance, monkeypatch):
    keys = [str(uuid.uuid4()) for _ in range(12)]
    instance.add_dynamic_partitions(GAMES_PARTITIONS_NAME, keys)
    seen: dict[str, list[str]] = {}

    @dg.asset(partitions_def=games_partitions, backfill_policy=dg.BackfillPolicy.single_run())
    def probe(context) -> None:  # unannotated: a string annotation is refused by Dagster
        seen["ours"] = run_game_keys(context)
        seen["dagster"] = list(context.partition_keys)

    def full_list(*args, **kwargs):
        raise AssertionError("run_game_keys loaded the partition list")

    tags = {
        "dagster/asset_partition_range_start": keys[2],
        "dagster/asset_partition_range_end": keys[9],
    }
    with monkeypatch.context() as patch:  # only around our call: Dagster's own reads stay
        original = partitions.game_keys_in_range
        calls: list[tuple[str, str]] = []

        def spy(inst, start, end):
            calls.append((start, end))
            with monkeypatch.context() as inner:
                inner.setattr(inst, "get_dynamic_partitions", full_list)
                return original(inst, start, end)

        patch.setattr(partitions, "game_keys_in_range", spy)
        assert dg.materialize([probe], instance=instance, tags=tags).success
    assert calls == [(keys[2], keys[9])]
    assert seen["ours"] == seen["dagster"] == keys[2:10]
