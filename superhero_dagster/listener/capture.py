"""Capture finished games into snapshots + the buffer, exactly once (the Lua script's Python side).

Everything that must be atomic (gate, snapshot, buffer push, capture counters) happens inside
``capture.lua``; this module only builds the key-name templates and batches calls. Batching
matters: a listener that drained 1,000 messages from its socket sends every new game in a few
EVALSHAs (100 games each) in one pipeline: one network round trip, not one per game.

The gate is ``ProjectKeys.seen(t)``, set with a TTL (``settings.seen_ttl_seconds``, default 7
days) by the same script that writes the snapshot and pushes the token. Memory is bounded by the
games *finished within one TTL*, not by history: one key of ~210 bytes each (measured), so 1
game/s for 7 days is ~130 MB; at high rates lower the TTL (minimum 60 s). An existing snapshot
also counts as "seen", so a game stays gated while either survives. The TTL must outlive the
seed's own game keys (30 s after the end in the original) and any late re-publish: past it, a game
whose keys still existed would be found by reconcile again.

Decisions for the odd cases: a token with no state at all is ``unknown`` (dead-lettered by the
caller, never buffered). A 'Cleaning' message for a game whose status is not ``Completed`` or
``Timed Out`` is ``unfinished``: nothing is written and the caller dead-letters the message. The
original only publishes 'Cleaning' after the end, so this is a forged or out-of-order message;
capturing it would gate the game forever with a half-played state, whereas leaving it lets
reconcile capture the real end when it comes.
"""

from __future__ import annotations

import functools
import hashlib
import queue
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Generic, Literal, TypeVar

import redis

from superhero_dagster import keys as k
from superhero_dagster.keys import ProjectKeys
from superhero_dagster.listener import attack_stream
from superhero_dagster.listener.attack_stream import ScriptCall
from superhero_dagster.redis_client import reply_text

Outcome = Literal["captured", "duplicate", "unknown", "unfinished", "error"]
Trigger = Literal["message", "reconcile"]


@dataclass(frozen=True, slots=True)
class CaptureResult:
    """What the gate decided for one game.

    ``status`` is the game's status when it was read, or the Redis error for ``error`` (e.g. a
    hostile WRONGTYPE key under the game's names: the script reads everything before it writes,
    so such an error leaves nothing behind, and the other games of the batch go on).
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
    return hashlib.sha1(script_source().encode()).hexdigest()  # noqa: S324 - Redis's own id


def load_script(client: redis.Redis) -> None:
    """SCRIPT LOAD once per connection (a restarted server forgets scripts); the attack
    stream's script too, since it rides in the same pipelines."""
    client.script_load(script_source())
    attack_stream.load_script(client)


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


#: Games per EVALSHA: bounds how long one script call holds the (single-threaded) server.
GAMES_PER_CALL = 100

_TEMPLATES = (
    k.game_players,
    k.game_participants,
    k.game_status,
    k.game_host,
    k.game_order,
    k.game_superheros,
    k.game_logs,
)


def _split(name: str, mark: str = "\x00") -> list[str]:
    prefix, suffix = name.split(mark)
    return [prefix, suffix]


@functools.cache
def _template_args(namespace: str) -> tuple[str, ...]:
    """Key-name templates (prefix, suffix around the token), built with keys.py for the script."""
    keys = ProjectKeys(namespace)
    out: list[str] = []
    for fn in _TEMPLATES:
        out += _split(fn("\x00"))
    out += _split(keys.seen("\x00"))
    out += _split(keys.snapshot("\x00"))
    out += _split(keys.stream("\x00"))
    hero = k.game_player_hero("\x00", "\x01")  # prefix, token, middle, user token
    prefix, rest = hero.split("\x00")
    middle, tail = rest.split("\x01")
    assert tail == "", "the per-player hero key must end with the user token"
    out += [prefix, middle]
    return tuple(out)


def _call_args(
    keys: ProjectKeys, reqs: Sequence[CaptureRequest], listener_id: str, seen_ttl: int
) -> list[str | int]:
    trigger = reqs[0].trigger
    assert all(r.trigger == trigger for r in reqs), "one trigger per call"
    args: list[str | int] = [
        seen_ttl,
        now_iso(),
        listener_id,
        trigger,
        len(k.FINISHED_STATUSES),
        *k.FINISHED_STATUSES,
        *_template_args(keys.namespace),
    ]
    for r in reqs:
        args += [r.token, r.message_timestamp or ""]
    return args


