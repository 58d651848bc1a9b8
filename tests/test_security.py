"""Security: password and TLS Redis end to end, no secret in any output, no eval/pickle, loopback only.

Every server here is started by the test (a second throwaway server with ``requirepass``, a TLS
server with a throwaway CA); none listens on 6379 or on anything but 127.0.0.1.
"""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import subprocess
import threading
import time
import tokenize
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import redis
from click.testing import CliRunner
from dagster._serdes import serialize_value

import superhero_dagster
from superhero_dagster import cli as cli_module
from superhero_dagster.assembly import INGEST_JOB, build_definitions
from superhero_dagster.keys import ProjectKeys
from superhero_dagster.listener.service import run_listener
from superhero_dagster.redis_client import RedisUnavailable, connect
from superhero_dagster.redis_server import RedisServer, find_redis_server, free_port
from superhero_dagster.settings import Settings, redact_url
from superhero_dagster.simulator.run import SimConfig, run_simulation
from tests.conftest import require
from tests.listener_helpers import cleaning, make_game
from tests.pipeline_helpers import execute, listeners, poll, sensor_tick

K = ProjectKeys()
PASSWORD = "Pw-3xq7-Sup3rS3cret"
WRONG = "Wr0ng-Pw-91zz"
PACKAGE = Path(superhero_dagster.__file__).resolve().parent


