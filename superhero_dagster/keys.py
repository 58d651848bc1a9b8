"""Every Redis key name: the simulator's (SYSTEM.md, seed-compatible) and the project's own.

Simulator, listener, sensor and assets all build key names here, so a layout change is one edit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Game and user tokens: canonical lowercase UUID strings, the only names that become Redis keys
#: the project builds, Dagster partitions or file names (listener, sensor and sinks all use it).
TOKEN_PATTERN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_token(value: object) -> bool:
    """True when ``value`` is a canonical lowercase UUID string."""
    return isinstance(value, str) and TOKEN_PATTERN.fullmatch(value) is not None


# --- The seed's layout (SYSTEM.md). Not namespaced: the original simulator owns these. ---------
SUPERHEROS = "superheros"
USERS = "users"
GAMES_PARTICIPANTS = "games:participants"

#: Status values written to ``games:<t>:status``.
STATUS_WAITING_LOBBY = "Waiting Lobby"
STATUS_STARTING = "Starting"
STATUS_IN_PROGRESS = "In-Progress"
STATUS_WAITING_PLAYER = "Waiting Player"
STATUS_COMPLETED = "Completed"
STATUS_TIMED_OUT = "Timed Out"
FINISHED_STATUSES = (STATUS_COMPLETED, STATUS_TIMED_OUT)

#: The log record that marks the end of a game (published once per player).
CLEANING_MESSAGE = "Cleaning Game Records"
#: Game-channel records: an attack (``task`` = the log entry, as a JSON string) and a turn aimed
#: at an eliminated enemy (not a log entry; SYSTEM.md "The attack log is also on pub/sub").
ATTACK_MESSAGE = "Attack Completed"
DEAD_ENEMY_MESSAGE = "Attacked Dead Enemy"


def games_players(participants: int | str) -> str:
    """List of game tokens configured for P participants."""
    return f"games:players:{participants}"


def game_players(token: str) -> str:
    """Set of user tokens of the players in a game."""
    return f"games:{token}"


def game_participants(token: str) -> str:
    return f"games:{token}:participants"


def game_status(token: str) -> str:
    return f"games:{token}:status"


def game_host(token: str) -> str:
    return f"games:{token}:host"


def game_order(token: str) -> str:
    return f"games:{token}:order"


def game_superheros(token: str) -> str:
    return f"games:{token}:superheros"


def game_player_hero(token: str, user: str) -> str:
    return f"games:{token}:superheros:{user}"


def game_logs(token: str) -> str:
    return f"games:{token}:logs"


def game_keys(token: str, users: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Every per-game key of SYSTEM.md for ``token`` (hero hashes for the given users)."""
    fixed = [
        game_players(token),
        game_participants(token),
        game_status(token),
        game_host(token),
        game_order(token),
        game_superheros(token),
        game_logs(token),
    ]
    return fixed + [game_player_hero(token, u) for u in users]


# --- The project's own namespace. ------------------------------------------------------------
@dataclass(frozen=True)
class ProjectKeys:
    """Keys owned by superhero-dagster, all under one prefix so they never clash with the seed."""

    namespace: str = "superhero_dagster"

    def _k(self, *parts: str) -> str:
        return ":".join((self.namespace, *parts))

    @property
    def buffer(self) -> str:
        """List of captured game tokens, oldest first (RPUSH by listeners, drained by the sensor)."""
        return self._k("buffer")

    def snapshot(self, token: str) -> str:
        """String: the JSON snapshot of a game, captured once, no TTL."""
        return self._k("snapshot", token)

    def seen(self, token: str) -> str:
        """Gate marker (SET NX + TTL): the game has been captured."""
        return self._k("seen", token)

    def stream(self, token: str) -> str:
        """List: the game's 'Attack Completed' entries in pub/sub order, each stored once
        (TTL refreshed on append; deleted once the game is materialized)."""
        return self._k("stream", token)

    def stream_seen(self, token: str) -> str:
        """Hash: identities (entry digest, occurrence) already in :meth:`stream` (the dedupe)."""
        return self._k("stream_seen", token)

    @property
    def log_lost(self) -> str:
        """Sorted set game token -> epoch seconds: Completed games materialized with no
        complete log anywhere (a data-loss outcome; `status` counts them)."""
        return self._k("log_lost")

    @property
    def deadletter(self) -> str:
        """Capped list of rejected messages (JSON: reason, raw payload truncated, when, who)."""
        return self._k("deadletter")

    @property
    def stats(self) -> str:
        """Hash of counters (messages, captured, duplicates, reconciled, deadlettered, ...)."""
        return self._k("stats")

    @property
    def listeners(self) -> str:
        """Hash listener id -> JSON heartbeat (last seen epoch seconds, host, pid)."""
        return self._k("listeners")

    @property
    def materialized(self) -> str:
        """Sorted set game token -> epoch seconds of its last materialization, trimmed to the
        newest ``SUPERHERO_MATERIALIZED_KEEP``. A sorted set because a hash can only be trimmed by
        reading it whole; the name differs from the old unbounded hash (``<ns>:materialized``) so
        an existing deployment gets no WRONGTYPE (the old hash can be deleted by hand)."""
        return self._k("materialized_at")
