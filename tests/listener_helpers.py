"""Game state written with keys.py (as the simulator would), payloads, and a poll helper.

The listener's unit tests must not depend on the simulator, so they build games here; the
integration tests use the real simulator.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

import redis

from superhero_dagster import keys as k
from superhero_dagster.keys import ProjectKeys
from superhero_dagster.settings import Settings

T = TypeVar("T")


def poll_until(fn: Callable[[], T], timeout: float = 15.0, interval: float = 0.02) -> T:
    """Return fn()'s first truthy value, or fail after ``timeout`` (never a bare sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value {value!r})")
        time.sleep(interval)


def hero_json(hero_id: int) -> str:
    return json.dumps(
        {"id": hero_id, "name": f"Hero {hero_id}", "powerstats": {"health": 100, "attack": 10}}
    )


def make_game(
    r: redis.Redis,
    *,
    players: int = 2,
    participants: int | None = None,
    status: str = k.STATUS_COMPLETED,
    attacks: int = 1,
    duplicate_player: bool = False,
) -> tuple[str, list[str]]:
    """Write one game's SYSTEM.md keys; returns (game token, user tokens)."""
    t = str(uuid.uuid4())
    users = [str(uuid.uuid4()) for _ in range(players)]
    pipe = r.pipeline()
    pipe.zadd(k.GAMES_PARTICIPANTS, {t: players})
    pipe.rpush(k.games_players(participants or players), t)
    pipe.sadd(k.game_players(t), *users)
    if duplicate_player:
        pipe.sadd(k.game_players(t), users[0])  # a set: joining twice leaves one member
    pipe.set(k.game_participants(t), participants or players)
    pipe.set(k.game_status(t), status)
    pipe.set(k.game_host(t), users[0])
    pipe.rpush(k.game_order(t), *users)
    for i, u in enumerate(users):
        hero = i + 1
        pipe.hset(k.SUPERHEROS, str(hero), hero_json(hero))
        pipe.sadd(k.game_superheros(t), str(hero))
        pipe.hset(k.game_player_hero(t, u), mapping={"id": hero, "attack": 10, "health": 100})
    for a in range(attacks):
        if players < 2:
            break
        entry = {
            "TIMESTAMP": "2023-07-25T10:00:00Z",
            "PAYLOAD": {"GAME_TOKEN": t, "USER_TOKEN": users[a % players]},
            "STATUS": {
                "ACTION": "ATTACK",
                "DETAILS": {
                    "ENEMY_TOKEN": users[(a + 1) % players],
                    "ENEMY_DAMAGE": 10,
                    "ENEMY_HEALTH_PRIOR": 100,
                    "ENEMY_HEALTH_POST": 90,
                },
            },
        }
        pipe.rpush(k.game_logs(t), json.dumps(entry))
    pipe.execute()
    return t, users


def cleaning(token: str, user: str, *, wire: str = "original", ts: str | None = None) -> str:
    """A 'Cleaning Game Records' payload; ``original`` is JSON-encoded twice like the seed."""
    record = {
        "level": "INFO",
        "timestamp": ts or "2023-07-25T10:00:03.123456",
        "name": "redis.lib.server.lobby",
        "log_message": k.CLEANING_MESSAGE,
        "task": {"game_token": token, "user_token": user},
    }
    once = json.dumps(record)
    return json.dumps(once) if wire == "original" else once


def expected_state(r: redis.Redis, token: str) -> dict[str, object]:
    """The game as the seed's keys hold it right now (what a snapshot must equal)."""
    players = sorted(r.smembers(k.game_players(token)))
    heroes = sorted(r.smembers(k.game_superheros(token)))
    return {
        "status": r.get(k.game_status(token)),
        "participants": r.get(k.game_participants(token)),
        "host": r.get(k.game_host(token)),
        "players": players,
        "order": r.lrange(k.game_order(token), 0, -1),
        "superheros": heroes,
        "player_heroes": {u: r.hgetall(k.game_player_hero(token, u)) for u in players},
        "logs": r.lrange(k.game_logs(token), 0, -1),
        "heroes": {h: r.hget(k.SUPERHEROS, h) for h in heroes},
    }


def snapshot_state(
    r: redis.Redis, token: str, namespace: str = "superhero_dagster"
) -> dict[str, object]:
    snap = json.loads(r.get(ProjectKeys(namespace).snapshot(token)))
    assert snap["schema"] == 2 and snap["game_token"] == token
    lists = ("players", "order", "superheros", "logs")
    out = {
        name: snap[name] for name in ("status", "participants", "host", "player_heroes", "heroes")
    }
    for name in lists:
        out[name] = snap[name] if snap[name] != {} else []  # Lua's cjson: empty array is {}
    out["players"] = sorted(out["players"])
    out["superheros"] = sorted(out["superheros"])
    return out


def listener_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a `superhero-dagster listen` process needs to follow ``settings``."""
    env = {key: v for key, v in os.environ.items() if not key.startswith("SUPERHERO_")}
    env.update(
        REDIS_URL=settings.redis_url or "",
        SUPERHERO_NAMESPACE=settings.namespace,
        SUPERHERO_STATE_DIR=str(settings.state_dir),
        SUPERHERO_RECONCILE_SECONDS=str(settings.reconcile_seconds),
        SUPERHERO_CHANNELS=",".join(settings.channels),
        **extra,
    )
    return env


def start_listener(settings: Settings, listener_id: str, **extra: str) -> subprocess.Popen[bytes]:
    """A real `superhero-dagster listen` process (stop it with SIGTERM, or SIGKILL to crash it)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from superhero_dagster.cli import main; main()",
            "listen",
            "--id",
            listener_id,
        ],
        env=listener_env(settings, **extra),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_alive(r: redis.Redis, settings: Settings, *ids: str, timeout: float = 30.0) -> None:
    """Until every listener has heartbeated (it does so after its first reconcile)."""
    keys = ProjectKeys(settings.namespace)
    poll_until(lambda: all(r.hexists(keys.listeners, i) for i in ids), timeout=timeout)


def stop_listener(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> int:
    """SIGTERM and wait: the listener finishes the message in hand and exits 0."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
