"""What a run played, per game: the counts the CLI prints and the facts a test oracle needs.

Why per game and not only totals: a consumer's end-to-end test must check every completed game,
and the original's quirks (dead heroes, late entries, no Cleaning) make some games different on
purpose; the summary names them so the test need not re-derive them from the simulator's plans.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from superhero_dagster.simulator.combat import GamePlan


@dataclass
class SimSummary:
    """What was played. Lists are in game order (the order the seed decides).

    The per-game facts a test oracle needs, for the games they concern (counts of log entries, by
    SYSTEM.md's "Which log entries count", disjoint as ``tests/oracle.py`` counts them):
    ``invalid`` entries before the deciding one whose attacker was already eliminated,
    ``post_game`` entries after the deciding one (whoever the attacker), ``late`` entries logged after the Cleaning messages (with the original worker, the only
    ones its list then holds), ``no_cleaning`` games, ``all_dead`` games (every hero ended at 0),
    and every completed game's ``winners`` (the hero standing at the deciding entry).
    """

    games: int = 0
    players: int = 0
    messages: int = 0
    elapsed: float = 0.0
    tokens: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    timed_out: list[str] = field(default_factory=list)
    kinds: dict[str, str] = field(default_factory=dict)  # token -> combat kind, odd ones only
    no_cleaning: list[str] = field(default_factory=list)
    invalid: dict[str, int] = field(default_factory=dict)
    post_game: dict[str, int] = field(default_factory=dict)
    late: dict[str, int] = field(default_factory=dict)
    all_dead: list[str] = field(default_factory=list)
    winners: dict[str, str] = field(default_factory=dict)
    commands: int = 0
    interrupted: bool = False

    @property
    def games_per_second(self) -> float:
        return self.games / self.elapsed if self.elapsed > 0 else 0.0

    def line(self) -> str:
        return (
            f"{self.games} games ({len(self.completed)} completed, {len(self.timed_out)} timed out),"
            f" {self.players} players, {self.messages} messages in {self.elapsed:.2f} s"
            f" = {self.games_per_second:.0f} games/s"
        )


def account_quirks(s: SimSummary, plan: GamePlan) -> None:
    """Record what makes a completed game unusual (see ``SimSummary``)."""
    t = plan.token
    logs = plan.logs
    winner = plan.winner
    for name, count in (
        ("invalid", sum(a.by_dead and not a.post_game for a in logs)),
        ("post_game", sum(a.post_game for a in logs)),
        ("late", sum(a.late for a in logs)),
    ):
        if count:
            getattr(s, name)[t] = count
    if not plan.cleaning:
        s.no_cleaning.append(t)
    if plan.all_dead:
        s.all_dead.append(t)
    if winner is not None:
        s.winners[t] = winner
