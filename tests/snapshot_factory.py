"""Hand-built game snapshots, encoded the way the listener's Lua capture script encodes them.

Values the simulator keeps in Redis are strings here too (``"4"``, ``"12"``); logs and heroes are
JSON strings inside the document; Lua-cjson writes an empty list as ``{}`` and escapes ``/``.
The builder tracks health itself so a test states attacks and damage, and checks the pipeline's
ranks and sums against numbers the test writes down independently.
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

BASE_TIME = datetime(2023, 7, 25, 10, 0, 0, tzinfo=UTC)


def token(rng: random.Random) -> str:
    """A lowercase UUID4 string from a seeded generator (same seed, same tokens)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def lua_cjson_dumps(value: Any) -> str:
    """JSON as Lua-cjson writes it: empty arrays become ``{}`` and ``/`` is escaped as ``\\/``."""

    def fix(item: Any) -> Any:
        if isinstance(item, list):
            return [fix(x) for x in item] if item else {}
        if isinstance(item, dict):
            return {k: fix(v) for k, v in item.items()}
        return item

    # '/' only ever occurs inside JSON strings, so escaping it textually is exact.
    return json.dumps(fix(value), separators=(",", ":")).replace("/", "\\/")


def hero_json(hero_id: int, name: str, attack: int, health: int) -> str:
    """A hero as the simulator stores it in the ``superheros`` hash (Superhero-API shape)."""
    return json.dumps(
        {
            "id": str(hero_id),
            "name": name,
            "powerstats": {"intelligence": "50", "strength": "null", "speed": "20"},
            "image": {"url": f"https://example.invalid/images/{hero_id}.jpg"},
            "health": health,
            "attack": attack,
        }
    )


class SnapshotBuilder:
    """One game, built step by step: join players, log attacks, then encode."""

    def __init__(
        self,
        game_token: str,
        *,
        participants: int | None = 4,
        status: str | None = "Completed",
        message_timestamp: str | None = "2023-07-25T10:05:00.123456",
    ) -> None:
        self.token = game_token
        self.participants = participants
        self.status = status
        self.message_timestamp = message_timestamp
        self.host: str | None = None
        self.players: list[str] = []
        self.order: list[str] = []
        self.heroes: dict[str, dict[str, Any]] = {}  # user -> id/attack/health (current)
        self.roster: dict[int, str] = {}
        self.logs: list[str] = []
        self.clock = BASE_TIME

    def join(self, user: str, hero_id: int, attack: int, health: int, name: str = "") -> str:
        if self.host is None:
            self.host = user
        if user not in self.players:
            self.players.append(user)
        self.order.append(user)
        self.heroes[user] = {"id": str(hero_id), "attack": str(attack), "health": str(health)}
        self.roster[hero_id] = hero_json(hero_id, name or f"Hero {hero_id}", attack, health)
        return user

    def attack(self, attacker: str, victim: str, damage: int | None = None) -> dict[str, Any]:
        """Log one attack; prior/post follow the tracked health exactly as the simulator's."""
        dealt = int(self.heroes[attacker]["attack"]) if damage is None else damage
        prior = int(self.heroes[victim]["health"])
        post = max(prior - dealt, 0)
        self.heroes[victim]["health"] = str(post)
        if post == 0 and victim in self.order:
            self.order = [u for u in self.order if u != victim]
        self.clock += timedelta(seconds=1)
        entry = {
            "TIMESTAMP": self.clock.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "PAYLOAD": {"GAME_TOKEN": self.token, "USER_TOKEN": attacker},
            "STATUS": {
                "ACTION": "ATTACK",
                "DETAILS": {
                    "ENEMY_TOKEN": victim,
                    "ENEMY_DAMAGE": dealt,
                    "ENEMY_HEALTH_PRIOR": prior,
                    "ENEMY_HEALTH_POST": post,
                },
            },
        }
        self.logs.append(json.dumps(entry))
        return entry

    def fight(self, rng: random.Random) -> None:
        """Play to the end: each alive player in turn hits a random alive opponent."""
        while len(self.order) > 1:
            for attacker in list(self.order):
                alive = [u for u in self.order if u != attacker]
                if attacker in self.order and alive:
                    self.attack(attacker, rng.choice(alive))

    def document(self) -> dict[str, Any]:
        return {
            "schema": 1,
            "game_token": self.token,
            "captured_at": "2023-07-25T10:05:00.200000+00:00",
            "captured_by": "listener-test",
            "trigger": "message",
            "message_timestamp": self.message_timestamp,
            "status": self.status,
            "participants": None if self.participants is None else str(self.participants),
            "host": self.host,
            "players": list(self.players),
            "order": list(self.order),
            "superheros": sorted({h["id"] for h in self.heroes.values()}),
            "player_heroes": {u: dict(h) for u, h in self.heroes.items()},
            "logs": list(self.logs),
            "heroes": {str(k): v for k, v in self.roster.items()},
        }

    def to_json(self) -> str:
        return lua_cjson_dumps(self.document())


def random_game(rng: random.Random, players: int = 4) -> str:
    """A complete random game of ``players`` players, encoded as the listener would."""
    game = SnapshotBuilder(token(rng), participants=players)
    for _ in range(players):
        hero_id = rng.randint(1, 732)
        game.join(token(rng), hero_id, rng.randint(500, 20_000), rng.randint(10_000, 80_000))
    game.fight(rng)
    return game.to_json()
