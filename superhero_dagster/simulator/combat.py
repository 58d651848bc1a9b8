"""The original's combat rules and lobby outcomes, as pure functions over plain data.

Why pure: a game is decided entirely here (no Redis, no clock), then written in one go by
``writes.py``. The benchmark, the tests and the driver therefore share one implementation, and a
seeded ``random.Random`` gives the same game on every run.

Rules: players attack in turn order (join order, host first); each picks a random *living* enemy
(never itself), deals its hero's ``attack``; the enemy's health becomes ``max(prior - damage, 0)``;
at 0 the enemy is eliminated and leaves the turn order; the last one standing wins.

Dead heroes keep attacking (SYSTEM.md), as in the original, where a turn queued before its hero
was eliminated still fires. With ``dead_turn_rate`` p, each eliminated hero's queued turn fires
with probability p right after the blow that eliminated it, at a random other participant:

- before the deciding blow it is an entry whose attacker is at 0 health (``by_dead``); its damage
  is applied like any other (a victim already at 0 gives prior 0), except that such a turn never
  eliminates a living hero: it is dropped instead. Why: by SYSTEM.md's "Which log entries count"
  an invalid entry changes nothing, so a hero it killed would stay standing in every consumer's
  view while the server had removed it from the turn order, and the game would never be decided;
  the original's data showed no such game;
- after the deciding blow (``post_game``) it may kill the winner: every hero then ends at 0;
- the winner's own queued turn fires as well with probability p / 4, at an eliminated enemy
  (prior 0): a post-game entry by a living attacker.

A game's post-game entries are logged after its 'Cleaning Game Records' messages (``late``) with
probability :data:`LATE_SHARE`, and a completed game gets no Cleaning at all (``cleaning`` False:
the original server crashed after the last attack) with probability ``no_cleaning_rate``. Those
draws come from a second generator seeded by the game token, so the fight itself draws the same
numbers with or without the quirks, and rates of 0 give exactly the games of earlier versions.

Odd-but-real games (``kind``), seen in the original's data and needed by the pipeline's tests:

- ``overfilled``: one more player joins than the game was configured for (P+1 fight, P recorded).
- ``double_join``: one user joins twice; their token appears twice in the turn order (so they
  attack twice per round) and they get two 'Cleaning Game Records' messages; the players set holds
  the token once.
- ``dead_enemy_attack``: right after the first elimination, the next attacker aims at the dead
  enemy once more: an 'Attacked Dead Enemy' record (not a log entry), then it attacks a living
  enemy as usual.
- ``timed_out``: the lobby never fills (1..P-1 players), no attack, status ``Timed Out``.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace

from superhero_dagster.simulator.roster import Hero, Roster

NORMAL = "normal"
TIMED_OUT = "timed_out"
OVERFILLED = "overfilled"
DOUBLE_JOIN = "double_join"
DEAD_ENEMY_ATTACK = "dead_enemy_attack"
ODD_KINDS = (OVERFILLED, DOUBLE_JOIN, DEAD_ENEMY_ATTACK)

#: Share of games whose post-game entries come after the Cleaning messages. Calibrated with
#: ``dead_turn_rate`` against one run of the original (206 games: 110 with attacks by eliminated
#: heroes, 97 with attacks logged after the first Cleaning).
LATE_SHARE = 0.9
#: The winner's post-game turn fires at this fraction of ``dead_turn_rate``.
WINNER_TURN_SHARE = 0.25


@dataclass(frozen=True)
class Fighter:
    """A user in a game with the hero they drew."""

    user: str
    hero: Hero


@dataclass(frozen=True)
class Attack:
    """One turn: the attack log entry's facts, and what makes it odd.

    ``dead_enemy``: an 'Attacked Dead Enemy' record, published but never logged. ``by_dead``: the
    attacker was already eliminated. ``post_game``: after the entry that decided the game.
    ``late``: logged after the game's 'Cleaning Game Records' messages.
    """

    attacker: str
    enemy: str
    damage: int
    prior: int
    post: int
    dead_enemy: bool = False
    by_dead: bool = False
    post_game: bool = False
    late: bool = False

    @property
    def logged(self) -> bool:
        return not self.dead_enemy


@dataclass(frozen=True)
class GamePlan:
    """Everything that happens in one game, decided before anything is written."""

    index: int
    token: str
    participants: int
    joins: tuple[Fighter, ...]
    attacks: tuple[Attack, ...]
    kind: str = NORMAL
    cleaning: bool = True  # False: the server "crashed" after the last attack, no Cleaning

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
    def logs(self) -> tuple[Attack, ...]:
        """The entries of ``games:<t>:logs`` (and of 'Attack Completed'), in order."""
        return tuple(a for a in self.attacks if a.logged)

    @property
    def winner(self) -> str | None:
        """The hero left standing by the deciding entry (later entries do not change it)."""
        if self.timed_out:
            return None
        counted = [a for a in self.logs if not (a.by_dead or a.post_game)]
        dead = {a.enemy for a in counted if a.post == 0}
        alive = [u for u in self.fighters if u not in dead]
        return alive[0] if len(alive) == 1 else None

    @property
    def all_dead(self) -> bool:
        """Every hero ends at 0 health (the winner was killed after the end)."""
        final = {u: f.hero.health for u, f in self.fighters.items()}
        final.update({a.enemy: a.post for a in self.logs})
        return not self.timed_out and not any(final.values())


def new_token(rng: random.Random) -> str:
    """A UUID4 string drawn from ``rng`` (so a seeded run repeats its tokens)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


