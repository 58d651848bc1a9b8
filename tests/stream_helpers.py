"""Games written to Redis as SYSTEM.md lays them out, and their game-channel traffic.

``SnapshotBuilder`` plays the game (it tracks health, so every entry chains); these helpers write
it where the original server would, publish its 'Attack Completed' records on ``lib.server.game``
in the original wire format (double-encoded, ``task`` a JSON string), and act as the original
clean-up worker (delete the log list at once).
"""

from __future__ import annotations

import json
import random

import redis

from superhero_dagster import keys as k
from superhero_dagster.keys import ProjectKeys
from tests.snapshot_factory import SnapshotBuilder, token

GAME_CHANNEL = "lib.server.game"
LOBBY = "lib.server.lobby"


def record(message: str, task: object, *, level: str = "INFO", wire: str = "original") -> str:
    once = json.dumps(
        {
            "level": level,
            "timestamp": "2023-07-25T10:00:01.000000",
            "name": "redis.lib.server.game",
            "log_message": message,
            "task": task,
        }
    )
    return json.dumps(once) if wire == "original" else once


def attack_payload(entry: str, wire: str = "original") -> str:
    """'Attack Completed': ``task`` is the log entry text itself."""
    return record(k.ATTACK_MESSAGE, entry, wire=wire)


def dead_enemy_payload(game: str, attacker: str, victim: str) -> str:
    """'Attacked Dead Enemy' as SYSTEM.md has it (ERROR, ACTION NA; not a log entry)."""
    task = {
        "TIMESTAMP": "2023-07-25T10:00:09Z",
        "PAYLOAD": {"GAME_TOKEN": game, "USER_TOKEN": attacker},
        "STATUS": {"ACTION": "NA", "DETAILS": {"ENEMY_TOKEN": victim, "ENEMY_STATUS": "DEAD"}},
    }
    return record(k.DEAD_ENEMY_MESSAGE, json.dumps(task), level="ERROR")


def random_builder(rng: random.Random, players: int = 3) -> SnapshotBuilder:
    """A finished game (one hero left), distinct heroes, every entry chaining.

    A hero's stats follow from its id: games share the ``superheros`` hash, as in the original."""
    game = SnapshotBuilder(token(rng), participants=players)
    for hero_id in rng.sample(range(1, 700), players):
        game.join(token(rng), hero_id, 20 + hero_id % 41, 60 + hero_id * 7 % 141)
    game.fight(rng)
    return game


def write_game(r: redis.Redis, game: SnapshotBuilder, *, status: str | None = None) -> None:
    """The game's keys (without its log list: see :func:`push_logs`)."""
    t = game.token
    pipe = r.pipeline()
    pipe.sadd(k.game_players(t), *game.players)
    pipe.set(k.game_participants(t), str(game.participants or len(game.players)))
    pipe.set(k.game_status(t), status or game.status or k.STATUS_COMPLETED)
    pipe.set(k.game_host(t), game.host or "")
    if game.order:
        pipe.rpush(k.game_order(t), *game.order)
    pipe.sadd(k.game_superheros(t), *{h["id"] for h in game.heroes.values()})
    for u, h in game.heroes.items():
        pipe.hset(k.game_player_hero(t, u), mapping=h)
    pipe.hset(k.SUPERHEROS, mapping={str(i): j for i, j in game.roster.items()})
    pipe.execute()


def push_logs(r: redis.Redis, game: SnapshotBuilder, entries: list[str] | None = None) -> None:
    entries = game.logs if entries is None else entries
    if entries:
        r.rpush(k.game_logs(game.token), *entries)


def publish_attacks(r: redis.Redis, entries: list[str]) -> None:
    pipe = r.pipeline(transaction=False)
    for entry in entries:
        pipe.publish(GAME_CHANNEL, attack_payload(entry))
    pipe.execute()


def worker_cleans(r: redis.Redis, game: SnapshotBuilder) -> None:
    """What the original clean-up worker does on the host's 'Cleaning Game Records'."""
    r.delete(k.game_logs(game.token))


def stream_of(r: redis.Redis, t: str, namespace: str = "superhero_dagster") -> list[str]:
    return r.lrange(ProjectKeys(namespace).stream(t), 0, -1)


def snapshot_doc(r: redis.Redis, t: str, namespace: str = "superhero_dagster") -> dict:
    raw = r.get(ProjectKeys(namespace).snapshot(t))
    assert raw is not None, f"no snapshot for {t}"
    doc = json.loads(raw)
    for name in ("logs", "stream", "players", "order", "superheros"):
        if doc.get(name) == {}:
            doc[name] = []  # Lua's cjson: an empty array is {}
    if doc.get("stream_same_as_logs"):  # stored once when both copies are equal
        assert doc["stream"] == []
        doc["stream"] = doc["logs"]
    return doc
