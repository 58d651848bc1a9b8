"""The per-game assets, materialized in-process against a real instance, Redis and file system."""

from __future__ import annotations

import json
import random
from pathlib import Path

import dagster as dg

from superhero_dagster import keys
from superhero_dagster.assets.games import GAME_SNAPSHOT, METADATA_CHECK, PODIUM_CHECK
from superhero_dagster.files import WRITE_AREA
from superhero_dagster.keys import ProjectKeys
from superhero_dagster.sinks import GAME_METADATA, GAME_PODIUM, SinkRoot
from tests.pipeline_helpers import run_batch, store
from tests.snapshot_factory import random_game

PROJECT = ProjectKeys()


def sink_files(root: Path) -> dict[Path, bytes]:
    """The sink's files and bytes, not the write area's lock (a new one per process)."""
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and WRITE_AREA not in p.parts}


def materialized(instance, asset: str) -> set[str]:
    return set(instance.get_materialized_partitions(dg.AssetKey(asset)))


def expected_podium(doc: dict) -> dict[str, dict]:
    """Ranks and sums straight from the attack log, independently of the package's code."""
    logs = [json.loads(x) for x in (doc["logs"] or [])]
    players = sorted(doc["player_heroes"])
    out = {u: {"rounds": 0, "damage_delivered": 0, "damage_received": 0} for u in players}
    eliminated: list[str] = []
    for e in logs:
        a, d = e["PAYLOAD"]["USER_TOKEN"], e["STATUS"]["DETAILS"]
        out[a]["rounds"] += 1
        out[a]["damage_delivered"] += d["ENEMY_DAMAGE"]
        out[d["ENEMY_TOKEN"]]["damage_received"] += d["ENEMY_DAMAGE"]
        if d["ENEMY_HEALTH_POST"] == 0 and d["ENEMY_TOKEN"] not in eliminated:
            eliminated.append(d["ENEMY_TOKEN"])
    for i, u in enumerate(eliminated):
        out[u]["rank"] = len(players) - i
    for u in players:
        out[u].setdefault("rank", 1)
    return out


def test_batch_materializes_every_game_as_its_own_partition(instance, settings, r):
    rng = random.Random(7)
    docs = [random_game(rng, players=rng.randint(2, 5)) for _ in range(6)]
    tokens = store(r, docs)
    result = run_batch(instance, settings, tokens)
    assert result.success
    for asset in (GAME_SNAPSHOT, GAME_METADATA, GAME_PODIUM):
        assert materialized(instance, asset) == set(tokens)
    mats = instance.get_records_for_run(
        result.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ).records
    assert len(mats) == 3 * len(tokens)  # one per game per asset, no duplicates
    sink = SinkRoot(settings.data_dir)
    for token, doc in zip(tokens, docs, strict=True):
        d = json.loads(doc)
        want = expected_podium(d)
        rows = sink.read_rows(GAME_PODIUM, token)
        assert {row["user_token"] for row in rows} == set(want)
        for row in rows:
            got = {k: row[k] for k in ("rank", "rounds", "damage_delivered", "damage_received")}
            assert got == want[row["user_token"]]
            assert row["game_token"] == token
        assert json.loads(sink.json_path(GAME_PODIUM, token).read_text()) == json.loads(
            sink.json_path(GAME_PODIUM, token).read_text()
        )
        meta = sink.read_rows(GAME_METADATA, token)
        assert {m["user_token"] for m in meta} == set(want)
        assert sum(m["is_host"] for m in meta) == 1
        assert sink.read_raw_snapshot(token) == doc.encode()
    # Per-game metadata on each materialization event.
    podium_events = [
        m.event_log_entry.asset_materialization
        for m in mats
        if m.event_log_entry.asset_materialization.asset_key == dg.AssetKey(GAME_PODIUM)
    ]
    rows_by_game = {e.partition: e.metadata["dagster/row_count"].value for e in podium_events}
    assert rows_by_game == {
        t: len(json.loads(d)["player_heroes"]) for t, d in zip(tokens, docs, strict=True)
    }


def test_backfill_after_redis_is_gone_reproduces_identical_files(instance, settings, r):
    rng = random.Random(11)
    docs = [random_game(rng) for _ in range(3)]
    tokens = store(r, docs)
    assert run_batch(instance, settings, tokens, snapshot_retention_seconds=0).success
    sink = SinkRoot(settings.data_dir)
    before = sink_files(Path(settings.data_dir))
    assert all(r.get(PROJECT.snapshot(t)) is None for t in tokens)  # released after persisting
    r.flushall()
    for p in before:
        if "raw" not in p.parts:
            p.unlink()
    again = run_batch(instance, settings, tokens)
    assert again.success
    after = sink_files(Path(settings.data_dir))
    assert after == before
    assert len(sink.read_rows(GAME_PODIUM, tokens[0])) == 4