@dataclass
class _Ghosts:
    """The queued turns of eliminated heroes; draws only from its own generator."""

    rng: random.Random
    rate: float

    def fires(self, share: float = 1.0) -> bool:
        return self.rate > 0 and self.rng.random() < self.rate * share

    def target(self, shooter: str, users: list[str]) -> str:
        others = [u for u in users if u != shooter]
        return others[self.rng.randrange(len(others))]


def play(
    joins: Sequence[Fighter],
    rng: random.Random,
    dead_enemy_attack: bool = False,
    quirks: random.Random | None = None,
    dead_turn_rate: float = 0.0,
) -> list[Attack]:
    """Fight until one user is left; returns the attacks in order (post-game turns included)."""
    order = [f.user for f in joins]
    heroes = {f.user: f.hero for f in joins}
    users = list(heroes)
    health = {u: h.health for u, h in heroes.items()}  # the living
    hp = dict(health)  # everyone, as the server's hero hashes hold it
    ghosts = _Ghosts(quirks or random.Random(0), dead_turn_rate)
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
        hp[enemy] = post
        pos += 1
        if post:
            health[enemy] = post
        else:
            del health[enemy]
            if dead_enemy_attack:
                pending_dead, dead_enemy_attack = enemy, False
            pos -= sum(1 for u in order[:pos] if u == enemy)
            order = [u for u in order if u != enemy]
            if len(health) > 1 and ghosts.fires():
                _dead_turn(enemy, ghosts.target(enemy, users), heroes, health, hp, attacks)
        if pos >= len(order):
            pos = 0
    if not attacks:
        return attacks
    if pending_dead is not None:  # the first elimination ended the game: the winner aims again
        winner = order[0]
        attacks.append(
            Attack(
                winner, pending_dead, heroes[winner].attack, 0, 0, dead_enemy=True, post_game=True
            )
        )
    loser, winner = attacks[-1].enemy, order[0]
    if ghosts.fires():  # the last victim's queued turn, possibly killing the winner
        target = ghosts.target(loser, users)
        damage = heroes[loser].attack
        prior = hp[target]
        hp[target] = max(prior - damage, 0)
        attacks.append(
            Attack(loser, target, damage, prior, hp[target], by_dead=True, post_game=True)
        )
    if ghosts.fires(WINNER_TURN_SHARE):  # the winner's queued turn, at an eliminated enemy
        target = ghosts.target(winner, [u for u in users if hp[u] == 0 or u == winner])
        attacks.append(
            Attack(winner, target, heroes[winner].attack, 0, 0, by_dead=hp[winner] == 0,
                   post_game=True)
        )  # fmt: skip
    return attacks


def _dead_turn(
    ghost: str,
    target: str,
    heroes: dict[str, Hero],
    health: dict[str, int],
    hp: dict[str, int],
    attacks: list[Attack],
) -> None:
    """An eliminated hero's queued turn before the game is decided (never a kill: see above)."""
    damage = heroes[ghost].attack
    prior = hp[target]
    if prior and damage >= prior:
        return
    post = prior - damage if prior else 0
    attacks.append(Attack(ghost, target, damage, prior, post, by_dead=True))
    hp[target] = post
    if prior:
        health[target] = post


def plan_game(
    rng: random.Random,
    index: int,
    roster: Roster,
    users: Sequence[str],
    players: tuple[int, int],
    timeout_rate: float = 0.0,
    odd_rate: float = 0.0,
    odd_kinds: Sequence[str] = ODD_KINDS,
    dead_turn_rate: float = 0.0,
    no_cleaning_rate: float = 0.0,
) -> GamePlan:
    """Decide one game. Draws from ``rng`` in a fixed sequence, so a seed fixes the game."""
    token = new_token(rng)
    quirks = random.Random(f"quirks:{token}")  # str seeds hash the text: stable across runs
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
    if timed_out:
        return GamePlan(index, token, participants, tuple(joins), (), kind)
    attacks = play(joins, rng, kind == DEAD_ENEMY_ATTACK, quirks, dead_turn_rate)
    cleaning = not quirks.random() < no_cleaning_rate
    if cleaning and quirks.random() < LATE_SHARE:
        attacks = [replace(a, late=True) if a.post_game and a.logged else a for a in attacks]
    return GamePlan(index, token, participants, tuple(joins), tuple(attacks), kind, cleaning)
