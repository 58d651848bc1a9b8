"""The listener loop in a thread: hostile input dead-lettered, valid games still captured, clean stop."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator

import pytest
import redis

from superhero_dagster import keys as k
from superhero_dagster.keys import ProjectKeys
from superhero_dagster.listener.service import run_listener
from superhero_dagster.settings import Settings
from tests.listener_helpers import cleaning, make_game, poll_until

K = ProjectKeys()
CHANNEL = "lib.server.lobby"


@pytest.fixture
def listener(settings: Settings, r: redis.Redis) -> Iterator[str]:
    """A running listener thread; yields its id once it is subscribed."""
    stop = threading.Event()
    s = settings.with_(reconcile_seconds=3600, max_payload_bytes=4096)
    thread = threading.Thread(target=run_listener, args=(s, stop, "thread-1"), daemon=True)
    thread.start()
    poll_until(lambda: r.pubsub_numsub(CHANNEL)[0][1] == 1)
    yield "thread-1"
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
    assert r.hget(K.listeners, "thread-1") is None  # a clean exit removes its heartbeat


def _cleaning_record(task: object) -> str:
    return json.dumps({"log_message": k.CLEANING_MESSAGE, "task": task})


def test_hostile_inputs_are_dead_letters_and_valid_games_still_flow(
    r: redis.Redis, listener: str
) -> None:
    users = str(uuid.uuid4())
    playing, _ = make_game(r, status=k.STATUS_IN_PROGRESS)
    hostile: list[tuple[bytes | str, str]] = [
        (b"definitely not json", "not JSON"),
        (b"\xff\xfe\xfd binary", "not UTF-8"),
        (json.dumps({"no": "log_message"}), "'log_message' missing"),
        (_cleaning_record("not an object"), "'task'"),
        (_cleaning_record({"game_token": 42, "user_token": users}), "not a string"),
        (_cleaning_record({"game_token": "../../etc/passwd", "user_token": users}), "not a UUID"),
        (cleaning(str(uuid.uuid4()), users), "unknown game token"),
        (cleaning(playing, users), "game not finished"),
        ("x" * 5000, "payload too large"),
    ]
    for payload, _ in hostile:
        r.publish(CHANNEL, payload)
    # then a valid game in each wire format, every player's message, one player's twice
    original, original_users = make_game(r, players=3)
    plain, plain_users = make_game(r, players=2)
    for u in [*original_users, original_users[0]]:
        r.publish(CHANNEL, cleaning(original, u, wire="original"))
    for u in plain_users:
        r.publish(CHANNEL, cleaning(plain, u, wire="plain"))
    r.publish(CHANNEL, json.dumps({"log_message": "Attack Completed", "task": "{}"}))

    poll_until(lambda: r.llen(K.buffer) == 2 and r.hget(K.stats, "ignored") == "1")
    assert r.lrange(K.buffer, 0, -1) == [original, plain]
    dead = [json.loads(d) for d in r.lrange(K.deadletter, 0, -1)]
    assert len(dead) == len(hostile)
    reasons = " | ".join(d["reason"] for d in dead)
    for _, expected in hostile:
        assert expected in reasons
    assert all(d["listener"] == listener and d["at"] for d in dead)
    assert any(d["raw"].startswith("b'\\xff\\xfe\\xfd") for d in dead)  # repr-safe, not mojibake
    assert all(len(d["raw"]) < 600 for d in dead)  # truncated
    stats = r.hgetall(K.stats)
    assert stats["deadlettered"] == str(len(hostile))
    assert stats["captured"] == "2"
    assert stats["duplicates"] == "4"  # 3 + 1 extra of the first game, 1 of the second
    assert stats["messages"] == str(len(hostile) + 4 + 2 + 1)
    assert not r.exists(K.snapshot(playing))
    snap = json.loads(r.get(K.snapshot(original)))
    assert snap["captured_by"] == listener and snap["message_timestamp"].startswith("2023-07-25")


def test_deadletter_list_is_capped(r: redis.Redis, settings: Settings) -> None:
    stop = threading.Event()
    s = settings.with_(reconcile_seconds=3600, deadletter_max=5)
    thread = threading.Thread(target=run_listener, args=(s, stop, "capped"), daemon=True)
    thread.start()
    poll_until(lambda: r.pubsub_numsub(CHANNEL)[0][1] == 1)
    for i in range(12):
        r.publish(CHANNEL, f"junk {i}")
    poll_until(lambda: r.hget(K.stats, "deadlettered") == "12")
    stop.set()
    thread.join(10)
    assert r.llen(K.deadletter) == 5
    assert json.loads(r.lindex(K.deadletter, 0))["raw"] == "junk 11"  # newest first


def test_reconcile_on_start_and_heartbeat(r: redis.Redis, settings: Settings) -> None:
    finished = [make_game(r)[0] for _ in range(5)]
    playing, _ = make_game(r, status=k.STATUS_WAITING_PLAYER)
    stop = threading.Event()
    thread = threading.Thread(target=run_listener, args=(settings, stop, "late"), daemon=True)
    thread.start()
    poll_until(lambda: r.llen(K.buffer) == 5)
    poll_until(lambda: r.hget(K.listeners, "late"))
    beat = json.loads(r.hget(K.listeners, "late"))
    assert set(beat) >= {"last_seen", "host", "pid"}
    stop.set()
    thread.join(10)
    assert sorted(r.lrange(K.buffer, 0, -1)) == sorted(finished)
    assert r.hget(K.stats, "reconciled") == "5" and not r.exists(K.snapshot(playing))


def test_overlapped_runs_in_order_finishes_on_close_and_surfaces_errors() -> None:
    from superhero_dagster.listener.capture import Overlapped

    done: list[int] = []
    worker = Overlapped(done.append, depth=1)
    for i in range(50):
        worker.submit(i)
    worker.close()  # the batches in hand are finished
    assert done == list(range(50))

    def fail(item: int) -> None:
        raise redis.ConnectionError(f"lost at {item}")

    broken = Overlapped(fail)
    broken.submit(1)
    with pytest.raises(redis.ConnectionError, match="lost at 1"):
        poll_until(lambda: broken.check() or False, timeout=5)
    with pytest.raises(redis.ConnectionError):
        broken.submit(2)
    broken.close()