@pytest.fixture(scope="module")
def pw_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A second throwaway server (never 6379) that requires a password."""
    server = RedisServer(tmp_path_factory.mktemp("redis-pw"), password=PASSWORD).start()
    yield server
    server.stop()


@pytest.fixture
def pw_settings(pw_server: RedisServer, tmp_path: Path) -> Settings:
    client = redis.Redis.from_url(pw_server.url)
    client.flushall()
    client.close()
    return Settings(redis_url=pw_server.url, data_dir=tmp_path / "data", state_dir=tmp_path / "st")


def _status(url: str, *args: str):
    """`superhero-dagster status` in-process, with REDIS_URL set for the call only."""
    return CliRunner().invoke(cli_module.cli, ["status", *args], env={"REDIS_URL": url})


# --- (a) a password-protected Redis, end to end ----------------------------------------------
def test_password_url_works_end_to_end_and_the_password_is_never_shown(
    pw_settings: Settings, dagster_home: Path, caplog: pytest.LogCaptureFixture, capfd
) -> None:
    caplog.set_level(logging.DEBUG)
    s = pw_settings.with_(reconcile_seconds=1, max_games_per_run=4)
    r = redis.Redis.from_url(s.redis_url, decode_responses=True)
    with listeners(s, 1):
        poll(lambda: r.hlen(K.listeners) >= 1, what="listener alive")
        summary = run_simulation(
            s.redis_url,
            SimConfig(games=6, players=(2, 3), seed=7, cleaning_delay=0.0, expire_after=0),
        )
        poll(lambda: r.llen(K.buffer) >= summary.games, what="games buffered")
        # `status` while a listener is alive: text and --json
        text = _status(s.redis_url)
        as_json = _status(s.redis_url, "--json")
    assert text.exit_code == 0 and "buffer depth" in text.output, text.output
    assert as_json.exit_code == 0 and json.loads(as_json.output)["buffer_depth"] == summary.games

    with dg.instance_for_test(temp_dir=str(dagster_home)) as instance:
        result = sensor_tick(s, instance, None)
        runs = [execute(s, instance, request) for request in result.run_requests]
        assert runs and all(run.success for run in runs)
        dagster_text = []
        for run in runs:
            stored = instance.get_run_by_id(run.run_id)
            assert stored is not None
            dagster_text.append(json.dumps(stored.tags))
            dagster_text += [serialize_value(rec) for rec in instance.all_logs(run.run_id)]
    materialized = "\n".join(dagster_text)
    assert "game_podium" in materialized  # the events really are in there
    assert sum(m.count("ASSET_MATERIALIZATION") for m in dagster_text) >= 3 * summary.games

    out, err = capfd.readouterr()
    for where, blob in {
        "status text": text.output,
        "status --json": as_json.output,
        "Dagster tags and event log": materialized,
        "log records": caplog.text,
        "stdout/stderr": out + err,
    }.items():
        assert PASSWORD not in blob, f"password leaked in {where}"
    assert "subscribed" in caplog.text and redact_url(s.redis_url) in caplog.text


def test_wrong_password_is_one_line_without_the_password(
    pw_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    bad = pw_server.url.replace(PASSWORD, WRONG)
    with pytest.raises(RedisUnavailable) as caught:
        connect(bad)
    message = str(caught.value)
    assert "refused the credentials" in message and "\n" not in message
    assert WRONG not in message and PASSWORD not in message
    result = _status(bad)
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert WRONG not in result.output and ":***@" in result.output
    # a listener that keeps retrying with the wrong password logs, but never the password
    caplog.set_level(logging.DEBUG)
    stop = threading.Event()
    thread = threading.Thread(
        target=run_listener, args=(Settings(redis_url=bad), stop, "wrong-pw"), daemon=True
    )
    thread.start()
    try:
        poll(lambda: "reconnecting" in caplog.text, timeout=15, what="a reconnect warning")
    finally:
        stop.set()
        thread.join(10)
    assert WRONG not in caplog.text


def test_unreachable_server_error_hides_the_password() -> None:
    url = f"redis://user:{PASSWORD}@127.0.0.1:{free_port()}/0"
    with pytest.raises(RedisUnavailable) as caught:
        connect(url, timeout=1.0)
    assert PASSWORD not in str(caught.value) and "user:***@127.0.0.1" in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        f"redis://:{PASSWORD}@host:6379/0",
        f"redis://me:{PASSWORD}@host/0",
        f"rediss://me:{PASSWORD}@host:6380/0?ssl_cert_reqs=required",
        f"redis://host:6379/0?password={PASSWORD}",
        f"rediss://host/0?ssl_password={PASSWORD}&ssl_ca_certs=/ca.pem",
        f"redis://:{PASSWORD}@host:notaport/0",  # used to raise inside the error handler
        f"redis://:{PASSWORD}@[::1/0",
        f"unix://:{PASSWORD}@/tmp/redis.sock?db=0",
    ],
)
def test_redact_url_hides_every_password_form_and_never_raises(url: str) -> None:
    shown = redact_url(url)
    assert PASSWORD not in shown
    assert shown.count("***") == url.count(PASSWORD) or shown == "<unparseable URL>"


def test_settings_error_for_a_bad_scheme_hides_the_password() -> None:
    from superhero_dagster.settings import SettingsError

    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"REDIS_URL": f"http://:{PASSWORD}@host/0"})
    assert PASSWORD not in str(caught.value)


def test_embedded_server_password_is_not_left_on_its_command_line(pw_server: RedisServer) -> None:
    """`ps` is readable by every local user; redis-server rewrites its title after start."""
    assert pw_server.process is not None
    cmdline = Path(f"/proc/{pw_server.process.pid}/cmdline").read_bytes()
    assert PASSWORD.encode() not in cmdline


def test_job_snapshot_of_the_code_location_does_not_contain_the_password(tmp_path: Path) -> None:
    s = Settings(redis_url=f"redis://:{PASSWORD}@127.0.0.1:1/0", data_dir=tmp_path)
    snapshot = build_definitions(s).resolve_job_def(INGEST_JOB).get_job_snapshot()
    assert PASSWORD not in serialize_value(snapshot)


# --- (b) rediss:// ---------------------------------------------------------------------------
def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A TLS-only redis-server (plain port off) with a throwaway CA; yields (rediss URL, CA file)."""
    require(subprocess.run(["which", "openssl"], capture_output=True).returncode == 0, "openssl")
    d = tmp_path_factory.mktemp("tls")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
             "ca.crt", "-days", "2", "-subj", "/CN=superhero-dagster test CA", cwd=d)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out",
             "server.csr", "-subj", "/CN=127.0.0.1", cwd=d)  # fmt: skip
    (d / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.cnf",
             cwd=d)  # fmt: skip
    port = free_port()
    proc = subprocess.Popen(
        [find_redis_server(), "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(d / "server.crt"), "--tls-key-file", str(d / "server.key"),
         "--tls-ca-cert-file", str(d / "ca.crt"), "--tls-auth-clients", "no",
         "--requirepass", PASSWORD, "--save", "", "--appendonly", "no", "--dir", str(d)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = (
        f"rediss://:{PASSWORD}@127.0.0.1:{port}/0"
        f"?ssl_cert_reqs=required&ssl_ca_certs={d / 'ca.crt'}"
    )
    deadline = time.monotonic() + 10
    try:
        while True:
            if proc.poll() is not None:
                output = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                tls_missing = "tls" in output.lower()
                require(not tls_missing, f"redis-server has no TLS support: {output[-300:]}")
                raise AssertionError(f"TLS redis-server exited: {output[-500:]}")
            try:
                connect(url, timeout=1.0).close()
                break
            except RedisUnavailable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield url, d / "ca.crt"
    finally:
        proc.terminate()
        proc.wait(10)


def test_rediss_url_connects_and_listener_captures_a_game_over_tls(
    tls_server: tuple[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url, _ = tls_server
    caplog.set_level(logging.INFO)
    client = connect(url, decode_responses=True)
    client.flushall()
    assert client.connection_pool.connection_class.__name__ == "SSLConnection"
    game, users = make_game(client)
    s = Settings(redis_url=url, data_dir=tmp_path / "d", state_dir=tmp_path / "s")
    with listeners(s, 1):
        poll(lambda: client.pubsub_numsub("lib.server.lobby")[0][1] == 1, what="subscribed")
        for user in users:
            client.publish("lib.server.lobby", cleaning(game, user))
        poll(lambda: client.llen(K.buffer) == 1, what="game buffered over TLS")
    assert client.lrange(K.buffer, 0, -1) == [game]
    assert json.loads(client.get(K.snapshot(game)))["game_token"] == game
    client.close()
    assert PASSWORD not in caplog.text


def test_tls_without_the_ca_or_in_plain_text_is_refused_clearly(
    tls_server: tuple[str, Path],
) -> None:
    url, _ = tls_server
    no_ca = url.split("&ssl_ca_certs=")[0]  # verify against the system store: our CA is unknown
    plain = url.replace("rediss://", "redis://").split("?")[0]
    for bad in (no_ca, plain):
        with pytest.raises(RedisUnavailable) as caught:
            connect(bad, timeout=2.0)
        assert PASSWORD not in str(caught.value) and "\n" not in str(caught.value)


# --- (c) no eval / exec / pickle / yaml.load / shell=True in the package ---------------------
def dangerous_calls(source: str) -> list[tuple[int, str]]:
    """(line, what) for each dangerous construct, found on tokens (strings and comments ignored).

    Builtins only: ``client.eval(...)``/``evalsha`` (Redis Lua via redis-py) are attribute calls
    and are allowed; ``yaml.safe_load`` is allowed, ``yaml.load`` is not.
    """
    toks = [
        t
        for t in tokenize.generate_tokens(io.StringIO(source).readline)
        if t.type in (tokenize.NAME, tokenize.OP)
    ]
    found: list[tuple[int, str]] = []
    for i, t in enumerate(toks):
        prev = toks[i - 1].string if i else ""
        nxt = toks[i + 1].string if i + 1 < len(toks) else ""
        nxt2 = toks[i + 2].string if i + 2 < len(toks) else ""
        if t.string in ("eval", "exec", "compile", "__import__") and nxt == "(" and prev != ".":
            found.append((t.start[0], f"builtin {t.string}()"))
        elif t.string in ("pickle", "cPickle", "dill", "shelve", "marshal", "cloudpickle"):
            found.append((t.start[0], f"{t.string} (unsafe deserialization)"))
        elif (
            t.string == "yaml"
            and nxt == "."
            and nxt2 in ("load", "unsafe_load", "full_load", "load_all")
        ):
            found.append((t.start[0], f"yaml.{nxt2}"))
        elif t.string == "shell" and nxt == "=" and nxt2 == "True":
            found.append((t.start[0], "shell=True"))
        elif t.string == "os" and nxt == "." and nxt2 in ("system", "popen"):
            found.append((t.start[0], f"os.{nxt2}"))
    return found


def test_the_scanner_catches_each_construct() -> None:
    bad = (
        "x = eval(s)\nexec(code)\nimport pickle\nyaml.load(f)\n"
        "subprocess.run(c, shell=True)\nos.system('ls')\n"
    )
    assert [line for line, _ in dangerous_calls(bad)] == [1, 2, 3, 4, 5, 6]
    allowed = (
        "client.eval(script, 0)\nclient.evalsha(sha, 0)\nyaml.safe_load(f)\n"
        "pipe.execute()\n'eval(x) in a string'\n# pickle in a comment\nre.compile('x')\n"
    )
    assert dangerous_calls(allowed) == []


def test_package_has_no_eval_exec_pickle_unsafe_yaml_or_shell() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 20  # the package really was scanned
    problems = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {what}"
        for path in files
        for line, what in dangerous_calls(path.read_text(encoding="utf-8"))
    ]
    assert problems == [], "dangerous constructs:\n" + "\n".join(problems)


# --- (d) loopback only -----------------------------------------------------------------------
def _non_loopback_ipv4() -> list[str]:
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    return [
        a
        for a in out.split()
        if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", a) and not a.startswith("127.")
    ]


def test_embedded_redis_binds_loopback_only(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "r") as server:
        assert server.process is not None
        args = list(server.process.args)  # type: ignore[arg-type]
        assert args[args.index("--bind") + 1] == "127.0.0.1"
        assert args[args.index("--protected-mode") + 1] == "yes"
        client = redis.Redis.from_url(server.url, decode_responses=True)
        assert client.config_get("bind")["bind"] == "127.0.0.1"
        client.close()
        others = _non_loopback_ipv4()
        if not others:
            pytest.skip("no non-loopback IPv4 address on this machine to probe from")
        for address in others:
            with pytest.raises(OSError):  # refused: nothing listens there
                socket.create_connection((address, server.port), timeout=2).close()


def test_demo_webserver_is_started_on_loopback(tmp_path: Path) -> None:
    from superhero_dagster.stack import Stack

    class Recording(Stack):
        def start(self, name, argv, **_):  # records instead of spawning
            self.argv = list(argv)
            return None  # type: ignore[return-value]

    stack = Recording(Settings(), tmp_path)
    stack.start_dev(3999)
    assert stack.argv[stack.argv.index("-h") + 1] == "127.0.0.1"


def test_compose_publishes_ports_on_loopback_by_default() -> None:
    import yaml

    compose = PACKAGE.parent / "compose" / "docker-compose.yml"
    require(compose.is_file(), "compose/docker-compose.yml")
    services = yaml.safe_load(compose.read_text())["services"]
    published = [(name, p) for name, svc in services.items() for p in svc.get("ports", [])]
    assert published
    for name, mapping in published:
        resolved = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(mapping))  # compose defaults
        parts = resolved.split(":")
        host = parts[0] if len(parts) == 3 else "0.0.0.0"  # "3000:3000" = every interface
        assert host == "127.0.0.1", (name, mapping)
