"""The simulator against a real Redis: SYSTEM.md's key layout, rules, messages, determinism."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from click.testing import CliRunner

from superhero_dagster import keys
from superhero_dagster.simulator.combat import DEAD_ENEMY_ATTACK, DOUBLE_JOIN, OVERFILLED
from superhero_dagster.simulator.command import simulate_command
from superhero_dagster.simulator.publish import RedisPublishHandler, encode_payload
from superhero_dagster.simulator.run import SimConfig, SimSummary, run_simulation

FAST = {"cleaning_delay": 0.0, "expire_after": 0.0}
#: The old clean-up model (nothing deleted, no expiry): for tests that read what a game wrote after
#: the run, which the original worker (the default) deletes in part.
KEEP = {"cleanup": "expire"}
#: Games without the original's quirks (no dead heroes attacking, a Cleaning for every game): for
#: tests of the plain rules. The quirks have their own tests (tests/test_simulator_original.py).
CLEAN = {"dead_turn_rate": 0.0, "no_cleaning_rate": 0.0}
LOG_KEYS = ["TIMESTAMP", "PAYLOAD", "STATUS"]
PAYLOAD_KEYS = ["level", "timestamp", "name", "log_message", "task"]
DIGITS = re.compile(r"^\d+$")


def poll_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@contextmanager
def capture(redis_url: str, pattern: str = "lib.server.*") -> Iterator[list[tuple[str, str]]]:
    """Collect (channel, data) of every message published while the block runs (and after)."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    pubsub = client.pubsub()
    pubsub.psubscribe(pattern)
    poll_until(lambda: client.pubsub_numpat() >= 1)
    seen: list[tuple[str, str]] = []
    yield seen
    seen.extend(_drain(pubsub))
    pubsub.close()
    client.close()


def _drain(pubsub: Any) -> list[tuple[str, str]]:
    """Everything delivered until the channel has been quiet for half a second."""
    out = []
    while (msg := pubsub.get_message(timeout=0.5)) is not None:
        if msg["type"] in ("message", "pmessage"):
            out.append((msg["channel"], msg["data"]))
    return out


def decode(data: str) -> dict[str, Any]:
    inner = json.loads(data)
    assert isinstance(inner, str), "original wire format: the first json.loads yields a string"
    doc = json.loads(inner)
    assert list(doc) == PAYLOAD_KEYS
    return doc


def game_state(r: redis.Redis, token: str) -> dict[str, Any]:
    players = sorted(r.smembers(keys.game_players(token)))
    return {
        "players": players,
        "participants": r.get(keys.game_participants(token)),
        "status": r.get(keys.game_status(token)),
        "host": r.get(keys.game_host(token)),
        "order": r.lrange(keys.game_order(token), 0, -1),
        "superheros": sorted(r.smembers(keys.game_superheros(token))),
        "heroes": {u: r.hgetall(keys.game_player_hero(token, u)) for u in players},
        "logs": r.lrange(keys.game_logs(token), 0, -1),
        "joined": r.zscore(keys.GAMES_PARTICIPANTS, token),
    }


