"""Turning the head of the buffer into partitions and batched run requests (no Dagster calls).

Why a cursor and not a claim list: Dagster stores a tick's cursor together with its reserved run
requests and resumes an interrupted tick (for up to a day), so "a span named in the committed
cursor" means "its runs are or will be submitted". The next tick removes exactly those spans from
the buffer; a tick that dies before committing leaves the buffer untouched and the next tick plans
the same games again (same partitions, same run keys).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from superhero_dagster.sinks import InvalidToken, validate_token

CURSOR_VERSION = 1


@dataclass(frozen=True)
class Span:
    """A run of consecutive buffer entries acknowledged together."""

    head: str
    last: str
    length: int

    def to_json(self) -> list[object]:
        return [self.head, self.last, self.length]


@dataclass(frozen=True)
class Batch:
    """Game tokens materialized by one run; contiguous in the partitions' insertion order."""

    tokens: tuple[str, ...]

    @property
    def run_key(self) -> str:
        return f"games:{self.tokens[0]}:{self.tokens[-1]}:{len(self.tokens)}"


@dataclass
class TickPlan:
    """What one sensor tick does: partitions to add, runs to request, spans to acknowledge."""

    new_partitions: list[str] = field(default_factory=list)
    batches: list[Batch] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (entry, reason)
    duplicates: int = 0
    held: int = 0  # entries left in the buffer: the live set had no room for their games

    def cursor(self) -> str:
        return json.dumps({"v": CURSOR_VERSION, "spans": [s.to_json() for s in self.spans]})


def parse_cursor(cursor: str | None) -> list[Span]:
    """Spans named by a committed cursor; an unreadable cursor acknowledges nothing (safe)."""
    if not cursor:
        return []
    try:
        data = json.loads(cursor)
        return [Span(str(h), str(t), int(n)) for h, t, n in data.get("spans", [])]
    except (ValueError, TypeError, AttributeError):
        return []


def plan(
    entries: Sequence[str],
    newest: Sequence[str],
    max_per_run: int,
    older: AbstractSet[str] = frozenset(),
    max_new: int | None = None,
) -> TickPlan:
    """Plan one tick over ``entries`` (the buffer's head, oldest first).

    ``newest`` is the tail of the ``games`` partitions in insertion order (at least every
    partition a replayed tick could have added); ``older`` holds entries that are partitions added
    before that tail. New tokens are appended after the tail, so a batch is split wherever its
    tokens would not be neighbours in that order (a re-buffered old game, or a replay of a tick
    whose partitions were already added): a partition-key range must cover exactly the batch's
    games and nothing else. An ``older`` game is never anyone's neighbour: it gets a run alone.
    """
    result = TickPlan()
    if not entries:
        return result
    position = {key: i for i, key in enumerate(newest)}
    next_position = len(newest)
    isolated = 0
    seen: set[str] = set()
    current: list[str] = []
    last_pos = -2

    def close() -> None:
        nonlocal current
        if current:
            result.batches.append(Batch(tuple(current)))
            current = []

    taken = len(entries)
    for index, entry in enumerate(entries):
        try:
            token = validate_token(entry)
        except InvalidToken as exc:
            result.rejected.append((entry, str(exc)))
            continue
        if token in seen:
            result.duplicates += 1
            continue
        pos = position.get(token)
        new = pos is None and token not in older
        if new and max_new is not None and len(result.new_partitions) >= max_new:
            taken = index
            break
        seen.add(token)
        if pos is None and not new:
            isolated += 1
            pos = -2 * isolated - 10  # even, negative: never last_pos + 1 of anything
        elif pos is None:
            pos = next_position
            next_position += 1
            result.new_partitions.append(token)
        if current and (pos != last_pos + 1 or len(current) >= max_per_run):
            close()
        current.append(token)
        last_pos = pos
    close()
    result.held = len(entries) - taken
    if taken:
        result.spans.append(Span(entries[0], entries[taken - 1], taken))
    return result
