"""Which copy of the log is complete, and which entries count (SYSTEM.md), on hand-built games."""

from __future__ import annotations

import copy
import random

import pytest

from superhero_dagster import game_log, games, log_findings
from superhero_dagster.snapshot import GameSnapshot, parse_snapshot
from tests.snapshot_factory import SnapshotBuilder, lua_cjson_dumps, token

RNG = random.Random(5)
GAME = token(RNG)
A, B, C = (
    "a0000000-0000-4000-8000-00000000000a",
    "b0000000-0000-4000-8000-00000000000b",
    "c0000000-0000-4000-8000-00000000000c",
)


def three() -> SnapshotBuilder:
    game = SnapshotBuilder(GAME, participants=3)
    game.join(A, 1, attack=50, health=100, name="Alpha")
    game.join(B, 2, attack=40, health=80, name="Bravo")
    game.join(C, 3, attack=30, health=60, name="Charlie")
    return game


def snap(game: SnapshotBuilder, *, logs: list[str] | None = None, stream=None) -> GameSnapshot:
    """A schema-2 document: ``logs`` (default: every entry) and ``stream`` (default: none)."""
    doc = game.document()
    doc["schema"] = 2
    doc["logs"] = list(game.logs if logs is None else logs)
    doc["stream"] = list(stream or [])
    return parse_snapshot(lua_cjson_dumps(doc), expected_token=GAME)


def rows(s: GameSnapshot) -> tuple[list[dict], list[dict]]:
    return games.metadata_rows(s), games.podium_rows(s)


def decided_game() -> SnapshotBuilder:
    game = three()
    game.attack(A, C)  # C 60 -> 10
    game.attack(B, C)  # C 10 -> 0: C out (rank 3)
    game.attack(A, B)  # B 80 -> 30
    game.attack(B, A)  # A 100 -> 60
    game.attack(A, B)  # B 30 -> 0: decides, A wins   (entry #5)
    return game


def test_a_complete_list_is_used_and_every_entry_counts() -> None:
    s = snap(decided_game())
    assert s.log_source == "list" and s.walk is not None and s.walk.complete
    meta, podium = rows(s)
    assert [(r["user_token"], r["rank"], r["rounds"]) for r in podium] == [
        (A, 1, 3),
        (B, 2, 2),
        (C, 3, 0),
    ]
    assert {(m["status"], m["invalid_entries"], m["deciding_entry"]) for m in meta} == {
        ("completed", 0, 5)
    }
    assert log_findings.source_anomalies(s) == [] and log_findings.log_problems(s) == []


def test_list_deleted_by_the_worker_the_stream_gives_the_same_rows() -> None:
    game = decided_game()
    from_list = snap(game)
    from_stream = snap(game, logs=[], stream=game.logs)
    assert from_stream.log_source == "stream"
    assert rows(from_stream) == rows(from_list)


def test_a_list_recreated_by_late_entries_only_is_not_complete() -> None:
    game = decided_game()
    game.attack(C, A)  # dead C's queued turn, after the end: A 60 -> 30
    late = game.logs[-1:]
    s = snap(game, logs=late, stream=game.logs)
    assert s.list_walk is not None and not s.list_walk.complete
    assert s.log_source == "stream"
    assert rows(s) == rows(snap(decided_game()))  # and the late entry changed nothing


def test_a_partial_stream_from_a_late_listener_is_not_complete() -> None:
    game = decided_game()
    partial = game.logs[1:]  # the listener joined after entry #1: C's next prior gives it away
    s = snap(game, logs=game.logs, stream=partial)
    assert s.stream_walk is not None and s.stream_walk.chain_break == 0
    later = snap(game, logs=game.logs, stream=game.logs[2:])  # joined after #2: C never dies
    assert later.stream_walk is not None and later.stream_walk.end is None
    assert s.log_source == "list"  # reconcile's capture: the list is whole
    lost = snap(game, logs=[], stream=partial)
    assert lost.log_source == "none" and games.outcome(lost) == "log_lost"
    assert games.podium_rows(lost) == []
    assert {m["status"] for m in games.metadata_rows(lost)} == {"log_lost"}
    (problem,) = log_findings.log_problems(lost)
    assert "list: empty" in problem and "chain breaks at #1" in problem


