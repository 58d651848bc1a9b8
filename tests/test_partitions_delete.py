"""Bulk deletion of ``games`` partitions: same result as Dagster's per-key call, on a real
instance, and a loud failure if the Dagster internals it uses move (then adapt
superhero_dagster/partitions.py, or fall back to the per-key call everywhere)."""

from __future__ import annotations

import uuid

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.event_log.schema import DynamicPartitionsTable
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage

from superhero_dagster import partitions
from superhero_dagster.instance_config import write_instance_yaml
from superhero_dagster.partitions import GAMES_PARTITIONS_NAME, delete_game_partitions


def test_the_internals_used_are_still_there(instance):
    assert isinstance(instance.event_log_storage, SqlEventLogStorage)
    assert {"partitions_def_name", "partition"} <= set(DynamicPartitionsTable.c.keys())


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
