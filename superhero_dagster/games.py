"""Snapshot -> game_metadata and game_podium rows, and the invariants the asset checks verify.

Pure functions over a parsed :class:`~superhero_dagster.snapshot.GameSnapshot`: no Redis, no files,
no Dagster, so the assets, the benchmarks' baselines and the tests all run the same logic.

Rules (SYSTEM.md "Outputs" and "Which log entries count", with the odd-but-real games of the
original simulator):

* **The log** is the copy :func:`~superhero_dagster.snapshot.parse_snapshot` chose (the Redis list
  when complete, else the listener's attack stream; :mod:`superhero_dagster.game_log`).
* **Participants** are the distinct user tokens seen anywhere in the snapshot: ``players``, ``order``,
  ``player_heroes`` and the attackers/victims of the log. P is their count, *not* the configured
  ``participants`` value, so an overfilled game ranks everyone who played and a player who joined
  twice (token twice in ``order``) gets one row.
* **Which entries count**: an entry whose attacker is already eliminated is *invalid* (no round, no
  damage, no elimination); entries after the deciding entry are *post-game* and change nothing.
  Every other entry is a round whose damage counts on both sides; a victim still alive going from
  a positive ``ENEMY_HEALTH_PRIOR`` to ``ENEMY_HEALTH_POST`` 0 is eliminated. So the rows are the same whether the game was captured before or
  after late entries arrived; the counts of invalid (a column) and post-game entries (the
  materialization's metadata, since it grows with late entries) say what was left out.
* **Ranks**: the k-th eliminated player (k = 0, 1, ...) gets P - k. Players never eliminated take
  the remaining ranks 1..S; normally S = 1 (the winner). If the rules leave several heroes standing
  at the end (a dead hero's kill does not count) they are ordered by damage delivered, then health
  left, then user token, and :func:`source_anomalies` reports it.
* **Status** (:func:`outcome`): ``timed_out`` = status ``Timed Out`` or fewer than 2 participants;
  ``completed`` = a complete log was found; ``log_lost`` = anything else that has entries or says
  ``Completed`` (SYSTEM.md: a data-loss event, never written as timed out). Timed-out and lost
  games get metadata rows and an empty podium.
* **Times**: ``started_at`` is the first entry's timestamp and ``ended_at`` the deciding entry's
  (not the last entry's: late entries must not move it); without a log ``started_at`` is unknown
  (None) and ``ended_at`` falls back to the 'Cleaning Game Records' message time. Timestamps
  without an offset are read as UTC.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from superhero_dagster.keys import STATUS_COMPLETED, STATUS_TIMED_OUT
from superhero_dagster.snapshot import Attack, GameSnapshot

COMPLETED = "completed"
TIMED_OUT = "timed_out"
LOG_LOST = "log_lost"


def to_utc(text: str | None) -> datetime | None:
    """ISO 8601 -> aware UTC datetime; the simulator's naive timestamps are taken as UTC."""
    if text is None:
        return None
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def participants(snap: GameSnapshot) -> list[str]:
    """Every distinct user token that took part, sorted (see module docstring)."""
    seen = set(snap.players) | set(snap.order) | set(snap.player_heroes)
    for attack in snap.attacks:
        seen.add(attack.attacker)
        seen.add(attack.victim)
    return sorted(seen)


def outcome(snap: GameSnapshot) -> str:
    """``completed``, ``timed_out`` or ``log_lost`` (module docstring, "Status")."""
    if snap.status == STATUS_TIMED_OUT or len(participants(snap)) < 2:
        return TIMED_OUT
    if snap.log_source != "none":
        return COMPLETED
    if snap.status == STATUS_COMPLETED or snap.list_attacks or snap.stream_attacks:
        return LOG_LOST
    return TIMED_OUT


def is_timed_out(snap: GameSnapshot) -> bool:
    return outcome(snap) == TIMED_OUT


def _counted(snap: GameSnapshot) -> list[Attack]:
    """The entries that count (rounds), in log order; [] unless the game is completed."""
    walk = snap.walk
    if walk is None or walk.end is None or outcome(snap) != COMPLETED:
        return []
    invalid = set(walk.invalid)
    return [a for i, a in enumerate(snap.attacks[: walk.end + 1]) if i not in invalid]


