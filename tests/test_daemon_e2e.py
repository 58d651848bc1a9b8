"""The real thing: `superhero-dagster listen` + `superhero-dagster daemon run -w workspace.yaml`
(`dagster-daemon run` with a 1 s sensor loop), nothing else.

After `init-instance`, completed games must reach both sinks with no other action, exactly once.
"""

from __future__ import annotations

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef

from superhero_dagster.instance_config import write_instance_yaml
from superhero_dagster.keys import ProjectKeys
from superhero_dagster.simulator.run import SimConfig, run_simulation
from superhero_dagster.sinks import GAME_METADATA, GAME_PODIUM
from tests.pipeline_helpers import daemon_stack, materialization_counts, poll, wait_landed

KEYS = ProjectKeys()


def test_listener_and_daemon_alone_bring_games_to_both_sinks(settings, r, tmp_path):
    home = tmp_path / "dagster_home"
    settings = settings.with_(dagster_home=home, sensor_interval_seconds=1, max_games_per_run=50)
    write_instance_yaml(home, max_concurrent_runs=2)
    with daemon_stack(settings, r, tmp_path / "logs", 1) as stack:
        summary = run_simulation(
            settings.redis_url,
            SimConfig(
                games=20, players=(2, 4), seed=5, concurrency=4, cleaning_delay=0.0, expire_after=0
            ),
        )
        wait_landed(stack, settings, summary.tokens, timeout=240)
        poll(lambda: r.zcard(KEYS.materialized) >= summary.games, timeout=60, what="bookkeeping")
        # The span leaves the buffer at the tick after the one that requested it committed.
        poll(lambda: r.llen(KEYS.buffer) == 0, timeout=60, what="buffer acknowledged")
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        counts = materialization_counts(instance, ("game_snapshot", GAME_METADATA, GAME_PODIUM))
        assert len(counts) == 3 * summary.games
        assert set(counts.values()) == {1}, "a game was materialized twice"
        runs = instance.get_runs()
        assert runs and all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs)
    assert r.llen(KEYS.buffer) == 0


@pytest.fixture(autouse=True)
def _no_stray_dagster_env(monkeypatch):
    """The stack passes its own DAGSTER_HOME to children; do not let the parent's leak in."""
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
