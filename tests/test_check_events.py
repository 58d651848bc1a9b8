"""Per-game check evaluations as one storage batch: pins the Dagster internals check_events uses,
and shows the batch leaves the same check state as Dagster's one-by-one path.

If one of these fails after a Dagster upgrade, read superhero_dagster/assets/check_events.py.
Real instances only (SQLite homes in tmp folders, one stock, one written by init-instance's code).
"""

import inspect
import random
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.events import DagsterEvent
from dagster._core.execution.context.op_execution_context import OpExecutionContext
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.event_log.schema import (
    AssetCheckExecutionsTable,
    SqlEventLogStorageTable,
)
from dagster._core.storage.sqlalchemy_compat import db_select
from dagster._serdes import deserialize_value
from dagster_postgres.event_log import PostgresEventLogStorage

from superhero_dagster.assets.check_events import BATCH_FLAG, log_check_evaluations
from superhero_dagster.assets.games import ANOMALY_CHECK
from superhero_dagster.event_storage import BatchingSqliteEventLogStorage
from superhero_dagster.instance_config import write_instance_yaml
from superhero_dagster.postgres_event_storage import BatchingPostgresEventLogStorage
from superhero_dagster.settings import Settings
from superhero_dagster.stack import DAGSTER_TUNING_ENV
from tests.pipeline_helpers import run_batch
from tests.postgres_helpers import LOCAL_SERVER, throwaway_database
from tests.stream_helpers import random_builder
from tests.test_event_storage import statements
from tests.test_log_assets import killed_winner_game, put, v2

PARTS = dg.DynamicPartitionsDefinition(name="check_pin_parts")
KEYS = [f"g{i}" for i in range(7)]
#: Partition -> the finding logged for it (no finding: passes, nothing logged).
FOUND = {"g1": "odd", "g2": "odd", "g4": "odd", "g5": "odd", "g6": "odd"}
WARN = dg.AssetCheckSpec("quirks", asset="pin_x")


def _evaluation(key: str) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey("pin_x"),
        check_name="quirks",
        passed=False,
        partition=key,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"game {key}: {FOUND[key]}",
        metadata={"game": key},
    )


@dg.multi_asset(
    specs=[dg.AssetSpec("pin_x", skippable=True)],
    check_specs=[WARN],
    partitions_def=PARTS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    can_subset=False,
)
def pin_checked(context: dg.AssetExecutionContext):
    keys = list(context.partition_keys)
    # One through the public call (the reference for the message), the rest as one batch.
    first, *rest = [k for k in keys if k in FOUND]
    context.log_event(_evaluation(first))
    log_check_evaluations(context, [_evaluation(k) for k in rest])
    yield dg.MaterializeResult(asset_key="pin_x")
    yield dg.AssetCheckResult(
        asset_key="pin_x", check_name="quirks", passed=False, severity=dg.AssetCheckSeverity.WARN
    )


def test_the_private_names_check_events_uses_are_still_there() -> None:
    assert "self._events.append" in inspect.getsource(OpExecutionContext.log_event)
    assert "batch_metadata" in inspect.signature(DagsterEvent.from_step).parameters
    source = inspect.getsource(DagsterEvent.asset_check_evaluation)
    assert "did not pass." in source and "Description: '" in source, "message wording changed"
    assert getattr(BatchingSqliteEventLogStorage, BATCH_FLAG) is True
    assert not getattr(SqliteEventLogStorage, BATCH_FLAG, False)
    assert getattr(BatchingPostgresEventLogStorage, BATCH_FLAG) is True
    assert not getattr(PostgresEventLogStorage, BATCH_FLAG, False)
    # dagster-postgres holds no connection (what the subclass changes) and refuses check batches.
    assert "poolclass=db_pool.NullPool" in inspect.getsource(PostgresEventLogStorage.__init__)
    assert "BATCH_WRITABLE_EVENTS" in inspect.getsource(PostgresEventLogStorage.store_event_batch)


def _check_state(
    instance: dg.DagsterInstance, run_id: str, check_name: str = "quirks"
) -> dict[str | None, tuple]:
    """Per partition: the check's execution status, the evaluation its row points to, and the
    message of that evaluation's event in the run; plus the stored event's id in the index."""
    storage = instance.event_log_storage
    with storage.index_connection() as conn:
        rows = conn.execute(
            db_select(
                [
                    AssetCheckExecutionsTable.c.partition,
                    AssetCheckExecutionsTable.c.execution_status,
                    AssetCheckExecutionsTable.c.evaluation_event_storage_id,
                    AssetCheckExecutionsTable.c.run_id,
                ]
            ).where(AssetCheckExecutionsTable.c.check_name == check_name)
        ).fetchall()
        by_id = {
            int(row[0]): deserialize_value(row[1])
            for row in conn.execute(
                db_select([SqlEventLogStorageTable.c.id, SqlEventLogStorageTable.c.event])
            )
        }
    state = {}
    for partition, status, event_id, row_run in rows:
        assert row_run == run_id
        entry = by_id.get(event_id) if event_id is not None else None
        evaluation = entry.get_dagster_event().event_specific_data if entry else None
        state[partition] = (
            status,
            None if evaluation is None else (evaluation.partition, evaluation.description),
            None if entry is None else entry.get_dagster_event().message,
        )
    return state


