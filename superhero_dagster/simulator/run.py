"""The simulator's driver: plan games in pure Python, write each in as few round trips as it can.

Why this shape: the throughput target (>= 1,000 four-player games/s on two cores, one of which is
Redis) leaves no room for a round trip per command. Each game is decided up front
(``combat.plan_game``), turned into batches (``writes.GameWriter``), and each batch travels as a
single EVALSHA of a tiny Lua loop that runs the batch's commands (``executor="script"``), or as a
redis-py pipeline (``executor="pipeline"``, for servers where scripts are not allowed); batches
ready at the same moment share one call (``sender.py``).

Determinism: one master ``random.Random(seed)`` draws the user pool, then one 64-bit seed per game
in game order, so concurrency and timing never change which games are played.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from superhero_dagster import keys
from superhero_dagster.redis_client import connect
from superhero_dagster.simulator.cleanup import CLEANUP_MODES, ORIGINAL
from superhero_dagster.simulator.combat import ODD_KINDS, GamePlan, new_token, plan_game
from superhero_dagster.simulator.publish import WIRE_FORMATS
from superhero_dagster.simulator.roster import Roster, builtin_roster
from superhero_dagster.simulator.sender import EXECUTORS, BatchSender
from superhero_dagster.simulator.summary import SimSummary, account_quirks
from superhero_dagster.simulator.writes import Batch, GameWriter

#: Writer connections; more do not help on a 2-core machine (Redis is single-threaded).
WRITERS = 4
#: Default share of eliminations whose hero's queued turn still fires (combat.py). Calibrated on
#: 2-3 player games against one run of the original: about half the games with attacks by
#: eliminated heroes and with attacks after the first Cleaning (``tests/test_simulator_quirks``).
DEAD_TURN_RATE = 0.45
#: Default share of completed games that never get a 'Cleaning Game Records' (the original server
#: crashing after the last attack). Small, as in the original, yet a 1,000-game run has about 10.
NO_CLEANING_RATE = 0.01


@dataclass(frozen=True)
class SimConfig:
    """What to simulate. Defaults mirror the original (2-3 players, its clean-up worker with a
    30 s expiry, dead heroes attacking, a rare game without Cleaning)."""

    games: int | None = 10  # None: until ``stop`` is set or Ctrl-C
    players: tuple[int, int] = (2, 3)  # inclusive range, 2..10
    concurrency: int = 16
    rate: float | None = None  # games/s cap
    seed: int | None = None
    timeout_rate: float = 0.0
    wire_format: str = "original"
    expire_after: float = 30.0  # seconds after 'Cleaning Game Records'; 0 = never
    cleaning_delay: float = 0.5
    channel_prefix: str = "lib.server"
    roster: Roster | None = None
    odd_rate: float = 0.0  # share of games that are one of ``odd_kinds`` (see combat.py)
    odd_kinds: tuple[str, ...] = ODD_KINDS
    turn_delay: float = 0.0  # > 0: one round trip per turn, statuses observable
    user_pool: int = 200  # registered users the players are drawn from
    fixed_time: datetime | None = None  # every timestamp from this instant (byte-identical runs)
    executor: str = "script"
    cleanup: str = ORIGINAL  # see cleanup.py: "original" (delete the log at once) or "expire"
    dead_turn_rate: float = DEAD_TURN_RATE  # 0 = dead heroes never attack
    no_cleaning_rate: float = NO_CLEANING_RATE

    def validate(self) -> None:
        """Raise ValueError naming the first unusable option."""
        lo, hi = self.players
        checks = [
            (self.games is None or self.games >= 0, f"games must be >= 0, got {self.games}"),
            (2 <= lo <= hi <= 10, f"players must be a range within 2..10, got {lo}-{hi}"),
            (self.concurrency >= 1, f"concurrency must be >= 1, got {self.concurrency}"),
            (self.rate is None or self.rate > 0, f"rate must be > 0, got {self.rate}"),
            (0 <= self.timeout_rate <= 1, f"timeout_rate must be in 0..1, got {self.timeout_rate}"),
            (0 <= self.odd_rate <= 1, f"odd_rate must be in 0..1, got {self.odd_rate}"),
            (not set(self.odd_kinds) - set(ODD_KINDS), f"odd_kinds must be among {ODD_KINDS}"),
            (self.wire_format in WIRE_FORMATS, f"wire_format must be one of {WIRE_FORMATS}"),
            (self.expire_after >= 0, f"expire_after must be >= 0, got {self.expire_after}"),
            (self.cleaning_delay >= 0, f"cleaning_delay must be >= 0, got {self.cleaning_delay}"),
            (self.turn_delay >= 0, f"turn_delay must be >= 0, got {self.turn_delay}"),
            (self.user_pool >= hi + 1, f"user_pool must be >= {hi + 1}, got {self.user_pool}"),
            (self.executor in EXECUTORS, f"executor must be one of {EXECUTORS}"),
            (self.cleanup in CLEANUP_MODES, f"cleanup must be one of {CLEANUP_MODES}"),
            (
                0 <= self.dead_turn_rate <= 1,
                f"dead_turn_rate must be in 0..1, got {self.dead_turn_rate}",
            ),
            (
                0 <= self.no_cleaning_rate <= 1,
                f"no_cleaning_rate must be in 0..1, got {self.no_cleaning_rate}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


def user_pool(rng: random.Random, size: int) -> dict[str, str]:
    """Registered users, name -> token; the name derives from the token so runs never clash."""
    tokens = [new_token(rng) for _ in range(size)]
    return {f"player-{t[:8]}": t for t in tokens}


class Simulation:
    """One run: plans games in order, writes them concurrently, counts what it sent."""

    def __init__(self, config: SimConfig, summary: SimSummary | None = None) -> None:
        config.validate()
        self.config = config
        self.summary = summary if summary is not None else SimSummary()
        self.roster = config.roster or builtin_roster()
        self.rng = random.Random(config.seed)
        self.users = user_pool(self.rng, config.user_pool)
        self._user_tokens = list(self.users.values())
        self.writer = GameWriter(
            config.wire_format,
            config.channel_prefix,
            config.expire_after,
            config.cleaning_delay,
            config.turn_delay,
            config.cleanup,
        )

    def next_game(self, index: int) -> tuple[GamePlan, list[Batch]]:
        """Plan game ``index`` (must be called in index order) and account for it."""
        c = self.config
        rng = random.Random(self.rng.getrandbits(64))
        plan = plan_game(
            rng, index, self.roster, self._user_tokens, c.players, c.timeout_rate, c.odd_rate,
            c.odd_kinds, c.dead_turn_rate, c.no_cleaning_rate,
        )  # fmt: skip
        batches = self.writer.batches(plan, c.fixed_time or datetime.now(UTC))
        s = self.summary
        s.games += 1
        s.players += len(plan.joins)
        s.tokens.append(plan.token)
        (s.timed_out if plan.timed_out else s.completed).append(plan.token)
        if plan.kind not in ("normal", "timed_out"):
            s.kinds[plan.token] = plan.kind
        if not plan.timed_out:
            account_quirks(s, plan)
        for batch in batches:
            s.commands += len(batch.commands)
            s.messages += sum(1 for cmd in batch.commands if cmd[0] == "PUBLISH")
        return plan, batches

    def load_reference_data(self, redis_url: str) -> None:
        """The original's build step: heroes into ``superheros``, users into ``users``."""
        client = connect(redis_url)
        try:
            pipe = client.pipeline(transaction=False)
            pipe.hset(keys.SUPERHEROS, mapping=self.roster.hash_mapping())
            pipe.hset(keys.USERS, mapping=self.users)
            pipe.execute()
        finally:
            client.close()

    async def run(
        self,
        redis_url: str,
        stop: threading.Event | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> SimSummary:
        c = self.config
        sender = BatchSender(redis_url, min(c.concurrency, WRITERS), c.executor)
        send = sender.send

        slots = asyncio.Semaphore(c.concurrency)
        tasks: set[asyncio.Task[None]] = set()
        failures: list[BaseException] = []

        async def play(batches: list[Batch]) -> None:
            held = True
            try:
                for k, batch in enumerate(batches):
                    if k and held and batch.after_game:
                        held = False  # the game is over; its cleaning does not occupy a slot
                        slots.release()
                        if progress:
                            progress(1)
                    if batch.delay > 0:
                        await asyncio.sleep(batch.delay)
                    await send(batch.commands)
            finally:
                if held:
                    slots.release()
                    if progress:
                        progress(1)

        def done(task: asyncio.Task[None]) -> None:
            tasks.discard(task)
            if not task.cancelled() and task.exception() is not None:
                failures.append(task.exception())  # type: ignore[arg-type]

        started = time.perf_counter()
        index = 0
        try:
            while (c.games is None or index < c.games) and not failures:
                if stop is not None and stop.is_set():
                    break
                if c.rate:
                    wait = started + index / c.rate - time.perf_counter()
                    if wait > 0:
                        await asyncio.sleep(min(wait, 0.1))
                        continue
                await slots.acquire()
                _, batches = self.next_game(index)
                index += 1
                task = asyncio.create_task(play(batches))
                tasks.add(task)
                task.add_done_callback(done)
            while tasks:
                await asyncio.gather(*list(tasks), return_exceptions=True)
        finally:
            self.summary.elapsed = time.perf_counter() - started
            await sender.close()
        if failures:
            raise failures[0]
        return self.summary


def run_simulation(
    redis_url: str,
    config: SimConfig,
    stop: threading.Event | None = None,
    progress: Callable[[int], None] | None = None,
    summary: SimSummary | None = None,
) -> SimSummary:
    """Play ``config.games`` games against ``redis_url``; returns what was sent.

    ``summary``: filled as the run goes, so a caller's ``progress`` can read it live.

    Raises ``RedisUnavailable`` (URL redacted) if the server cannot be reached, ``ValueError`` on a
    bad config. Ctrl-C ends the run early and returns the partial summary (``interrupted``).
    """
    summary = summary if summary is not None else SimSummary()
    sim = Simulation(config, summary)
    sim.load_reference_data(redis_url)
    try:
        return asyncio.run(sim.run(redis_url, stop, progress))
    except KeyboardInterrupt:
        summary.interrupted = True
        return summary
