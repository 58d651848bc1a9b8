"""A test oracle for game_podium, written from SYSTEM.md's "Which log entries count" alone.

Deliberately independent of ``superhero_dagster.games``: it reads raw log entry JSON (not the
parsed snapshot) and applies the three rules in the most literal way, so an end-to-end test that
compares the sinks with it checks the pipeline against the contract, not against itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass
class OracleGame:
    """What the rules make of one game's full log."""

    rows: list[dict[str, object]]
    invalid: int = 0
    post_game: int = 0
    decided: bool = False
    eliminated: list[str] = field(default_factory=list)


def podium(
    token: str,
    players: Iterable[str],
    hero_of: Mapping[str, int | None],
    entries: Iterable[str | Mapping[str, object]],
) -> OracleGame:
    """Podium rows (sorted by rank) for ``players`` given the game's log in stream order."""
    users = sorted(set(players))
    alive = set(users)
    rounds = dict.fromkeys(users, 0)
    delivered = dict.fromkeys(users, 0)
    received = dict.fromkeys(users, 0)
    out = OracleGame(rows=[])
    for raw in entries:
        entry = json.loads(raw) if isinstance(raw, str) else raw
        attacker = entry["PAYLOAD"]["USER_TOKEN"]
        details = entry["STATUS"]["DETAILS"]
        victim = details["ENEMY_TOKEN"]
        if out.decided:
            out.post_game += 1
            continue
        if attacker not in alive:
            out.invalid += 1
            continue
        damage = int(details["ENEMY_DAMAGE"])
        rounds[attacker] += 1
        delivered[attacker] += damage
        received[victim] += damage
        if (
            victim in alive
            and int(details["ENEMY_HEALTH_PRIOR"]) > 0
            and int(details["ENEMY_HEALTH_POST"]) == 0
        ):
            alive.discard(victim)
            out.eliminated.append(victim)
            if len(alive) == 1:
                out.decided = True
    count = len(users)
    rank = {user: count - k for k, user in enumerate(out.eliminated)}
    if out.decided:
        (winner,) = alive
        rank[winner] = 1
    out.rows = sorted(
        (
            {
                "game_token": token,
                "user_token": user,
                "superhero_id": hero_of.get(user),
                "rank": rank.get(user),
                "rounds": rounds[user],
                "damage_delivered": delivered[user],
                "damage_received": received[user],
            }
            for user in users
        ),
        key=lambda row: (row["rank"] is None, row["rank"] or 0, row["user_token"]),
    )
    return out
