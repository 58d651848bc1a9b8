"""Heroes: the built-in roster and a loader for Superhero-API JSON dumps.

Why a loader that tolerates ``"null"``: real dumps of the public API carry ``"null"`` powerstats for
a fifth of the heroes, and the original build step treated them (and ``"0"``) as 1 so that every
hero can still fight. A malformed entry is a :class:`RosterError` naming its index and name, so a
user sees which line of their file to fix instead of a traceback.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The six powerstats of the Superhero API, in the API's order.
POWERSTATS = ("intelligence", "strength", "speed", "durability", "power", "combat")


class RosterError(ValueError):
    """A roster file or entry cannot be used; the message says where and why."""


@dataclass(frozen=True)
class Hero:
    """One hero with its integer powerstats and the derived combat figures."""

    id: int
    name: str
    powerstats: Mapping[str, int]
    health: int
    attack: int
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def to_json(self) -> str:
        """The value stored in the ``superheros`` hash (Superhero-API shape, derived stats added)."""
        stats = {k: self.powerstats[k] for k in POWERSTATS}
        stats["health"] = self.health
        stats["attack"] = self.attack
        doc: dict[str, Any] = {"id": str(self.id), "name": self.name, "powerstats": stats}
        for key, value in self.extra.items():
            doc.setdefault(key, value)
        return json.dumps(doc)


@dataclass(frozen=True)
class Roster:
    """An immutable list of heroes with unique ids."""

    heroes: tuple[Hero, ...]

    def __post_init__(self) -> None:
        if len(self.heroes) < 2:
            raise RosterError(f"a roster needs at least 2 heroes, got {len(self.heroes)}")

    def __len__(self) -> int:
        return len(self.heroes)

    def hash_mapping(self) -> dict[str, str]:
        """Field -> value mapping for HSET ``superheros`` (the original build step's content)."""
        return {str(h.id): h.to_json() for h in self.heroes}


def derive(stats: Mapping[str, int]) -> tuple[int, int]:
    """(health, attack) by the original formulas."""
    health = stats["intelligence"] * stats["strength"] * stats["durability"] * 10
    attack = stats["speed"] * stats["power"] * stats["combat"]
    return health, attack


#: ASCII digits only: str.isdigit() also accepts other scripts' digits (Arabic-Indic, fullwidth).
_ASCII_INT = re.compile(r"-?[0-9]+")


def _stat(raw: object) -> int:
    """One powerstat: ``"null"``/``None``/``"0"`` count as 1 (the original's rule)."""
    if raw is None or raw == "null":
        return 1
    if isinstance(raw, bool):
        raise ValueError(f"not a number: {raw!r}")
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, str) and _ASCII_INT.fullmatch(raw.strip()):
        value = int(raw.strip())
    else:
        raise ValueError(f"not a number: {raw!r}")
    if value < 0:
        raise ValueError(f"negative: {raw!r}")
    return value or 1


def hero_from_api(entry: object, index: int) -> Hero:
    """Parse one Superhero-API object; :class:`RosterError` names the entry on any problem."""
    name = entry.get("name") if isinstance(entry, dict) else None
    where = f"roster entry {index}" + (f" ({name!r})" if isinstance(name, str) else "")
    if not isinstance(entry, dict):
        raise RosterError(f"{where}: expected an object, got {type(entry).__name__}")
    if not isinstance(name, str) or not name.strip():
        raise RosterError(f"{where}: missing or empty 'name'")
    raw_id = entry.get("id")
    try:
        if isinstance(raw_id, str) and not _ASCII_INT.fullmatch(raw_id.strip()):
            raise ValueError(raw_id)
        hero_id = int(raw_id)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        raise RosterError(f"{where}: 'id' must be an integer, got {entry.get('id')!r}") from None
    if hero_id < 1:
        raise RosterError(f"{where}: 'id' must be >= 1, got {hero_id}")
    raw_stats = entry.get("powerstats")
    if not isinstance(raw_stats, dict):
        raise RosterError(f"{where}: 'powerstats' must be an object")
    stats: dict[str, int] = {}
    for key in POWERSTATS:
        if key not in raw_stats:
            raise RosterError(f"{where}: powerstat {key!r} is missing")
        try:
            stats[key] = _stat(raw_stats[key])
        except ValueError as exc:
            raise RosterError(f"{where}: powerstat {key!r} {exc}") from None
    health, attack = derive(stats)
    extra = {k: v for k, v in entry.items() if k not in ("id", "name", "powerstats", "response")}
    return Hero(hero_id, name, stats, health, attack, extra)


def roster_from_api(entries: Iterable[object]) -> Roster:
    """A roster from already-decoded Superhero-API objects (ids must be unique)."""
    heroes: list[Hero] = []
    seen: dict[int, int] = {}
    for index, entry in enumerate(entries):
        hero = hero_from_api(entry, index)
        if hero.id in seen:
            raise RosterError(
                f"roster entry {index} ({hero.name!r}): id {hero.id} already used by entry "
                f"{seen[hero.id]}"
            )
        seen[hero.id] = index
        heroes.append(hero)
    return Roster(tuple(heroes))


def load_roster(path: str | Path) -> Roster:
    """Load a Superhero-API JSON dump: a list of hero objects (or ``{"results": [...]}``)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RosterError(f"cannot read roster {path}: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, or an over-long number
        raise RosterError(f"roster {path} is not valid JSON: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("results"), list):
        data = data["results"]
    if not isinstance(data, list):
        raise RosterError(f"roster {path}: expected a JSON list of heroes")
    try:
        return roster_from_api(data)
    except RosterError as exc:
        raise RosterError(f"{path}: {exc}") from None


def builtin_roster() -> Roster:
    """The roster written for this project (see ``roster_builtin``), parsed by the same loader."""
    from superhero_dagster.simulator.roster_builtin import builtin_entries

    return roster_from_api(builtin_entries())
