"""The pipeline on Postgres storage (the scale-out configuration), with 2 listeners and 2 runs at once.

Uses the machine's PostgreSQL server on 127.0.0.1:5432 (user `postgres`, trust auth, or
SUPERHERO_TEST_POSTGRES_URL) with a throwaway database this test creates and drops.
"""

from __future__ import annotations

import json

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef

from superhero_dagster.instance_config import write_instance_yaml
from superhero_dagster.keys import ProjectKeys
from superhero_dagster.simulator.run import SimConfig, run_simulation
from superhero_dagster.sinks import GAME_METADATA, GAME_PODIUM, SinkRoot
from tests.pipeline_helpers import daemon_stack, materialization_counts, wait_landed

KEYS = ProjectKeys()


@pytest.mark.postgres
def test_two_listeners_two_concurrent_runs_on_postgres(
    settings, r, tmp_path, postgres_db, monkeypatch
):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    home = tmp_path / "dagster_home"
    settings = settings.with_(dagster_home=home, sensor_interval_seconds=1, max_games_per_run=8)
    write_instance_yaml(home, max_concurrent_runs=2, storage="postgres", postgres_url=postgres_db)
    sink = SinkRoot(settings.data_dir)
    with daemon_stack(settings, r, tmp_path / "logs", 2) as stack:
        summary = run_simulation(
            settings.redis_url,
            SimConfig(
                games=40,
                players=(2, 4),
                seed=21,
                concurrency=8,
                cleaning_delay=0.0,
                expire_after=0,
                timeout_rate=0.1,
            ),
        )
        wait_landed(stack, settings, summary.tokens, timeout=300)
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        assert type(instance.event_log_storage).__name__ == "BatchingPostgresEventLogStorage"
        counts = materialization_counts(instance, ("game_snapshot", GAME_METADATA, GAME_PODIUM))
        assert len(counts) == 3 * summary.games
        assert set(counts.values()) == {1}, "a game was materialized twice"
        runs = instance.get_runs()
        assert len(runs) >= 2
        assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs)
    captured_by = {json.loads(sink.read_raw_snapshot(t))["captured_by"] for t in summary.tokens}
    assert captured_by <= {"listener-0", "listener-1"}