def _run(home: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dict, list, dict[str, list]]:
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions(PARTS.name, KEYS)
        with statements() as seen:
            result = dg.materialize(
                [pin_checked],
                instance=instance,
                tags={
                    "dagster/asset_partition_range_start": KEYS[0],
                    "dagster/asset_partition_range_end": KEYS[-1],
                },
            )
        assert result.success
        in_stream = sorted(
            (e.partition or "", e.passed) for e in result.get_asset_check_evaluations()
        )
        return _check_state(instance, result.run_id), in_stream, seen


def test_a_batch_of_evaluations_leaves_the_check_state_dagster_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in DAGSTER_TUNING_ENV.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "stock").mkdir()
    write_instance_yaml(tmp_path / "ours")
    stock, stock_stream, stock_seen = _run(tmp_path / "stock", monkeypatch)
    ours, ours_stream, ours_seen = _run(tmp_path / "ours", monkeypatch)
    stock_inserts, ours_inserts = stock_seen["inserts"], ours_seen["inserts"]
    batched = len(FOUND) - 1
    # Same rows: the found games failed, each with its own evaluation and a message in Dagster's
    # words, and the run's summary result as a row of its own.
    assert ours == stock
    assert {p for p, (status, _, _) in ours.items() if status == "FAILED"} == set(FOUND) | {None}
    for key in FOUND:
        assert ours[key][1] == (key, f"game {key}: odd")
        assert ours[key][2].startswith("Asset check 'quirks' on 'pin_x' did not pass.")
    # The step's own event stream still carries each evaluation.
    assert ours_stream == stock_stream
    assert sorted(p for p, _ in ours_stream if p) == sorted(FOUND)
    # Ours wrote the batch's rows in one statement per file; the stock storage one at a time.
    assert ours_inserts.count(batched) == 2
    assert stock_inserts.count(batched) == 0
    # (the range's materializations are one statement per file too: the rest of the difference)
    assert len(stock_inserts) - len(ours_inserts) == 2 * (batched - 1) + 2 * (len(KEYS) - 1)

    # Dagster reads the schema before every check evaluation; ours once a process.
    def check_table_reads(seen: dict[str, list]) -> int:
        return sum('table_info("asset_check_executions")' in s for s in seen["schema_reads"])

    # (both read it while creating the files; after that Dagster once per evaluation)
    assert check_table_reads(stock_seen) - check_table_reads(ours_seen) >= len(FOUND)


@pytest.mark.postgres
def test_on_postgres_a_batch_is_one_insert_on_a_kept_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_db: str
) -> None:
    """The same run on dagster-postgres's storage and on ours (init-instance's Postgres config),
    each in its own throwaway database: same check state, the batch in one INSERT, and ours keeps
    its connection where the stock class connects once per statement."""
    for name, value in DAGSTER_TUNING_ENV.items():
        monkeypatch.setenv(name, value)
    with throwaway_database(LOCAL_SERVER) as stock_db:
        (tmp_path / "stock").mkdir()
        (tmp_path / "stock" / "dagster.yaml").write_text(
            "storage:\n  postgres:\n    postgres_url: "
            + stock_db.replace("postgresql://", "postgresql+psycopg2://")
            + "\n"
        )
        write_instance_yaml(tmp_path / "ours", storage="postgres", postgres_url=postgres_db)
        stock, stock_stream, stock_seen = _run(tmp_path / "stock", monkeypatch)
        ours, ours_stream, ours_seen = _run(tmp_path / "ours", monkeypatch)
    batched = len(FOUND) - 1
    assert ours == stock
    assert {p for p, (status, _, _) in ours.items() if status == "FAILED"} == set(FOUND) | {None}
    assert ours_stream == stock_stream
    assert ours_seen["inserts"].count(batched) == 1
    assert stock_seen["inserts"].count(batched) == 0
    # Stock: a new connection per statement, so at least one per stored event.
    assert len(stock_seen["connects"]) >= len(stock_seen["inserts"])
    # Ours: the instance's storages (run and schedule storages are stock) plus a pooled one.
    assert len(ours_seen["connects"]) < len(stock_seen["connects"]) / 2
    # and remembers the tables it found: Dagster asks before each check evaluation.
    assert len(stock_seen["schema_reads"]) - len(ours_seen["schema_reads"]) >= len(FOUND)


def test_the_game_batch_batches_its_per_game_warnings(
    tmp_path: Path, settings: Settings, r, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real game assets on the embedded instance: each quirky game's WARN is its own failed
    check row, and the batch's WARNs reach the files in one statement each."""
    for name, value in DAGSTER_TUNING_ENV.items():
        monkeypatch.setenv(name, value)
    rng = random.Random(5)
    quirky = [killed_winner_game(rng)[0] for _ in range(4)]
    plain = random_builder(rng, 3)
    tokens = [put(r, g, v2(g, logs=g.logs, stream=g.logs)) for g in [*quirky, plain]]
    write_instance_yaml(tmp_path / "home")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    with dg.DagsterInstance.get() as instance, statements() as seen:
        result = run_batch(instance, settings, tokens)
        assert result.success
        state = _check_state(instance, result.run_id, check_name=ANOMALY_CHECK)
    failed = {p for p, (status, _, _) in state.items() if status == "FAILED"}
    assert failed == {g.token for g in quirky} | {None}  # None: the batch's summary
    for game in quirky:
        assert state[game.token][1][0] == game.token
        assert "brought to 0 after the end" in state[game.token][1][1]
    assert seen["inserts"].count(len(quirky)) == 2
