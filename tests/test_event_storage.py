"""The batch-writing event log: one write per shard for a batch, and the same reads as Dagster's own.

Real instances only: SQLite homes written by init-instance's code in tmp folders, Postgres in a
throwaway database of the local server. Statements are counted with a SQLAlchemy event listener
on every engine (an observation of what reaches the database, nothing is replaced).
"""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy
from dagster._core.storage.event_log import SqliteEventLogStorage

from superhero_dagster import games as game_rules
from superhero_dagster.assets.games import GAME_SNAPSHOT
from superhero_dagster.event_storage import BatchingSqliteEventLogStorage
from superhero_dagster.instance_config import write_instance_yaml
from superhero_dagster.keys import ProjectKeys
from superhero_dagster.settings import Settings
from superhero_dagster.sinks import GAME_METADATA, GAME_PODIUM, SinkRoot
from superhero_dagster.snapshot import parse_snapshot
from superhero_dagster.stack import DAGSTER_TUNING_ENV
from tests.pipeline_helpers import run_batch, store
from tests.snapshot_factory import random_game

ASSETS = (GAME_SNAPSHOT, GAME_METADATA, GAME_PODIUM)
MAT = dg.DagsterEventType.ASSET_MATERIALIZATION
PROJECT = ProjectKeys()


