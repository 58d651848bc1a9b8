"""The embedded Redis server (start, answer, persist with AOF, stop) and the CLI's unreachable-URL error."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from superhero_dagster.redis_server import (
    RedisServer,
    RedisServerError,
    find_redis_server,
    free_port,
    redis_url_or_embedded,
)
from superhero_dagster.simulator.command import simulate_command
from tests.conftest import require


@pytest.fixture
def server_binary() -> str:
    try:
        return find_redis_server()
    except RedisServerError as exc:
        require(False, str(exc))
        raise


def _refuses(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_embedded_server_starts_answers_persists_and_stops(
    tmp_path: Path, server_binary: str
) -> None:
    server = RedisServer(data_dir=tmp_path / "redis", binary=server_binary).start()
    try:
        assert server.port != 6379
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        client.rpush("buffered", "game-1", "game-2")
        client.close()
        server.restart()  # clean shutdown: the AOF is replayed on start
        client = redis.Redis.from_url(server.url)
        assert client.lrange("buffered", 0, -1) == [b"game-1", b"game-2"]
        client.rpush("buffered", "game-3")
        client.close()
    finally:
        port = server.port
        server.stop()
    assert server.process is None and _refuses(port)
    assert any((tmp_path / "redis").rglob("*.aof*")), "AOF files live under the data folder"
    again = RedisServer(data_dir=tmp_path / "redis", binary=server_binary).start()
    try:
        client = redis.Redis.from_url(again.url)
        assert client.lrange("buffered", 0, -1) == [b"game-1", b"game-2", b"game-3"]
        client.close()
    finally:
        again.stop()


def test_redis_url_or_embedded(tmp_path: Path, server_binary: str) -> None:
    assert server_binary
    with redis_url_or_embedded("redis://example.invalid:1/0", tmp_path) as url:
        assert url == "redis://example.invalid:1/0"  # configured: used as is, nothing started
    with redis_url_or_embedded(None, tmp_path) as url:
        client = redis.Redis.from_url(url)
        assert client.ping()
        client.close()
        port = int(url.rsplit(":", 1)[1].split("/")[0])
    assert _refuses(port)


def test_cli_error_on_unreachable_redis_url() -> None:
    port = free_port()  # free a moment ago, nothing listens there
    url = f"redis://:secret@127.0.0.1:{port}/0"
    result = CliRunner().invoke(simulate_command, ["--games", "1"], env={"REDIS_URL": url})
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert f"redis://:***@127.0.0.1:{port}/0" in lines[0]
    assert "secret" not in result.output
    assert "Traceback" not in result.output
