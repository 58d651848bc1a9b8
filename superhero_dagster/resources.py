"""Dagster resources: the Redis connection and the sink root.

Fields left unset fall back to :class:`~superhero_dagster.settings.Settings` when the resource is
used (not when it is defined), so importing the code location reads no environment variable and
``settings.py`` stays the only module that does.
"""

from __future__ import annotations

import dagster as dg
import redis
from pydantic import PrivateAttr

from superhero_dagster.keys import ProjectKeys
from superhero_dagster.periods import Period
from superhero_dagster.redis_client import connect
from superhero_dagster.settings import Settings
from superhero_dagster.sinks import SinkRoot


class RedisResource(dg.ConfigurableResource):
    """The Redis server the listener buffers games in (``REDIS_URL`` when ``url`` is unset)."""

    url: str | None = None
    namespace: str | None = None
    expire_after_seconds: int | None = None
    snapshot_retention_seconds: int | None = None
    materialized_keep: int | None = None

    _client: redis.Redis | None = PrivateAttr(default=None)

    @property
    def _settings(self) -> Settings:
        return Settings.from_env()

    def resolved_url(self) -> str:
        url = self.url or self._settings.redis_url
        if not url:
            raise dg.Failure(
                "REDIS_URL is not set: start a server (`superhero-dagster redis` prints its URL) "
                "and export REDIS_URL before starting Dagster"
            )
        return url

    @property
    def project_keys(self) -> ProjectKeys:
        return ProjectKeys(self.namespace or self._settings.namespace)

    @property
    def expire_after(self) -> int:
        """Seconds before a materialized game's simulator keys expire (0: never)."""
        if self.expire_after_seconds is not None:
            return self.expire_after_seconds
        return self._settings.expire_after_seconds

    @property
    def snapshot_retention(self) -> int:
        """Seconds the Redis copy of a snapshot lives once persisted to the sink (0: drop now)."""
        if self.snapshot_retention_seconds is not None:
            return self.snapshot_retention_seconds
        return self._settings.snapshot_retention_seconds

    @property
    def materialized_cap(self) -> int:
        """How many recent games the ``materialized`` sorted set keeps (the rest are trimmed)."""
        if self.materialized_keep is not None:
            return self.materialized_keep
        return self._settings.materialized_keep

    def client(self) -> redis.Redis:
        """One pinged connection per resource instance (reused for the whole run or tick).

        An unreachable server raises :class:`RedisUnavailable` (one line, password redacted), so
        callers can tell "try again later" from a configuration error (``dg.Failure``).
        """
        if self._client is None:
            self._client = connect(self.resolved_url())
        return self._client

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class SinkResource(dg.ConfigurableResource):
    """Where the JSON and Parquet files go (``SUPERHERO_DATA_DIR`` when ``root`` is unset)."""

    root: str | None = None
    compaction_period: str | None = None

    def period(self) -> Period:
        """The compaction period the game asset indexes games under (``SUPERHERO_COMPACTION_PERIOD``
        when unset)."""
        return Period(self.compaction_period or Settings.from_env().compaction_period)

    def sink(self, *, fsync: bool = True) -> SinkRoot:
        """The sink root; ``fsync=False`` for files that can be rebuilt from a durable source."""
        return SinkRoot(self.root or str(Settings.from_env().data_dir), fsync=fsync)