def test_seeded_run_writes_system_md_layout(r: redis.Redis, redis_url: str) -> None:
    config = SimConfig(games=30, players=(2, 5), seed=7, timeout_rate=0.2, **FAST, **KEEP)
    summary = run_simulation(redis_url, config)
    assert summary.games == 30 and len(summary.tokens) == 30
    assert summary.timed_out and summary.completed
    # Reference data: the build step's heroes, registered users.
    assert r.type(keys.SUPERHEROS) == "hash" and r.type(keys.USERS) == "hash"
    heroes = r.hgetall(keys.SUPERHEROS)
    assert len(heroes) >= 300 and all(DIGITS.match(k) for k in heroes)
    for hero_id, text in list(heroes.items())[:50]:
        hero = json.loads(text)
        stats = hero["powerstats"]
        assert hero["id"] == hero_id and isinstance(hero["name"], str)
        assert (
            stats["health"] == stats["intelligence"] * stats["strength"] * stats["durability"] * 10
        )
        assert stats["attack"] == stats["speed"] * stats["power"] * stats["combat"]
    users = r.hgetall(keys.USERS)
    assert all(uuid.UUID(t).version == 4 and str(uuid.UUID(t)) == t for t in users.values())
    assert r.type(keys.GAMES_PARTICIPANTS) == "zset"
    for token in summary.tokens:
        assert uuid.UUID(token).version == 4
        s = game_state(r, token)
        participants = int(s["participants"])
        assert token in r.lrange(keys.games_players(participants), 0, -1)
        assert r.type(keys.game_players(token)) == "set"
        assert r.type(keys.game_superheros(token)) == "set"
        assert set(s["players"]) <= set(users.values())
        assert s["host"] in s["players"] and s["joined"] == len(s["players"])
        assert sorted(h["id"] for h in s["heroes"].values()) == s["superheros"]
        for hero in s["heroes"].values():
            assert set(hero) == {"id", "attack", "health"}
            assert all(DIGITS.match(v) for v in hero.values())
            assert json.loads(heroes[hero["id"]])["powerstats"]["attack"] == int(hero["attack"])
        if token in summary.timed_out:
            assert s["status"] == keys.STATUS_TIMED_OUT
            assert 1 <= len(s["players"]) < participants
            assert s["logs"] == [] and s["order"] == []
            continue
        assert s["status"] == keys.STATUS_COMPLETED and len(s["players"]) == participants
        everyone_out = token in summary.all_dead  # the winner killed after the end: order empty
        assert r.type(keys.game_order(token)) == ("none" if everyone_out else "list")
        assert r.type(keys.game_logs(token)) == "list"
        for entry in s["logs"]:
            doc = json.loads(entry)
            assert json.dumps(doc) == entry  # byte-compatible: default separators, key order
            assert list(doc) == LOG_KEYS
            assert list(doc["PAYLOAD"]) == ["GAME_TOKEN", "USER_TOKEN"]
            assert doc["PAYLOAD"]["GAME_TOKEN"] == token
            assert doc["STATUS"]["ACTION"] == "ATTACK"
            assert list(doc["STATUS"]["DETAILS"]) == [
                "ENEMY_TOKEN", "ENEMY_DAMAGE", "ENEMY_HEALTH_PRIOR", "ENEMY_HEALTH_POST",
            ]  # fmt: skip
            assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", doc["TIMESTAMP"])


def test_podium_facts_follow_the_rules(r: redis.Redis, redis_url: str) -> None:
    config = SimConfig(games=25, players=(2, 6), seed=11, **FAST, **KEEP, **CLEAN)
    summary = run_simulation(redis_url, config)
    heroes = {k: json.loads(v) for k, v in r.hgetall(keys.SUPERHEROS).items()}
    for token in summary.completed:
        s = game_state(r, token)
        attack = {u: int(h["attack"]) for u, h in s["heroes"].items()}
        health = {u: heroes[h["id"]]["powerstats"]["health"] for u, h in s["heroes"].items()}
        received: dict[str, int] = defaultdict(int)
        for entry in s["logs"]:
            doc = json.loads(entry)
            attacker, d = doc["PAYLOAD"]["USER_TOKEN"], doc["STATUS"]["DETAILS"]
            enemy = d["ENEMY_TOKEN"]
            assert enemy != attacker and health[attacker] > 0, "only the living attack others"
            assert d["ENEMY_DAMAGE"] == attack[attacker]
            assert d["ENEMY_HEALTH_PRIOR"] == health[enemy] > 0, "a living enemy, prior = last post"
            assert d["ENEMY_HEALTH_POST"] == max(d["ENEMY_HEALTH_PRIOR"] - d["ENEMY_DAMAGE"], 0)
            health[enemy] = d["ENEMY_HEALTH_POST"]
            received[enemy] += d["ENEMY_DAMAGE"]
        survivors = [u for u, h in health.items() if h > 0]
        assert len(survivors) == 1 and s["order"] == survivors
        for user, hero in s["heroes"].items():
            assert int(hero["health"]) == health[user]
            initial = heroes[hero["id"]]["powerstats"]["health"]
            if user in survivors:
                assert received[user] == initial - health[user]
            else:
                assert hero["health"] == "0" and received[user] >= initial


