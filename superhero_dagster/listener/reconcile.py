"""Find finished games that no listener captured, and capture them (the pub/sub safety net).

Pub/sub is at-most-once: a listener that is down, reconnecting, or disconnected by the server for
a full output buffer never sees the message. Reconcile closes that gap while the game's keys still
exist (the clean-up worker expires them ~30 s after the end), so it runs at start, after every
reconnect and every ``reconcile_seconds``.

Which index: ``SCAN MATCH games:*:status`` (the pattern comes from keys.py), not the seed's
``games:participants`` zset or ``games:players:<P>`` lists. The seed's indexes are never pruned
when a game's keys expire, so walking them costs O(every game ever played) per pass and grows
without bound; SCAN costs O(live keys), and expired games simply vanish from it. SCAN also finds a
game the index bookkeeping missed (a crash between the seed's writes). SCAN may return a key twice
or miss keys created during the pass; both are harmless here: the Lua gate makes a second capture a
no-op, and the next pass (or the message) catches a new game.
"""

from __future__ import annotations

from superhero_dagster import keys as k
from superhero_dagster.keys import ProjectKeys, is_token
from superhero_dagster.listener import attack_stream
from superhero_dagster.listener.capture import CaptureRequest, capture_many
from superhero_dagster.redis_client import reply_text
from superhero_dagster.settings import Settings

SCAN_COUNT = 1000


def _token_of(key: bytes | str, prefix: str, suffix: str) -> str | None:
    text = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
    if not (text.startswith(prefix) and text.endswith(suffix)):
        return None
    token = text[len(prefix) : len(text) - len(suffix)]
    return token if is_token(token) else None


def _triage(client, keys: ProjectKeys, tokens: list[str]) -> tuple[list[str], list[str]]:
    """(finished with no gate marker, in play): one pipelined round trip."""
    if not tokens:
        return [], []
    pipe = client.pipeline(transaction=False)
    pipe.mget([k.game_status(t) for t in tokens])
    for t in tokens:
        pipe.exists(keys.seen(t), keys.snapshot(t))
    statuses, *seen = pipe.execute()
    finished, playing = [], []
    for t, raw, s in zip(tokens, statuses, seen, strict=True):
        status = reply_text(raw) if raw is not None else None
        if status in k.FINISHED_STATUSES:
            if not s:
                finished.append(t)
        elif status is not None:
            playing.append(t)
    return finished, playing


def finished_uncaptured(client, keys: ProjectKeys, tokens: list[str]) -> list[str]:
    """Which of ``tokens`` are finished and have no gate marker (one pipelined round trip)."""
    return _triage(client, keys, tokens)[0]


def seed_streams(client, settings: Settings, keys: ProjectKeys, tokens: list[str]) -> None:
    """Copy the log lists of games in play into their attack streams (attack_stream.seed_appends)."""
    if not tokens:
        return
    pipe = client.pipeline(transaction=False)
    for t in tokens:
        pipe.lrange(k.game_logs(t), 0, -1)
    appends = []
    for t, entries in zip(tokens, pipe.execute(), strict=True):
        appends += attack_stream.seed_appends(t, [reply_text(e) for e in entries])
    calls = attack_stream.stream_calls(keys, appends, settings.stream_ttl_seconds)
    if calls:
        pipe = client.pipeline(transaction=False)
        for call in calls:
            pipe.evalsha(call.sha, len(call.keys), *call.keys, *call.args)
        pipe.execute()


def reconcile(client, settings: Settings, listener_id: str, *, seed: bool = False) -> int:
    """One full pass; returns how many games this pass captured (games in play are left alone,
    except that with ``seed`` their log lists are copied into the attack stream first)."""
    keys = ProjectKeys(settings.namespace)
    prefix, suffix = k.game_status("\x00").split("\x00")
    pattern = k.game_status("*")
    captured = 0
    cursor = 0
    while True:
        cursor, found = client.scan(cursor=cursor, match=pattern, count=SCAN_COUNT)
        tokens = sorted({t for key in found if (t := _token_of(key, prefix, suffix))})
        todo, playing = _triage(client, keys, tokens)
        if seed and settings.attack_stream:
            seed_streams(client, settings, keys, playing)
        if todo:
            results = capture_many(
                client,
                keys,
                [CaptureRequest(t, "reconcile") for t in todo],
                listener_id=listener_id,
                seen_ttl=settings.seen_ttl_seconds,
            )
            captured += sum(r.captured for r in results)
        if int(cursor) == 0:
            return captured
