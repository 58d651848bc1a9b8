"""Lost logs and the game server's quirks, through the real game assets, instance and Redis."""

from __future__ import annotations

import copy
import random

import dagster as dg

from superhero_dagster.assets.games import ANOMALY_CHECK, GAME_SNAPSHOT, LOG_CHECK, PODIUM_CHECK
from superhero_dagster.keys import ProjectKeys
from superhero_dagster.listener import status
from superhero_dagster.sinks import GAME_METADATA, GAME_PODIUM, SinkRoot
from tests.pipeline_helpers import run_batch
from tests.snapshot_factory import SnapshotBuilder, lua_cjson_dumps
from tests.stream_helpers import random_builder

PROJECT = ProjectKeys()


def v2(game: SnapshotBuilder, *, logs: list[str], stream: list[str]) -> str:
    doc = game.document()
    doc.update(schema=2, logs=list(logs), stream=list(stream))
    return lua_cjson_dumps(doc)


def put(r, game: SnapshotBuilder, doc: str) -> str:
    """The snapshot where the listener leaves it, and a leftover attack stream for the game."""
    r.set(PROJECT.snapshot(game.token), doc)
    r.rpush(PROJECT.stream(game.token), *(game.logs or ["x"]))
    r.hset(PROJECT.stream_seen(game.token), "d:0", "1")
    return game.token


def evaluations(result) -> list:
    return [
        e.event_specific_data
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ]


def killed_winner_game(rng: random.Random) -> tuple[SnapshotBuilder, str]:
    game = random_builder(rng, players=2)
    (winner,) = game.order
    loser = next(u for u in game.players if u != winner)
    game.attack(loser, winner, damage=10**6)  # the dead loser kills the winner after the end
    return game, winner


def test_lost_log_is_its_own_outcome_a_failing_check_and_counted(instance, settings, r):
    rng = random.Random(17)
    normal, lost = random_builder(rng, 3), random_builder(rng, 3)
    quirky, winner = killed_winner_game(rng)
    tokens = [
        put(r, normal, v2(normal, logs=[], stream=normal.logs)),  # the worker won the race
        put(r, lost, v2(lost, logs=[], stream=lost.logs[2:])),  # and the stream is partial
        put(r, quirky, v2(quirky, logs=quirky.logs, stream=quirky.logs)),
    ]
    result = run_batch(instance, settings, tokens)
    assert result.success  # findings, not crashes: every game is materialized
    sink = SinkRoot(settings.data_dir)
    meta = {t: sink.read_rows(GAME_METADATA, t) for t in tokens}
    assert {m["status"] for m in meta[lost.token]} == {"log_lost"}
    assert sink.read_rows(GAME_PODIUM, lost.token) == []
    assert {m["status"] for m in meta[normal.token]} == {"completed"}
    assert len(sink.read_rows(GAME_PODIUM, normal.token)) == 3
    ranks = {p["user_token"]: p["rank"] for p in sink.read_rows(GAME_PODIUM, quirky.token)}
    assert ranks[winner] == 1  # the winner stays the winner
    assert {m["deciding_entry"] for m in meta[quirky.token]} == {len(quirky.logs) - 1}

    evals = evaluations(result)
    per_game = {(e.check_name, e.partition): e for e in evals if e.partition is not None}
    assert set(per_game) == {(LOG_CHECK, lost.token), (ANOMALY_CHECK, quirky.token)}
    lost_eval = per_game[(LOG_CHECK, lost.token)]
    assert not lost_eval.passed and lost_eval.severity == dg.AssetCheckSeverity.ERROR
    assert "log lost" in lost_eval.description and lost.token in lost_eval.description
    warn = per_game[(ANOMALY_CHECK, quirky.token)]
    assert warn.severity == dg.AssetCheckSeverity.WARN and quirky.token in warn.description
    assert "brought to 0 after the end" in warn.description
    summary = {e.check_name: e for e in evals if e.partition is None}
    assert summary[PODIUM_CHECK].passed  # the server's quirk does not fail our invariant
    assert not summary[LOG_CHECK].passed and not summary[ANOMALY_CHECK].passed
    assert summary[ANOMALY_CHECK].severity == dg.AssetCheckSeverity.WARN

    records = instance.fetch_materializations(dg.AssetKey(GAME_SNAPSHOT), limit=10).records
    by_game = {rec.partition_key: rec.asset_materialization.metadata for rec in records}
    assert by_game[normal.token]["log_source"].value == "stream"
    assert by_game[lost.token]["log_source"].value == "none"
    assert by_game[lost.token]["outcome"].value == "log_lost"
    assert by_game[quirky.token]["post_game_entries"].value == 1

    for t in tokens:  # the attack streams are released with the game
        assert not r.exists(PROJECT.stream(t)) and not r.exists(PROJECT.stream_seen(t))
    info = status.collect(r, PROJECT)
    assert info["log_lost_total"] == 1 and info["log_lost_recent"] == [lost.token]
    assert "lost logs:           1" in status.render(info)
    r.set(PROJECT.snapshot(lost.token), v2(lost, logs=[], stream=lost.logs[2:]))
    assert run_batch(instance, settings, [lost.token]).success  # re-materialized: counted once
    assert status.collect(r, PROJECT)["log_lost_total"] == 1


def test_same_files_whether_captured_before_or_after_the_late_entries(instance, settings, r):
    rng = random.Random(23)
    early = random_builder(rng, players=4)
    late = copy.deepcopy(early)
    dead = [u for u in late.players if u not in late.order]
    late.attack(dead[0], late.order[0], damage=1)  # dead heroes' queued turns
    late.attack(dead[1], dead[0], damage=3)
    sink = SinkRoot(settings.data_dir)

    def files() -> dict[str, bytes]:
        out = {}
        for asset in (GAME_METADATA, GAME_PODIUM):
            out[f"{asset}.json"] = sink.json_path(asset, early.token).read_bytes()
            out[f"{asset}.parquet"] = sink.parquet_path(asset, early.token).read_bytes()
        return out

    # captured on 'Cleaning' from the stream (list deleted), before the late entries
    r.set(PROJECT.snapshot(early.token), v2(early, logs=[], stream=early.logs))
    assert run_batch(instance, settings, [early.token]).success
    before = files()
    # captured by reconcile from the list, after the late entries were appended
    r.set(PROJECT.snapshot(early.token), v2(late, logs=late.logs, stream=[]))
    assert run_batch(instance, settings, [early.token]).success
    assert files() == before
    records = instance.fetch_materializations(dg.AssetKey(GAME_SNAPSHOT), limit=2).records
    posts = sorted(rec.asset_materialization.metadata["post_game_entries"].value for rec in records)
    assert posts == [0, 2]  # only the materialization metadata tells the captures apart
