"""The long-running listener: subscribe, decode, capture in batches, reconcile, stay up.

Errors are contained at two levels: a bad payload is a dead letter (never an exception), and a
lost connection sends the loop back to "connect, subscribe, reconcile" with backoff. Nothing but
``stop`` ends :func:`run_listener`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

import redis

from superhero_dagster.keys import ProjectKeys
from superhero_dagster.listener.attack_stream import Occurrences, ScriptCall, stream_calls
from superhero_dagster.listener.capture import (
    CaptureRequest,
    CaptureResult,
    Overlapped,
    capture_many,
    load_script,
    now_iso,
)
from superhero_dagster.listener.decode import (
    AttackEntry,
    Rejected,
    deadletter_json,
    decode,
    decode_game,
)
from superhero_dagster.listener.reconcile import reconcile
from superhero_dagster.redis_client import RedisUnavailable, connect
from superhero_dagster.settings import Settings, redact_url

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0
MAX_BATCH = 1000  # messages drained from the socket before one pipelined capture round trip
RECENT_TOKENS = 100_000  # local memory of games this process saw captured (skips Redis calls)
_CONNECTION_ERRORS = (redis.ConnectionError, redis.TimeoutError, RedisUnavailable, OSError)


def new_listener_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def deadletter_entry(reason: str, raw: object, listener_id: str) -> str:
    return deadletter_json(reason, raw, at=now_iso(), listener=listener_id)


class RateLimitedWarning:
    """At most one warning per ``period`` seconds, with a count of what was held back."""

    def __init__(self, period: float = 5.0) -> None:
        self.period = period
        self._last = -period
        self._held = 0

    def __call__(self, msg: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last < self.period:
            self._held += 1
            return
        held, self._held, self._last = self._held, 0, now
        suffix = f" ({held} similar warnings suppressed)" if held else ""
        log.warning(msg + suffix, *args)


#: One received payload: (came on a game channel, the payload). Lobby payloads may also be given
#: bare (as the tests and benchmarks that only speak the lobby channel do).
Received = tuple[bool, object]


@dataclass
class Prepared:
    """One batch ready to send: stream appends, new games, the counters/dead letters riding along."""

    requests: list[CaptureRequest] = field(default_factory=list)
    raw_of: dict[str, object] = field(default_factory=dict)
    extra: list[tuple[str, tuple[object, ...]]] = field(default_factory=list)
    before: list[ScriptCall] = field(default_factory=list)


@dataclass
class Listener:
    """One connection's worth of state; :func:`run_listener` drives it."""

    settings: Settings
    listener_id: str
    keys: ProjectKeys = field(init=False)
    recent: OrderedDict[str, None] = field(default_factory=OrderedDict)
    warn: RateLimitedWarning = field(default_factory=RateLimitedWarning)
    reconnected: threading.Event = field(default_factory=threading.Event)
    occurrences: Occurrences = field(default_factory=Occurrences)

    def __post_init__(self) -> None:
        self.keys = ProjectKeys(self.settings.namespace)

    @property
    def subscriptions(self) -> tuple[str, ...]:
        """Lobby channels, then the game channels when the attack stream is on."""
        games = self.settings.game_channels if self.settings.attack_stream else ()
        return tuple(dict.fromkeys((*self.settings.channels, *games)))

    @functools.cached_property
    def game_channel_names(self) -> frozenset[bytes]:
        """Channel names and patterns whose messages are game records (attack stream)."""
        if not self.settings.attack_stream:
            return frozenset()
        return frozenset(c.encode() for c in self.settings.game_channels)

    def _remember(self, token: str) -> None:
        self.recent[token] = None
        if len(self.recent) > RECENT_TOKENS:
            self.recent.popitem(last=False)

    def _deadletter_cmds(self, entries: list[str]) -> list[tuple[str, tuple[object, ...]]]:
        if not entries:
            return []
        return [
            ("LPUSH", (self.keys.deadletter, *entries)),
            ("LTRIM", (self.keys.deadletter, 0, self.settings.deadletter_max - 1)),
            ("HINCRBY", (self.keys.stats, "deadlettered", len(entries))),
        ]

    def prepare(self, payloads: Iterable[Received | object]) -> Prepared:
        """Decode and dedupe locally (pure Python, no I/O): what one capture round trip sends.

        Tokens are remembered as soon as they are sent, so the next batch does not send them again
        while this one is in flight; :meth:`execute` forgets those that were not captured. Attack
        entries become stream appends sent *before* the batch's captures, so a capture already
        sees every entry this listener received before that game's 'Cleaning'.
        """
        counts: Counter[str] = Counter()
        batch = Prepared()
        dead: list[str] = []
        appends: list[tuple[str, str, str]] = []
        for item in payloads:
            on_game, raw = item if isinstance(item, tuple) else (False, item)
            counts["messages"] += 1
            if on_game:
                self._game_record(raw, counts, dead, appends)
                continue
            msg = decode(raw, self.settings.max_payload_bytes)  # type: ignore[arg-type]
            if isinstance(msg, Rejected):
                dead.append(deadletter_entry(msg.reason, raw, self.listener_id))
                self.warn("dead letter: %s", msg.reason)
                continue
            if not msg.cleaning:
                counts["ignored"] += 1
                continue
            token = msg.game_token
            assert token is not None
            if token in self.recent:
                counts["duplicates"] += 1  # one 'Cleaning' per player: the common case
                continue
            self._remember(token)
            self.occurrences.forget(token)  # later entries are post-game: not stored
            batch.requests.append(CaptureRequest(token, "message", msg.timestamp))
            batch.raw_of[token] = raw
        batch.before = stream_calls(self.keys, appends, self.settings.stream_ttl_seconds)
        batch.extra = [("HINCRBY", (self.keys.stats, name, n)) for name, n in counts.items()]
        batch.extra += self._deadletter_cmds(dead)
        return batch

    def _game_record(
        self,
        raw: object,
        counts: Counter[str],
        dead: list[str],
        appends: list[tuple[str, str, str]],
    ) -> None:
        rec = decode_game(raw, self.settings.max_payload_bytes)  # type: ignore[arg-type]
        if isinstance(rec, AttackEntry):
            counts["attacks"] += 1
            if rec.game_token in self.recent:
                counts["attacks_after_cleaning"] += 1
                return
            identity = self.occurrences.identity(rec.game_token, rec.entry)
            appends.append((rec.game_token, identity, rec.entry))
        elif isinstance(rec, Rejected):
            dead.append(deadletter_entry(rec.reason, raw, self.listener_id))
            self.warn("dead letter: %s", rec.reason)
        else:
            counts[rec] += 1  # "dead_enemy" (not a log entry) or "ignored"

    def execute(self, client: redis.Redis, batch: Prepared) -> list[CaptureResult]:
        """The capture round trip (counters ride along), then dead letters for refused games."""
        try:
            results = capture_many(
                client,
                self.keys,
                batch.requests,
                listener_id=self.listener_id,
                seen_ttl=self.settings.seen_ttl_seconds,
                extra=batch.extra,
                before=batch.before,
            )
        except BaseException:
            for req in batch.requests:  # not captured by us: let a later message try again
                self.recent.pop(req.token, None)
            raise
        late: list[str] = []
        for res in results:
            if res.outcome in ("captured", "duplicate"):
                continue
            self.recent.pop(res.token, None)
            reason = {
                "unknown": "unknown game token: no game state in Redis",
                "unfinished": f"game not finished (status={res.status!r}); reconcile will capture it when it ends",
                "error": f"capture failed: {res.status}",
            }[res.outcome]
            late.append(deadletter_entry(reason, batch.raw_of[res.token], self.listener_id))
            self.warn("dead letter: %s", reason)
        if late:
            pipe = client.pipeline(transaction=False)
            for name, args in self._deadletter_cmds(late):
                pipe.execute_command(name, *args)
            pipe.execute()
        return results

    def handle_batch(
        self, client: redis.Redis, payloads: Iterable[Received | object]
    ) -> list[CaptureResult]:
        """Decode, dedupe locally, capture the rest in ONE round trip (synchronously)."""
        return self.execute(client, self.prepare(payloads))

    def on_reconnect(self, connection: object) -> None:
        """redis-py re-opens a dropped pub/sub connection and re-subscribes by itself, silently;
        this callback lets the loop notice, so the gap is reconciled right away."""
        self.reconnected.set()

    def heartbeat(self, client: redis.Redis) -> None:
        beat = {"last_seen": time.time(), "host": socket.gethostname(), "pid": os.getpid()}
        client.hset(self.keys.listeners, self.listener_id, json.dumps(beat))

    def reconcile(self, client: redis.Redis, *, seed: bool = False) -> int:
        """``seed`` after (re)subscribing: the games in play started before we listened."""
        n = reconcile(client, self.settings, self.listener_id, seed=seed)
        if n:
            log.info("reconcile captured %d game(s) that no message had delivered", n)
        return n


