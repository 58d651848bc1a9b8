"""The one place that reads environment variables.

Every other module receives a :class:`Settings` (or plain values taken from it), so tests and the
CLI can build settings explicitly and nothing depends on the process environment at import time.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

#: Environment variables understood by the project, with their defaults (documented in README).
ENV_DEFAULTS: dict[str, str | None] = {
    "REDIS_URL": None,  # unset -> the project starts its own server (redis_server.py)
    "SUPERHERO_DATA_DIR": "./data",
    "SUPERHERO_STATE_DIR": "./.superhero",
    "DAGSTER_HOME": None,  # unset -> <state dir>/dagster_home (init-instance, demo)
    "SUPERHERO_MAX_CONCURRENT_RUNS": "2",
    "SUPERHERO_CHANNELS": "lib.server.lobby",
    "SUPERHERO_NAMESPACE": "superhero_dagster",
    "SUPERHERO_MAX_PAYLOAD_BYTES": "65536",
    "SUPERHERO_RECONCILE_SECONDS": "30",
    "SUPERHERO_SEEN_TTL_SECONDS": str(7 * 24 * 3600),
    "SUPERHERO_DEADLETTER_MAX": "10000",
    "SUPERHERO_SENSOR_INTERVAL_SECONDS": "5",
    "SUPERHERO_MAX_GAMES_PER_RUN": "500",
    "SUPERHERO_MAX_GAMES_PER_TICK": "2000",
    "SUPERHERO_EXPIRE_AFTER_SECONDS": "30",
    "SUPERHERO_SNAPSHOT_RETENTION_SECONDS": "3600",
    "SUPERHERO_RETENTION_DAYS": "30",
    "SUPERHERO_DELETE_GAME_FILES": "false",
}


class SettingsError(ValueError):
    """A configuration value is present but unusable; the message names the variable."""


def _int(env: Mapping[str, str], name: str, minimum: int = 0) -> int:
    raw = env.get(name) or ENV_DEFAULTS[name]
    assert raw is not None
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = (env.get(name) or ENV_DEFAULTS[name] or "").strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true/false (1/0, yes/no, on/off), got {raw!r}")


def redact_url(url: str) -> str:
    """Hide the password of a Redis/DB URL so it can be logged or shown in an error.

    Never raises (it runs inside error handlers): the netloc is split by hand rather than through
    ``.port``, which raises on a bad port, and an unparseable URL is hidden whole. Passwords given
    as query parameters (redis-py accepts ``?password=`` and ``?ssl_password=``) are hidden too.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc
    userinfo, at, host = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.partition(':')[0]}:***@{host}"
    query = _SECRET_QUERY.sub(r"\1***", parts.query)
    # Replace in place (urlunsplit would turn ``unix:///path`` into ``unix:/path``).
    if netloc != parts.netloc:
        url = url.replace(parts.netloc, netloc, 1)
    if query != parts.query:
        url = url.replace(f"?{parts.query}", f"?{query}", 1)
    return url


#: ``password=...`` / ``ssl_password=...`` in a URL's query string (any case).
_SECRET_QUERY = re.compile(r"(?i)((?:^|&)(?:ssl_)?password=)[^&]*")


