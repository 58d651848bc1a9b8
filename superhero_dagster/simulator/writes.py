"""A decided game (``combat.GamePlan``) turned into the Redis commands of SYSTEM.md, in batches.

Why batches: the game is computed first, so everything between two waits can travel in one
pipelined round trip. Batches are separated only by the waits that matter to a consumer: the
cleaning delay (messages after the end, like the original clean-up), the short wait before late
entries, and, when ``turn_delay`` > 0, one batch per turn so a watcher sees statuses move
(``In-Progress`` / ``Waiting Player``). With no delay, the whole game is a single batch.

Order inside a batch is the original server's: each attack is published as 'Attack Completed'
*before* its entry is appended to ``games:<t>:logs``, so pub/sub carries every entry the list
will ever hold, in order (a game written at once publishes all its records, then appends the
entries in one RPUSH; with the default script executor the batch runs atomically, so no client
can tell the difference, and it saves a command per attack). Entries logged after the Cleaning (``Attack.late``) come last: with the
original worker the host's Cleaning has deleted the list, so their RPUSH re-creates
``games:<t>:logs`` holding only the late entries, with no expiry. That is what the original does,
and it is kept on purpose: it is the race the pipeline must survive.

Every PUBLISH goes through :class:`~superhero_dagster.simulator.publish.RedisPublishHandler`: the
writer logs records on private loggers, and the handler appends the PUBLISH to the current batch.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from json.encoder import encode_basestring_ascii as _q  # what json.dumps uses for a str

from superhero_dagster import keys
from superhero_dagster.simulator.cleanup import ORIGINAL, after_all_cleaning, on_host_cleaning
from superhero_dagster.simulator.combat import Attack, GamePlan
from superhero_dagster.simulator.publish import (
    RedisPublishHandler,
    TaskRecord,
    payload_timestamp,
    publishing_logger,
)

#: A Redis command; every argument is a str (the batch script joins them as text).
Command = tuple[str, ...]

STARTING_MESSAGE = "Starting Match"
ATTACK_MESSAGE = "Attack Completed"
DEAD_ENEMY_MESSAGE = "Attacked Dead Enemy"
LOG_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
#: Seconds between a game's Cleaning messages and its late entries (when the cleaning delay is not
#: 0). Short, as in the original: one capture 24 ms after a Cleaning already saw a late entry.
LATE_DELAY = 0.02
#: Largest number of values in one variadic command (keeps every command small for the server).
MAX_ARGS = 1000


@dataclass
class Batch:
    """Commands sent in one round trip, ``delay`` seconds after the previous batch.

    ``after_game``: the game is over by then (its Cleaning or later), so the driver may start the
    next game while this one waits.
    """

    delay: float
    commands: list[Command] = field(default_factory=list)
    after_game: bool = False


def attack_log(token: str, attack: Attack, timestamp: str) -> str:
    """One ``games:<t>:logs`` entry, byte-identical to ``json.dumps`` of SYSTEM.md's object."""
    d = attack
    return (
        f'{{"TIMESTAMP": {_q(timestamp)}, "PAYLOAD": {{"GAME_TOKEN": {_q(token)}, '
        f'"USER_TOKEN": {_q(d.attacker)}}}, "STATUS": {{"ACTION": "ATTACK", "DETAILS": '
        f'{{"ENEMY_TOKEN": {_q(d.enemy)}, "ENEMY_DAMAGE": {int(d.damage)}, '
        f'"ENEMY_HEALTH_PRIOR": {int(d.prior)}, "ENEMY_HEALTH_POST": {int(d.post)}}}}}}}'
    )


def dead_enemy_task(token: str, attack: Attack, timestamp: str) -> str:
    """The task (a JSON string) of 'Attacked Dead Enemy': a turn aimed at an eliminated enemy."""
    return json.dumps(
        {
            "TIMESTAMP": timestamp,
            "PAYLOAD": {"GAME_TOKEN": token, "USER_TOKEN": attack.attacker},
            "STATUS": {
                "ACTION": "NA",
                "DETAILS": {"ENEMY_TOKEN": attack.enemy, "ENEMY_STATUS": "DEAD"},
            },
        }
    )


