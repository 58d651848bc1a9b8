"""Listener figures: capture throughput (attack stream off and on), capture latency, Redis memory
per in-flight game, and a 100k-message burst, against the raw redis-py pub/sub receive rate
measured in the same run (so the ratio, not the absolute number, is what carries over to another
machine).

Game state is written directly (4-player games, SYSTEM.md layout, realistic sizes: 10 chained
attack log entries that decide the game, ~600-byte hero JSON) because the simulator plays far
fewer games per second than the listener can capture; the publisher then sends each game's 10
'Attack Completed' records on lib.server.game and one 'Cleaning Game Records' per player, in the
original double-encoded wire format. One `superhero-dagster listen` process, started before the
games exist (so its start-up reconcile finds nothing and every capture is message-driven). With
the stream off the same messages are published; the listener just does not subscribe to them.

Run: ``.venv/bin/python -m benchmarks.bench_listener [--games 20000 --burst 100000]``
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import redis

from superhero_dagster import keys as k
from superhero_dagster.assets.games import _release
from superhero_dagster.keys import ProjectKeys
from superhero_dagster.listener.capture import Overlapped, load_script
from superhero_dagster.listener.service import MAX_BATCH, Listener
from superhero_dagster.redis_server import RedisServer
from superhero_dagster.resources import RedisResource
from superhero_dagster.settings import Settings
from superhero_dagster.snapshot import parse_snapshot

CHANNEL = "lib.server.lobby"
GAME_CHANNEL = "lib.server.game"
KEYS = ProjectKeys()
HEALTH, DAMAGE = 1000, 350  # three hits eliminate a hero
HERO = json.dumps({"name": "Hero", "biography": {"full-name": "x" * 200}, "powerstats": {
    "intelligence": "88", "strength": "70", "speed": "60", "durability": "80", "power": "90",
    "combat": "85", "health": HEALTH, "attack": DAMAGE}, "appearance": {"race": "y" * 200}})  # fmt: skip


def cleaning(token: str, user: str, ts: str) -> str:
    record = {"level": "INFO", "timestamp": ts, "name": "redis.lib.server.lobby",
              "log_message": k.CLEANING_MESSAGE, "task": {"game_token": token, "user_token": user}}  # fmt: skip
    return json.dumps(json.dumps(record))


def entries(t: str, users: list[str]) -> list[str]:
    """10 log entries that chain from the heroes' health and decide the game (users[0] wins)."""
    health = dict.fromkeys(users, HEALTH)
    hits = [(users[1], users[0])] + [(users[0], v) for v in users[1:] for _ in range(3)]
    out = []
    for attacker, victim in hits:
        prior = health[victim]
        health[victim] = post = max(prior - DAMAGE, 0)
        out.append(json.dumps({"TIMESTAMP": "2023-07-25T10:00:00Z",
                               "PAYLOAD": {"GAME_TOKEN": t, "USER_TOKEN": attacker},
                               "STATUS": {"ACTION": "ATTACK", "DETAILS": {
                                   "ENEMY_TOKEN": victim, "ENEMY_DAMAGE": DAMAGE,
                                   "ENEMY_HEALTH_PRIOR": prior, "ENEMY_HEALTH_POST": post}}}))  # fmt: skip
    return out


def attack_completed(entry: str, ts: str) -> str:
    record = {"level": "INFO", "timestamp": ts, "name": "redis.lib.server.game",
              "log_message": k.ATTACK_MESSAGE, "task": entry}  # fmt: skip
    return json.dumps(json.dumps(record))


def write_games(
    client: redis.Redis, n: int, status: str = k.STATUS_COMPLETED
) -> list[tuple[str, list[str]]]:
    """n finished 4-player games (status Completed), in pipelines of 500 games."""
    client.hset(k.SUPERHEROS, mapping={str(i): HERO for i in range(1, 5)})
    games = []
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        t = str(uuid.uuid4())
        users = [str(uuid.uuid4()) for _ in range(4)]
        games.append((t, users))
        pipe.sadd(k.game_players(t), *users)
        pipe.set(k.game_participants(t), 4)
        pipe.set(k.game_host(t), users[0])
        pipe.rpush(k.game_order(t), users[0])
        pipe.sadd(k.game_superheros(t), "1", "2", "3", "4")
        for j, u in enumerate(users):
            left = HEALTH - DAMAGE if j == 0 else 0
            pipe.hset(
                k.game_player_hero(t, u), mapping={"id": j + 1, "attack": DAMAGE, "health": left}
            )
        pipe.rpush(k.game_logs(t), *entries(t, users))
        pipe.set(k.game_status(t), status)
        if i % 500 == 499:
            pipe.execute()
    pipe.execute()
    return games