def test_messages_per_game_and_channel(r: redis.Redis, redis_url: str) -> None:
    config = SimConfig(
        games=40, players=(2, 4), seed=3, timeout_rate=0.25, no_cleaning_rate=0.1, **FAST, **KEEP
    )
    with capture(redis_url) as seen:
        summary = run_simulation(redis_url, config)
    assert len(seen) == summary.messages
    per_game: dict[str, Counter[tuple[str, str]]] = defaultdict(Counter)
    cleaned: dict[str, list[str]] = defaultdict(list)
    for channel, data in seen:
        doc = decode(data)
        assert doc["name"] == f"redis.{channel}" and doc["level"] == "INFO"
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$", doc["timestamp"])
        task = doc["task"]
        if doc["log_message"] == keys.CLEANING_MESSAGE:
            assert channel == "lib.server.lobby" and list(task) == ["game_token", "user_token"]
            token = task["game_token"]
            cleaned[token].append(task["user_token"])
        else:
            assert isinstance(task, str), "task is a JSON string for other records"
            token = json.loads(task)["PAYLOAD"]["GAME_TOKEN"]
            if doc["log_message"] == "Attack Completed":
                assert channel == "lib.server.game"
                assert task in r.lrange(keys.game_logs(token), 0, -1)
        per_game[token][(channel, doc["log_message"])] += 1
    assert summary.no_cleaning and summary.late
    for token in summary.tokens:
        players = r.smembers(keys.game_players(token))
        if token in summary.no_cleaning:
            assert cleaned[token] == [] and r.get(keys.game_status(token)) == "Completed"
        else:
            assert sorted(cleaned[token]) == sorted(players), "Cleaning once per player"
        counts = per_game[token]
        attacks = r.llen(keys.game_logs(token))
        started = 0 if token in summary.timed_out else 1
        assert counts[("lib.server.lobby", "Starting Match")] == started
        assert counts[("lib.server.game", "Attack Completed")] == attacks
        assert sum(counts.values()) == started + attacks + len(cleaned[token])


def test_plain_wire_format_is_json_encoded_once(redis_url: str) -> None:
    with capture(redis_url) as seen:
        run_simulation(redis_url, SimConfig(games=3, seed=1, wire_format="plain", **FAST))
    assert seen
    for _, data in seen:
        assert list(json.loads(data)) == PAYLOAD_KEYS


def _dump(r: redis.Redis, with_timestamps: bool = False) -> dict[str, Any]:
    """Every key's type and value; log timestamps removed unless asked for."""
    out: dict[str, Any] = {}
    for key in r.scan_iter("*"):
        kind = r.type(key)
        if kind == "string":
            value: Any = r.get(key)
        elif kind == "hash":
            value = r.hgetall(key)
        elif kind == "set":
            value = sorted(r.smembers(key))
        elif kind == "zset":
            value = r.zrange(key, 0, -1, withscores=True)
        else:
            value = r.lrange(key, 0, -1)
            if key.startswith("games:players:"):  # arrival order of concurrent games
                value = sorted(value)
            if key.endswith(":logs") and not with_timestamps:
                value = [{**json.loads(v), "TIMESTAMP": None} for v in value]
        out[key] = (kind, value)
    return out


def test_same_seed_same_games_different_seed_different(r: redis.Redis, redis_url: str) -> None:
    config = SimConfig(games=15, players=(2, 4), seed=42, timeout_rate=0.2, odd_rate=0.3, **FAST)
    first = run_simulation(redis_url, config)
    state = _dump(r)
    r.flushall()
    second = run_simulation(redis_url, SimConfig(**{**config.__dict__, "concurrency": 3}))
    assert second.tokens == first.tokens and second.kinds == first.kinds
    assert _dump(r) == state
    r.flushall()
    other = run_simulation(redis_url, SimConfig(**{**config.__dict__, "seed": 43}))
    assert set(other.tokens).isdisjoint(first.tokens)
    assert _dump(r) != state


def test_fixed_time_makes_runs_byte_identical(r: redis.Redis, redis_url: str) -> None:
    moment = datetime(2023, 7, 25, 10, 0, 0, 123456, tzinfo=UTC)
    config = SimConfig(games=5, seed=9, fixed_time=moment, **FAST)
    runs = []
    for _ in range(2):
        r.flushall()
        with capture(redis_url) as seen:
            run_simulation(redis_url, config)
        runs.append((_dump(r, with_timestamps=True), sorted(seen)))
    assert runs[0] == runs[1]
    assert decode(runs[0][1][0][1])["timestamp"] == "2023-07-25T10:00:00.123456"