def _subscribe(client: redis.Redis, channels: tuple[str, ...]) -> redis.client.PubSub:
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    plain = [c for c in channels if not any(ch in c for ch in "*?[")]
    patterns = [c for c in channels if c not in plain]
    if plain:
        pubsub.subscribe(*plain)
    if patterns:
        pubsub.psubscribe(*patterns)
    return pubsub


def _drain(
    pubsub: redis.client.PubSub, first_timeout: float, game: frozenset[bytes] = frozenset()
) -> list[Received]:
    """Block briefly for one message, then take whatever else is already buffered.

    Each payload is tagged with whether it came on a game channel (``game``: names, or the
    patterns it was matched by)."""
    out: list[Received] = []
    msg = pubsub.get_message(timeout=first_timeout)
    while msg is not None:
        kind = msg.get("type")
        if kind == "message":
            out.append((msg["channel"] in game, msg["data"]))
        elif kind == "pmessage":
            out.append((msg["pattern"] in game, msg["data"]))
        if len(out) >= MAX_BATCH:
            break
        msg = pubsub.get_message(timeout=0.0)
    return out


def _serve(
    state: Listener, client: redis.Redis, pubsub: redis.client.PubSub, stop: threading.Event
) -> None:
    """The loop on one live connection; returns when ``stop`` is set, raises when the link dies."""
    # Subscribed first, then reconcile: anything finishing from now on arrives as a message,
    # anything that finished while we were away is found by the pass. No gap. The same pass seeds
    # the attack streams of games in play from their lists (entries from now on are queued).
    state.reconcile(client, seed=True)
    state.heartbeat(client)
    worker = Overlapped(functools.partial(_execute, state, client))
    try:
        _loop(state, client, pubsub, stop, worker)
    finally:
        worker.close()  # on stop: the batches in hand are finished before we return