def publish_all(
    client: redis.Redis,
    games: list[tuple[str, list[str]]],
    chunk: int = 2000,
    attacks: bool = False,
    cleanings: bool = True,
) -> float:
    """Per game its 'Attack Completed' records (``attacks``), then every player's 'Cleaning'
    message, as fast as possible; returns the publish duration."""
    ts = datetime.now(UTC).isoformat()
    msgs = []
    for t, users in games:
        if attacks:
            msgs += [(GAME_CHANNEL, attack_completed(e, ts)) for e in entries(t, users)]
        if cleanings:
            msgs += [(CHANNEL, cleaning(t, u, ts)) for u in users]
    start = time.perf_counter()
    for i in range(0, len(msgs), chunk):
        pipe = client.pipeline(transaction=False)
        for channel, m in msgs[i : i + chunk]:
            pipe.publish(channel, m)
        pipe.execute()
    return time.perf_counter() - start


def start_listener(
    url: str, reconcile_seconds: int = 3600, stream: bool = False
) -> subprocess.Popen[bytes]:
    env = {name: v for name, v in os.environ.items() if not name.startswith("SUPERHERO_")}
    env.update(REDIS_URL=url, SUPERHERO_RECONCILE_SECONDS=str(reconcile_seconds),
               SUPERHERO_ATTACK_STREAM="true" if stream else "false")  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-c", "from superhero_dagster.cli import main; main()", "listen",
         "--id", "bench"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def wait_for(fn, timeout: float = 300.0, interval: float = 0.002) -> float:
    """Poll until fn() is true; returns perf_counter() at that moment."""
    deadline = time.perf_counter() + timeout
    while not fn():
        if time.perf_counter() > deadline:
            raise TimeoutError("benchmark condition not reached")
        time.sleep(interval)
    return time.perf_counter()


class Phase:
    """A fresh database and a fresh listener process for one measurement."""

    def __init__(self, server: RedisServer, client: redis.Redis, stream: bool = False) -> None:
        self.server, self.client, self.stream = server, client, stream

    def __enter__(self) -> Phase:
        self.client.flushall()
        self.proc = start_listener(self.server.url, stream=self.stream)
        wait_for(lambda: self.client.hexists(KEYS.listeners, "bench"), timeout=60)
        return self

    def stats(self) -> dict[str, int]:
        return {key.decode(): int(v) for key, v in self.client.hgetall(KEYS.stats).items()}

    def __exit__(self, *exc: object) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)


RAW_SUBSCRIBER = """
import sys, time, redis
r = redis.Redis.from_url(sys.argv[1]); n = int(sys.argv[2])
p = r.pubsub(ignore_subscribe_messages=True); p.subscribe(sys.argv[3])
got = 0; first = None
while got < n:
    m = p.get_message(timeout=1.0)
    if m is None: continue
    if first is None: first = time.perf_counter()
    got += 1
print(got / (time.perf_counter() - first))
"""


def raw_receive_rate(server: RedisServer, client: redis.Redis, n_games: int) -> float:
    """Messages/s a bare redis-py subscriber (get_message loop, nothing else) receives."""
    client.flushall()
    games = [(str(uuid.uuid4()), [str(uuid.uuid4()) for _ in range(4)]) for _ in range(n_games)]
    proc = subprocess.Popen([sys.executable, "-c", RAW_SUBSCRIBER, server.url, str(4 * n_games), CHANNEL],
                            stdout=subprocess.PIPE)  # fmt: skip
    wait_for(lambda: client.pubsub_numsub(CHANNEL)[0][1] == 1, timeout=30)
    publish_all(client, games)
    out, _ = proc.communicate(timeout=300)
    return float(out.decode().strip())