def capture_many(
    client: redis.Redis,
    keys: ProjectKeys,
    requests: Iterable[CaptureRequest],
    *,
    listener_id: str,
    seen_ttl: int,
    extra: Iterable[tuple[str, tuple[object, ...]]] = (),
    before: Sequence[ScriptCall] = (),
) -> list[CaptureResult]:
    """Capture many games in one pipelined round trip; ``extra`` commands ride along.

    Games go to the script ``GAMES_PER_CALL`` at a time (grouped by trigger), all calls in one
    pipeline. ``before`` are script calls sent first in the same pipeline (the batch's attack
    stream appends: the captures must see them). ``extra`` is a list of (command name, args) sent
    last in the same round trip (the listener's counter updates), so a whole batch costs exactly
    one network exchange. A server that lost the scripts (restart) answers NOSCRIPT without
    running anything, so the calls that got it are repeated after SCRIPT LOAD (stream appends are
    idempotent, so they are always repeated, before the captures).
    """
    reqs = list(requests)
    extra = list(extra)
    chunks: list[list[int]] = []  # positions in reqs, one trigger per chunk
    for trigger in ("message", "reconcile"):
        same = [i for i, r in enumerate(reqs) if r.trigger == trigger]
        chunks += [same[i : i + GAMES_PER_CALL] for i in range(0, len(same), GAMES_PER_CALL)]
    gkeys = [k.SUPERHEROS, keys.buffer, keys.stats]
    replies: list[object] = [None] * len(chunks)
    todo = list(range(len(chunks)))
    for attempt in (1, 2):
        pipe = client.pipeline(transaction=False)
        for call in before:
            pipe.evalsha(call.sha, len(call.keys), *call.keys, *call.args)
        for c in todo:
            args = _call_args(keys, [reqs[i] for i in chunks[c]], listener_id, seen_ttl)
            pipe.evalsha(script_sha(), len(gkeys), *gkeys, *args)
        for name, cmd_args in extra:
            pipe.execute_command(name, *cmd_args)
        got = pipe.execute(raise_on_error=False)
        ours = got[len(before) : len(before) + len(todo)]
        for c, reply in zip(todo, ours, strict=True):
            replies[c] = reply
        missing = any(isinstance(r, redis.exceptions.NoScriptError) for r in got)
        if attempt == 1 and missing:
            load_script(client)
            extra = []  # they ran already (plain commands are not affected by NOSCRIPT)
            todo = [c for c in todo if isinstance(replies[c], redis.exceptions.NoScriptError)]
            continue
        for r in got:
            if isinstance(r, Exception):
                raise r
        break
    results: list[CaptureResult | None] = [None] * len(reqs)
    for chunk, reply in zip(chunks, replies, strict=True):
        flat = [reply_text(v) for v in reply]  # type: ignore[attr-defined]
        for j, pos in enumerate(chunk):
            outcome, status = flat[2 * j], flat[2 * j + 1]
            assert outcome in ("captured", "duplicate", "unknown", "unfinished", "error")
            results[pos] = CaptureResult(reqs[pos].token, outcome, status or None)  # type: ignore[arg-type]
    return [r for r in results if r is not None]


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


T = TypeVar("T")


class Overlapped(Generic[T]):
    """Runs capture round trips on one background thread, in submission order.

    Why: a synchronous listener adds its own work (receive, decode) to Redis's script time for
    every batch. Handing the round trip to a thread lets it decode batch N+1 while the server runs
    batch N (the thread waits on the socket without the GIL). ``depth`` bounds the batches waiting,
    so a slow server pushes back on the receive loop instead of growing memory. The first error of
    ``run`` is re-raised by the next :meth:`submit`/:meth:`check`; later batches are dropped
    (reconcile recovers them after the reconnect that follows).
    """

    def __init__(self, run: Callable[[T], object], depth: int = 2) -> None:
        self._run = run
        self._queue: queue.Queue[tuple[T] | None] = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="capture", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while (item := self._queue.get()) is not None:
            if self.error is None:
                try:
                    self._run(item[0])
                except BaseException as exc:
                    self.error = exc

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def submit(self, batch: T) -> None:
        while True:
            self.check()
            try:
                self._queue.put((batch,), timeout=0.1)
                return
            except queue.Full:
                continue

    def close(self, timeout: float = 60.0) -> None:
        """Finish every submitted batch (the messages in hand), then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout)
