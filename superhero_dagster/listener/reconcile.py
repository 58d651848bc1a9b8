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


def finished_uncaptured(client, keys: ProjectKeys, tokens: list[str]) -> list[str]:
    """Which of ``tokens`` are finished and have no gate marker (one pipelined round trip)."""
    if not tokens:
        return []
    pipe = client.pipeline(transaction=False)
    pipe.mget([k.game_status(t) for t in tokens])
    for t in tokens:
        pipe.exists(keys.seen(t), keys.snapshot(t))
    statuses, *seen = pipe.execute()
    return [
        t
        for t, status, s in zip(tokens, statuses, seen, strict=True)
        if reply_text(status) in k.FINISHED_STATUSES and not s
    ]


def reconcile(client, settings: Settings, listener_id: str) -> int:
    """One full pass; returns how many games this pass captured (games in play are left alone)."""
    keys = ProjectKeys(settings.namespace)
    prefix, suffix = k.game_status("\x00").split("\x00")
    pattern = k.game_status("*")
    captured = 0
    cursor = 0
    while True:
        cursor, found = client.scan(cursor=cursor, match=pattern, count=SCAN_COUNT)
        tokens = sorted({t for key in found if (t := _token_of(key, prefix, suffix))})
        todo = finished_uncaptured(client, keys, tokens)
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
