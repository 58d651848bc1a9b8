"""The simulator as the original by default: its clean-up worker, the attack stream, dead heroes.

The oracle here is written from SYSTEM.md alone: every game is read back from what a consumer
sees (the pub/sub stream, the keys, and MONITOR for the order of the writes), never from the
simulator's internals; the simulator's ``SimSummary`` must agree with it game by game.
"""

from __future__ import annotations

import json
import re
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis

from superhero_dagster import keys
from superhero_dagster.simulator.run import SimConfig, SimSummary, Simulation, run_simulation
from tests.oracle import podium
from tests.test_simulator import capture, decode

ATTACK = "Attack Completed"
MARKER = "monitor-end-marker"
_ARG = re.compile(r'"((?:[^"\\]|\\.)*)"')
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|.)")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "a": "\a", "b": "\b"}


def _unescape(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        code = m.group(1)
        if code.startswith("x") and len(code) == 3:
            return chr(int(code[1:], 16))
        return _ESCAPES.get(code, code)

    return _ESCAPE.sub(one, text)


@contextmanager
def monitor(redis_url: str) -> Iterator[list[list[str]]]:
    """Every command the server runs while the block runs (scripts' commands included), parsed."""
    client = redis.Redis.from_url(redis_url)
    seen: list[list[str]] = []
    with client.monitor() as mon:
        conn = mon.connection

        def read() -> None:
            while True:
                line = conn.read_response()
                text = line.decode() if isinstance(line, bytes) else str(line)
                args = [_unescape(a) for a in _ARG.findall(text.split("] ", 1)[1])]
                if args == ["ECHO", MARKER]:
                    return
                seen.append(args)

        thread = threading.Thread(target=read, daemon=True)
        thread.start()
        yield seen
        client.echo(MARKER)
        thread.join(30)
        assert not thread.is_alive(), "MONITOR did not see the end marker"
    client.close()


@dataclass
class Game:
    """One game as a subscriber of ``lib.server.*`` heard it, in stream order."""

    entries: list[str] = field(default_factory=list)  # 'Attack Completed' tasks
    after_cleaning: list[str] = field(default_factory=list)
    cleaning: list[str] = field(default_factory=list)  # user tokens of the Cleaning messages
    dead_enemy: list[dict[str, Any]] = field(default_factory=list)


def heard(seen: list[tuple[str, str]]) -> dict[str, Game]:
    games: dict[str, Game] = defaultdict(Game)
    for _, data in seen:
        doc = decode(data)
        task = doc["task"]
        if doc["log_message"] == keys.CLEANING_MESSAGE:
            games[task["game_token"]].cleaning.append(task["user_token"])
            continue
        body = json.loads(task)
        game = games[body["PAYLOAD"]["GAME_TOKEN"]]
        if doc["log_message"] == ATTACK:
            game.entries.append(task)
            if game.cleaning:
                game.after_cleaning.append(task)
        elif doc["log_message"] == "Attacked Dead Enemy":
            game.dead_enemy.append(doc)
    return games


def rules(players: set[str], entries: list[str]) -> tuple[int, int, str | None, bool]:
    """(invalid, post-game, winner) by tests/oracle.py, and whether every hero ended at 0."""
    game = podium("g", players, {}, entries)
    winner = next((row["user_token"] for row in game.rows if row["rank"] == 1), None)
    final = {json.loads(e)["STATUS"]["DETAILS"]["ENEMY_TOKEN"]: e for e in entries}
    posts = [json.loads(e)["STATUS"]["DETAILS"]["ENEMY_HEALTH_POST"] for e in final.values()]
    return game.invalid, game.post_game, winner, len(final) == len(players) and not any(posts)


def dead_attacker(entries: list[str]) -> bool:
    """Whether an attacker was at 0 health (an earlier entry took it there), end or not."""
    out: set[str] = set()
    for entry in entries:
        doc = json.loads(entry)
        if doc["PAYLOAD"]["USER_TOKEN"] in out:
            return True
        if doc["STATUS"]["DETAILS"]["ENEMY_HEALTH_POST"] == 0:
            out.add(doc["STATUS"]["DETAILS"]["ENEMY_TOKEN"])
    return False


def run_heard(redis_url: str, config: SimConfig) -> tuple[SimSummary, dict[str, Game], list]:
    with monitor(redis_url) as commands, capture(redis_url) as seen:
        summary = run_simulation(redis_url, config)
    return summary, heard(seen), commands


def test_original_worker_deletes_the_log_on_the_hosts_cleaning(
    r: redis.Redis, redis_url: str
) -> None:
    config = SimConfig(games=60, players=(2, 4), seed=17, timeout_rate=0.1, cleaning_delay=0.01)
    assert (config.cleanup, config.expire_after) == ("original", 30.0), "the defaults"
    summary, games, commands = run_heard(redis_url, config)
    assert summary.late and summary.no_cleaning and summary.timed_out
    for token in summary.tokens:
        game = games[token]
        host = r.get(keys.game_host(token))
        players = sorted(r.smembers(keys.game_players(token)))
        logs = keys.game_logs(token)
        others = [k for k in keys.game_keys(token, players) if k != logs and r.exists(k)]
        if token in summary.no_cleaning:  # no message, so the worker never ran: nothing changes
            assert game.cleaning == [] and r.get(keys.game_status(token)) == "Completed"
            assert r.lrange(logs, 0, -1) == game.entries and r.pttl(logs) == -1
            assert all(r.pttl(k) == -1 for k in others)
            assert r.zscore(keys.GAMES_PARTICIPANTS, token) is not None
            continue
        assert game.cleaning and game.cleaning[0] == host
        # MONITOR: the worker's commands come right after the host's Cleaning, before the next one.
        at = next(i for i, c in enumerate(commands) if c[0] == "PUBLISH"
                  and keys.CLEANING_MESSAGE in c[2] and token in c[2])  # fmt: skip
        participants = r.get(keys.game_participants(token))
        assert commands[at + 1] == ["DEL", logs]
        assert commands[at + 2] == ["ZREM", keys.GAMES_PARTICIPANTS, token]
        assert commands[at + 3] == ["LREM", keys.games_players(int(participants)), "0", token]
        # Afterwards: the list holds only the late entries (re-created, no expiry), or is gone.
        assert r.lrange(logs, 0, -1) == game.after_cleaning
        assert len(game.after_cleaning) == summary.late.get(token, 0)
        assert r.pttl(logs) == (-1 if game.after_cleaning else -2)
        assert r.zscore(keys.GAMES_PARTICIPANTS, token) is None
        assert token not in r.lrange(keys.games_players(int(participants)), 0, -1)
        assert len(others) >= 5 and all(25_000 < r.pttl(k) <= 30_000 for k in others)


@pytest.mark.parametrize("executor", ["script", "pipeline"])
def test_each_attack_is_published_before_its_append_and_the_stream_holds_them_all(
    r: redis.Redis, redis_url: str, executor: str
) -> None:
    config = SimConfig(games=40, players=(2, 4), seed=5, cleaning_delay=0.01, executor=executor,
                       cleanup="expire", expire_after=0)  # fmt: skip
    summary, games, commands = run_heard(redis_url, config)
    published: dict[str, list[str]] = defaultdict(list)
    appended: dict[str, list[str]] = defaultdict(list)
    for cmd in commands:
        if cmd[0] == "PUBLISH" and cmd[1] == "lib.server.game" and ATTACK in cmd[2]:
            task = json.loads(json.loads(cmd[2]))["task"]
            published[json.loads(task)["PAYLOAD"]["GAME_TOKEN"]].append(task)
        elif cmd[0] == "RPUSH" and cmd[1].endswith(":logs"):
            token = cmd[1].split(":")[1]
            for entry in cmd[2:]:
                assert published[token][len(appended[token])] == entry, "published first"
                appended[token].append(entry)
    assert summary.late, "late entries are covered too"
    for token in summary.completed:
        entries = r.lrange(keys.game_logs(token), 0, -1)
        assert entries and appended[token] == published[token] == entries
        assert games[token].entries == entries, "a subscriber hears every entry, in order"


def test_dead_heroes_and_post_game_entries_at_about_the_configured_rate(
    r: redis.Redis, redis_url: str
) -> None:
    config = SimConfig(games=400, seed=23, cleaning_delay=0.0, cleanup="expire", expire_after=0)
    summary, games, _ = run_heard(redis_url, config)
    counts = dict.fromkeys(["dead_attacker", "invalid", "post_game", "late", "all_dead"], 0)
    counts["killed_by_dead"] = 0
    for token in summary.completed:
        game = games[token]
        players = r.smembers(keys.game_players(token))
        invalid, post_game, winner, all_dead = rules(players, game.entries)
        assert (invalid, post_game, len(game.after_cleaning)) == (
            summary.invalid.get(token, 0),
            summary.post_game.get(token, 0),
            summary.late.get(token, 0),
        ), token
        assert winner is not None and summary.winners[token] == winner
        assert all_dead == (token in summary.all_dead)
        assert r.lrange(keys.game_logs(token), 0, -1) == game.entries
        counts["dead_attacker"] += dead_attacker(game.entries)
        counts["invalid"] += invalid > 0
        counts["post_game"] += post_game > 0
        counts["late"] += bool(game.after_cleaning)
        counts["all_dead"] += all_dead
        counts["killed_by_dead"] += int(r.hget(keys.game_player_hero(token, winner), "health")) == 0
    share = {k: v / len(summary.completed) for k, v in counts.items()}
    # The original (206 games): 53% with attacks by eliminated heroes, 47% with attacks after the
    # first Cleaning, 4% ending with every hero at 0. Ranges are about 4 standard deviations.
    assert 0.43 <= share["dead_attacker"] <= 0.68 and share["invalid"] >= 0.1, share
    assert 0.37 <= share["late"] <= 0.57 and share["post_game"] >= share["late"], share
    assert 0.01 <= share["all_dead"] <= 0.10 and counts["killed_by_dead"] >= counts["all_dead"]

    r.flushall()
    clean = SimConfig(**{**config.__dict__, "games": 100, "dead_turn_rate": 0.0})
    summary, games, _ = run_heard(redis_url, clean)
    assert not (summary.invalid or summary.post_game or summary.late or summary.all_dead)
    for token in summary.completed:
        players = r.smembers(keys.game_players(token))
        assert rules(players, games[token].entries)[:2] == (0, 0)


def test_games_without_cleaning_keep_every_key(r: redis.Redis, redis_url: str) -> None:
    config = SimConfig(games=40, seed=31, no_cleaning_rate=0.3, timeout_rate=0.2, cleaning_delay=0)
    with capture(redis_url, "lib.server.lobby") as seen:
        summary = run_simulation(redis_url, config)
    assert 4 <= len(summary.no_cleaning) <= 22 and set(summary.no_cleaning) <= set(
        summary.completed
    )
    cleaned = {decode(d)["task"]["game_token"] for _, d in seen
               if decode(d)["log_message"] == keys.CLEANING_MESSAGE}  # fmt: skip
    assert cleaned == set(summary.tokens) - set(summary.no_cleaning)
    for token in summary.no_cleaning:
        assert r.get(keys.game_status(token)) == keys.STATUS_COMPLETED
        assert r.llen(keys.game_logs(token)) > 0 and r.ttl(keys.game_logs(token)) == -1
        assert token not in summary.late, "the server died: nothing comes after the last attack"
        assert r.zscore(keys.GAMES_PARTICIPANTS, token) is not None


def test_expire_mode_deletes_nothing_and_expires_every_key(r: redis.Redis, redis_url: str) -> None:
    config = SimConfig(games=30, seed=41, cleanup="expire", expire_after=30, cleaning_delay=0.01)
    summary, games, _ = run_heard(redis_url, config)
    assert summary.late
    for token in set(summary.tokens) - set(summary.no_cleaning):
        players = sorted(r.smembers(keys.game_players(token)))
        present = [k for k in keys.game_keys(token, players) if r.exists(k)]
        assert keys.game_logs(token) in present or token in summary.timed_out
        assert all(25_000 < r.pttl(k) <= 30_000 for k in present)
        assert r.lrange(keys.game_logs(token), 0, -1) == games[token].entries, "late ones appended"
        assert r.zscore(keys.GAMES_PARTICIPANTS, token) is not None


def test_every_entry_follows_the_health_chain_dead_attackers_included(
    r: redis.Redis, redis_url: str
) -> None:
    config = SimConfig(games=80, players=(2, 5), seed=3, dead_turn_rate=0.8, cleanup="expire",
                       expire_after=0, cleaning_delay=0)  # fmt: skip
    summary, games, _ = run_heard(redis_url, config)
    heroes = {k: json.loads(v)["powerstats"] for k, v in r.hgetall(keys.SUPERHEROS).items()}
    seen_dead_attacker = seen_zero_prior = 0
    for token in summary.completed:
        players = r.smembers(keys.game_players(token))
        ids = {u: r.hget(keys.game_player_hero(token, u), "id") for u in players}
        health = {u: heroes[ids[u]]["health"] for u in players}
        decided = False
        for entry in games[token].entries:
            doc = json.loads(entry)
            attacker, d = doc["PAYLOAD"]["USER_TOKEN"], doc["STATUS"]["DETAILS"]
            enemy = d["ENEMY_TOKEN"]
            assert enemy != attacker and enemy in players
            assert d["ENEMY_DAMAGE"] == heroes[ids[attacker]]["attack"]
            assert d["ENEMY_HEALTH_PRIOR"] == health[enemy], "prior = the server's health"
            assert d["ENEMY_HEALTH_POST"] == max(d["ENEMY_HEALTH_PRIOR"] - d["ENEMY_DAMAGE"], 0)
            if health[attacker] == 0:
                seen_dead_attacker += 1
                assert decided or d["ENEMY_HEALTH_POST"] > 0 or d["ENEMY_HEALTH_PRIOR"] == 0, (
                    "before the end, a dead hero's turn never eliminates a living one"
                )
            seen_zero_prior += d["ENEMY_HEALTH_PRIOR"] == 0
            health[enemy] = d["ENEMY_HEALTH_POST"]
            decided = decided or sum(h > 0 for h in health.values()) == 1
        for user in players:  # the hero hashes end where the stream ends
            assert int(r.hget(keys.game_player_hero(token, user), "health")) == health[user]
        standing = sorted(u for u in players if health[u] > 0)
        assert sorted(set(r.lrange(keys.game_order(token), 0, -1))) == standing
    assert seen_dead_attacker > 40 and seen_zero_prior > 10


def test_the_quirks_never_change_the_rest_of_the_seeded_game() -> None:

    def plans(**kw: float) -> list[Any]:
        sim = Simulation(SimConfig(games=300, players=(2, 5), seed=9, odd_rate=0.3, **kw))
        return [sim.next_game(i)[0] for i in range(300)]

    clean, quirky = plans(dead_turn_rate=0.0, no_cleaning_rate=0.0), plans()
    untouched = 0
    for a, b in zip(clean, quirky, strict=True):
        assert (a.token, a.participants, a.joins, a.kind) == (
            b.token,
            b.participants,
            b.joins,
            b.kind,
        )
        assert not any(x.by_dead or x.late for x in a.attacks) and a.cleaning
        if not any(x.by_dead or (x.post_game and x.logged) for x in b.attacks):
            assert a.attacks == b.attacks
            untouched += 1
    assert 50 < untouched < 250
