"""Shared fixtures: a throwaway Redis server per test session and a temporary Dagster home.

The Redis server is started by the tests themselves on a free port and flushed between tests; no
test ever talks to a server it did not start (the machine's 6379 is never touched).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import redis

from superhero_dagster.redis_server import RedisServer, RedisServerError
from superhero_dagster.settings import Settings


def require(condition: bool, reason: str) -> None:
    """Skip when an external prerequisite is missing, but fail under CI=true (CI must run it)."""
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"required under CI=true: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    try:
        server = RedisServer(data_dir=tmp_path_factory.mktemp("redis")).start()
    except RedisServerError as exc:
        require(False, f"no Redis server binary: {exc}")
        raise
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL of the session's throwaway server, emptied before each test."""
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()  # a test restarted or killed it
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    """Settings pointing at the throwaway server and a per-test data/state folder."""
    return Settings(
        redis_url=redis_url,
        data_dir=tmp_path / "data",
        state_dir=tmp_path / "state",
    )


@pytest.fixture
def dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty DAGSTER_HOME for one test (a real SQLite-backed instance)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


@pytest.fixture
def instance(dagster_home: Path) -> Iterator[dg.DagsterInstance]:
    """A real (SQLite) Dagster instance in that home, for in-process runs and sensor ticks."""
    with dg.instance_for_test(temp_dir=str(dagster_home)) as inst:
        yield inst


@pytest.fixture
def postgres_db() -> Iterator[str]:
    """A throwaway database on the local PostgreSQL server (README: Testing)."""
    import psycopg2

    from tests.postgres_helpers import LOCAL_SERVER, throwaway_database

    try:
        psycopg2.connect(f"{LOCAL_SERVER}/postgres", connect_timeout=3).close()
    except psycopg2.OperationalError as exc:
        require(False, f"no PostgreSQL server on 127.0.0.1:5432: {exc}".strip())
    with throwaway_database(LOCAL_SERVER) as url:
        yield url