def throughput(
    server: RedisServer, client: redis.Redis, n_games: int, stream: bool = False
) -> dict[str, float]:
    with Phase(server, client, stream) as phase:
        games = write_games(client, n_games)
        client.config_resetstat()
        start = time.perf_counter()
        publish = publish_all(client, games, attacks=True)
        done = wait_for(lambda: client.llen(KEYS.buffer) >= n_games)
        stats = phase.stats()
        cmd = client.info("commandstats")
        sample = client.get(KEYS.snapshot(games[0][0]))
    snap = parse_snapshot(sample)
    evalsha = cmd["cmdstat_evalsha"]["usec"] / n_games
    return {"games": n_games, "seconds": done - start, "publish_seconds": publish,
            "games_per_s": n_games / (done - start), "captured": stats.get("captured", 0),
            "streamed": stats.get("streamed", 0), "server_us_per_game": evalsha,
            "publish_us_per_game": cmd["cmdstat_publish"]["usec"] / n_games,
            "log_source": snap.log_source}  # fmt: skip


def capacity(
    server: RedisServer, client: redis.Redis, n_games: int, stream: bool
) -> dict[str, float]:
    """The listener's own work per game (decode, stream appends, capture round trips, on the
    listener's Overlapped worker), fed in-process from pre-encoded payloads: pub/sub receive is
    left out (it is the raw receive rate above), and so is the publisher, which on a loaded
    machine is slower than the listener and would cap the end-to-end figure."""
    client.flushall()
    load_script(client)
    games = write_games(client, n_games)
    ts = datetime.now(UTC).isoformat()
    payloads: list[tuple[bool, bytes]] = []
    for t, users in games:
        if stream:
            payloads += [(True, attack_completed(e, ts).encode()) for e in entries(t, users)]
        payloads += [(False, cleaning(t, u, ts).encode()) for u in users]
    state = Listener(Settings(redis_url=server.url, attack_stream=stream), "bench-inproc")
    conn = redis.Redis.from_url(server.url)
    start = time.perf_counter()
    worker = Overlapped(functools.partial(state.execute, conn))
    for i in range(0, len(payloads), MAX_BATCH):
        worker.submit(state.prepare(payloads[i : i + MAX_BATCH]))
    worker.close()
    worker.check()
    seconds = time.perf_counter() - start
    conn.close()
    assert client.llen(KEYS.buffer) == n_games
    return {"games": n_games, "games_per_s": n_games / seconds, "messages": len(payloads)}


def memory(server: RedisServer, client: redis.Redis, n_games: int) -> dict[str, float]:
    """INFO used_memory: empty, with the games' keys, with their attack streams (in flight), once
    captured, and after the materialization's release step (assets/games.py ``_release``) and the
    clean-up worker's deletion of the simulator's keys."""

    def used() -> int:
        return int(client.info("memory")["used_memory"])

    with Phase(server, client, stream=True) as phase:
        base = used()
        games = write_games(client, n_games, status=k.STATUS_IN_PROGRESS)
        with_keys = used()
        publish_all(client, games, attacks=True, cleanings=False)
        wait_for(lambda: phase.stats().get("streamed", 0) >= 10 * n_games)
        in_flight = used()
        pipe = client.pipeline(transaction=False)
        for t, _ in games:
            pipe.set(k.game_status(t), k.STATUS_COMPLETED)
            pipe.delete(k.game_logs(t))  # the original worker, on the host's 'Cleaning'
        pipe.execute()
        after_worker = used()
        publish_all(client, games)
        wait_for(lambda: client.llen(KEYS.buffer) >= n_games)
        captured = used()
        snaps = [parse_snapshot(raw) for raw in client.mget([KEYS.snapshot(t) for t, _ in games])]
        assert {s.log_source for s in snaps} == {"stream"}, "the stream must hold every game"
        resource = RedisResource(
            url=server.url, expire_after_seconds=0, snapshot_retention_seconds=0
        )
        _release(client, resource, snaps, {t for t, _ in games})
        client.delete(KEYS.buffer)  # drained by the sensor
        pipe = client.pipeline(transaction=False)
        for t, users in games:  # the simulator's keys expire 30 s after the worker ran
            pipe.delete(*k.game_keys(t, users))
        pipe.execute()
        released = used()
        kept = sum(client.memory_usage(KEYS.seen(t)) or 0 for t, _ in games[:200]) / min(
            200, n_games
        )
        remaining = client.dbsize()
    return {"games": n_games, "base": base, "keys_per_game": (with_keys - base) / n_games,
            "stream_per_game": (in_flight - with_keys) / n_games,
            "captured_per_game": (captured - after_worker) / n_games,
            "after_release_per_game": (released - base) / n_games, "seen_marker": kept,
            "keys_left": remaining}  # fmt: skip


