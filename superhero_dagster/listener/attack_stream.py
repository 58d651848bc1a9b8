"""The attack stream: each game's 'Attack Completed' entries kept in Redis, once, in pub/sub order.

Why: the original clean-up worker deletes ``games:<t>:logs`` the moment the host's 'Cleaning Game
Records' arrives, so a capture on that message often finds no log. The game server publishes
every entry on ``lib.server.game`` *before* appending it to the list, so pub/sub carries the whole
log, in order; this module keeps it (``ProjectKeys.stream(t)``), and the capture script copies it
into the snapshot next to the list.

Once, whatever N: every listener receives every message. Each listener counts, per game, how
often it has seen each identical entry text; the entry's identity is (digest, occurrence). The
script (``attack_stream.lua``) admits an identity absent from ``ProjectKeys.stream_seen(t)``
(HMGET, then HSET) and appends only those (one RPUSH per game and batch). Why this survives late joiners and keeps stream order: listeners handle
messages one batch at a time, in the one order Redis delivers them to every subscriber, so when a
listener meets entry k, every entry before k it received is already stored (by it or another);
the list is always a prefix of the stream. A listener that joined late only knows later
occurrences of a repeated text (entries repeat only when nothing changed, e.g. two identical hits
on a hero already at 0); it can then miss one such repeat, never add a spurious one.
Why not "append at my position k": a late joiner's positions are shifted, and would interleave.

A listener that was not subscribed when a game started (start-up, or a re-established
connection) copies the game's current list into the stream first (:func:`seed_appends`, from
reconcile), so a lone listener restarted mid-game still ends up with the whole stream.

Bounded: both keys get ``settings.stream_ttl_seconds`` (refreshed on append) and are deleted
when the game is materialized; entries arriving after this listener saw the game's 'Cleaning'
(post-game by then, and after the capture) are not stored at all. The per-game occurrence counts
live in process memory, capped at ``MAX_GAMES`` games (least recently used dropped first).
"""

from __future__ import annotations

import functools
import hashlib
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

import redis

from superhero_dagster.keys import ProjectKeys

#: Games whose occurrence counts a listener keeps (a game in play touches its entry every turn).
MAX_GAMES = 50_000
#: Entries per EVALSHA: bounds how long one script call holds the server.
ENTRIES_PER_CALL = 500


@functools.cache
def script_source() -> str:
    return resources.files("superhero_dagster.listener").joinpath("attack_stream.lua").read_text()


@functools.cache
def script_sha() -> str:
    return hashlib.sha1(script_source().encode()).hexdigest()  # noqa: S324 - Redis's own id


def load_script(client: redis.Redis) -> None:
    client.script_load(script_source())


@dataclass(frozen=True, slots=True)
class ScriptCall:
    """One EVALSHA to send before the captures of the same batch."""

    sha: str
    keys: tuple[str, ...]
    args: tuple[str | int, ...]


def _digest(entry: str) -> str:
    return hashlib.blake2b(entry.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


class Occurrences:
    """Per game, how many times this listener has seen each identical entry text."""

    def __init__(self, max_games: int = MAX_GAMES) -> None:
        self.max_games = max_games
        self._games: OrderedDict[str, Counter[str]] = OrderedDict()

    def identity(self, token: str, entry: str) -> str:
        seen = self._games.get(token)
        if seen is None:
            seen = self._games[token] = Counter()
            if len(self._games) > self.max_games:
                self._games.popitem(last=False)
        else:
            self._games.move_to_end(token)
        digest = _digest(entry)
        n = seen[digest]
        seen[digest] = n + 1
        return f"{digest}:{n}"

    def forget(self, token: str) -> None:
        self._games.pop(token, None)

    def __len__(self) -> int:
        return len(self._games)


def seed_appends(token: str, entries: Sequence[str]) -> list[tuple[str, str, str]]:
    """Appends that copy a game's current log list into its stream (a listener that was not
    subscribed for the game's start: it just started, or its connection was re-established).

    Why this is safe: identities count occurrences within the list, exactly as a listener that
    saw the stream from the start counts them, so entries already stored are duplicates. Why the
    order stays right: the listener subscribed *before* reading the list, and the game server
    publishes an entry before appending it, so every entry after the list's last one is still
    queued on this listener's connection and is appended after these. The listener's own
    occurrence counts are left alone: an entry both in the list and queued is then (digest, 0)
    both ways.
    """
    seen: Counter[str] = Counter()
    out = []
    for entry in entries:
        digest = _digest(entry)
        out.append((token, f"{digest}:{seen[digest]}", entry))
        seen[digest] += 1
    return out


def _split(name: str) -> tuple[str, str]:
    prefix, suffix = name.split("\x00")
    return prefix, suffix


def stream_calls(
    keys: ProjectKeys, appends: Sequence[tuple[str, str, str]], ttl: int
) -> list[ScriptCall]:
    """EVALSHA calls appending ``(token, identity, entry)`` triples.

    Grouped by game (each game's entries keep their order; the order *between* games does not
    matter, each has its own list), so the script pays its per-game calls once per batch."""
    by_game: dict[str, list[tuple[str, str]]] = {}
    for token, identity, entry in appends:
        by_game.setdefault(token, []).append((identity, entry))
    head = (ttl, *_split(keys.stream("\x00")), *_split(keys.stream_seen("\x00")))
    calls: list[ScriptCall] = []
    args: list[str | int] = list(head)
    count = 0
    for token, pairs in by_game.items():
        for at in range(0, len(pairs), ENTRIES_PER_CALL):  # bounded: Lua's unpack has a limit
            chunk = pairs[at : at + ENTRIES_PER_CALL]
            if count and count + len(chunk) > ENTRIES_PER_CALL:
                calls.append(ScriptCall(script_sha(), (keys.stats,), tuple(args)))
                args, count = list(head), 0
            args += [token, len(chunk)]
            for pair in chunk:
                args += pair
            count += len(chunk)
    if count:
        calls.append(ScriptCall(script_sha(), (keys.stats,), tuple(args)))
    return calls