def elimination_order(snap: GameSnapshot) -> list[str]:
    """Victims in the order the counted entries eliminated them; each at most once."""
    walk = snap.walk
    return list(walk.eliminated) if walk is not None and outcome(snap) == COMPLETED else []


def _hero_id(snap: GameSnapshot, user: str) -> int | None:
    hero = snap.player_heroes.get(user)
    return None if hero is None else hero.hero_id


def metadata_rows(snap: GameSnapshot) -> list[dict[str, Any]]:
    """One row per participant, sorted by user token (stable bytes on re-materialization)."""
    users = participants(snap)
    status = outcome(snap)
    walk = snap.walk if status == COMPLETED else None
    started = ended = None
    if walk is not None and walk.end is not None:
        started = to_utc(snap.attacks[0].timestamp)
        ended = to_utc(snap.attacks[walk.end].timestamp)
    else:
        ended = to_utc(snap.message_timestamp)
    rows = []
    for user in users:
        hero_id = _hero_id(snap, user)
        hero = snap.heroes.get(hero_id) if hero_id is not None else None
        name = hero.get("name") if hero is not None else None
        rows.append(
            {
                "game_token": snap.token,
                "user_token": user,
                "superhero_id": hero_id,
                "name": name if isinstance(name, str) else None,
                "participants": len(users),
                "is_host": user == snap.host,
                "status": status,
                "started_at": started,
                "ended_at": ended,
                "invalid_entries": None if walk is None else len(walk.invalid),
                "deciding_entry": None if walk is None or walk.end is None else walk.end + 1,
            }
        )
    return rows


def podium_rows(snap: GameSnapshot) -> list[dict[str, Any]]:
    """One row per participant sorted by rank (1 = last hero standing); [] unless completed."""
    if outcome(snap) != COMPLETED:
        return []
    users = participants(snap)
    rounds: Counter[str] = Counter()
    delivered: Counter[str] = Counter()
    received: Counter[str] = Counter()
    health = {u: h.health for u, h in snap.player_heroes.items()}
    for attack in _counted(snap):
        rounds[attack.attacker] += 1
        delivered[attack.attacker] += attack.damage
        received[attack.victim] += attack.damage
        health[attack.victim] = attack.post
    eliminated = elimination_order(snap)
    count = len(users)
    rank = {user: count - k for k, user in enumerate(eliminated)}
    gone = set(eliminated)
    standing = sorted(
        (u for u in users if u not in gone),
        key=lambda u: (-delivered[u], -health.get(u, 0), u),
    )
    rank.update({user: k + 1 for k, user in enumerate(standing)})
    rows = [
        {
            "game_token": snap.token,
            "user_token": user,
            "superhero_id": _hero_id(snap, user),
            "rank": rank[user],
            "rounds": rounds[user],
            "damage_delivered": delivered[user],
            "damage_received": received[user],
        }
        for user in users
    ]
    rows.sort(key=lambda row: row["rank"])
    return rows


def _common_problems(snap: GameSnapshot, rows: list[dict[str, Any]], asset: str) -> list[str]:
    """Checks shared by both assets: token, one row per participant, hero ids in the roster."""
    problems = []
    users = participants(snap)
    tokens = {row.get("game_token") for row in rows}
    if rows and tokens != {snap.token}:
        problems.append(f"{asset}: rows name game(s) {sorted(map(str, tokens))}, not {snap.token}")
    counts = Counter(row.get("user_token") for row in rows)
    duplicated = sorted(str(u) for u, n in counts.items() if n > 1)
    missing = sorted(set(users) - set(counts))
    extra = sorted(str(u) for u in set(counts) - set(users))
    if duplicated:
        problems.append(f"{asset}: more than one row for {', '.join(duplicated)}")
    if missing:
        problems.append(f"{asset}: no row for participant(s) {', '.join(missing)}")
    if extra:
        problems.append(f"{asset}: rows for non-participant(s) {', '.join(extra)}")
    for row in rows:
        hero_id = row.get("superhero_id")
        if hero_id not in snap.heroes:
            problems.append(
                f"{asset}: superhero_id {hero_id!r} of {row.get('user_token')} is not in the "
                "snapshot's roster"
            )
    return problems