def latency(
    server: RedisServer, client: redis.Redis, rate: float, seconds: float
) -> dict[str, float]:
    """Games published at a steady ``rate``; latency = snapshot captured_at - publish time."""
    n = int(rate * seconds)
    with Phase(server, client):
        games = write_games(client, n)
        # Steady rate: publish the games due so far, sleep until the next one is due.
        start = time.perf_counter()
        sent = 0
        while sent < n:
            due = min(n, int((time.perf_counter() - start) * rate) + 1)
            if due > sent:
                ts = datetime.now(UTC).isoformat()
                pipe = client.pipeline(transaction=False)
                for t, users in games[sent:due]:
                    for u in users:
                        pipe.publish(CHANNEL, cleaning(t, u, ts))
                pipe.execute()
                sent = due
            time.sleep(max(start + sent / rate - time.perf_counter(), 0.0002))
        achieved = n / (time.perf_counter() - start)
        wait_for(lambda: client.llen(KEYS.buffer) >= n)
        lat = []
        for i in range(0, n, 1000):
            snaps = client.mget([KEYS.snapshot(t) for t, _ in games[i : i + 1000]])
            for raw in snaps:
                s = json.loads(raw)
                sent = datetime.fromisoformat(s["message_timestamp"])
                lat.append((datetime.fromisoformat(s["captured_at"]) - sent).total_seconds() * 1000)
    q = statistics.quantiles(lat, n=100)
    return {"games": n, "rate": achieved, "p50_ms": q[49], "p99_ms": q[98], "max_ms": max(lat)}


