"""The original's combat rules and lobby outcomes, as pure functions over plain data.

Why pure: a game is decided entirely here (no Redis, no clock), then written in one go by
``writes.py``. The benchmark, the tests and the driver therefore share one implementation, and a
seeded ``random.Random`` gives the same game on every run.

Rules: players attack in turn order (join order, host first); each picks a random *living* enemy
(never itself), deals its hero's ``attack``; the enemy's health becomes ``max(prior - damage, 0)``;
at 0 the enemy is eliminated and leaves the turn order; the last one standing wins.

Odd-but-real games (``kind``), seen in the original's data and needed by the pipeline's tests:

- ``overfilled``: one more player joins than the game was configured for (P+1 fight, P recorded).
- ``double_join``: one user joins twice; their token appears twice in the turn order (so they
  attack twice per round) and they get two 'Cleaning Game Records' messages; the players set holds
  the token once.
- ``dead_enemy_attack``: right after the first elimination, the next attacker hits the dead enemy
  once more: a log entry with ``ENEMY_HEALTH_PRIOR`` 0 and ``ENEMY_HEALTH_POST`` 0, published as
  'Attacked Dead Enemy'; the game then goes on normally.
- ``timed_out``: the lobby never fills (1..P-1 players), no attack, status ``Timed Out``.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from superhero_dagster.simulator.roster import Hero, Roster

NORMAL = "normal"
TIMED_OUT = "timed_out"
OVERFILLED = "overfilled"
DOUBLE_JOIN = "double_join"
DEAD_ENEMY_ATTACK = "dead_enemy_attack"
ODD_KINDS = (OVERFILLED, DOUBLE_JOIN, DEAD_ENEMY_ATTACK)


@dataclass(frozen=True)
class Fighter:
    """A user in a game with the hero they drew."""

    user: str
    hero: Hero


@dataclass(frozen=True)
class Attack:
    """One turn: the attack log entry's facts."""

    attacker: str
    enemy: str
    damage: int
    prior: int
    post: int
    dead_enemy: bool = False


@dataclass(frozen=True)
class GamePlan:
    """Everything that happens in one game, decided before anything is written."""

    index: int
    token: str
    participants: int
    joins: tuple[Fighter, ...]
    attacks: tuple[Attack, ...]
    kind: str = NORMAL

    @property
    def timed_out(self) -> bool:
        return self.kind == TIMED_OUT

    @property
    def host(self) -> str:
        return self.joins[0].user

    @property
    def fighters(self) -> dict[str, Fighter]:
        """Distinct users, in join order."""
        return {f.user: f for f in self.joins}

    @property
    def winner(self) -> str | None:
        if self.timed_out:
            return None
        dead = {a.enemy for a in self.attacks if a.post == 0}
        alive = [u for u in self.fighters if u not in dead]
        return alive[0] if len(alive) == 1 else None


def new_token(rng: random.Random) -> str:
    """A UUID4 string drawn from ``rng`` (so a seeded run repeats its tokens)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def play(
    joins: Sequence[Fighter], rng: random.Random, dead_enemy_attack: bool = False
) -> list[Attack]:
    """Fight until one user is left; returns the attacks in order."""
    order = [f.user for f in joins]
    heroes = {f.user: f.hero for f in joins}
    health = {u: h.health for u, h in heroes.items()}
    attacks: list[Attack] = []
    pending_dead: str | None = None
    pos = 0
    while len(health) > 1:
        attacker = order[pos]
        damage = heroes[attacker].attack
        if pending_dead is not None:
            attacks.append(Attack(attacker, pending_dead, damage, 0, 0, dead_enemy=True))
            pending_dead = None
        enemies = [u for u in health if u != attacker]
        enemy = enemies[rng.randrange(len(enemies))] if len(enemies) > 1 else enemies[0]
        prior = health[enemy]
        post = prior - damage if prior > damage else 0
        attacks.append(Attack(attacker, enemy, damage, prior, post))
        pos += 1
        if post:
            health[enemy] = post
        else:
            del health[enemy]
            if dead_enemy_attack:
                pending_dead, dead_enemy_attack = enemy, False
            pos -= sum(1 for u in order[:pos] if u == enemy)
            order = [u for u in order if u != enemy]
        if pos >= len(order):
            pos = 0
    if pending_dead is not None:  # the first elimination ended the game: the winner hits again
        winner = order[0]
        attacks.append(Attack(winner, pending_dead, heroes[winner].attack, 0, 0, dead_enemy=True))
    return attacks


def plan_game(
    rng: random.Random,
    index: int,
    roster: Roster,
    users: Sequence[str],
    players: tuple[int, int],
    timeout_rate: float = 0.0,
    odd_rate: float = 0.0,
    odd_kinds: Sequence[str] = ODD_KINDS,
) -> GamePlan:
    """Decide one game. Draws from ``rng`` in a fixed sequence, so a seed fixes the game."""
    token = new_token(rng)
    participants = rng.randint(players[0], players[1])
    timed_out = rng.random() < timeout_rate
    odd = rng.random() < odd_rate
    kind = rng.choice(list(odd_kinds)) if odd and odd_kinds else NORMAL
    if timed_out:
        kind = TIMED_OUT
    joined = {TIMED_OUT: rng.randint(1, participants - 1), OVERFILLED: participants + 1}
    distinct = joined.get(kind, participants - 1 if kind == DOUBLE_JOIN else participants)
    picked_users = rng.sample(users, distinct)
    picked_heroes = rng.sample(roster.heroes, distinct)
    joins = [Fighter(u, h) for u, h in zip(picked_users, picked_heroes, strict=True)]
    if kind == DOUBLE_JOIN:
        joins.insert(rng.randint(1, len(joins)), joins[rng.randrange(len(joins))])
    attacks = [] if timed_out else play(joins, rng, dead_enemy_attack=kind == DEAD_ENEMY_ATTACK)
    return GamePlan(index, token, participants, tuple(joins), tuple(attacks), kind)