def podium_problems(snap: GameSnapshot, podium_rows: list[dict[str, Any]]) -> list[str]:
    """Why these podium rows cannot be right for this snapshot ([] = all checks pass)."""
    status = outcome(snap)
    if status != COMPLETED:
        if podium_rows:
            what = "timed out" if status == TIMED_OUT else "lost its log"
            return [f"game_podium: game {what} but has {len(podium_rows)} podium rows"]
        return []
    problems = _common_problems(snap, podium_rows, "game_podium")
    count = len(participants(snap))
    ranks = sorted(row.get("rank") for row in podium_rows if isinstance(row.get("rank"), int))
    if ranks != list(range(1, count + 1)):
        problems.append(f"game_podium: ranks are {ranks}, expected 1..{count} once each")
    winners = [row.get("user_token") for row in podium_rows if row.get("rank") == 1]
    if len(winners) != 1:
        problems.append(f"game_podium: {len(winners)} winners (rank 1), expected exactly one")
    delivered = sum(int(row.get("damage_delivered") or 0) for row in podium_rows)
    received = sum(int(row.get("damage_received") or 0) for row in podium_rows)
    if delivered != received:
        problems.append(f"game_podium: damage delivered {delivered} != damage received {received}")
    total_rounds = sum(int(row.get("rounds") or 0) for row in podium_rows)
    counted = len(_counted(snap))
    if total_rounds != counted:
        problems.append(f"game_podium: {total_rounds} rounds, the log has {counted} that count")
    gone = elimination_order(snap)
    if len(winners) == 1 and winners[0] in gone:
        problems.append(f"game_podium: winner {winners[0]} was eliminated in the attack log")
    by_user = {row.get("user_token"): row.get("rank") for row in podium_rows}
    wrong = [u for k, u in enumerate(gone) if by_user.get(u) != count - k]
    if wrong:
        problems.append(f"game_podium: rank of {', '.join(wrong)} does not follow the eliminations")
    return problems


def metadata_problems(snap: GameSnapshot, metadata_rows: list[dict[str, Any]]) -> list[str]:
    """Why these metadata rows cannot be right for this snapshot ([] = all checks pass)."""
    problems = _common_problems(snap, metadata_rows, "game_metadata")
    count = len(participants(snap))
    sizes = sorted({row.get("participants") for row in metadata_rows}, key=str)
    if metadata_rows and sizes != [count]:
        problems.append(f"game_metadata: participants {sizes}, expected {count}")
    expected = outcome(snap)
    statuses = sorted({str(row.get("status")) for row in metadata_rows})
    if metadata_rows and statuses != [expected]:
        problems.append(f"game_metadata: status {statuses}, expected {expected!r}")
    hosts = [row.get("user_token") for row in metadata_rows if row.get("is_host")]
    wanted = 1 if snap.host in participants(snap) else 0
    if len(hosts) != wanted:
        problems.append(f"game_metadata: {len(hosts)} host rows, expected {wanted}")
    return problems


def podium_markdown(rows: list[dict[str, Any]], snap: GameSnapshot) -> str:
    """A small table for Dagster's metadata panel: who won, with which hero."""
    if not rows:
        if outcome(snap) == LOG_LOST:
            return f"Game `{snap.token}` **lost its attack log**: no podium (see `log_complete`)."
        return f"Game `{snap.token}` timed out: no podium."
    lines = [
        "| rank | hero | player | rounds | damage dealt | damage taken |",
        "|---:|---|---|---:|---:|---:|",
    ]
    for row in rows:
        hero = snap.heroes.get(row["superhero_id"]) if row["superhero_id"] is not None else None
        name = hero.get("name") if hero is not None else None
        label = f"{name} (#{row['superhero_id']})" if name else f"#{row['superhero_id']}"
        label = label.replace("|", "\\|")
        lines.append(
            f"| {row['rank']} | {label} | `{str(row['user_token'])[:8]}` | {row['rounds']} "
            f"| {row['damage_delivered']:,} | {row['damage_received']:,} |"
        )
    return "\n".join(lines)