def start_task(token: str, host: str, order: list[str], timestamp: str) -> str:
    """The task (a JSON string) of 'Starting Match': same envelope as an attack log."""
    return json.dumps(
        {
            "TIMESTAMP": timestamp,
            "PAYLOAD": {"GAME_TOKEN": token, "USER_TOKEN": host},
            "STATUS": {"ACTION": "START", "DETAILS": {"ORDER": order}},
        }
    )


class GameWriter:
    """Builds the batches of a game; one instance per run (it owns the publishing loggers)."""

    def __init__(
        self,
        wire_format: str = "original",
        channel_prefix: str = "lib.server",
        expire_after: float = 30.0,
        cleaning_delay: float = 0.5,
        turn_delay: float = 0.0,
        cleanup: str = ORIGINAL,
    ) -> None:
        self.lobby = f"{channel_prefix}.lobby"
        self.game = f"{channel_prefix}.game"
        self.expire_ms = int(expire_after * 1000)
        self.cleaning_delay = cleaning_delay
        self.turn_delay = turn_delay
        self.cleanup = cleanup
        self._batch: list[Command] = []
        self.handler = RedisPublishHandler(self._collect, wire_format)
        self._lobby_log = publishing_logger(self.lobby, self.handler)
        self._game_log = publishing_logger(self.game, self.handler)

    def _collect(self, channel: str, payload: str) -> None:
        self._batch.append(("PUBLISH", channel, payload))

    def _lobby(self, message: str, task: object, timestamp: str) -> None:
        self._lobby_log.handle(TaskRecord(self.lobby, message, self.lobby, task, timestamp))

    def _game(self, message: str, task: object, timestamp: str, level: int = logging.INFO) -> None:
        self._game_log.handle(TaskRecord(self.game, message, self.game, task, timestamp, level))

    def _next(self, batches: list[Batch], delay: float, after_game: bool = False) -> None:
        self._batch = []
        batches.append(Batch(delay, self._batch, after_game))

    def batches(self, plan: GamePlan, now: datetime) -> list[Batch]:
        """All batches of ``plan``; timestamps from ``now`` (cleaning at now + cleaning_delay)."""
        t = plan.token
        stamp = payload_timestamp(now)
        log_stamp = now.strftime(LOG_TIME_FORMAT)
        fighters = plan.fighters
        users = list(fighters)
        out: list[Batch] = []
        self._next(out, 0.0)
        b = self._batch
        b.append(("RPUSH", keys.games_players(plan.participants), t))
        b.append(("SET", keys.game_participants(t), str(plan.participants)))
        b.append(("SET", keys.game_host(t), plan.host))
        b.append(("SET", keys.game_status(t), keys.STATUS_WAITING_LOBBY))
        b.append(("SADD", keys.game_players(t), *users))
        b.append(("ZADD", keys.GAMES_PARTICIPANTS, str(len(plan.joins)), t))
        b.append(("SADD", keys.game_superheros(t), *(str(f.hero.id) for f in fighters.values())))
        for u, f in fighters.items():
            h = f.hero
            b.append(("HSET", keys.game_player_hero(t, u), "id", str(h.id), "attack", str(h.attack), "health", str(h.health)))  # fmt: skip
        if plan.timed_out:
            b.append(("SET", keys.game_status(t), keys.STATUS_TIMED_OUT))
        else:
            self._play(plan, out, stamp, log_stamp)
        if not plan.cleaning:  # the server died after the last attack: no message, no worker
            return merge(out)
        cleaned_at = now + timedelta(seconds=self.cleaning_delay)
        self._next(out, self.cleaning_delay, after_game=True)
        for k, f in enumerate(plan.joins):
            self._lobby(keys.CLEANING_MESSAGE, {"game_token": t, "user_token": f.user},
                        payload_timestamp(cleaned_at))  # fmt: skip
            if k == 0:  # the host's message: the original worker runs at once
                self._batch.extend(on_host_cleaning(self.cleanup, t, plan.participants, users, self.expire_ms))  # fmt: skip
        self._batch.extend(after_all_cleaning(self.cleanup, t, users, self.expire_ms))
        late = [a for a in plan.attacks if a.late]
        if late:
            wait = LATE_DELAY if self.cleaning_delay > 0 else 0.0
            self._next(out, wait, after_game=True)
            late_at = cleaned_at + timedelta(seconds=wait)
            late_stamp, late_log = payload_timestamp(late_at), late_at.strftime(LOG_TIME_FORMAT)
            for attack in late:
                self._turn(t, attack, late_stamp, late_log)
        return merge(out)

    def _turn(self, t: str, attack: Attack, stamp: str, log_stamp: str) -> None:
        """One turn's record and effects: publish first, then the list append (the original's)."""
        b = self._batch
        if attack.dead_enemy:  # aimed at an eliminated enemy: an ERROR record, no log entry
            self._game(DEAD_ENEMY_MESSAGE, dead_enemy_task(t, attack, log_stamp), stamp, logging.ERROR)  # fmt: skip
            b.append(("SET", keys.game_status(t), keys.STATUS_COMPLETED))
            return
        entry = attack_log(t, attack, log_stamp)
        self._game(ATTACK_MESSAGE, entry, stamp)
        b.append(("RPUSH", keys.game_logs(t), entry))
        b.append(("HSET", keys.game_player_hero(t, attack.enemy), "health", str(attack.post)))
        if attack.post == 0:
            b.append(("LREM", keys.game_order(t), "0", attack.enemy))

    def _play(self, plan: GamePlan, out: list[Batch], stamp: str, log_stamp: str) -> None:
        t = plan.token
        order = [f.user for f in plan.joins]
        status = keys.game_status(t)
        b = self._batch
        b.append(("SET", status, keys.STATUS_STARTING))
        b.append(("RPUSH", keys.game_order(t), *order))
        self._lobby(STARTING_MESSAGE, start_task(t, plan.host, order, log_stamp), stamp)
        b.append(("SET", status, keys.STATUS_IN_PROGRESS))
        played = [a for a in plan.attacks if not a.late]
        if self.turn_delay > 0:
            self._turns(t, played, out, stamp, log_stamp)
            return
        # One atomic batch: intermediate states are invisible, so every record is published, then
        # the entries appended in one RPUSH (each still after its own PUBLISH), and the hero hashes
        # and the turn order written once, with their final values.
        final: dict[str, int] = {}
        entries: list[str] = []
        for attack in played:
            if attack.dead_enemy:
                self._turn(t, attack, stamp, log_stamp)
                continue
            entries.append(attack_log(t, attack, log_stamp))
            self._game(ATTACK_MESSAGE, entries[-1], stamp)
            final[attack.enemy] = attack.post
        for at in range(0, len(entries), MAX_ARGS):  # bounded: Lua's unpack has a limit
            b.append(("RPUSH", keys.game_logs(t), *entries[at : at + MAX_ARGS]))
        for user, health in final.items():
            b.append(("HSET", keys.game_player_hero(t, user), "health", str(health)))
            if health == 0:
                b.append(("LREM", keys.game_order(t), "0", user))
        b.append(("SET", status, keys.STATUS_COMPLETED))

    def _turns(
        self, t: str, played: list[Attack], out: list[Batch], stamp: str, log_stamp: str
    ) -> None:
        """One batch per turn, ``turn_delay`` apart, with the statuses a watcher would see."""
        status = keys.game_status(t)
        decider = max((i for i, a in enumerate(played) if not a.post_game), default=-1)
        for i, attack in enumerate(played):
            self._next(out, self.turn_delay)
            if 0 < i <= decider:
                self._batch.append(("SET", status, keys.STATUS_IN_PROGRESS))
            self._turn(t, attack, stamp, log_stamp)
            if i < decider:
                self._batch.append(("SET", status, keys.STATUS_WAITING_PLAYER))
            elif i == decider:  # post-game turns follow with the game already Completed
                self._batch.append(("SET", status, keys.STATUS_COMPLETED))
        if decider < 0:
            self._batch.append(("SET", status, keys.STATUS_COMPLETED))


def merge(batches: list[Batch]) -> list[Batch]:
    """Join batches not separated by a wait, so each wait costs one round trip at most."""
    merged: list[Batch] = []
    for batch in batches:
        if merged and batch.delay <= 0:
            merged[-1].commands.extend(batch.commands)
        else:
            merged.append(batch)
    return merged
