"""The Lua capture: complete snapshot, atomic gate, odd-but-real games, reconcile (real Redis)."""

from __future__ import annotations

import json
import threading
import uuid

import redis

from superhero_dagster import keys as k
from superhero_dagster.keys import ProjectKeys
from superhero_dagster.listener.capture import CaptureRequest, capture_game, capture_many
from superhero_dagster.listener.reconcile import reconcile
from superhero_dagster.settings import Settings
from tests.listener_helpers import expected_state, make_game, snapshot_state

K = ProjectKeys()
TTL = 3600


def _capture(r: redis.Redis, token: str, trigger: str = "message"):
    return capture_game(r, K, token, listener_id="t1", trigger=trigger, seen_ttl=TTL)  # type: ignore[arg-type]


def test_capture_is_a_complete_copy_and_buffered_once(r: redis.Redis) -> None:
    token, _ = make_game(r, players=4, attacks=5)
    before = expected_state(r, token)
    assert _capture(r, token).outcome == "captured"
    assert _capture(r, token).outcome == "duplicate"
    assert snapshot_state(r, token) == before
    assert r.lrange(K.buffer, 0, -1) == [token]
    assert r.ttl(K.snapshot(token)) == -1  # durable: no TTL
    assert 0 < r.ttl(K.seen(token)) <= TTL  # bounded: the gate marker expires
    assert r.hgetall(K.stats) == {"captured": "1", "duplicates": "1"}
    snap = json.loads(r.get(K.snapshot(token)))
    assert snap["captured_by"] == "t1" and snap["trigger"] == "message"


def test_odd_but_real_games_are_captured(r: redis.Redis) -> None:
    lobby, _ = make_game(r, players=1, status=k.STATUS_TIMED_OUT, attacks=0)
    overfilled, _ = make_game(r, players=5, participants=3)
    twice, _ = make_game(r, players=2, duplicate_player=True)
    extra_turn, users = make_game(r, players=2, attacks=3)
    dead_attack = {"ACTION": "Attacked Dead Enemy", "DETAILS": {"ENEMY_TOKEN": users[1]}}
    r.rpush(k.game_logs(extra_turn), json.dumps({"STATUS": dead_attack}))
    tokens = [lobby, overfilled, twice, extra_turn]
    states = {t: expected_state(r, t) for t in tokens}
    assert [_capture(r, t).outcome for t in tokens] == ["captured"] * 4
    assert r.lrange(K.buffer, 0, -1) == tokens
    for t in tokens:
        assert snapshot_state(r, t) == states[t]
    lobby_snap = json.loads(r.get(K.snapshot(lobby)))
    assert lobby_snap["logs"] in ([], {}) and lobby_snap["status"] == k.STATUS_TIMED_OUT


def test_unknown_and_unfinished_games_are_not_buffered(r: redis.Redis) -> None:
    playing, _ = make_game(r, status=k.STATUS_IN_PROGRESS)
    assert _capture(r, str(uuid.uuid4())).outcome == "unknown"
    res = _capture(r, playing)
    assert (res.outcome, res.status) == ("unfinished", k.STATUS_IN_PROGRESS)
    assert r.llen(K.buffer) == 0 and r.get(K.seen(playing)) is None
    r.set(k.game_status(playing), k.STATUS_COMPLETED)  # it ends later: now it is captured
    assert _capture(r, playing).captured


def test_wrongtype_key_is_an_error_outcome_not_a_crash(r: redis.Redis) -> None:
    token, _ = make_game(r)
    r.delete(k.game_players(token))
    r.set(k.game_players(token), "hostile")  # a string where a set is expected
    res = capture_many(r, K, [CaptureRequest(token)], listener_id="t1", seen_ttl=TTL)[0]
    assert res.outcome == "error" and "WRONGTYPE" in (res.status or "")
    assert r.llen(K.buffer) == 0 and not r.exists(K.seen(token), K.snapshot(token))


def test_gate_holds_under_concurrent_captures(r: redis.Redis, redis_url: str) -> None:
    tokens = [make_game(r)[0] for _ in range(20)]
    outcomes: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        client = redis.Redis.from_url(redis_url)
        for t in tokens:
            res = capture_game(client, K, t, listener_id="c", trigger="message", seen_ttl=TTL)
            with lock:
                outcomes.append(res.outcome)
        client.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(r.lrange(K.buffer, 0, -1)) == sorted(tokens)
    assert outcomes.count("captured") == 20 and outcomes.count("duplicate") == 140


def test_script_reloaded_after_flush(r: redis.Redis) -> None:
    token, _ = make_game(r)
    r.script_flush()  # what a server restart does to loaded scripts
    results = capture_many(
        r,
        K,
        [CaptureRequest(token)],
        listener_id="t1",
        seen_ttl=TTL,
        extra=[("HINCRBY", (K.stats, "messages", 1))],
    )
    assert results[0].captured and r.hget(K.stats, "messages") == "1"


def test_snapshot_survives_expiry_of_the_game(r: redis.Redis) -> None:
    token, _ = make_game(r)
    assert _capture(r, token).captured
    r.delete(*k.game_keys(token, list(r.smembers(k.game_players(token)))))
    assert _capture(r, token).outcome == "duplicate"  # late re-publish after expiry
    assert json.loads(r.get(K.snapshot(token)))["status"] == k.STATUS_COMPLETED


def test_reconcile_captures_finished_games_once_and_leaves_play_alone(
    r: redis.Redis, settings: Settings
) -> None:
    done = [make_game(r)[0] for _ in range(30)]
    timed_out, _ = make_game(r, players=1, status=k.STATUS_TIMED_OUT, attacks=0)
    playing = [make_game(r, status=s)[0] for s in (k.STATUS_IN_PROGRESS, k.STATUS_WAITING_LOBBY)]
    already, _ = make_game(r)
    assert _capture(r, already).captured
    client = redis.Redis.from_url(settings.redis_url)  # bytes client, as the listener uses
    assert reconcile(client, settings, "rec") == 31
    assert reconcile(client, settings, "rec") == 0
    buffered = r.lrange(K.buffer, 0, -1)
    assert sorted(buffered) == sorted([already, timed_out, *done])
    assert not any(r.exists(K.snapshot(t)) for t in playing)
    assert r.hget(K.stats, "reconciled") == "31"
    assert json.loads(r.get(K.snapshot(timed_out)))["trigger"] == "reconcile"
    client.close()