def _execute(state: Listener, client: redis.Redis, batch: Prepared) -> None:
    try:
        state.execute(client, batch)
    except _CONNECTION_ERRORS:
        raise
    except Exception:  # a bug must not kill the listener; reconcile covers the batch
        log.exception("unexpected error capturing %d games", len(batch.requests))
        client.hincrby(state.keys.stats, "errors", 1)


def _loop(
    state: Listener,
    client: redis.Redis,
    pubsub: redis.client.PubSub,
    stop: threading.Event,
    worker: Overlapped[Prepared],
) -> None:
    next_beat = time.monotonic() + HEARTBEAT_SECONDS
    next_reconcile = time.monotonic() + state.settings.reconcile_seconds
    while not stop.is_set():
        batch = _drain(pubsub, 0.2, state.game_channel_names)
        if batch:
            worker.submit(state.prepare(batch))
        worker.check()
        if state.reconnected.is_set():
            state.reconnected.clear()
            log.warning("pub/sub connection was re-established; reconciling the gap")
            client.hincrby(state.keys.stats, "reconnects", 1)
            load_script(client)
            state.reconcile(client, seed=True)
        now = time.monotonic()
        if now >= next_beat:
            state.heartbeat(client)
            next_beat = now + HEARTBEAT_SECONDS
        if now >= next_reconcile:
            state.reconcile(client)
            next_reconcile = time.monotonic() + state.settings.reconcile_seconds


def _describe(exc: BaseException, url: str) -> str:
    text = str(exc).replace(url, redact_url(url)).splitlines()
    return text[0] if text else type(exc).__name__


def run_listener(settings: Settings, stop: threading.Event, listener_id: str | None = None) -> str:
    """Listen until ``stop`` is set; returns the listener id. Never raises for Redis trouble.

    The message in hand when ``stop`` is set is finished (the check is between batches).
    """
    assert settings.redis_url, "run_listener needs settings.redis_url (see redis_url_or_embedded)"
    url = settings.redis_url
    state = Listener(settings, listener_id or new_listener_id())
    delay, connections = 0.1, 0
    while not stop.is_set():
        client: redis.Redis | None = None
        pubsub: redis.client.PubSub | None = None
        try:
            client = connect(url, decode_responses=False)
            load_script(client)
            pubsub = _subscribe(client, state.subscriptions)
            assert pubsub.connection is not None
            pubsub.connection.register_connect_callback(state.on_reconnect)
            state.reconnected.clear()
            if connections:
                client.hincrby(state.keys.stats, "reconnects", 1)
            connections += 1
            log.info(
                "listener %s subscribed to %s on %s",
                state.listener_id,
                ",".join(state.subscriptions),
                redact_url(url),
            )
            delay = 0.1
            _serve(state, client, pubsub, stop)
        except _CONNECTION_ERRORS as exc:
            log.warning(
                "Redis connection lost (%s); reconnecting in %.1fs", _describe(exc, url), delay
            )
        except Exception:
            log.exception("listener loop failed; restarting in %.1fs", delay)
        else:
            continue  # stop was set
        finally:
            for closable in (pubsub, client):
                with contextlib.suppress(Exception):  # best effort on a dead connection
                    if closable is not None:
                        closable.close()
        stop.wait(delay + random.uniform(0, delay / 2))
        delay = min(delay * 2, 5.0)
    _goodbye(url, state)
    return state.listener_id


def _goodbye(url: str, state: Listener) -> None:
    """Drop our heartbeat on a clean exit so `status` does not show us as alive."""
    with contextlib.suppress(Exception):  # otherwise the heartbeat simply ages out
        client = connect(url, timeout=2.0)
        try:
            client.hdel(state.keys.listeners, state.listener_id)
        finally:
            client.close()
