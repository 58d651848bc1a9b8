"""A decided game (``combat.GamePlan``) turned into the Redis commands of SYSTEM.md, in batches.

Why batches: the game is computed first, so everything between two waits can travel in one
pipelined round trip. Batches are separated only by the waits that matter to a consumer: the
cleaning delay (messages after the end, like the original clean-up) and, when ``turn_delay`` > 0,
one batch per turn so a watcher sees statuses move (``In-Progress`` / ``Waiting Player``).
With no delay, the whole game, its publishes included, is a single batch.

Every PUBLISH goes through :class:`~superhero_dagster.simulator.publish.RedisPublishHandler`: the
writer logs records on private loggers, and the handler appends the PUBLISH to the current batch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from json.encoder import encode_basestring_ascii as _q  # what json.dumps uses for a str

from superhero_dagster import keys
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
#: Largest number of values in one variadic command (keeps every command small for the server).
MAX_ARGS = 1000


@dataclass
class Batch:
    """Commands sent in one round trip, ``delay`` seconds after the previous batch."""

    delay: float
    commands: list[Command] = field(default_factory=list)


def attack_log(token: str, attack: Attack, timestamp: str) -> str:
    """One ``games:<t>:logs`` entry, byte-identical to ``json.dumps`` of SYSTEM.md's object."""
    d = attack
    return (
        f'{{"TIMESTAMP": {_q(timestamp)}, "PAYLOAD": {{"GAME_TOKEN": {_q(token)}, '
        f'"USER_TOKEN": {_q(d.attacker)}}}, "STATUS": {{"ACTION": "ATTACK", "DETAILS": '
        f'{{"ENEMY_TOKEN": {_q(d.enemy)}, "ENEMY_DAMAGE": {int(d.damage)}, '
        f'"ENEMY_HEALTH_PRIOR": {int(d.prior)}, "ENEMY_HEALTH_POST": {int(d.post)}}}}}}}'
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
    ) -> None:
        self.lobby = f"{channel_prefix}.lobby"
        self.game = f"{channel_prefix}.game"
        self.expire_ms = int(expire_after * 1000)
        self.cleaning_delay = cleaning_delay
        self.turn_delay = turn_delay
        self._batch: list[Command] = []
        self.handler = RedisPublishHandler(self._collect, wire_format)
        self._lobby_log = publishing_logger(self.lobby, self.handler)
        self._game_log = publishing_logger(self.game, self.handler)

    def _collect(self, channel: str, payload: str) -> None:
        self._batch.append(("PUBLISH", channel, payload))

    def _lobby(self, message: str, task: object, timestamp: str) -> None:
        self._lobby_log.handle(TaskRecord(self.lobby, message, self.lobby, task, timestamp))

    def _game(self, message: str, task: object, timestamp: str) -> None:
        self._game_log.handle(TaskRecord(self.game, message, self.game, task, timestamp))

    def _next(self, batches: list[Batch], delay: float) -> None:
        self._batch = []
        batches.append(Batch(delay, self._batch))

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
        clean_stamp = payload_timestamp(now + timedelta(seconds=self.cleaning_delay))
        self._next(out, self.cleaning_delay)
        for f in plan.joins:
            task = {"game_token": t, "user_token": f.user}
            self._lobby(keys.CLEANING_MESSAGE, task, clean_stamp)
        if self.expire_ms > 0:
            for key in keys.game_keys(t, users):
                self._batch.append(("PEXPIRE", key, str(self.expire_ms)))
        return merge(out)

    def _play(self, plan: GamePlan, out: list[Batch], stamp: str, log_stamp: str) -> None:
        t = plan.token
        order = [f.user for f in plan.joins]
        status = keys.game_status(t)
        b = self._batch
        b.append(("SET", status, keys.STATUS_STARTING))
        b.append(("RPUSH", keys.game_order(t), *order))
        self._lobby(STARTING_MESSAGE, start_task(t, plan.host, order, log_stamp), stamp)
        b.append(("SET", status, keys.STATUS_IN_PROGRESS))
        if self.turn_delay > 0:
            self._turns(plan, out, stamp, log_stamp)
        else:
            # Everything lands before its messages, so a subscriber never reads ahead of Redis.
            entries = [attack_log(t, a, log_stamp) for a in plan.attacks]
            for at in range(0, len(entries), MAX_ARGS):  # bounded: Lua's unpack has a limit
                b.append(("RPUSH", keys.game_logs(t), *entries[at : at + MAX_ARGS]))
            final = {a.enemy: a.post for a in plan.attacks}
            for user, health in final.items():
                b.append(("HSET", keys.game_player_hero(t, user), "health", str(health)))
                if health == 0:
                    b.append(("LREM", keys.game_order(t), "0", user))
            for attack, entry in zip(plan.attacks, entries, strict=True):
                self._game(
                    DEAD_ENEMY_MESSAGE if attack.dead_enemy else ATTACK_MESSAGE, entry, stamp
                )
        b = self._batch
        b.append(("SET", status, keys.STATUS_COMPLETED))

    def _turns(self, plan: GamePlan, out: list[Batch], stamp: str, log_stamp: str) -> None:
        """One batch per turn, ``turn_delay`` apart, with the statuses a watcher would see."""
        t = plan.token
        status = keys.game_status(t)
        for i, attack in enumerate(plan.attacks):
            entry = attack_log(t, attack, log_stamp)
            self._next(out, self.turn_delay)
            b = self._batch
            if i:
                b.append(("SET", status, keys.STATUS_IN_PROGRESS))
            b.append(("RPUSH", keys.game_logs(t), entry))
            b.append(("HSET", keys.game_player_hero(t, attack.enemy), "health", str(attack.post)))
            if attack.post == 0 and not attack.dead_enemy:
                b.append(("LREM", keys.game_order(t), "0", attack.enemy))
            self._game(DEAD_ENEMY_MESSAGE if attack.dead_enemy else ATTACK_MESSAGE, entry, stamp)
            if i + 1 < len(plan.attacks):
                b.append(("SET", status, keys.STATUS_WAITING_PLAYER))


def merge(batches: list[Batch]) -> list[Batch]:
    """Join batches not separated by a wait, so each wait costs one round trip at most."""
    merged: list[Batch] = []
    for batch in batches:
        if merged and batch.delay <= 0:
            merged[-1].commands.extend(batch.commands)
        else:
            merged.append(batch)
    return merged
