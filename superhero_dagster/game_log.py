"""Which copy of a game's attack log to trust, and which of its entries count (pure, no I/O).

Why this exists: with the original clean-up worker, ``games:<t>:logs`` is deleted the moment the
host's 'Cleaning Game Records' arrives, and a late RPUSH by a dead hero re-creates it holding only
the late entries. The listener therefore keeps a second copy, the attack stream from pub/sub, and
the capture records both. This module decides, for each copy, whether it is *complete*, picks one,
and walks it by SYSTEM.md's "Which log entries count".

Two views of the same entries:

* **The server's view** (for completeness): every entry, valid or not, is something the game
  server did; it set the victim's health to ``ENEMY_HEALTH_POST``. A copy is complete when, walked
  from every participant's initial health (the hero JSON's derived ``health``), each entry's
  ``ENEMY_HEALTH_PRIOR`` equals the victim's health so far, up to the *end*: the first entry after
  which at most one hero has health left. A missing first entry breaks the chain at the victim's
  next entry; a missing last entry leaves two heroes standing; a list re-created by late RPUSHes
  (only post-game entries) fails both ways.
* **The counting rules** (for the rows): an entry whose attacker is already eliminated is
  *invalid* and changes nothing; otherwise it is a round, and a victim still alive going from
  positive health (``ENEMY_HEALTH_PRIOR``) to 0 is eliminated. Entries after the end are *post-game* and change nothing.

Why the end is taken from the server's view: the rules can only eliminate a hero the server has
already brought to 0, so they never decide *before* the server's end. Normally they decide exactly
there (the deciding entry leaves one hero alive). When a dead hero's turn killed someone (invalid:
the kill does not count), the rules leave two heroes standing at the server's end; the cut stays
at that end anyway, so a capture taken before or after later entries arrived gives the same
result, and the extra standing hero is reported as a source anomaly, not guessed away.

Known limit: a copy missing only hits on a hero who is never hit again (and survives) still
chains and still reaches the end; no field of the log can reveal those gaps.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

LogSource = Literal["list", "stream", "none"]


class Entry(Protocol):
    attacker: str
    victim: str
    damage: int
    prior: int
    post: int


@dataclass(frozen=True)
class Walk:
    """One copy of the log, walked in order (indices are 0-based positions in that copy)."""

    entries: int
    chain_break: int | None  # first entry whose prior is not the victim's health so far
    end: int | None  # the deciding entry: at most one hero has health left after it
    invalid: tuple[int, ...]  # attacker already eliminated (before or at the end)
    eliminated: tuple[str, ...]  # victims the rules eliminated, in order
    standing: tuple[str, ...]  # heroes the rules leave alive at the end (sorted)
    post_game: int  # entries after the end

    @property
    def complete(self) -> bool:
        return self.end is not None and self.chain_break is None


def initial_health(hero: Mapping[str, Any] | None) -> int | None:
    """A hero's starting health: its derived ``health`` (in ``powerstats`` as the simulator
    writes it, or at the top level), else SYSTEM.md's formula over the powerstats."""
    if not hero:
        return None
    stats = hero.get("powerstats")
    stats = stats if isinstance(stats, Mapping) else {}
    for value in (stats.get("health"), hero.get("health")):
        number = _positive(value)
        if number is not None:
            return number
    factors = [stats.get(name) for name in ("intelligence", "strength", "durability")]
    if any(f is None for f in factors):
        return None
    product = 10
    for f in factors:
        product *= _positive(f) or 1  # "null" or "0" counts as 1
    return product


def _positive(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 16:
        return int(value) or None
    return None


def walk(entries: Sequence[Entry], participants: Iterable[str], initial: Mapping[str, int]) -> Walk:
    """Walk one copy of the log (see the module docstring for both views)."""
    users = sorted(set(participants))
    health: dict[str, int] = dict(initial)  # server's view; unknown health counts as positive
    left = {u for u in users if health.get(u, 1) > 0}
    chain_break = end = None
    for i, e in enumerate(entries):
        if e.victim in health and e.prior != health[e.victim] and chain_break is None:
            chain_break = i
        health[e.victim] = e.post
        if e.post == 0:
            left.discard(e.victim)
        if len(left) <= 1 and len(users) >= 2:
            end = i
            break
    alive = set(users)
    invalid: list[int] = []
    eliminated: list[str] = []
    last = len(entries) - 1 if end is None else end
    for i in range(last + 1):
        e = entries[i]
        if e.attacker not in alive:
            invalid.append(i)
            continue
        if e.victim in alive and e.prior > 0 and e.post == 0:  # "from positive health to 0"
            alive.discard(e.victim)
            eliminated.append(e.victim)
    return Walk(
        entries=len(entries),
        chain_break=chain_break,
        end=end,
        invalid=tuple(invalid),
        eliminated=tuple(eliminated),
        standing=tuple(sorted(alive)),
        post_game=0 if end is None else len(entries) - end - 1,
    )


def choose(list_walk: Walk, stream_walk: Walk) -> LogSource:
    """The list when it is complete and at least as long as a complete stream, else a complete
    stream, else nothing (the caller decides whether that is a lost log)."""
    if list_walk.complete and (
        not stream_walk.complete or list_walk.entries >= stream_walk.entries
    ):
        return "list"
    if stream_walk.complete:
        return "stream"
    return "none"
