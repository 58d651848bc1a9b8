"""Game state written with keys.py (as the simulator would), payloads, and a poll helper.

The listener's unit tests must not depend on the simulator, so they build games here; the
integration tests use the real simulator.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

import redis

from superhero_dagster import keys as k

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