def test_a_log_missing_its_last_entries_never_reaches_the_end() -> None:
    game = decided_game()
    s = snap(game, logs=game.logs[:-1])
    assert s.list_walk is not None and s.list_walk.end is None and s.log_source == "none"


def test_the_list_is_preferred_when_both_are_complete_and_it_is_as_long() -> None:
    game = decided_game()
    game.attack(C, A)  # one post-game entry, published (in the stream) but not yet appended
    assert snap(game, logs=game.logs, stream=game.logs).log_source == "list"
    assert snap(game, logs=game.logs[:-1], stream=game.logs).log_source == "stream"


def test_invalid_entry_by_a_dead_hero_before_the_end_counts_for_nothing() -> None:
    game = three()
    game.attack(A, C)  # C 60 -> 10
    game.attack(B, C)  # C 10 -> 0: C out
    game.attack(C, A)  # dead C hits A (100 -> 70): invalid (#3)
    game.attack(A, B)  # B 80 -> 30
    game.attack(B, A)  # A 70 -> 30
    game.attack(A, B)  # B 30 -> 0: decides (#6)
    s = snap(game)
    meta, podium = rows(s)
    assert {(m["invalid_entries"], m["deciding_entry"]) for m in meta} == {(1, 6)}
    by_user = {r["user_token"]: (r["rank"], r["rounds"], r["damage_received"]) for r in podium}
    assert by_user == {A: (1, 3, 40), B: (2, 2, 100), C: (3, 0, 90)}  # C's 30 on A not counted
    assert games.podium_problems(s, podium) == []
    (anomaly,) = log_findings.source_anomalies(s)
    assert anomaly.startswith("1 invalid entries") and "#3 by c0000000" in anomaly


def test_winner_killed_by_a_dead_hero_after_the_end() -> None:
    game = SnapshotBuilder(GAME, participants=2)
    game.join(A, 1, attack=100, health=50)
    game.join(B, 2, attack=100, health=100)
    game.attack(B, A)  # A 50 -> 0: decides, B wins
    game.attack(A, B)  # dead A's queued turn: B 100 -> 0, every hero at 0 now
    s = snap(game)
    assert s.log_source == "list"
    meta, podium = rows(s)
    assert [(r["user_token"], r["rank"], r["rounds"]) for r in podium] == [(B, 1, 1), (A, 2, 0)]
    assert games.podium_problems(s, podium) == []  # no "0 heroes left standing" any more
    assert {(m["deciding_entry"], m["ended_at"].second) for m in meta} == {(1, 1)}
    found = log_findings.source_anomalies(s)
    assert "1 post-game entries after the deciding entry #1" in found
    assert any(f.startswith("winner b0000000 brought to 0 after the end") for f in found)


def test_every_hero_at_zero_in_three_player_game() -> None:
    game = decided_game()
    game.attack(B, A)  # dead B: A 60 -> 20
    game.attack(C, A)  # dead C: A 20 -> 0: all three at 0
    s = snap(game)
    assert rows(s) == rows(snap(decided_game()))
    assert s.walk is not None and s.walk.post_game == 2


def test_a_kill_by_a_dead_hero_leaves_two_standing_and_is_an_anomaly_not_a_failure() -> None:
    game = three()
    game.attack(A, C)  # C 60 -> 10
    game.attack(B, C)  # C 10 -> 0: C out
    game.attack(C, B, damage=80)  # dead C kills B: the server is done; the rules say B lives
    late = copy.deepcopy(game)
    late.attack(A, B)  # a later hit on B (prior 0): must not change the result
    s, s_late = snap(game), snap(late)
    assert s.log_source == "list" and s.walk is not None and s.walk.end == 2
    assert rows(s) == rows(s_late)
    podium = games.podium_rows(s)
    assert [r["rank"] for r in podium] == [1, 2, 3] and podium[2]["user_token"] == C
    assert games.podium_problems(s, podium) == []
    assert any("leave 2 heroes standing" in f for f in log_findings.source_anomalies(s))


