"""`superhero-dagster status` (text and --json) and `listen` on the embedded server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import redis
from click.testing import CliRunner

from superhero_dagster.cli import cli
from superhero_dagster.keys import ProjectKeys
from superhero_dagster.listener.service import run_listener
from superhero_dagster.settings import Settings
from tests.listener_helpers import cleaning, make_game, poll_until

K = ProjectKeys()


def _status(redis_url: str, *args: str) -> str:
    result = CliRunner().invoke(cli, ["status", *args], env={"REDIS_URL": redis_url})
    assert result.exit_code == 0, result.output
    return result.output


def test_status_reports_buffer_counters_deadletters_and_live_listeners(
    r: redis.Redis, settings: Settings
) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=run_listener, args=(settings, stop, "st-1"), daemon=True)
    thread.start()
    poll_until(lambda: r.hexists(K.listeners, "st-1"))
    token, users = make_game(r)
    r.publish("lib.server.lobby", json.dumps({"log_message": 3}))  # a dead letter
    r.publish("lib.server.lobby", cleaning(token, users[0]))
    poll_until(lambda: r.llen(K.buffer) == 1 and r.llen(K.deadletter) == 1)
    info = json.loads(_status(settings.redis_url or "", "--json"))
    assert info["buffer_depth"] == 1 and info["oldest_buffered_game"] == token
    assert 0 <= info["oldest_buffered_age_s"] < 3600
    assert info["counters"]["captured"] == 1 and info["counters"]["deadlettered"] == 1
    assert info["counters"]["reconnects"] == 0  # every counter is present, zero or not
    assert "log_message" in info["deadletters_recent"][0]["reason"]
    assert [b["id"] for b in info["listeners_alive"]] == ["st-1"]
    text = _status(settings.redis_url or "")
    assert "buffer depth:        1" in text and "st-1" in text and "log_message" in text
    stop.set()
    thread.join(10)
    assert json.loads(_status(settings.redis_url or "", "--json"))["listeners_alive"] == []


def test_status_without_redis_url_is_one_line_error() -> None:
    env = {"REDIS_URL": ""}
    result = CliRunner().invoke(cli, ["status"], env=env)
    assert result.exit_code == 1 and "REDIS_URL is not set" in result.output


def test_listen_without_redis_url_uses_the_embedded_server_and_exits_0_on_sigterm(
    tmp_path: Path,
) -> None:
    env = {name: v for name, v in os.environ.items() if not name.startswith("SUPERHERO_")}
    env.pop("REDIS_URL", None)
    env["SUPERHERO_STATE_DIR"] = str(tmp_path / "state")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from superhero_dagster.cli import main; main()", "listen"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "REDIS_URL is not set: using an embedded Redis at redis://127.0.0.1:" in line
        url = line.split(" at ")[1].split(" ")[0]
        client = redis.Redis.from_url(url)
        poll_until(lambda: client.hlen(K.listeners) == 1)  # it is up and has reconciled
        client.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert "stopped" in proc.stdout.read()
        assert (tmp_path / "state" / "redis").is_dir()  # the embedded server's AOF folder
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