@dataclass(frozen=True)
class Settings:
    """Runtime configuration, immutable once read."""

    redis_url: str | None = None
    data_dir: Path = Path("./data")
    state_dir: Path = Path("./.superhero")
    dagster_home: Path | None = None
    max_concurrent_runs: int = 2
    channels: tuple[str, ...] = ("lib.server.lobby",)
    namespace: str = "superhero_dagster"
    max_payload_bytes: int = 65536
    reconcile_seconds: int = 30
    seen_ttl_seconds: int = 7 * 24 * 3600
    deadletter_max: int = 10000
    sensor_interval_seconds: int = 5
    max_games_per_run: int = 500
    max_games_per_tick: int = 2000
    expire_after_seconds: int = 30
    snapshot_retention_seconds: int = 3600
    retention_days: int = 30
    delete_game_files: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from ``env`` (default: the process environment)."""
        env = os.environ if env is None else env
        channels = tuple(
            c.strip()
            for c in (env.get("SUPERHERO_CHANNELS") or "lib.server.lobby").split(",")
            if c.strip()
        )
        if not channels:
            raise SettingsError("SUPERHERO_CHANNELS must name at least one channel")
        redis_url = env.get("REDIS_URL") or None
        if redis_url and urlsplit(redis_url).scheme not in ("redis", "rediss", "unix"):
            raise SettingsError(
                f"REDIS_URL must start with redis://, rediss:// or unix://, got {redact_url(redis_url)!r}"
            )
        return cls(
            redis_url=redis_url,
            data_dir=Path(env.get("SUPERHERO_DATA_DIR") or "./data"),
            state_dir=Path(env.get("SUPERHERO_STATE_DIR") or "./.superhero"),
            dagster_home=Path(env["DAGSTER_HOME"]) if env.get("DAGSTER_HOME") else None,
            max_concurrent_runs=_int(env, "SUPERHERO_MAX_CONCURRENT_RUNS", 1),
            channels=channels,
            namespace=env.get("SUPERHERO_NAMESPACE") or "superhero_dagster",
            max_payload_bytes=_int(env, "SUPERHERO_MAX_PAYLOAD_BYTES", 64),
            reconcile_seconds=_int(env, "SUPERHERO_RECONCILE_SECONDS", 1),
            seen_ttl_seconds=_int(env, "SUPERHERO_SEEN_TTL_SECONDS", 60),
            deadletter_max=_int(env, "SUPERHERO_DEADLETTER_MAX", 1),
            sensor_interval_seconds=_int(env, "SUPERHERO_SENSOR_INTERVAL_SECONDS", 1),
            max_games_per_run=_int(env, "SUPERHERO_MAX_GAMES_PER_RUN", 1),
            max_games_per_tick=_int(env, "SUPERHERO_MAX_GAMES_PER_TICK", 1),
            expire_after_seconds=_int(env, "SUPERHERO_EXPIRE_AFTER_SECONDS", 0),
            snapshot_retention_seconds=_int(env, "SUPERHERO_SNAPSHOT_RETENTION_SECONDS", 0),
            retention_days=_int(env, "SUPERHERO_RETENTION_DAYS", 0),
            delete_game_files=_bool(env, "SUPERHERO_DELETE_GAME_FILES"),
        )

    @property
    def resolved_dagster_home(self) -> Path:
        """``DAGSTER_HOME`` if set, else a folder in the project's state directory."""
        return self.dagster_home or (self.state_dir / "dagster_home")

    def to_env(self) -> dict[str, str]:
        """These settings as environment variables, for child processes (daemon, listeners)."""
        env = {
            "SUPERHERO_DATA_DIR": str(self.data_dir.resolve()),
            "SUPERHERO_STATE_DIR": str(self.state_dir.resolve()),
            "DAGSTER_HOME": str(self.resolved_dagster_home.resolve()),
            "SUPERHERO_MAX_CONCURRENT_RUNS": str(self.max_concurrent_runs),
            "SUPERHERO_CHANNELS": ",".join(self.channels),
            "SUPERHERO_NAMESPACE": self.namespace,
            "SUPERHERO_MAX_PAYLOAD_BYTES": str(self.max_payload_bytes),
            "SUPERHERO_RECONCILE_SECONDS": str(self.reconcile_seconds),
            "SUPERHERO_SEEN_TTL_SECONDS": str(self.seen_ttl_seconds),
            "SUPERHERO_DEADLETTER_MAX": str(self.deadletter_max),
            "SUPERHERO_SENSOR_INTERVAL_SECONDS": str(self.sensor_interval_seconds),
            "SUPERHERO_MAX_GAMES_PER_RUN": str(self.max_games_per_run),
            "SUPERHERO_MAX_GAMES_PER_TICK": str(self.max_games_per_tick),
            "SUPERHERO_EXPIRE_AFTER_SECONDS": str(self.expire_after_seconds),
            "SUPERHERO_SNAPSHOT_RETENTION_SECONDS": str(self.snapshot_retention_seconds),
        }
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        return env

    def with_(self, **changes: object) -> Settings:
        """A copy with some fields changed (tests and CLI options)."""
        return replace(self, **changes)  # type: ignore[arg-type]
