"""The built-in roster: 480 heroes invented for this project, generated, not copied.

Why generated: the project must not ship a public dump, yet the simulator needs several hundred
heroes in the Superhero-API shape (string powerstats, some ``"null"``) so the same loader runs on
both. Names are title + noun combinations; stats come from SHA-256 of the name, so the roster is
identical on every machine and Python version (``random`` would not promise that).
"""

from __future__ import annotations

import hashlib

from superhero_dagster.simulator.roster import POWERSTATS

_TITLES = (
    "Captain", "Doctor", "Silent", "Iron", "Crimson", "Night", "Solar", "Quantum", "Velvet",
    "Thunder", "Glass", "Midnight", "Atomic", "Emerald", "Phantom", "Cosmic", "Rust", "Neon",
    "Granite", "Static", "Lunar", "Arctic", "Scarlet", "Wandering",
)  # fmt: skip
_NOUNS = (
    "Moth", "Comet", "Falcon", "Anvil", "Lantern", "Tide", "Quasar", "Badger", "Spark", "Warden",
    "Cipher", "Harbor", "Kestrel", "Engine", "Mirage", "Orchid", "Sentinel", "Vortex", "Marten",
    "Beacon",
)  # fmt: skip
#: Roughly one hero in five has "null" stats, like real dumps (165 of 732).
_NULL_EVERY = 5


def _stats_for(name: str) -> dict[str, str]:
    digest = hashlib.sha256(name.encode()).digest()
    if digest[0] % _NULL_EVERY == 0:
        return dict.fromkeys(POWERSTATS, "null")
    # Toughness 10..100, offence 30..100: games last a handful of hits per kill, never thousands.
    low = {"intelligence": 10, "strength": 10, "durability": 10}
    return {
        k: str(low.get(k, 30) + digest[i + 1] * (101 - low.get(k, 30)) // 256)
        for i, k in enumerate(POWERSTATS)
    }


def builtin_entries() -> list[dict[str, object]]:
    """The built-in heroes as Superhero-API objects (ids 1..480)."""
    entries: list[dict[str, object]] = []
    for title in _TITLES:
        for noun in _NOUNS:
            name = f"{title} {noun}"
            entries.append(
                {"id": str(len(entries) + 1), "name": name, "powerstats": _stats_for(name)}
            )
    return entries
