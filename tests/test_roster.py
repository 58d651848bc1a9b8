"""Roster loader: Superhero-API dumps (null stats, broken entries) and the built-in roster."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from superhero_dagster.simulator.roster import (
    POWERSTATS,
    RosterError,
    builtin_roster,
    load_roster,
)


def _hero(id_: object, name: object, **stats: object) -> dict[str, object]:
    base: dict[str, object] = dict.fromkeys(POWERSTATS, "50")
    base.update(stats)
    return {"response": "success", "id": id_, "name": name, "powerstats": base,
            "biography": {"publisher": "Test Comics"}}  # fmt: skip


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "roster.json"
    path.write_text(json.dumps(data))
    return path


def test_null_and_zero_stats_count_as_one_and_derive_health_and_attack(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        [
            _hero(
                "1",
                "Plain",
                intelligence="10",
                strength="20",
                durability="30",
                speed="2",
                power="3",
                combat="4",
            ),
            _hero("2", "Nobody", **dict.fromkeys(POWERSTATS, "null")),
            _hero("3", "Zero", intelligence="0", strength="5", durability="null", speed="0"),
        ],
    )
    roster = load_roster(path)
    plain, nobody, zero = roster.heroes
    assert (plain.health, plain.attack) == (10 * 20 * 30 * 10, 2 * 3 * 4)
    assert (nobody.health, nobody.attack) == (10, 1)
    assert zero.powerstats["intelligence"] == 1 and zero.powerstats["durability"] == 1
    assert (zero.health, zero.attack) == (1 * 5 * 1 * 10, 1 * 50 * 50)
    stored = json.loads(roster.hash_mapping()["1"])
    assert stored["id"] == "1" and stored["name"] == "Plain"
    assert stored["powerstats"]["health"] == 60000 and stored["powerstats"]["attack"] == 24
    assert stored["powerstats"]["speed"] == 2  # ints, not the API's strings
    assert stored["biography"] == {"publisher": "Test Comics"}  # other fields kept
    assert "response" not in stored


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        (_hero("7", "Broken", speed="fast"), "powerstat 'speed' not a number"),
        ({"id": "7", "name": "Broken"}, "'powerstats' must be an object"),
        (_hero("x", "Broken"), "'id' must be an integer"),
        (_hero("7", ""), "missing or empty 'name'"),
        (_hero("7", "Broken", power="-3"), "powerstat 'power' negative"),
        ("just a string", "expected an object"),
    ],
)
def test_broken_entry_names_its_index_and_name(
    tmp_path: Path, entry: object, fragment: str
) -> None:
    path = _write(tmp_path, [_hero("1", "Fine"), _hero("2", "Also Fine"), entry])
    with pytest.raises(RosterError) as info:
        load_roster(path)
    message = str(info.value)
    assert "roster entry 2" in message
    assert fragment in message
    assert "\n" not in message
    if isinstance(entry, dict) and entry.get("name"):
        assert "'Broken'" in message


def test_duplicate_ids_and_bad_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(RosterError, match=r"entry 1 \('Twin'\): id 1 already used by entry 0"):
        load_roster(_write(tmp_path, [_hero("1", "First"), _hero("1", "Twin")]))
    with pytest.raises(RosterError, match="expected a JSON list"):
        load_roster(_write(tmp_path, {"heroes": []}))
    bad = tmp_path / "bad.json"
    bad.write_text("[{")
    with pytest.raises(RosterError, match="not valid JSON"):
        load_roster(bad)
    with pytest.raises(RosterError, match="cannot read roster"):
        load_roster(tmp_path / "missing.json")
    with pytest.raises(RosterError, match="at least 2 heroes"):
        load_roster(_write(tmp_path, [_hero("1", "Alone")]))


def test_builtin_roster_is_several_hundred_unique_heroes() -> None:
    roster = builtin_roster()
    assert len(roster) >= 300
    assert [h.id for h in roster.heroes] == list(range(1, len(roster) + 1))
    assert len({h.name for h in roster.heroes}) == len(roster)
    assert any(h.health == 10 and h.attack == 1 for h in roster.heroes)  # some "null" heroes
    assert all(h.attack >= 1 and h.health >= 10 for h in roster.heroes)
    assert builtin_roster() == roster  # stable across calls
