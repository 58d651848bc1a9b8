"""Plain helpers for the analytics tests: games on chosen days, batched in-process materialization.

``run_batch`` (tests/pipeline_helpers.py): add the partitions, then one run over the
contiguous range (as the sensor's batched run requests do).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from superhero_dagster.assets.analytics import hero_leaderboard
from superhero_dagster.assets.compaction import build_compaction
from superhero_dagster.keys import ProjectKeys
from superhero_dagster.periods import Period
from superhero_dagster.resources import SinkResource
from tests.pipeline_helpers import run_batch, store
from tests.snapshot_factory import SnapshotBuilder, token

PROJECT = ProjectKeys()
#: The tests play games on fake days of 2023: the partitions start before them. Most compact by
#: day (fewer keys to name); the hourly tests build their own compaction.
START = date(2023, 1, 1)
DAY = Period("day")
compaction = build_compaction(DAY.partitions_def(START), DAY)
#: A small roster so that heroes meet often: id -> (name, attack, health).
POOL = {i: (f"Hero {i}", 500 * i + 300, 9_000 + 1_500 * (i % 5)) for i in range(1, 13)}


def game_on(rng: random.Random, day: date, players: int = 4) -> str:
    """A complete game whose attacks happen on ``day`` (UTC), heroes drawn from POOL."""
    start = datetime(day.year, day.month, day.day, 8, tzinfo=UTC)
    return game_at(rng, start + timedelta(minutes=rng.randint(0, 600)), players)


def game_at(rng: random.Random, moment: datetime, players: int = 4) -> str:
    """A complete game whose attacks start at ``moment`` (one second apart)."""
    game = SnapshotBuilder(token(rng), participants=players)
    game.clock = moment
    game.message_timestamp = (game.clock + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%S.%f")
    for hero_id in rng.sample(sorted(POOL), players):
        name, attack, health = POOL[hero_id]
        game.join(token(rng), hero_id, attack, health, name)
    game.fight(rng)
    return game.to_json()


def timed_out_on(rng: random.Random, day: date | None, captured: datetime | None = None) -> str:
    """A one-player lobby that timed out; ``day=None`` leaves ended_at unknown (no message
    time), so the game's day comes from ``captured`` (the listener's clock)."""
    stamp = None if day is None else f"{day.isoformat()}T23:59:59.500000"
    game = SnapshotBuilder(token(rng), participants=2, status="Timed Out", message_timestamp=stamp)
    game.join(token(rng), 1, *POOL[1][1:], POOL[1][0])
    doc = game.document()
    if captured is not None:
        doc["captured_at"] = captured.isoformat()
        doc["trigger"] = "reconcile"
    return json.dumps(doc)


def materialize_games(instance, settings, r, docs: list[str], batch: int = 100) -> list[str]:
    """Stores and materializes the games (indexed for compaction under ``settings``' period)."""
    tokens = store(r, docs)
    for start in range(0, len(tokens), batch):
        assert run_batch(
            instance, settings, tokens[start : start + batch], expire_after_seconds=0
        ).success
    return tokens


def compact(
    instance, settings, day: date | str, assets: dg.AssetsDefinition = compaction
) -> dg.ExecuteInProcessResult:
    """Compacts one period (a day by default, or the key of ``assets``' own period)."""
    return dg.materialize(
        [assets],
        instance=instance,
        partition_key=day if isinstance(day, str) else day.isoformat(),
        resources={"sink": SinkResource(root=str(settings.data_dir))},
    )


def leaderboard(instance, settings) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [hero_leaderboard],
        instance=instance,
        resources={"sink": SinkResource(root=str(settings.data_dir))},
    )


def expected_leaderboard(docs: list[str]) -> dict[int, dict]:
    """Per hero, straight from the snapshots' attack logs (independent of the package's code)."""
    out: dict[int, dict] = defaultdict(
        lambda: {"games": 0, "wins": 0, "ranks": 0, "rounds": 0, "dealt": 0, "taken": 0}
    )
    for text in docs:
        doc = json.loads(text)
        logs = [json.loads(x) for x in (doc["logs"] or [])]
        players = sorted(doc["player_heroes"] or {})
        if doc["status"] != "Completed" or not logs or len(players) < 2:
            continue
        gone: list[str] = []
        stats = {u: {"rounds": 0, "dealt": 0, "taken": 0} for u in players}
        for e in logs:
            a, d = e["PAYLOAD"]["USER_TOKEN"], e["STATUS"]["DETAILS"]
            stats[a]["rounds"] += 1
            stats[a]["dealt"] += d["ENEMY_DAMAGE"]
            stats[d["ENEMY_TOKEN"]]["taken"] += d["ENEMY_DAMAGE"]
            if d["ENEMY_HEALTH_POST"] == 0 and d["ENEMY_TOKEN"] not in gone:
                gone.append(d["ENEMY_TOKEN"])
        for u in players:
            rank = len(players) - gone.index(u) if u in gone else 1
            hero = out[int(doc["player_heroes"][u]["id"])]
            hero["games"] += 1
            hero["wins"] += rank == 1
            hero["ranks"] += rank
            for k in ("rounds", "dealt", "taken"):
                hero[k] += stats[u][k]
    return dict(out)


@contextlib.contextmanager
def fast_instance(monkeypatch) -> Iterator[dg.DagsterInstance]:
    """A real SQLite-backed instance, in RAM (/dev/shm) where the OS has it: the event log
    commits once per event, and a few hundred games on a busy disk take minutes instead of
    seconds. Falls back to an ordinary temporary folder elsewhere."""
    shm = Path("/dev/shm")
    base = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
    with tempfile.TemporaryDirectory(dir=base, prefix="superhero-dagster-") as home:
        monkeypatch.setenv("DAGSTER_HOME", home)
        with dg.instance_for_test(temp_dir=home) as instance:
            yield instance


# Fixtures the analytics test modules import (the module's names are the fixtures'):
@pytest.fixture(name="instance")
def fast_instance_fixture(monkeypatch) -> Iterator[dg.DagsterInstance]:
    with fast_instance(monkeypatch) as instance:
        yield instance


@pytest.fixture(name="settings")
def day_settings(settings):
    """Compaction by day (the games are played on fake days; keys are dates)."""
    return settings.with_(compaction_period="day")


@pytest.fixture(name="settings")
def hour_settings(settings):
    return settings.with_(compaction_period="hour")
