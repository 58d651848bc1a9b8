"""Read-only view of the capture pipeline for `superhero-dagster status` (no writes, no URLs)."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import redis

from superhero_dagster.keys import ProjectKeys
from superhero_dagster.redis_client import reply_text

COUNTERS = (
    "messages",
    "attacks",
    "streamed",
    "attacks_after_cleaning",
    "dead_enemy",
    "ignored",
    "captured",
    "duplicates",
    "reconciled",
    "deadlettered",
    "reconnects",
    "errors",
    "materialized",
)
ALIVE_SECONDS = 30.0  # six missed heartbeats (service.HEARTBEAT_SECONDS = 5)


def _json(v: object) -> Any:
    try:
        return json.loads(reply_text(v))
    except ValueError:
        return None


def collect(client: redis.Redis, keys: ProjectKeys, deadletters: int = 5) -> dict[str, Any]:
    """Everything `status` shows, as plain data (the --json output)."""
    pipe = client.pipeline(transaction=False)
    pipe.llen(keys.buffer)
    pipe.lindex(keys.buffer, 0)
    pipe.hgetall(keys.stats)
    pipe.lrange(keys.deadletter, 0, max(deadletters - 1, 0))
    pipe.llen(keys.deadletter)
    pipe.hgetall(keys.listeners)
    pipe.zcard(keys.log_lost)
    pipe.zrevrange(keys.log_lost, 0, max(deadletters - 1, 0))
    depth, head, stats, dead, dead_total, beats, lost, lost_recent = pipe.execute()
    oldest_age = None
    if head is not None:
        snap = _json(client.get(keys.snapshot(reply_text(head)))) or {}
        try:
            captured = datetime.fromisoformat(snap["captured_at"]).timestamp()
            oldest_age = round(max(time.time() - captured, 0.0), 3)
        except (KeyError, TypeError, ValueError):
            oldest_age = None
    counters = {name: 0 for name in COUNTERS}
    counters.update({reply_text(name): int(v) for name, v in stats.items()})
    now = time.time()
    listeners = []
    for lid, raw in beats.items():
        beat = _json(raw) or {}
        last = beat.get("last_seen")
        age = round(now - last, 1) if isinstance(last, int | float) else None
        if age is not None and age <= ALIVE_SECONDS:
            listeners.append(
                {
                    "id": reply_text(lid),
                    "host": beat.get("host"),
                    "pid": beat.get("pid"),
                    "age_s": age,
                }
            )
    listeners.sort(key=lambda b: b["id"])
    return {
        "buffer_depth": int(depth),
        "oldest_buffered_age_s": oldest_age,
        "oldest_buffered_game": reply_text(head) if head is not None else None,
        "counters": counters,
        "deadletters_total": int(dead_total),
        "deadletters_recent": [
            e if isinstance(e := _json(d), dict) else {"raw": reply_text(d)} for d in dead
        ],
        "listeners_alive": listeners,
        "log_lost_total": int(lost),
        "log_lost_recent": [reply_text(t) for t in lost_recent],
    }


def render(info: dict[str, Any]) -> str:
    """Human-readable text of :func:`collect`'s result."""
    age = info["oldest_buffered_age_s"]
    lines = [
        f"buffer depth:        {info['buffer_depth']}",
        f"oldest buffered age: {'-' if age is None else f'{age:.1f}s'}",
        "counters:            " + ", ".join(f"{name}={n}" for name, n in info["counters"].items()),
        f"listeners alive:     {len(info['listeners_alive'])}",
    ]
    for b in info["listeners_alive"]:
        lines.append(f"  {b['id']}  host={b['host']} pid={b['pid']} last seen {b['age_s']}s ago")
    lost = info["log_lost_total"]
    lines.append(
        f"lost logs:           {lost}"
        + (" (Completed games materialized as log_lost; most recent first)" if lost else "")
    )
    for token in info["log_lost_recent"]:
        lines.append(f"  {token}")
    lines.append(f"dead letters:        {info['deadletters_total']} (most recent first)")
    for d in info["deadletters_recent"]:
        raw = str(d.get("raw", ""))[:60]
        lines.append(f"  {d.get('at', '?')}  {d.get('reason', '?')}  raw={raw!r}")
    return "\n".join(lines)
