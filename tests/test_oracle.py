"""The end-to-end tests' podium oracle, checked on hand-written logs of SYSTEM.md's cases."""

import json

from tests.oracle import podium

A, B, C = "a" * 8, "b" * 8, "c" * 8


def entry(attacker: str, victim: str, damage: int, prior: int) -> str:
    return json.dumps(
        {
            "TIMESTAMP": "2023-07-25T10:00:00Z",
            "PAYLOAD": {"GAME_TOKEN": "g", "USER_TOKEN": attacker},
            "STATUS": {
                "ACTION": "ATTACK",
                "DETAILS": {
                    "ENEMY_TOKEN": victim,
                    "ENEMY_DAMAGE": damage,
                    "ENEMY_HEALTH_PRIOR": prior,
                    "ENEMY_HEALTH_POST": max(prior - damage, 0),
                },
            },
        }
    )


def test_dead_attacker_and_post_game_entries_change_nothing() -> None:
    log = [
        entry(A, C, 10, 10),  # C eliminated: rank 3
        entry(C, A, 5, 20),  # C is dead: invalid
        entry(B, A, 20, 20),  # A eliminated: B wins (deciding entry)
        entry(A, B, 99, 30),  # post-game: the dead A "kills" the winner
    ]
    game = podium("g", [A, B, C], {A: 1, B: 2, C: 3}, log)
    assert game.decided and (game.invalid, game.post_game) == (1, 1)
    by_user = {row["user_token"]: row for row in game.rows}
    assert [by_user[u]["rank"] for u in (B, A, C)] == [1, 2, 3]
    assert (by_user[A]["rounds"], by_user[A]["damage_received"]) == (1, 20)
    assert (by_user[B]["damage_delivered"], by_user[B]["damage_received"]) == (20, 0)
    assert by_user[C]["rounds"] == 0


def test_undecided_log_leaves_ranks_open() -> None:
    game = podium("g", [A, B], {}, [entry(A, B, 1, 10)])
    assert not game.decided and {row["rank"] for row in game.rows} == {None}
