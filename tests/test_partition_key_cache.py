"""The storages' cached partition key lists: always what Dagster's own query reads, and read
incrementally when only adds happened.

Real instances only: a SQLite home written by init-instance's code, and a throwaway database of
the local Postgres server. Two instances over one home stand for two processes (say the daemon
and a run worker): each storage has its own cache, and one changes what the other has cached.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as db
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.event_log.schema import DynamicPartitionsTable
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage

from superhero_dagster import partition_key_cache
from superhero_dagster.instance_config import write_instance_yaml
from superhero_dagster.partition_key_cache import VERSIONS, CachesPartitionKeys
from superhero_dagster.partitions import GAMES_PARTITIONS_NAME, delete_game_partitions

GAMES = GAMES_PARTITIONS_NAME


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def two_processes(
    request, tmp_path: Path
) -> Iterator[tuple[dg.DagsterInstance, dg.DagsterInstance]]:
    home = tmp_path / "home"
    if request.param == "postgres":
        write_instance_yaml(
            home, storage="postgres", postgres_url=request.getfixturevalue("postgres_db")
        )
    else:
        write_instance_yaml(home)
    with ExitStack() as stack:
        pair = [
            stack.enter_context(dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))))
            for _ in range(2)
        ]
        assert all(isinstance(i.event_log_storage, CachesPartitionKeys) for i in pair)
        yield pair[0], pair[1]


def dagsters_read(instance: dg.DagsterInstance, name: str = GAMES) -> list[str]:
    """The stock class's query, uncached: the truth the cache must equal."""
    return list(SqlEventLogStorage.get_dynamic_partitions(instance.event_log_storage, name))


class Loads:
    """Counts the full reloads of one storage (a spy: the reload itself still runs)."""

    def __init__(self, instance: dg.DagsterInstance, monkeypatch) -> None:
        self.count = 0
        storage = instance.event_log_storage
        original = storage._load

        def spy(conn, name):
            self.count += 1
            return original(conn, name)

        monkeypatch.setattr(storage, "_load", spy)


def test_adds_elsewhere_are_read_incrementally(two_processes, monkeypatch) -> None:
    daemon, other = two_processes
    keys = [str(uuid.uuid4()) for _ in range(30)]
    other.add_dynamic_partitions(GAMES, keys[:10])
    loads = Loads(daemon, monkeypatch)
    assert daemon.get_dynamic_partitions(GAMES) == keys[:10]
    assert loads.count == 1
    for start in (10, 20):
        other.add_dynamic_partitions(GAMES, keys[start : start + 10])
        other.add_dynamic_partitions("other", [f"o{start}"])  # another definition between ours
        assert daemon.get_dynamic_partitions(GAMES) == keys[: start + 10] == dagsters_read(daemon)
    other.add_dynamic_partitions(GAMES, keys[5:12])  # all known: nothing added, nothing counted
    assert daemon.get_dynamic_partitions(GAMES) == keys
    assert loads.count == 1, "a pure add must not reload the whole list"
    with dg.partition_loading_context(dynamic_partitions_store=daemon):  # what the daemon resolves
        stock = dg.DynamicPartitionsDefinition(name=GAMES)
        got = stock.get_partition_keys_in_range(dg.PartitionKeyRange(keys[3], keys[25]))
    assert got == keys[3:26]


def test_deletes_elsewhere_are_applied_from_the_journal(two_processes, monkeypatch) -> None:
    daemon, other = two_processes
    keys = [str(uuid.uuid4()) for _ in range(20)]
    other.add_dynamic_partitions(GAMES, keys)
    assert daemon.get_dynamic_partitions(GAMES) == keys
    loads = Loads(daemon, monkeypatch)
    delete_game_partitions(other, [*keys[:5], "never-added"])
    other.delete_dynamic_partition(GAMES, keys[7])  # Dagster's per-key call (the UI's)
    other.add_dynamic_partitions(GAMES, [keys[0]])  # deleted, then added again: now the newest
    want = keys[5:7] + keys[8:] + keys[:1]
    assert daemon.get_dynamic_partitions(GAMES) == want == dagsters_read(daemon)
    assert daemon.get_dynamic_partitions(GAMES) == want
    assert loads.count == 0, "deletes must not reload the whole list"


def test_a_cache_behind_the_trimmed_journal_reloads(two_processes, monkeypatch) -> None:
    daemon, other = two_processes
    monkeypatch.setattr(partition_key_cache, "JOURNAL_KEEP", 3)
    keys = [str(uuid.uuid4()) for _ in range(10)]
    other.add_dynamic_partitions(GAMES, keys)
    assert daemon.get_dynamic_partitions(GAMES) == keys
    loads = Loads(daemon, monkeypatch)
    delete_game_partitions(other, keys[:2])
    delete_game_partitions(other, keys[2:4])  # the first two entries are trimmed now
    assert daemon.get_dynamic_partitions(GAMES) == keys[4:] == dagsters_read(daemon)
    assert loads.count == 1
    with other.event_log_storage.index_connection() as conn:
        kept = conn.execute(db.select(partition_key_cache.DELETES.c.number)).scalars().all()
    assert sorted(kept) == [2, 3, 4]


def test_a_reused_row_id_is_not_mistaken_for_the_old_row(two_processes) -> None:
    """SQLite hands the newest row's id out again once that row is deleted: the newest key
    deleted and another added in its place must not leave the old key in a cache."""
    daemon, other = two_processes
    keys = [str(uuid.uuid4()) for _ in range(6)]
    other.add_dynamic_partitions(GAMES, keys[:5])
    assert daemon.get_dynamic_partitions(GAMES) == keys[:5]
    delete_game_partitions(other, keys[4:5])
    other.add_dynamic_partitions(GAMES, keys[5:6])
    assert daemon.get_dynamic_partitions(GAMES) == keys[:4] + keys[5:6] == dagsters_read(daemon)