@contextlib.contextmanager
def statements() -> Iterator[dict[str, list]]:
    """What reaches any database while the block runs: each INSERT INTO event_logs with its row
    count, each COMMIT, each schema read (``has_table``'s PRAGMA or pg_class query) and each new connection."""
    seen: dict[str, list] = {"inserts": [], "commits": [], "schema_reads": [], "connects": []}

    def on_execute(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO EVENT_LOGS"):
            seen["inserts"].append(_rows(parameters, executemany))
        if "TABLE_INFO" in statement.upper() or "PG_CATALOG.PG_CLASS" in statement.upper():
            seen["schema_reads"].append(statement)

    def on_commit(conn) -> None:
        seen["commits"].append(conn)

    def on_connect(dbapi_connection, record) -> None:
        seen["connects"].append(record)

    engine, pool = sqlalchemy.engine.Engine, sqlalchemy.pool.Pool
    sqlalchemy.event.listen(engine, "before_cursor_execute", on_execute)
    sqlalchemy.event.listen(engine, "commit", on_commit)
    sqlalchemy.event.listen(pool, "connect", on_connect)
    try:
        yield seen
    finally:
        sqlalchemy.event.remove(engine, "before_cursor_execute", on_execute)
        sqlalchemy.event.remove(engine, "commit", on_commit)
        sqlalchemy.event.remove(pool, "connect", on_connect)


def _rows(parameters: object, executemany: bool) -> int:
    if executemany:
        return len(parameters)  # type: ignore[arg-type]
    if isinstance(parameters, dict):  # a multi-row VALUES list names its columns run_id_m0, ...
        return sum(1 for k in parameters if k.startswith("run_id_m")) or 1
    if isinstance(parameters, tuple | list):  # SQLite, positional: 7 columns a row
        return max(1, len(parameters) // 7)
    return 1


@pytest.fixture
def batch_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the daemon and `dagster dev` the project starts have (batch size, planned subset)."""
    for name, value in DAGSTER_TUNING_ENV.items():
        monkeypatch.setenv(name, value)


def games(r, n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return store(r, [random_game(rng) for _ in range(n)])


def per_game_view(instance: dg.DagsterInstance, tokens: list[str]) -> dict:
    """What the UI's partitions view reads: each game's latest materialization per asset."""
    view = {}
    for asset in ASSETS:
        key = dg.AssetKey(asset)
        assert set(instance.get_materialized_partitions(key)) == set(tokens)
        records = instance.fetch_materializations(key, limit=1000).records
        assert len(records) == len(tokens)  # one each, none twice
        for record in records:
            mat = record.asset_materialization
            assert mat is not None
            meta = {k: v.value for k, v in mat.metadata.items()}
            view[(asset, mat.partition)] = {k: v for k, v in meta.items() if "path" not in k}
    return view


def test_sqlite_instance_reads_every_game_like_the_stock_storage(
    tmp_path: Path, settings: Settings, r, batch_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = games(r, 12, seed=21)
    stock_home, ours_home = tmp_path / "stock", tmp_path / "ours"
    stock_home.mkdir()
    write_instance_yaml(ours_home)
    views, writes = {}, {}
    for label, home in (("stock", stock_home), ("ours", ours_home)):
        monkeypatch.setenv("DAGSTER_HOME", str(home))
        with dg.DagsterInstance.get() as instance, statements() as seen:
            want = SqliteEventLogStorage if label == "stock" else BatchingSqliteEventLogStorage
            assert type(instance.event_log_storage) is want
            result = run_batch(instance, settings.with_(data_dir=tmp_path / label), tokens)
            assert result.success
            views[label] = per_game_view(instance, tokens)
            latest = instance.get_latest_materialization_event(dg.AssetKey(GAME_PODIUM))
            assert latest is not None and latest.run_id == result.run_id
        writes[label] = seen["inserts"]
    assert views["ours"] == views["stock"]  # same games, same metadata, game by game
    # Dagster's own writes each materialization twice (run file, index file), one row at a time;
    # ours writes each asset's 12 in one statement per file.
    assert writes["stock"].count(len(tokens)) == 0
    assert writes["ours"].count(len(tokens)) == 2 * len(ASSETS)
    # (and the run's planned asset events, written together too)
    assert len(writes["stock"]) - len(writes["ours"]) >= 2 * len(ASSETS) * (len(tokens) - 1)


def test_store_event_batch_is_one_transaction_per_shard(
    tmp_path: Path, settings: Settings, r, batch_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = games(r, 8, seed=2)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "stock"))
    (tmp_path / "stock").mkdir()
    with dg.DagsterInstance.get() as instance:
        result = run_batch(instance, settings, tokens)
        entries = [
            rec.event_log_entry
            for rec in instance.get_records_for_run(result.run_id, of_type=MAT).records
        ]
        first = instance.get_records_for_run(result.run_id, limit=1).records[0].event_log_entry
        stock = instance.event_log_storage
        ours = BatchingSqliteEventLogStorage(str(tmp_path / "ours"))
        ours.store_event(first)  # creates the run's file: the batch below only writes
        with statements() as seen:
            ours.store_event_batch(entries)
        assert len(seen["commits"]) == 2  # the run's file and the index file, once each
        assert seen["inserts"] == [len(entries), len(entries)]
        for asset in ASSETS:
            key = dg.AssetKey(asset)
            mine = ours.fetch_materializations(key, limit=100).records
            theirs = stock.fetch_materializations(key, limit=100).records
            assert [r.event_log_entry for r in mine] == [r.event_log_entry for r in theirs]
            assert ours.get_materialized_partitions(key) == stock.get_materialized_partitions(key)
            (record,) = ours.get_asset_records([key])
            entry = record.asset_entry.last_materialization_record
            assert entry is not None and entry.event_log_entry == theirs[0].event_log_entry
            assert record.asset_entry.last_run_id == result.run_id


def test_a_failing_game_is_not_materialized_the_rest_of_its_batch_is(
    tmp_path: Path, settings: Settings, r, batch_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = games(r, 5, seed=4)
    bad = json.loads(r.get(PROJECT.snapshot(tokens[1])))
    entry = json.loads(bad["logs"][1])
    entry["STATUS"]["DETAILS"]["ENEMY_DAMAGE"] = "lots"
    bad["logs"][1] = json.dumps(entry)
    r.set(PROJECT.snapshot(tokens[1]), json.dumps(bad))
    write_instance_yaml(tmp_path / "home")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    with dg.DagsterInstance.get() as instance:
        result = run_batch(instance, settings, tokens)
        assert not result.success
        assert tokens[1] in result.get_step_failure_events()[0].step_failure_data.error.message
        for asset in ASSETS:
            got = set(instance.get_materialized_partitions(dg.AssetKey(asset)))
            assert got == set(tokens) - {tokens[1]}, asset


def test_postgres_batch_is_one_insert_per_asset_with_every_game_its_own_metadata(
    tmp_path: Path,
    settings: Settings,
    r,
    batch_env: None,
    monkeypatch: pytest.MonkeyPatch,
    postgres_db: str,
) -> None:
    url = postgres_db
    tokens = games(r, 10, seed=8)
    write_instance_yaml(tmp_path / "home", storage="postgres", postgres_url=url)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    with dg.DagsterInstance.get() as instance, statements() as seen:
        result = run_batch(instance, settings, tokens)
        assert result.success
        view = per_game_view(instance, tokens)
        by_run = instance.get_records_for_run(result.run_id, of_type=MAT, limit=1000).records
    assert len(by_run) == 3 * len(tokens)
    # Each game's own row count and podium, not one shared value for the batch.
    for token in tokens:
        snap = parse_snapshot(SinkRoot(settings.data_dir).read_raw_snapshot(token))
        podium, meta = game_rules.podium_rows(snap), game_rules.metadata_rows(snap)
        assert view[(GAME_PODIUM, token)]["dagster/row_count"] == len(podium)
        assert view[(GAME_METADATA, token)]["dagster/row_count"] == len(meta)
        assert view[(GAME_METADATA, token)]["dagster/row_count"] == len(snap.player_heroes)
    # One multi-row INSERT per asset (the materializations), not one statement per game.
    inserts = seen["inserts"]
    assert inserts.count(len(tokens)) == len(ASSETS)
    # (the other inserts are single events: run/step events and per-game check evaluations)


def _same_keys_as_dagster(instance: dg.DagsterInstance) -> None:
    """Our (cached) key list equals Dagster's own query's, in order, across gaps and definitions."""
    from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage

    from superhero_dagster.partitions import GAMES_PARTITIONS_NAME, delete_game_partitions

    keys = [f"g{i:04d}" for i in range(1500)] + ["o'brien ü", "%(x)s ?"]
    random.Random(5).shuffle(keys)
    instance.add_dynamic_partitions(GAMES_PARTITIONS_NAME, keys[:900])
    instance.add_dynamic_partitions("other", ["a", "b"])
    instance.add_dynamic_partitions(GAMES_PARTITIONS_NAME, keys[900:])
    delete_game_partitions(instance, keys[100:400])
    storage = instance.event_log_storage
    for name in (GAMES_PARTITIONS_NAME, "other", "none"):
        ours = storage.get_dynamic_partitions(name)
        assert ours == SqlEventLogStorage.get_dynamic_partitions(storage, name), name
    assert storage.get_dynamic_partitions(GAMES_PARTITIONS_NAME) == keys[:100] + keys[400:]
    assert instance.get_dynamic_partitions("other") == ["a", "b"]


def test_sqlite_partition_key_list_is_dagsters(tmp_path: Path, monkeypatch) -> None:
    write_instance_yaml(tmp_path / "home")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    with dg.DagsterInstance.get() as instance:
        assert type(instance.event_log_storage) is BatchingSqliteEventLogStorage
        _same_keys_as_dagster(instance)


def test_postgres_partition_key_list_is_dagsters(
    tmp_path: Path, monkeypatch, postgres_db: str
) -> None:
    from superhero_dagster.postgres_event_storage import BatchingPostgresEventLogStorage

    write_instance_yaml(tmp_path / "home", storage="postgres", postgres_url=postgres_db)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    with dg.DagsterInstance.get() as instance:
        assert type(instance.event_log_storage) is BatchingPostgresEventLogStorage
        _same_keys_as_dagster(instance)