def test_corrupt_snapshot_fails_the_run_naming_game_and_field_others_still_land(
    instance, settings, r
):
    rng = random.Random(3)
    docs = [random_game(rng) for _ in range(4)]
    bad = json.loads(docs[2])
    entry = json.loads(bad["logs"][1])
    entry["STATUS"]["DETAILS"]["ENEMY_DAMAGE"] = "lots"
    bad["logs"][1] = json.dumps(entry)
    bad_token = bad["game_token"]
    docs[2] = json.dumps(bad)
    tokens = store(r, docs)
    result = run_batch(instance, settings, tokens)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert bad_token in failure.message and "ENEMY_DAMAGE" in failure.message
    good = set(tokens) - {bad_token}
    for asset in (GAME_SNAPSHOT, GAME_METADATA, GAME_PODIUM):
        assert materialized(instance, asset) == good
    assert not SinkRoot(settings.data_dir).json_path(GAME_PODIUM, bad_token).exists()


def test_hostile_partition_key_is_refused_before_any_path(instance, settings, r, tmp_path):
    rng = random.Random(5)
    tokens = store(r, [random_game(rng)])
    hostile = "../../etc"
    result = run_batch(instance, settings, [tokens[0], hostile])
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert hostile in message
    assert materialized(instance, GAME_PODIUM) == {tokens[0]}
    written = [p for p in tmp_path.rglob("*") if p.is_file() and "dagster_home" not in p.parts]
    assert all(Path(settings.data_dir) in p.parents for p in written)


def test_doctored_game_fails_its_check_with_the_game_named(instance, settings, r):
    rng = random.Random(9)
    docs = [random_game(rng) for _ in range(2)]
    odd = json.loads(docs[1])
    # A hero the roster snapshot does not know.
    user = sorted(odd["player_heroes"])[0]
    odd["player_heroes"][user]["id"] = "999999"
    docs[1] = json.dumps(odd)
    tokens = store(r, docs)
    result = run_batch(instance, settings, tokens)
    evaluations = [
        e.event_specific_data
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ]
    failed = [e for e in evaluations if not e.passed]
    for check in (METADATA_CHECK, PODIUM_CHECK):
        per_game = [e for e in failed if e.check_name == check and e.partition is not None]
        assert [e.partition for e in per_game] == [odd["game_token"]]
        assert "999999" in per_game[0].description
        # The consistent game gets no per-partition write (failures only), but the batch's
        # summary counts it among the games checked.
        assert not [e for e in evaluations if e.check_name == check and e.passed and e.partition]
        (summary,) = [e for e in evaluations if e.check_name == check and e.partition is None]
        assert not summary.passed
        assert summary.metadata["games_checked"].value == len(tokens)
        assert list(summary.metadata["failing_games"].value) == [odd["game_token"]]
    # The doctored game still materializes (a check failure is a finding, not a crash).
    assert result.success
    assert materialized(instance, GAME_PODIUM) == set(tokens)


def test_a_games_partition_names_winner_players_and_times(instance, settings, r):
    rng = random.Random(17)
    (token,) = store(r, [random_game(rng)])
    assert run_batch(instance, settings, [token]).success
    sink = SinkRoot(settings.data_dir)
    rows = sink.read_rows(GAME_METADATA, token)
    (winner,) = [p for p in sink.read_rows(GAME_PODIUM, token) if p["rank"] == 1]
    (hero,) = [m for m in rows if m["user_token"] == winner["user_token"]]
    for asset in (GAME_METADATA, GAME_PODIUM):
        record = instance.get_latest_materialization_event(dg.AssetKey(asset))
        meta = {k: v.value for k, v in record.asset_materialization.metadata.items()}
        assert record.asset_materialization.partition == token
        assert meta["winner"] == f"{hero['name']} (#{hero['superhero_id']})"
        assert meta["players"] == len(rows)
        assert meta["started_at"] == rows[0]["started_at"].timestamp()
        assert meta["ended_at"] == rows[0]["ended_at"].timestamp()


def test_materialized_games_get_their_simulator_keys_expired(instance, settings, r):
    rng = random.Random(13)
    tokens = store(r, [random_game(rng)])
    t = tokens[0]
    r.set(keys.game_status(t), "Completed")
    r.rpush(keys.game_logs(t), "x")
    assert run_batch(instance, settings, tokens, expire_after_seconds=30).success
    assert 0 < r.ttl(keys.game_status(t)) <= 30
    assert 0 < r.ttl(keys.game_logs(t)) <= 30
    assert r.zscore(PROJECT.materialized, t) is not None
