"""Metadata and podium rows against numbers worked out by hand, odd games, and the checks."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from superhero_dagster import games
from superhero_dagster.snapshot import GameSnapshot, parse_snapshot
from tests.snapshot_factory import BASE_TIME, SnapshotBuilder, token

RNG = random.Random(11)
GAME = token(RNG)
# Four players whose token order differs from both join order and finishing order.
A, B, C, D = (
    "d0000000-0000-4000-8000-00000000000a",
    "a0000000-0000-4000-8000-00000000000b",
    "c0000000-0000-4000-8000-00000000000c",
    "b0000000-0000-4000-8000-00000000000d",
)


def four_player_game() -> SnapshotBuilder:
    game = SnapshotBuilder(GAME, participants=4)
    game.join(A, 1, attack=30, health=100, name="Alpha")
    game.join(B, 2, attack=50, health=80, name="Bravo")
    game.join(C, 3, attack=20, health=60, name="Charlie")
    game.join(D, 4, attack=40, health=50, name="Delta")
    game.attack(A, D)  # D 50 -> 20
    game.attack(B, D)  # D 20 -> 0   D out first: rank 4
    game.attack(C, A)  # A 100 -> 80
    game.attack(A, C)  # C 60 -> 30
    game.attack(B, C)  # C 30 -> 0   C out: rank 3
    game.attack(A, B)  # B 80 -> 50
    game.attack(B, A)  # A 80 -> 30
    game.attack(A, B)  # B 50 -> 20
    game.attack(B, A)  # A 30 -> 0   A out: rank 2, B wins
    return game


def parse(game: SnapshotBuilder) -> GameSnapshot:
    return parse_snapshot(game.to_json(), expected_token=GAME)


def podium_by_user(snap: GameSnapshot) -> dict[str, tuple[int, int, int, int]]:
    return {
        r["user_token"]: (r["rank"], r["rounds"], r["damage_delivered"], r["damage_received"])
        for r in games.podium_rows(snap)
    }


def test_four_player_podium_matches_the_hand_computed_table() -> None:
    snap = parse(four_player_game())
    rows = games.podium_rows(snap)
    assert [r["rank"] for r in rows] == [1, 2, 3, 4]  # sorted by rank
    assert podium_by_user(snap) == {
        B: (1, 4, 200, 60),
        A: (2, 4, 120, 120),
        C: (3, 1, 20, 80),
        D: (4, 0, 0, 80),
    }
    assert {r["superhero_id"] for r in rows} == {1, 2, 3, 4}
    assert {r["game_token"] for r in rows} == {GAME}
    assert games.podium_problems(snap, rows) == []


def test_four_player_metadata() -> None:
    snap = parse(four_player_game())
    rows = games.metadata_rows(snap)
    assert [r["user_token"] for r in rows] == sorted([A, B, C, D])
    by_user = {r["user_token"]: r for r in rows}
    assert by_user[C]["name"] == "Charlie" and by_user[C]["superhero_id"] == 3
    assert [u for u, r in by_user.items() if r["is_host"]] == [A]
    assert {r["participants"] for r in rows} == {4}
    assert {r["status"] for r in rows} == {"completed"}
    assert {r["started_at"] for r in rows} == {BASE_TIME + timedelta(seconds=1)}
    assert {r["ended_at"] for r in rows} == {BASE_TIME + timedelta(seconds=9)}
    assert games.metadata_problems(snap, rows) == []


def test_ranks_come_from_the_log_not_from_list_order() -> None:
    game = four_player_game()
    doc = game.document()
    doc["order"] = [D, C, A, B]  # a stale or shuffled order list must not matter
    doc["players"] = [C, D, B, A]
    snap = parse_snapshot(doc)
    assert podium_by_user(snap)[B][0] == 1 and podium_by_user(snap)[D][0] == 4


def test_timed_out_lobby_has_metadata_and_no_podium() -> None:
    lobby = SnapshotBuilder(GAME, participants=3, status="Timed Out")
    lobby.join(A, 5, attack=10, health=10, name="Echo")
    snap = parse(lobby)
    assert games.podium_rows(snap) == []
    (row,) = games.metadata_rows(snap)
    assert row["status"] == "timed_out" and row["participants"] == 1 and row["is_host"]
    assert row["name"] == "Echo" and row["started_at"] is None
    assert row["ended_at"] == datetime(2023, 7, 25, 10, 5, 0, 123456, tzinfo=UTC)
    assert games.podium_problems(snap, []) == []
    assert games.metadata_problems(snap, [row]) == []


def test_completed_game_without_any_log_is_a_lost_log_not_a_timeout() -> None:
    game = SnapshotBuilder(GAME, participants=2, status="Completed", message_timestamp=None)
    game.join(A, 1, attack=1, health=1)
    game.join(B, 2, attack=1, health=1)
    snap = parse(game)
    rows = games.metadata_rows(snap)
    assert [r["status"] for r in rows] == ["log_lost", "log_lost"]
    assert rows[0]["ended_at"] is None  # nothing known: no attacks, no message time
    assert rows[0]["invalid_entries"] is None and rows[0]["deciding_entry"] is None
    assert games.podium_rows(snap) == []
    assert games.podium_problems(snap, []) == [] and games.metadata_problems(snap, rows) == []


def test_overfilled_game_ranks_every_player() -> None:
    game = SnapshotBuilder(GAME, participants=2)  # configured for 2, three joined
    game.join(A, 1, attack=10, health=10)
    game.join(B, 2, attack=10, health=20)
    game.join(C, 3, attack=10, health=30)
    game.attack(A, B)  # B 20 -> 10
    game.attack(B, A)  # A 10 -> 0: rank 3
    game.attack(C, B)  # B 10 -> 0: rank 2
    snap = parse(game)
    assert podium_by_user(snap) == {C: (1, 1, 10, 0), B: (2, 1, 10, 20), A: (3, 1, 10, 10)}
    assert {r["participants"] for r in games.metadata_rows(snap)} == {3}
    assert games.podium_problems(snap, games.podium_rows(snap)) == []
    assert games.metadata_problems(snap, games.metadata_rows(snap)) == []


def test_player_who_joined_twice_gets_one_row() -> None:
    game = SnapshotBuilder(GAME, participants=3)
    game.join(A, 1, attack=25, health=50)
    game.join(B, 2, attack=10, health=40)
    game.join(A, 1, attack=25, health=50)  # same user token again: twice in the order list
    assert game.order.count(A) == 2
    game.attack(A, B)  # B 40 -> 15
    game.attack(B, A)  # A 50 -> 40
    game.attack(A, B)  # B 15 -> 0
    snap = parse(game)
    assert podium_by_user(snap) == {A: (1, 2, 50, 10), B: (2, 1, 10, 50)}
    meta = games.metadata_rows(snap)
    assert [r["user_token"] for r in meta] == sorted([A, B])
    assert {r["participants"] for r in meta} == {2}
    assert games.podium_problems(snap, games.podium_rows(snap)) == []


def test_entries_after_the_deciding_one_change_nothing() -> None:
    game = four_player_game()
    game.attack(C, D, damage=20)  # D is already at 0: prior 0, post 0 (after the end)
    entry = game.attack(B, A, damage=50)  # and A, the runner-up, is hit again too
    assert entry["STATUS"]["DETAILS"]["ENEMY_HEALTH_PRIOR"] == 0
    snap = parse(game)
    assert podium_by_user(snap) == podium_by_user(parse(four_player_game()))
    rows = games.podium_rows(snap)
    assert sum(r["damage_delivered"] for r in rows) == sum(r["damage_received"] for r in rows)
    assert games.podium_problems(snap, rows) == []
    meta = games.metadata_rows(snap)
    assert meta == games.metadata_rows(parse(four_player_game()))
    assert {(m["invalid_entries"], m["deciding_entry"]) for m in meta} == {(0, 9)}
    assert snap.walk is not None and snap.walk.post_game == 2  # counted, not in the rows


def test_a_completed_game_whose_log_never_reaches_the_end_lost_its_log() -> None:
    game = SnapshotBuilder(GAME, participants=3)
    game.join(A, 1, attack=10, health=100)
    game.join(B, 2, attack=30, health=100)
    game.join(C, 3, attack=10, health=10)
    game.attack(B, C)  # C out; A and B never finish: entries are missing at the end
    game.attack(A, B)
    snap = parse(game)
    assert snap.log_source == "none"
    assert games.outcome(snap) == "log_lost" and games.podium_rows(snap) == []
    assert {r["status"] for r in games.metadata_rows(snap)} == {"log_lost"}


def _doctored(rows: list[dict], edit) -> list[dict]:
    copied = [dict(r) for r in rows]
    edit(copied)
    return copied


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda rs: (rs[0].update(rank=2), rs[1].update(rank=1)),
            "was eliminated in the attack log",
        ),
        (lambda rs: rs[2].update(rank=2), "expected 1..4 once each"),
        (lambda rs: rs[0].update(rank=9), "0 winners"),
        (lambda rs: rs[1].update(damage_delivered=999), "damage delivered 1219 != damage received"),
        (lambda rs: rs[3].update(rounds=5), "rounds, the log has 9"),
        (lambda rs: rs.pop(), "no row for participant"),
        (lambda rs: rs.append(dict(rs[0])), "more than one row for"),
        (lambda rs: rs[0].update(superhero_id=731), "superhero_id 731"),
        (lambda rs: rs[0].update(game_token=token(random.Random(1))), "rows name game(s)"),
        (lambda rs: rs[0].update(user_token=C.replace("c", "e", 1)), "non-participant"),
    ],
)
def test_podium_problems_flag_a_doctored_podium(edit, expected: str) -> None:
    snap = parse(four_player_game())
    rows = _doctored(games.podium_rows(snap), edit)
    problems = games.podium_problems(snap, rows)
    assert any(expected in p for p in problems), problems


def test_podium_rows_for_a_timed_out_game_are_a_problem() -> None:
    lobby = SnapshotBuilder(GAME, status="Timed Out")
    lobby.join(A, 1, attack=1, health=1)
    snap = parse(lobby)
    fake = games.podium_rows(parse(four_player_game()))
    assert games.podium_problems(snap, fake) == [
        "game_podium: game timed out but has 4 podium rows"
    ]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda rs: rs[1].update(is_host=True), "2 host rows, expected 1"),
        (lambda rs: rs[0].update(status="timed_out"), "expected 'completed'"),
        (lambda rs: rs[0].update(participants=3), "participants [3, 4], expected 4"),
        (lambda rs: rs.pop(0), "no row for participant"),
        (lambda rs: rs[2].update(superhero_id=None), "superhero_id None"),
    ],
)
def test_metadata_problems_flag_doctored_rows(edit, expected: str) -> None:
    snap = parse(four_player_game())
    rows = _doctored(games.metadata_rows(snap), edit)
    problems = games.metadata_problems(snap, rows)
    assert any(expected in p for p in problems), problems


def test_player_without_a_known_hero_fails_the_roster_check() -> None:
    doc = four_player_game().document()
    del doc["heroes"]["3"]  # C's hero is missing from the captured roster
    snap = parse_snapshot(doc)
    rows = games.metadata_rows(snap)
    assert {r["user_token"]: r["name"] for r in rows}[C] is None
    assert any("superhero_id 3" in p for p in games.metadata_problems(snap, rows))


def test_podium_markdown_names_the_heroes_in_rank_order() -> None:
    snap = parse(four_player_game())
    text = games.podium_markdown(games.podium_rows(snap), snap)
    lines = text.splitlines()
    assert lines[0].startswith("| rank | hero")
    assert "Bravo (#2)" in lines[2] and "Delta (#4)" in lines[5]
    assert "| 200 |" in lines[2]
    lobby = SnapshotBuilder(GAME, status="Timed Out")
    assert "timed out" in games.podium_markdown([], parse(lobby))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), players=st.integers(2, 10))
def test_random_complete_games_pass_every_check(seed: int, players: int) -> None:
    rng = random.Random(seed)
    game = SnapshotBuilder(GAME, participants=players)
    users = [token(rng) for _ in range(players)]
    for user, hero_id in zip(users, rng.sample(range(1, 51), players), strict=True):
        game.join(user, hero_id, rng.randint(1, 60), rng.randint(1, 200))
    game.fight(rng)
    (winner,) = game.order
    snap = parse(game)
    podium = games.podium_rows(snap)
    assert games.podium_problems(snap, podium) == []
    assert games.metadata_problems(snap, games.metadata_rows(snap)) == []
    assert podium[0]["user_token"] == winner
    # independent of the code under test: the last victim to reach 0 is runner-up
    last_out = [e for e in snap.attacks if e.post == 0 and e.prior > 0][-1].victim
    assert podium[1]["user_token"] == last_out
