"""Capture finished games into snapshots + the buffer, exactly once (the Lua script's Python side).

Everything that must be atomic (gate, snapshot, buffer push, capture counters) happens inside
``capture.lua``; this module only names the keys and batches calls. Batching matters: a
listener that received 500 'Cleaning' messages in one read sends 500 EVALSHAs in one pipeline,
one network round trip, instead of 500.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Literal

import redis

from superhero_dagster import keys as k
from superhero_dagster.keys import ProjectKeys

Outcome = Literal["captured", "duplicate", "unknown", "unfinished", "error"]
Trigger = Literal["message", "reconcile"]


@dataclass(frozen=True, slots=True)
class CaptureResult:
    """What the gate decided for one game.

    ``status`` is the game's status when it was read, or the Redis error for ``error`` (e.g. a
    hostile WRONGTYPE key under the game's names: the script reads everything before it writes,
    so such an error leaves nothing behind).
    """

    token: str
    outcome: Outcome
    status: str | None = None

    @property
    def captured(self) -> bool:
        return self.outcome == "captured"


@dataclass(frozen=True, slots=True)
class CaptureRequest:
    token: str
    trigger: Trigger = "message"
    message_timestamp: str | None = None


@functools.cache
def script_source() -> str:
    return resources.files("superhero_dagster.listener").joinpath("capture.lua").read_text()


@functools.cache
def script_sha() -> str:
    # Same digest Redis computes for SCRIPT LOAD; lets pipelines use EVALSHA without a lookup.
    import hashlib

    return hashlib.sha1(script_source().encode()).hexdigest()  # noqa: S324 - Redis's own id


def load_script(client: redis.Redis) -> None:
    """SCRIPT LOAD once per connection (a restarted server forgets scripts)."""
    client.script_load(script_source())


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _keys_and_args(
    keys: ProjectKeys, req: CaptureRequest, listener_id: str, seen_ttl: int, captured_at: str
) -> tuple[list[str], list[str | int]]:
    t = req.token
    key_list = [
        k.game_players(t),
        k.game_participants(t),
        k.game_status(t),
        k.game_host(t),
        k.game_order(t),
        k.game_superheros(t),
        k.game_logs(t),
        k.SUPERHEROS,
        keys.seen(t),
        keys.snapshot(t),
        keys.buffer,
        keys.stats,
    ]
    args: list[str | int] = [
        t,
        k.game_player_hero(t, ""),  # the prefix; Lua appends each player's token
        seen_ttl,
        captured_at,
        listener_id,
        req.trigger,
        req.message_timestamp or "",
        *k.FINISHED_STATUSES,
    ]
    return key_list, args


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _result(token: str, reply: object) -> CaptureResult:
    if isinstance(reply, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        raise reply
    if isinstance(reply, Exception):
        return CaptureResult(token=token, outcome="error", status=str(reply)[:200])
    assert isinstance(reply, Sequence)
    outcome = _text(reply[0])
    status = _text(reply[1]) or None
    assert outcome in ("captured", "duplicate", "unknown", "unfinished"), outcome
    return CaptureResult(token=token, outcome=outcome, status=status)  # type: ignore[arg-type]


def capture_many(
    client: redis.Redis,
    keys: ProjectKeys,
    requests: Iterable[CaptureRequest],
    *,
    listener_id: str,
    seen_ttl: int,
    extra: Iterable[tuple[str, tuple[object, ...]]] = (),
) -> list[CaptureResult]:
    """Capture many games in one pipelined round trip; ``extra`` commands ride along.

    ``extra`` is a list of (command name, args) executed after the captures in the same round
    trip (the listener's counter updates), so the batch costs exactly one network exchange.
    A server that lost the script (restart) answers NOSCRIPT without running anything, so the
    whole batch is simply retried after SCRIPT LOAD.
    """
    reqs = list(requests)
    extra = list(extra)
    captured_at = now_iso()
    for attempt in (1, 2):
        pipe = client.pipeline(transaction=False)
        for req in reqs:
            key_list, args = _keys_and_args(keys, req, listener_id, seen_ttl, captured_at)
            pipe.evalsha(script_sha(), len(key_list), *key_list, *args)
        for name, cmd_args in extra:
            pipe.execute_command(name, *cmd_args)
        replies = pipe.execute(raise_on_error=False)
        noscript = [r for r in replies if isinstance(r, redis.exceptions.NoScriptError)]
        if noscript and attempt == 1:
            load_script(client)
            extra = []  # they ran already (plain commands are not affected by NOSCRIPT)
            continue
        for r in replies[len(reqs) :]:
            if isinstance(r, Exception):
                raise r
        return [_result(req.token, reply) for req, reply in zip(reqs, replies, strict=False)]
    raise AssertionError("unreachable")


def capture_game(
    client: redis.Redis,
    keys: ProjectKeys,
    token: str,
    *,
    listener_id: str,
    trigger: Trigger,
    message_timestamp: str | None = None,
    seen_ttl: int,
) -> CaptureResult:
    """Capture one game (gate + snapshot + buffer push, atomically). Idempotent."""
    [result] = capture_many(
        client,
        keys,
        [CaptureRequest(token, trigger, message_timestamp)],
        listener_id=listener_id,
        seen_ttl=seen_ttl,
    )
    return result
