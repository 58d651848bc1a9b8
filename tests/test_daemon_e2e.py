"""The real thing: `superhero-dagster listen` + `dagster-daemon run -w workspace.yaml`, nothing else.

After `init-instance`, completed games must reach both sinks with no other action, exactly once.
"""

from __future__ import annotations

import collections

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef

from superhero_dagster.instance_config import write_instance_yaml
from superhero_dagster.keys import ProjectKeys
from superhero_dagster.simulator.run import SimConfig, run_simulation
from superhero_dagster.sinks import GAME_METADATA, GAME_PODIUM, SinkRoot
from superhero_dagster.stack import Stack
from tests.pipeline_helpers import poll

KEYS = ProjectKeys()


def test_listener_and_daemon_alone_bring_games_to_both_sinks(settings, r, tmp_path):
    home = tmp_path / "dagster_home"
    settings = settings.with_(dagster_home=home, sensor_interval_seconds=1, max_games_per_run=50)
    write_instance_yaml(home, max_concurrent_runs=2)
    sink = SinkRoot(settings.data_dir)
    with Stack(settings, tmp_path / "logs") as stack:
        stack.start_listener(0)
        stack.start_daemon()
        poll(lambda: r.hlen(KEYS.listeners) >= 1, timeout=60, what="listener heartbeat")
        summary = run_simulation(
            settings.redis_url,
            SimConfig(
                games=20, players=(2, 4), seed=5, concurrency=4, cleaning_delay=0.0, expire_after=0
            ),
        )

        def landed() -> bool:
            assert stack.alive("daemon"), stack.log_tail("daemon")
            return all(
                set(summary.tokens) <= set(sink.tokens(asset))
                for asset in (GAME_METADATA, GAME_PODIUM)
            )

        poll(landed, timeout=240, interval=0.5, what="all games in both sinks")
        poll(lambda: r.hlen(KEYS.materialized) >= summary.games, timeout=60, what="bookkeeping")
        # The span leaves the buffer at the tick after the one that requested it committed.
        poll(lambda: r.llen(KEYS.buffer) == 0, timeout=60, what="buffer acknowledged")
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        counts = collections.Counter()
        for asset in ("game_snapshot", GAME_METADATA, GAME_PODIUM):
            records = instance.fetch_materializations(dg.AssetKey(asset), limit=1000).records
            for rec in records:
                counts[(asset, rec.partition_key)] += 1
        assert len(counts) == 3 * summary.games
        assert set(counts.values()) == {1}, "a game was materialized twice"
        runs = instance.get_runs()
        assert runs and all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs)
    assert r.llen(KEYS.buffer) == 0


@pytest.fixture(autouse=True)
def _no_stray_dagster_env(monkeypatch):
    """The stack passes its own DAGSTER_HOME to children; do not let the parent's leak in."""
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