def test_expire_after_sets_ttls(r: redis.Redis, redis_url: str) -> None:
    config = SimConfig(
        games=4, seed=5, timeout_rate=0.3, expire_after=30, cleaning_delay=0, **KEEP, **CLEAN
    )
    summary = run_simulation(redis_url, config)
    for token in summary.tokens:
        users = sorted(r.smembers(keys.game_players(token)))
        present = [k for k in keys.game_keys(token, users) if r.exists(k)]
        assert len(present) >= 6
        assert all(0 < r.pttl(k) <= 30_000 for k in present)
    assert r.ttl(keys.SUPERHEROS) == -1 and r.ttl(keys.GAMES_PARTICIPANTS) == -1
    r.flushall()
    summary = run_simulation(redis_url, SimConfig(games=2, seed=5, **FAST, **KEEP))
    assert r.ttl(keys.game_status(summary.tokens[0])) == -1


def test_cleaning_comes_after_the_delay_and_after_the_game(r: redis.Redis, redis_url: str) -> None:
    with capture(redis_url, "lib.server.lobby") as seen:
        summary = run_simulation(
            redis_url, SimConfig(games=3, seed=2, cleaning_delay=0.05, expire_after=0)
        )
    cleaning = [decode(d) for _, d in seen if decode(d)["log_message"] == keys.CLEANING_MESSAGE]
    assert len(cleaning) == summary.players
    for doc in cleaning:  # by the time a consumer hears it, the game is fully written
        assert r.get(keys.game_status(doc["task"]["game_token"])) in keys.FINISHED_STATUSES


def test_odd_games(r: redis.Redis, redis_url: str) -> None:
    def run(kind: str) -> tuple[SimSummary, list[dict[str, Any]]]:
        r.flushall()
        config = SimConfig(
            games=4, players=(3, 4), seed=8, odd_rate=1.0, odd_kinds=(kind,), **FAST, **KEEP,
            **CLEAN,
        )  # fmt: skip
        with capture(redis_url) as seen:
            summary = run_simulation(redis_url, config)
        assert set(summary.kinds.values()) == {kind} and len(summary.kinds) == 4
        return summary, [decode(d) for _, d in seen]

    summary, _ = run(OVERFILLED)
    for token in summary.tokens:
        players = r.scard(keys.game_players(token))
        assert players == int(r.get(keys.game_participants(token))) + 1
        assert r.get(keys.game_status(token)) == keys.STATUS_COMPLETED

    summary, docs = run(DOUBLE_JOIN)
    for token in summary.tokens:
        start = next(d for d in docs if d["log_message"] == "Starting Match"
                     and json.loads(d["task"])["PAYLOAD"]["GAME_TOKEN"] == token)  # fmt: skip
        order = json.loads(start["task"])["STATUS"]["DETAILS"]["ORDER"]
        participants = int(r.get(keys.game_participants(token)))
        assert len(order) == participants and len(set(order)) == participants - 1
        assert r.scard(keys.game_players(token)) == participants - 1
        cleaning = [d["task"]["user_token"] for d in docs
                    if d["log_message"] == keys.CLEANING_MESSAGE
                    and d["task"]["game_token"] == token]  # fmt: skip
        assert Counter(cleaning) == Counter(order), "one Cleaning per join"

    summary, docs = run(DEAD_ENEMY_ATTACK)
    dead_messages = [d for d in docs if d["log_message"] == "Attacked Dead Enemy"]
    assert len(dead_messages) == 4 and {d["level"] for d in dead_messages} == {"ERROR"}
    attacked = [d for d in docs if d["log_message"] == "Attack Completed"]
    for token in summary.tokens:
        (dead,) = [json.loads(d["task"]) for d in dead_messages
                   if json.loads(d["task"])["PAYLOAD"]["GAME_TOKEN"] == token]  # fmt: skip
        assert list(dead) == LOG_KEYS and list(dead["PAYLOAD"]) == ["GAME_TOKEN", "USER_TOKEN"]
        assert dead["STATUS"]["ACTION"] == "NA"
        assert list(dead["STATUS"]["DETAILS"]) == ["ENEMY_TOKEN", "ENEMY_STATUS"]
        assert dead["STATUS"]["DETAILS"]["ENEMY_STATUS"] == "DEAD"
        logs = r.lrange(keys.game_logs(token), 0, -1)
        details = [json.loads(e)["STATUS"]["DETAILS"] for e in logs]
        eliminated = [d["ENEMY_TOKEN"] for d in details if d["ENEMY_HEALTH_POST"] == 0]
        assert dead["STATUS"]["DETAILS"]["ENEMY_TOKEN"] == eliminated[0], "aimed at the first out"
        assert all(d["ENEMY_HEALTH_PRIOR"] > 0 for d in details), "not in the log list"
        mine = [
            d["task"] for d in attacked if json.loads(d["task"])["PAYLOAD"]["GAME_TOKEN"] == token
        ]
        assert mine == logs, "every attack but the dead-enemy turn is logged"
        assert r.get(keys.game_status(token)) == keys.STATUS_COMPLETED


