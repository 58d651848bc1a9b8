"""Redis state after games are materialized: what the project keeps per game must be bounded.

Real Redis, real instance, real simulator and listeners: the only unexpiring keys that grow per
game may be the ``materialized_at`` and ``log_lost`` sorted sets, and those are trimmed to a
configured count.
"""

from __future__ import annotations

import random

from superhero_dagster import keys
from superhero_dagster.keys import ProjectKeys
from superhero_dagster.simulator.run import SimConfig, run_simulation
from tests.pipeline_helpers import execute, listeners, poll, run_batch, sensor_tick, store
from tests.snapshot_factory import SnapshotBuilder, random_game
from tests.snapshot_factory import token as new_token

KEYS = ProjectKeys()


def test_materialized_set_keeps_only_the_newest_games(instance, settings, r):
    rng = random.Random(141)
    first = store(r, [random_game(rng) for _ in range(3)])
    assert run_batch(instance, settings, first, materialized_keep=3).success
    assert set(r.zrange(KEYS.materialized, 0, -1)) == set(first)
    second = store(r, [random_game(rng) for _ in range(2)])
    assert run_batch(instance, settings, second, materialized_keep=3).success
    kept = r.zrange(KEYS.materialized, 0, -1)
    # The second batch is newer (higher score); within the first batch's tie, the set orders by
    # member, so the first batch's largest token is the one that survives.
    assert len(kept) == 3
    assert set(second) <= set(kept)
    assert set(kept) - set(second) == {max(first)}
    assert r.hget(KEYS.stats, "materialized") == "5"  # the counter still counts every game


def lost_log_game(rng: random.Random) -> str:
    """A 'Completed' lobby with no attack log at all: materialized as log_lost."""
    game = SnapshotBuilder(
        new_token(rng), participants=2, status="Completed", message_timestamp=None
    )
    game.join(new_token(rng), 1, attack=1, health=1)
    game.join(new_token(rng), 2, attack=1, health=1)
    return game.to_json()


def test_lost_log_record_keeps_only_the_newest_games(instance, settings, r):
    rng = random.Random(142)
    first = store(r, [lost_log_game(rng) for _ in range(3)])
    assert run_batch(instance, settings, first, materialized_keep=2).success
    assert r.zcard(KEYS.log_lost) == 2
    second = store(r, [lost_log_game(rng) for _ in range(2)])
    assert run_batch(instance, settings, second, materialized_keep=2).success
    assert set(r.zrange(KEYS.log_lost, 0, -1)) == set(second)


def test_after_materialization_every_per_game_key_expires(settings, r, instance):
    """Simulator -> listener -> sensor -> runs; then each key that names a game has a TTL."""
    settings = settings.with_(expire_after_seconds=30, snapshot_retention_seconds=3600)
    with listeners(settings, 1):
        poll(lambda: r.hlen(KEYS.listeners) >= 1, what="listener alive")
        summary = run_simulation(
            settings.redis_url,
            SimConfig(games=6, players=(2, 3), seed=14, concurrency=3, expire_after=0),
        )
        poll(lambda: r.llen(KEYS.buffer) >= summary.games, what="all games buffered")
    cursor = None
    while True:
        result = sensor_tick(settings, instance, cursor)
        cursor = result.cursor
        if not result.run_requests:
            break
        for request in result.run_requests:
            assert execute(settings, instance, request).success
    tokens = set(summary.tokens)
    assert set(r.zrange(KEYS.materialized, 0, -1)) == tokens
    unexpiring = {}
    for key in r.scan_iter(count=1000):
        named = [t for t in tokens if t in key]
        if named and r.ttl(key) < 0:
            unexpiring[key] = r.type(key)
    assert unexpiring == {}, f"per-game keys with no TTL: {unexpiring}"
    for token in tokens:
        assert r.ttl(KEYS.seen(token)) > 0, "gate marker without TTL"
        assert 0 < r.ttl(KEYS.snapshot(token)) <= 3600, "Redis snapshot copy without TTL"
        assert 0 < r.ttl(keys.game_status(token)) <= 30, "simulator key not expired"