def test_rows_are_identical_captured_before_and_after_late_entries() -> None:
    rng = random.Random(3)
    for _ in range(30):
        game = SnapshotBuilder(token(rng), participants=4)
        users = [token(rng) for _ in range(4)]
        for u, hero in zip(users, rng.sample(range(1, 700), 4), strict=True):
            game.join(u, hero, rng.randint(20, 60), rng.randint(60, 200))
        game.fight(rng)
        early = copy.deepcopy(game)
        for _ in range(rng.randint(1, 4)):  # dead heroes' late turns
            game.attack(rng.choice(users), rng.choice(users))
        doc_early, doc_late = early.document(), game.document()
        a = parse_snapshot(lua_cjson_dumps(doc_early))
        b = parse_snapshot(lua_cjson_dumps(doc_late))
        assert games.outcome(a) == games.outcome(b) == "completed"
        assert games.metadata_rows(a) == games.metadata_rows(b)
        assert games.podium_rows(a) == games.podium_rows(b)


def test_schema_one_snapshots_are_still_read_with_the_list_as_the_only_copy() -> None:
    s = parse_snapshot(decided_game().to_json(), expected_token=GAME)
    assert s.schema == 1 and s.log_source == "list" and s.stream_attacks == ()


@pytest.mark.parametrize(
    ("hero", "expected"),
    [
        ({"powerstats": {"health": 4928000}}, 4928000),
        ({"health": 120}, 120),
        ({"powerstats": {"intelligence": "50", "strength": "null", "durability": "3"}}, 1500),
        ({"powerstats": {"intelligence": "0", "strength": "2", "durability": "3"}}, 60),
        ({"powerstats": {"speed": "10"}}, None),
        (None, None),
    ],
)
def test_initial_health_from_the_hero_json(hero, expected) -> None:
    assert game_log.initial_health(hero) == expected


def messy_game(rng: random.Random) -> SnapshotBuilder:
    """Dead heroes hitting the living (not lethally) before the end, and anyone after it."""
    players = rng.randint(2, 5)
    game = SnapshotBuilder(token(rng), participants=players)
    for hero_id in rng.sample(range(1, 700), players):
        game.join(token(rng), hero_id, rng.randint(20, 60), rng.randint(60, 200))
    while len(game.order) > 1:
        attacker = rng.choice(game.order)
        game.attack(attacker, rng.choice([u for u in game.order if u != attacker]))
        dead = [u for u in game.players if u not in game.order]
        victim = rng.choice(game.order)
        health = int(game.heroes[victim]["health"])
        if dead and len(game.order) > 1 and health > 1 and rng.random() < 0.4:
            game.attack(rng.choice(dead), victim, damage=rng.randint(1, health - 1))
    for _ in range(rng.randint(0, 3)):
        game.attack(rng.choice(game.players), rng.choice(game.players), damage=rng.randint(1, 99))
    return game


def test_podium_agrees_with_the_independent_oracle_on_messy_games() -> None:
    from tests.oracle import podium

    rng = random.Random(99)
    for _ in range(200):
        game = messy_game(rng)
        s = parse_snapshot(game.to_json())
        hero_of = {u: int(h["id"]) for u, h in game.heroes.items()}
        want = podium(game.token, game.players, hero_of, game.logs)
        assert want.decided
        assert games.podium_rows(s) == want.rows
        walk = s.walk
        assert walk is not None
        assert (len(walk.invalid), walk.post_game) == (want.invalid, want.post_game)
