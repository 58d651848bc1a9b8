"""What the game server did oddly, and whether the log was lost: the two log checks' findings.

Why apart from ``games.py``: those checks say *whose* problem it is. A source anomaly (dead heroes
attacking, entries after the end, an overfilled lobby) is the game server's quirk: the rows are
right by SYSTEM.md's rules, so it is a WARN. A lost log is data the pipeline could not get: an
ERROR. ``podium_consistent`` stays about what the pipeline itself computed. Pure functions.
"""

from __future__ import annotations

from typing import Any

from superhero_dagster import games
from superhero_dagster.game_log import Walk
from superhero_dagster.snapshot import GameSnapshot


def _short(user: str) -> str:
    return user[:8]


def source_anomalies(snap: GameSnapshot) -> list[str]:
    """The game server's quirks in this game ([] = none); numbers are 1-based log positions."""
    found: list[str] = []
    users = games.participants(snap)
    if snap.participants is not None and len(users) > snap.participants:
        found.append(f"overfilled lobby: {len(users)} played, configured for {snap.participants}")
    walk = snap.walk
    if walk is None or games.outcome(snap) != games.COMPLETED or walk.end is None:
        return found
    attacks = snap.attacks
    if walk.invalid:
        shown = ", ".join(
            f"#{i + 1} by {_short(attacks[i].attacker)}" for i in walk.invalid[:5]
        ) + (" ..." if len(walk.invalid) > 5 else "")
        found.append(f"{len(walk.invalid)} invalid entries (attacker already eliminated): {shown}")
    if walk.post_game:
        found.append(f"{walk.post_game} post-game entries after the deciding entry #{walk.end + 1}")
    if len(walk.standing) > 1:
        found.append(
            f"the counting rules leave {len(walk.standing)} heroes standing "
            f"({', '.join(map(_short, walk.standing))}): a kill by an eliminated hero does not count"
        )
    podium = {row["user_token"]: row["rank"] for row in games.podium_rows(snap)}
    winner = next((u for u, rank in podium.items() if rank == 1), None)
    for i in range(walk.end + 1, len(attacks)):
        e = attacks[i]
        if e.victim == winner and e.post == 0 and e.prior > 0:
            found.append(
                f"winner {_short(winner)} brought to 0 after the end by "
                f"{_short(e.attacker)} (entry #{i + 1})"
            )
            break
    return found


def _why_incomplete(walk: Walk | None) -> str:
    if walk is None or walk.entries == 0:
        return "empty"
    if walk.chain_break is not None:
        return f"{walk.entries} entries, chain breaks at #{walk.chain_break + 1}"
    return f"{walk.entries} entries, never reaches the end"


def log_problems(snap: GameSnapshot) -> list[str]:
    """Why this game's log counts as lost ([] = a complete log was found, or none was due)."""
    if games.outcome(snap) != games.LOG_LOST:
        return []
    return [
        f"log lost: status {snap.status!r}, no complete log anywhere (list: "
        f"{_why_incomplete(snap.list_walk)}; stream: {_why_incomplete(snap.stream_walk)})"
    ]


def log_summary(snap: GameSnapshot) -> dict[str, Any]:
    """Plain values for the snapshot's materialization metadata: which copy, what each held."""
    out: dict[str, Any] = {
        "log_source": snap.log_source,
        "list_entries": len(snap.list_attacks),
        "stream_entries": len(snap.stream_attacks),
        "list_complete": bool(snap.list_walk and snap.list_walk.complete),
        "stream_complete": bool(snap.stream_walk and snap.stream_walk.complete),
    }
    walk = snap.walk
    if walk is not None and games.outcome(snap) == games.COMPLETED:
        out["invalid_entries"] = len(walk.invalid)
        out["post_game_entries"] = walk.post_game
        out["deciding_entry"] = None if walk.end is None else walk.end + 1
    return out