def test_turn_by_turn_mode_ends_in_the_same_state(r: redis.Redis, redis_url: str) -> None:
    config = SimConfig(games=3, players=(3, 3), seed=4, **FAST)
    run_simulation(redis_url, config)
    at_once = _dump(r)
    r.flushall()
    run_simulation(redis_url, SimConfig(**{**config.__dict__, "turn_delay": 0.001}))
    assert _dump(r) == at_once


def test_stop_event_ends_an_endless_run(redis_url: str) -> None:
    stop = threading.Event()
    done: list[SimSummary] = []
    config = SimConfig(games=None, rate=200, seed=1, **FAST, **KEEP)  # the index counts games
    thread = threading.Thread(target=lambda: done.append(run_simulation(redis_url, config, stop)))
    thread.start()
    client = redis.Redis.from_url(redis_url)
    poll_until(lambda: client.zcard(keys.GAMES_PARTICIPANTS) >= 5)
    stop.set()
    thread.join(10)
    assert not thread.is_alive() and done[0].games >= 5
    assert client.zcard(keys.GAMES_PARTICIPANTS) == done[0].games
    client.close()


def test_handler_publishes_records_with_a_queue(redis_url: str) -> None:
    import logging

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    logger = logging.Logger("test.publisher")
    logger.addHandler(RedisPublishHandler(client.publish, wire_format="original"))
    with capture(redis_url, "lib.*") as seen:
        logger.info("not published: no queue")
        logger.info("Hello %s", "there", extra={"queue": "lib.server.lobby", "task": {"a": 1}})
    assert len(seen) == 1 and seen[0][0] == "lib.server.lobby"
    doc = decode(seen[0][1])
    assert (doc["log_message"], doc["task"], doc["name"]) == (
        "Hello there", {"a": 1}, "redis.lib.server.lobby",
    )  # fmt: skip
    client.close()


def test_encode_payload_matches_json_dumps_twice() -> None:
    task = json.dumps({"TIMESTAMP": "x", "PAYLOAD": {"GAME_TOKEN": 'q"\\é'}})
    for t in (task, {"game_token": "g", "user_token": "u"}, None):
        doc = {"level": "INFO", "timestamp": "2023-07-25T10:00:03.123456",
               "name": "redis.lib.server.game", "log_message": "Attack Completed", "task": t}  # fmt: skip
        assert encode_payload("lib.server.game", "Attack Completed", t, doc["timestamp"]) == (
            json.dumps(json.dumps(doc))
        )
        plain = encode_payload("lib.server.game", "Attack Completed", t, doc["timestamp"],
                               wire_format="plain")  # fmt: skip
        assert plain == json.dumps(doc)


def test_cli_simulate_prints_a_summary(r: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    args = ["--games", "6", "--players", "2-4", "--seed", "1", "--cleaning-delay", "0"]
    result = CliRunner().invoke(simulate_command, args, env={"REDIS_URL": redis_url})
    assert result.exit_code == 0, result.output
    assert "6 games" in result.stdout and "games/s" in result.stdout
    assert r.zcard(keys.GAMES_PARTICIPANTS) == 0, "the original worker (default) drops the index"
    assert len(list(r.scan_iter("games:*:status"))) == 6
    out = tmp_path / "tokens.txt"
    result = CliRunner().invoke(
        simulate_command,
        [*args, "--seed", "2", "--tokens-out", str(out)],
        env={"REDIS_URL": redis_url},
    )
    assert result.exit_code == 0, result.output
    tokens = out.read_text().splitlines()
    assert len(tokens) == 6 and all(r.exists(keys.game_status(t)) for t in tokens)
    assert len(list(r.scan_iter("games:*:status"))) == 12
    r.flushall()
    old = ["--cleanup", "expire", "--dead-turn-rate", "0", "--no-cleaning-rate", "0"]
    result = CliRunner().invoke(simulate_command, args + old, env={"REDIS_URL": redis_url})
    assert result.exit_code == 0, result.output
    assert r.zcard(keys.GAMES_PARTICIPANTS) == 6
    bad = CliRunner().invoke(simulate_command, ["--players", "1-3"], env={"REDIS_URL": redis_url})
    assert bad.exit_code != 0 and "2..10" in bad.output
