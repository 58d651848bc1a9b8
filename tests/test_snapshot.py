"""The snapshot parser: Lua-cjson quirks accepted, every malformed field named with its game."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from superhero_dagster.snapshot import GameSnapshot, SnapshotError, parse_snapshot
from tests.snapshot_factory import SnapshotBuilder, lua_cjson_dumps, token

RNG = random.Random(7)
GAME = token(RNG)
A, B, C = token(RNG), token(RNG), token(RNG)


def small_game() -> SnapshotBuilder:
    game = SnapshotBuilder(GAME, participants=2)
    game.join(A, 12, attack=40, health=100, name="Ant/Man")
    game.join(B, 7, attack=30, health=50)
    game.attack(A, B)
    game.attack(B, A)
    game.attack(A, B)
    return game


def test_parses_the_listener_encoding_with_strings_and_embedded_json() -> None:
    text = small_game().to_json()
    assert "\\/" in text  # cjson escapes '/', as the real capture script does
    snap = parse_snapshot(text, expected_token=GAME)
    assert isinstance(snap, GameSnapshot)
    assert snap.token == GAME
    assert snap.participants == 2
    assert snap.players == tuple(sorted([A, B]))
    assert snap.order == (A,)
    assert snap.hero_ids == (7, 12)
    assert snap.player_heroes[A].hero_id == 12
    assert snap.player_heroes[B].health == 0
    assert snap.heroes[12]["name"] == "Ant/Man"
    assert [(a.attacker, a.victim, a.damage, a.prior, a.post) for a in snap.attacks] == [
        (A, B, 40, 50, 10),
        (B, A, 30, 100, 70),
        (A, B, 40, 10, 0),
    ]


def test_bytes_str_and_mapping_inputs_agree() -> None:
    game = small_game()
    as_text = parse_snapshot(game.to_json())
    assert parse_snapshot(game.to_json().encode()) == as_text
    assert parse_snapshot(game.document()) == as_text


def test_cjson_empty_table_quirk_for_lists_and_maps() -> None:
    lobby = SnapshotBuilder(GAME, participants=4, status="Timed Out")
    text = lobby.to_json()
    assert '"logs":{}' in text and '"players":{}' in text
    snap = parse_snapshot(text)
    assert snap.players == () and snap.attacks == () and snap.order == ()
    doc = lobby.document()
    doc["heroes"] = []  # an empty map written as an empty array is accepted too
    assert parse_snapshot(doc).heroes == {}


def test_missing_hero_hash_and_missing_roster_entry_are_dropped_not_fatal() -> None:
    doc = small_game().document()
    doc["player_heroes"][C] = {}  # HGETALL of a hash that does not exist
    doc["heroes"]["99"] = None  # HMGET of an id the roster lacks
    snap = parse_snapshot(lua_cjson_dumps(doc))
    assert C not in snap.player_heroes
    assert 99 not in snap.heroes


def _log(doc: dict[str, Any], index: int) -> dict[str, Any]:
    return json.loads(doc["logs"][index])


def _set_log(doc: dict[str, Any], index: int, entry: Any) -> None:
    doc["logs"][index] = json.dumps(entry)


def _edit_log(index: int, edit: Callable[[dict[str, Any]], None]) -> Callable[[dict], None]:
    def mutate(doc: dict[str, Any]) -> None:
        entry = _log(doc, index)
        edit(entry)
        _set_log(doc, index, entry)

    return mutate


def _details(entry: dict[str, Any]) -> dict[str, Any]:
    return entry["STATUS"]["DETAILS"]


CORRUPTIONS: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("schema", lambda d: d.update(schema=3), "schema"),
    ("game token type", lambda d: d.update(game_token=5), "game_token"),
    ("status type", lambda d: d.update(status=3), "status"),
    ("participants", lambda d: d.update(participants="four"), "participants"),
    ("participants bool", lambda d: d.update(participants=True), "participants"),
    ("host type", lambda d: d.update(host=["x"]), "host"),
    ("players type", lambda d: d.update(players="abc"), "players"),
    ("player type", lambda d: d["players"].__setitem__(1, 17), "players[1]"),
    ("order missing", lambda d: d.pop("order"), "order"),
    ("hero id digits", lambda d: d["superheros"].__setitem__(0, "\u0661\u0662"), "superheros[0]"),
    ("hero id negative", lambda d: d["superheros"].__setitem__(0, "-3"), "superheros[0]"),
    (
        "player hero",
        lambda d: d["player_heroes"][A].update(health="lots"),
        f"player_heroes[{A}].health",
    ),
    ("player hero id", lambda d: d["player_heroes"][B].pop("id"), f"player_heroes[{B}].id"),
    ("logs type", lambda d: d.update(logs="[]"), "logs"),
    ("log not json", lambda d: d["logs"].__setitem__(2, "{oops"), "logs[2]"),
    ("log not object", lambda d: d["logs"].__setitem__(1, "[1, 2]"), "logs[1]"),
    (
        "damage",
        _edit_log(1, lambda e: _details(e).update(ENEMY_DAMAGE="x")),
        "logs[1].STATUS.DETAILS.ENEMY_DAMAGE",
    ),
    (
        "prior float",
        _edit_log(0, lambda e: _details(e).update(ENEMY_HEALTH_PRIOR=1.5)),
        "logs[0].STATUS.DETAILS.ENEMY_HEALTH_PRIOR",
    ),
    (
        "post huge",
        _edit_log(0, lambda e: _details(e).update(ENEMY_HEALTH_POST=10**30)),
        "logs[0].STATUS.DETAILS.ENEMY_HEALTH_POST",
    ),
    (
        "victim",
        _edit_log(2, lambda e: _details(e).pop("ENEMY_TOKEN")),
        "logs[2].STATUS.DETAILS.ENEMY_TOKEN",
    ),
    ("timestamp missing", _edit_log(0, lambda e: e.pop("TIMESTAMP")), "logs[0].TIMESTAMP"),
    ("timestamp bad", _edit_log(0, lambda e: e.update(TIMESTAMP="yesterday")), "logs[0].TIMESTAMP"),
    (
        "other game",
        _edit_log(0, lambda e: e["PAYLOAD"].update(GAME_TOKEN=C)),
        "logs[0].PAYLOAD.GAME_TOKEN",
    ),
    (
        "attacker",
        _edit_log(1, lambda e: e["PAYLOAD"].pop("USER_TOKEN")),
        "logs[1].PAYLOAD.USER_TOKEN",
    ),
    ("action", _edit_log(0, lambda e: e["STATUS"].update(ACTION="HEAL")), "logs[0].STATUS.ACTION"),
    ("details", _edit_log(0, lambda e: e["STATUS"].update(DETAILS=7)), "logs[0].STATUS.DETAILS"),
    ("hero key", lambda d: d["heroes"].update(abc="{}"), "heroes[abc]"),
    ("hero json", lambda d: d["heroes"].update({"12": "{not json"}), "heroes[12]"),
    ("hero name", lambda d: d["heroes"].update({"7": json.dumps({"name": 5})}), "heroes[7].name"),
    ("captured_at", lambda d: d.pop("captured_at"), "captured_at"),
    ("message ts", lambda d: d.update(message_timestamp="soon"), "message_timestamp"),
]


@pytest.mark.parametrize(
    ("mutate", "field"), [(m, f) for _, m, f in CORRUPTIONS], ids=[c[0] for c in CORRUPTIONS]
)
def test_each_corrupt_field_is_named_with_the_game(
    mutate: Callable[[dict[str, Any]], None], field: str
) -> None:
    doc = small_game().document()
    mutate(doc)
    with pytest.raises(SnapshotError) as caught:
        parse_snapshot(lua_cjson_dumps(doc), expected_token=GAME)
    assert str(caught.value).startswith(f"game {GAME}: field {field}: ")
    assert caught.value.token == GAME and caught.value.field == field


@pytest.mark.parametrize("raw", [b"\xff\xfe", b"not json", b"[1, 2]", b"null", '"x"'])
def test_a_document_that_is_not_an_object(raw: bytes | str) -> None:
    with pytest.raises(SnapshotError, match=rf"^game {GAME}: field <document>: "):
        parse_snapshot(raw, expected_token=GAME)


def test_a_snapshot_of_another_game_is_refused() -> None:
    with pytest.raises(SnapshotError, match=rf"^game {C}: field game_token: .*{GAME}"):
        parse_snapshot(small_game().to_json(), expected_token=C)


def test_a_hostile_token_is_quoted_and_truncated_in_the_message() -> None:
    doc = small_game().document()
    doc["game_token"] = "x\n" * 500
    doc["schema"] = 9
    with pytest.raises(SnapshotError) as caught:
        parse_snapshot(doc)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 200


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path_seed=st.integers(0, 10**6), value=JSON_VALUES)
def test_any_single_corruption_parses_or_raises_snapshot_error(path_seed: int, value: Any) -> None:
    """Replace one node anywhere in the document (logs and heroes decoded) with arbitrary JSON."""
    doc = small_game().document()
    doc["logs"] = [json.loads(entry) for entry in doc["logs"]]
    doc["heroes"] = {k: json.loads(v) for k, v in doc["heroes"].items()}
    nodes: list[tuple[Any, Any]] = []

    def walk(node: Any) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in list(items):
            nodes.append((node, key))
            if isinstance(child, dict | list):
                walk(child)

    walk(doc)
    parent, key = nodes[path_seed % len(nodes)]
    parent[key] = copy.deepcopy(value)
    try:
        parse_snapshot(doc)
    except SnapshotError as exc:
        assert str(exc).startswith("game ")