def test_a_row_that_commits_below_the_newest_cached_id_is_found(two_processes) -> None:
    """Postgres hands ids out before commit, so a row can appear below ids already read. Made
    here by hand: a row given the id of one deleted earlier, its add counted, as a late commit
    looks."""
    daemon, other = two_processes
    keys = [str(uuid.uuid4()) for _ in range(4)]
    other.add_dynamic_partitions(GAMES, ["placeholder", *keys[1:4]])
    delete_game_partitions(other, ["placeholder"])
    assert daemon.get_dynamic_partitions(GAMES) == keys[1:4]
    storage = other.event_log_storage
    table = DynamicPartitionsTable
    with storage.index_transaction() as conn:
        low = conn.execute(db.select(db.func.min(table.c.id))).scalar_one() - 1
        conn.execute(table.insert().values(id=low, partitions_def_name=GAMES, partition=keys[0]))
        conn.execute(
            VERSIONS.update()
            .where(VERSIONS.c.partitions_def_name == GAMES)
            .values(added=VERSIONS.c.added + 1)
        )
    assert daemon.get_dynamic_partitions(GAMES) == keys == dagsters_read(daemon)


def test_sqlite_reads_changes_by_row_id_and_merges_the_rows_unsorted(tmp_path: Path) -> None:
    """The plan the catch-up's speed rests on (``CachesPartitionKeys._changes``)."""
    write_instance_yaml(tmp_path / "home")
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path / "home"))) as instance:
        instance.add_dynamic_partitions(GAMES, ["a", "b", "c"])
        delete_game_partitions(instance, ["c"])
        storage = instance.event_log_storage
        captured: list[str] = []
        original = partition_key_cache._raw_rows

        def explain(conn, query):
            compiled = query.compile(dialect=conn.dialect)
            params = tuple(compiled.params[n] for n in compiled.positiontup or ())
            raw = conn.connection.dbapi_connection
            captured.extend(r[-1] for r in raw.execute(f"EXPLAIN QUERY PLAN {compiled}", params))
            return original(conn, query)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(partition_key_cache, "_raw_rows", explain)
            with storage.index_connection() as conn:
                _, deleted, rows = storage._changes(conn, GAMES, 1, 0)
        assert deleted == ["c"] and [row[-1] for row in rows] == ["b"]
        plan = " | ".join(captured)
        assert "MERGE (UNION ALL)" in plan, plan
        # The rows arm is last: a row-id range, and no sort after it (the journal arm, a few
        # entries, may be sorted).
        assert captured[-1] == "SEARCH dynamic_partitions USING INTEGER PRIMARY KEY (rowid>?)", plan


def test_a_wiped_storage_is_a_new_generation(two_processes) -> None:
    daemon, other = two_processes
    old = [str(uuid.uuid4()) for _ in range(3)]
    other.add_dynamic_partitions(GAMES, old)
    assert daemon.get_dynamic_partitions(GAMES) == old
    other.event_log_storage.wipe()
    new = [str(uuid.uuid4()) for _ in range(3)]  # same count: the counters alone would match
    other.add_dynamic_partitions(GAMES, new)
    assert daemon.get_dynamic_partitions(GAMES) == new == dagsters_read(daemon)


def test_random_changes_from_two_processes_always_read_as_dagsters(two_processes) -> None:
    rng = random.Random(14)
    a, b = two_processes
    pool = [f"g{i:03d}" for i in range(60)] + ["o'brien ü", "%(x)s ?", "../../etc"]
    for step in range(120):
        writer = rng.choice((a, b))
        live = dagsters_read(writer)
        action = rng.random()
        if action < 0.5 or not live:
            writer.add_dynamic_partitions(GAMES, rng.sample(pool, rng.randint(1, 6)))
        elif action < 0.65:
            delete_game_partitions(writer, [live[-1]])  # the newest: its id is reused on SQLite
        elif action < 0.8:
            delete_game_partitions(writer, rng.sample(live, min(len(live), rng.randint(1, 5))))
        elif action < 0.9:
            writer.delete_dynamic_partition(GAMES, rng.choice(live))
        else:
            writer.add_dynamic_partitions("other", [f"x{step}"])
        reader = rng.choice((a, b))
        assert reader.get_dynamic_partitions(GAMES) == dagsters_read(reader), step
    assert a.get_dynamic_partitions("other") == dagsters_read(a, "other")


def test_the_list_handed_out_is_a_private_copy_that_finds_keys_by_position(two_processes) -> None:
    daemon, _ = two_processes
    keys = [str(uuid.uuid4()) for _ in range(50)]
    daemon.add_dynamic_partitions(GAMES, keys)
    got = daemon.get_dynamic_partitions(GAMES)
    assert isinstance(got, list)
    assert [got.index(k) for k in keys] == list(range(50))
    assert keys[7] in got and "../../etc" not in got
    with pytest.raises(ValueError):
        got.index("../../etc")
    with pytest.raises(ValueError):
        got.index(keys[3], 10)  # list's start/stop still apply
    assert got[got.index(keys[3]) : got.index(keys[9]) + 1] == keys[3:10]  # Dagster's slice
    got.insert(0, "mine")  # a caller changing its copy gets list's answers, not stale positions
    assert got.index(keys[5]) == 6 and got.index("mine") == 0
    got.remove(keys[0])
    assert keys[0] not in got
    assert daemon.get_dynamic_partitions(GAMES) == keys  # and the cache is untouched