def burst(
    server: RedisServer, client: redis.Redis, messages: int, limit: str | None
) -> dict[str, object]:
    """``messages`` published back to back; optionally a tight pub/sub output-buffer limit."""
    n_games = messages // 4
    default = client.config_get("client-output-buffer-limit")["client-output-buffer-limit"]
    try:
        with Phase(server, client) as phase:
            if limit:
                client.config_set("client-output-buffer-limit", limit)
            games = write_games(client, n_games)
            peak = [0]
            stop = threading.Event()

            def sample() -> None:  # the subscriber's output buffer on the server, peak
                probe = redis.Redis.from_url(server.url)
                while not stop.is_set():
                    for c in probe.client_list(_type="pubsub"):
                        peak[0] = max(peak[0], int(c.get("omem", 0)))
                    time.sleep(0.02)
                probe.close()

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            start = time.perf_counter()
            publish = publish_all(client, games, chunk=10000)
            done = wait_for(lambda: client.llen(KEYS.buffer) >= n_games, timeout=600)
            stop.set()
            sampler.join()
            stats = phase.stats()
            buffered = client.lrange(KEYS.buffer, 0, -1)
    finally:
        client.config_set("client-output-buffer-limit", default)
    return {"limit": limit or "default (" + default.split(" pubsub ")[-1] + ")",
            "messages": messages, "games": n_games, "buffered": len(buffered),
            "unique": len(set(buffered)), "seconds": done - start, "publish_seconds": publish,
            "by_message": stats.get("captured", 0) - stats.get("reconciled", 0),
            "by_reconcile": stats.get("reconciled", 0), "reconnects": stats.get("reconnects", 0),
            "peak_omem_mb": peak[0] / 1e6}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", type=int, default=20000, help="throughput phase")
    parser.add_argument("--rate", type=float, default=1000.0, help="latency phase, games/s")
    parser.add_argument("--seconds", type=float, default=5.0, help="latency phase duration")
    parser.add_argument("--burst", type=int, default=100000, help="messages in the burst")
    parser.add_argument("--memory-games", type=int, default=10000, help="memory phase")
    parser.add_argument("--only-stream", action="store_true", help="throughput and memory only")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp) / "redis") as server:
        client = redis.Redis.from_url(server.url)
        raw = raw_receive_rate(server, client, args.games)
        tput = throughput(server, client, args.games)
        tput_on = throughput(server, client, args.games, stream=True)
        cap_off = capacity(server, client, args.games, stream=False)
        cap_on = capacity(server, client, args.games, stream=True)
        mem = memory(server, client, args.memory_games)
        if args.only_stream:
            lat, bursts = None, []
        else:
            lat = latency(server, client, args.rate, args.seconds)
            bursts = [burst(server, client, args.burst, None),
                      burst(server, client, args.burst, "pubsub 2mb 1mb 1")]  # fmt: skip
        client.close()
    capture_msgs = tput["games_per_s"] * 4  # the 4 'Cleaning' messages; attacks not subscribed
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print("\nListener benchmark (one listener process, 4-player games, original wire format)")
    print(f"machine: {os.cpu_count()} CPUs, load average {load} (other work shares the CPUs)")
    print(f"{'figure':<52} {'value':>14}")
    print("-" * 67)
    rows = [
        ("raw redis-py pub/sub receive rate (msg/s)", f"{raw:,.0f}"),
        (f"capture throughput, {tput['games']:,} games (games/s)", f"{tput['games_per_s']:,.0f}"),
        ("  = messages handled/s", f"{capture_msgs:,.0f}"),
        ("  ratio to the raw receive rate", f"{capture_msgs / raw:.2f}"),
        ("  Redis time in the capture script per game (us)", f"{tput['server_us_per_game']:.0f}"),
        ("  Redis time in the 4 PUBLISHes per game (us)", f"{tput['publish_us_per_game']:.0f}"),
        ("  publisher alone (s) / until all buffered (s)", f"{tput['publish_seconds']:.2f} / {tput['seconds']:.2f}"),
        ("capture with the attack stream on (games/s)", f"{tput_on['games_per_s']:,.0f}"),
        ("  = messages handled/s (14 per game)", f"{tput_on['games_per_s'] * 14:,.0f}"),
        ("  ratio to the stream off", f"{tput_on['games_per_s'] / tput['games_per_s']:.2f}"),
        ("  entries streamed / expected", f"{tput_on['streamed']:,}/{10 * tput_on['games']:,}"),
        ("  Redis time in the scripts per game (us)", f"{tput_on['server_us_per_game']:.0f}"),
        ("  log source of the snapshots (list intact)", tput_on["log_source"]),
        ("  publisher alone (s) / until all buffered (s)", f"{tput_on['publish_seconds']:.2f} / {tput_on['seconds']:.2f}"),
        (f"listener work alone, in-process, {cap_on['games']:,} games:", ""),
        ("  stream off (games/s)", f"{cap_off['games_per_s']:,.0f}"),
        ("  stream on, 14 messages per game (games/s)", f"{cap_on['games_per_s']:,.0f}"),
        ("  ratio on / off", f"{cap_on['games_per_s'] / cap_off['games_per_s']:.2f}"),
        (f"Redis memory, {mem['games']:,} games in flight: baseline (MB)", f"{mem['base'] / 1e6:.2f}"),
        ("  simulator keys per game (bytes)", f"{mem['keys_per_game']:,.0f}"),
        ("  attack stream per game, in flight (bytes)", f"{mem['stream_per_game']:,.0f}"),
        ("  snapshot + gate + buffer per captured game (bytes)", f"{mem['captured_per_game']:,.0f}"),
        ("  after release + worker, per game (bytes)", f"{mem['after_release_per_game']:,.0f}"),
        ("  of which the 7-day gate marker (bytes)", f"{mem['seen_marker']:,.0f}"),
        ("  keys left (gate markers + materialized hash)", f"{mem['keys_left']:,}"),
    ]  # fmt: skip
    if lat is not None:
        rows += [
            (f"latency at {lat['rate']:,.0f} games/s, {lat['games']:,} games: p50 (ms)", f"{lat['p50_ms']:.2f}"),
            ("  p99 (ms)", f"{lat['p99_ms']:.2f}"),
            ("  max (ms)", f"{lat['max_ms']:.2f}"),
        ]  # fmt: skip
    for b in bursts:
        rows += [
            (f"burst {b['messages']:,} msgs, limit {b['limit']}", ""),
            ("  games buffered / unique / expected", f"{b['buffered']:,}/{b['unique']:,}/{b['games']:,}"),
            ("  captured by message / by reconcile", f"{b['by_message']:,} / {b['by_reconcile']:,}"),
            ("  listener reconnects", f"{b['reconnects']}"),
            ("  peak subscriber output buffer (MB)", f"{b['peak_omem_mb']:.1f}"),
            ("  publish (s) / until all buffered (s)", f"{b['publish_seconds']:.2f} / {b['seconds']:.2f}"),
        ]  # fmt: skip
    for name, value in rows:
        print(f"{name:<52} {value:>14}")


if __name__ == "__main__":
    main()
