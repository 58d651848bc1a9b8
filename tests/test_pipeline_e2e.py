"""Simulator -> 2 listeners -> sensor ticks -> runs -> both sinks, every game exactly once."""

from __future__ import annotations

import collections

from superhero_dagster.keys import ProjectKeys
from superhero_dagster.simulator.run import SimConfig, run_simulation
from superhero_dagster.sinks import GAME_METADATA, GAME_PODIUM, SinkRoot
from tests.pipeline_helpers import execute, listeners, poll, sensor_tick

KEYS = ProjectKeys()


def test_every_game_lands_in_both_sinks_exactly_once(settings, r, instance):
    settings = settings.with_(max_games_per_run=7, reconcile_seconds=1)
    with listeners(settings, 2):
        poll(lambda: r.hlen(KEYS.listeners) >= 2, what="2 listeners alive")
        summary = run_simulation(
            settings.redis_url,
            SimConfig(
                games=30,
                players=(2, 4),
                seed=42,
                concurrency=8,
                timeout_rate=0.1,
                cleaning_delay=0.0,
                expire_after=0,
            ),
        )
        poll(lambda: r.llen(KEYS.buffer) >= summary.games, what="all games buffered")
    cursor = None
    runs = []
    while True:
        result = sensor_tick(settings, instance, cursor)
        cursor = result.cursor
        if not result.run_requests:
            break
        for request in result.run_requests:
            runs.append(execute(settings, instance, request))
    assert all(run.success for run in runs)
    assert r.llen(KEYS.buffer) == 0
    sink = SinkRoot(settings.data_dir)
    for asset in (GAME_METADATA, GAME_PODIUM):
        assert sorted(sink.tokens(asset)) == sorted(summary.tokens)
    # Exactly once: one materialization per game per asset across every run.
    counts = collections.Counter()
    for run in runs:
        for event in run.get_asset_materialization_events():
            counts[(event.asset_key.to_user_string(), event.partition)] += 1
    assert set(counts.values()) == {1}
    assert len(counts) == 3 * summary.games
    # Timed-out lobbies: metadata rows, empty podium.
    for token in summary.timed_out:
        assert sink.read_rows(GAME_PODIUM, token) == []
        assert {row["status"] for row in sink.read_rows(GAME_METADATA, token)} == {"timed_out"}
