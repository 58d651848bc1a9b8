"""The captured game snapshot: the contract between the listener and the Dagster assets.

The listener's capture script writes one JSON document per game at ``ProjectKeys.snapshot(t)``
(no TTL); the ``game_snapshot`` asset persists it to ``raw/game_snapshot/<t>.json``; every
downstream asset reads only this document, never the simulator's keys (they expire 30 s after the
game ends).

Schema version 2 (values are kept exactly as Redis stored them, strings included, so a snapshot is
a faithful copy; parsing into typed values happens in :func:`parse_snapshot`)::

    {
      "schema": 2,
      "game_token": "<t>",
      "captured_at": "2026-11-28T07:00:00.123456+00:00",  # listener clock, ISO 8601 UTC
      "captured_by": "<listener id>",
      "trigger": "message" | "reconcile",
      "message_timestamp": "2023-07-25T10:00:03.123456" | null,  # the 'Cleaning' record's time
      "status": "Completed" | "Timed Out" | ... | null,      # games:<t>:status
      "participants": "4" | null,                             # games:<t>:participants
      "host": "<u>" | null,                                   # games:<t>:host
      "players": ["<u>", ...],                                # SMEMBERS games:<t>
      "order": ["<u>", ...],                                  # LRANGE games:<t>:order 0 -1
      "superheros": ["12", ...],                              # SMEMBERS games:<t>:superheros
      "player_heroes": {"<u>": {"id": "12", "attack": "..", "health": ".."}},
      "logs": ["<attack log JSON string>", ...],              # LRANGE games:<t>:logs 0 -1
      "stream": ["<attack log JSON string>", ...],            # the listener's attack stream
      "stream_same_as_logs": false,  # true: the stream equals "logs" (then stored once, "stream" {})
      "heroes": {"12": "<hero JSON string from the superheros hash>"}
    }

Version 2 added ``stream``: both copies of the log are kept as seen (the evidence), and
:func:`parse_snapshot` decides which one the game's rows come from (``GameSnapshot.log_source``:
``list``, ``stream`` or ``none``; rules in :mod:`superhero_dagster.game_log`), so the decision is
one pure function that a re-materialization re-applies. Version 1 (no ``stream``) is still read:
its list is the only copy.

The capture script is Lua, whose cjson encodes an empty array as ``{}``: readers must accept ``{}``
where a list is expected (and ``[]`` where an empty object is). A player whose hero hash is missing
appears as ``{}`` in ``player_heroes`` and a hero id absent from the roster hash as ``null`` in
``heroes``: the parser drops both, and the asset checks report the player without a known hero.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from types import MappingProxyType
from typing import Any

from superhero_dagster import game_log

#: The layout the capture script writes; READABLE_VERSIONS are the ones this parser understands.
SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
#: Bound on every parsed integer: JSON-safe, and sums of many of them still fit Arrow's int64.
_MAX_INT = 2**53
#: Error messages quote at most this much of an offending value (a hostile snapshot can be huge).
_QUOTE_CHARS = 60
#: ASCII digits only (str.isdigit also accepts other scripts' digits), at most 16 of them.
_DIGITS = re.compile(r"[0-9]{1,16}")


class SnapshotError(ValueError):
    """A snapshot that cannot be trusted; the message names the game token and the field.

    The run that meets one fails with this message, so whoever reads the UI learns which game and
    which field to look at without opening the document.
    """

    def __init__(self, token: str, field: str, reason: str) -> None:
        self.token = token
        self.field = field
        self.reason = reason
        super().__init__(f"game {token}: field {field}: {reason}")


@dataclass(frozen=True)
class Attack:
    """One entry of ``games:<t>:logs``, typed."""

    timestamp: str
    attacker: str
    victim: str
    damage: int
    prior: int
    post: int


@dataclass(frozen=True)
class PlayerHero:
    """``games:<t>:superheros:<u>``: the hero a player fights with, health as captured (current)."""

    hero_id: int
    attack: int
    health: int


@dataclass(frozen=True)
class GameSnapshot:
    """A parsed, type-checked snapshot. Sets (players, hero ids) are sorted so parsing is stable."""

    token: str
    status: str | None
    participants: int | None
    host: str | None
    players: tuple[str, ...]
    order: tuple[str, ...]
    hero_ids: tuple[int, ...]
    player_heroes: Mapping[str, PlayerHero]
    attacks: tuple[Attack, ...]
    heroes: Mapping[int, Mapping[str, Any]]
    captured_at: str
    captured_by: str
    trigger: str
    message_timestamp: str | None
    schema: int = SCHEMA_VERSION
    list_attacks: tuple[Attack, ...] = ()
    stream_attacks: tuple[Attack, ...] = ()
    log_source: game_log.LogSource = "list"
    list_walk: game_log.Walk | None = None
    stream_walk: game_log.Walk | None = None

    @property
    def walk(self) -> game_log.Walk | None:
        """The walk of the log the rows come from (``attacks``); None when no log was chosen."""
        return {"list": self.list_walk, "stream": self.stream_walk}.get(self.log_source)


def _quote(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _QUOTE_CHARS else text[: _QUOTE_CHARS - 3] + "..."


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    return None


class _Reader:
    """Type checks that know which game they are reading, so every error names game and field."""

    def __init__(self, token: str) -> None:
        self.token = token

    def fail(self, field: str, reason: str) -> SnapshotError:
        return SnapshotError(self.token, field, reason)

    def get(self, doc: Mapping[str, Any], key: str, field: str) -> Any:
        if key not in doc:
            raise self.fail(field, "missing")
        return doc[key]

    def obj(self, value: Any, field: str) -> Mapping[str, Any]:
        # Lua-cjson cannot tell an empty object from an empty array: accept [] for an empty map.
        if isinstance(value, list) and not value:
            return {}
        if not isinstance(value, dict):
            raise self.fail(field, f"expected an object, got {_quote(value)}")
        return value

    def array(self, value: Any, field: str) -> list[Any]:
        # Lua-cjson encodes an empty table as {}: an empty object stands for an empty list.
        if isinstance(value, dict) and not value:
            return []
        if not isinstance(value, list):
            raise self.fail(field, f"expected a list, got {_quote(value)}")
        return value

    def text(self, value: Any, field: str) -> str:
        if not isinstance(value, str):
            raise self.fail(field, f"expected a string, got {_quote(value)}")
        return value

    def opt_text(self, value: Any, field: str) -> str | None:
        return None if value is None else self.text(value, field)

    def integer(self, value: Any, field: str) -> int:
        """Redis hands back strings ("12"), JSON gives ints, cjson may give 1e+14: accept all three."""
        number = _as_int(value)
        if number is None:
            raise self.fail(field, f"expected an integer, got {_quote(value)}")
        if not 0 <= number <= _MAX_INT:
            raise self.fail(field, f"expected an integer in 0..2**53, got {number}")
        return number

    def opt_integer(self, value: Any, field: str) -> int | None:
        return None if value is None else self.integer(value, field)

    def timestamp(self, value: Any, field: str) -> str:
        text = self.text(value, field)
        try:
            datetime.fromisoformat(text)
        except ValueError:
            raise self.fail(field, f"expected an ISO 8601 timestamp, got {_quote(text)}") from None
        return text

    def embedded_json(self, value: Any, field: str) -> Any:
        """Logs and heroes are JSON strings inside the snapshot; an already-decoded object is fine."""
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError as exc:
                raise self.fail(field, f"not valid JSON ({exc.msg})") from None
            except RecursionError:
                raise self.fail(field, "nested too deeply") from None
        return value


def _attack(rd: _Reader, raw: Any, field: str) -> Attack:
    entry = rd.obj(rd.embedded_json(raw, field), field)
    payload = rd.obj(rd.get(entry, "PAYLOAD", f"{field}.PAYLOAD"), f"{field}.PAYLOAD")
    status = rd.obj(rd.get(entry, "STATUS", f"{field}.STATUS"), f"{field}.STATUS")
    game = rd.text(
        rd.get(payload, "GAME_TOKEN", f"{field}.PAYLOAD.GAME_TOKEN"), f"{field}.PAYLOAD.GAME_TOKEN"
    )
    if game != rd.token:
        raise rd.fail(f"{field}.PAYLOAD.GAME_TOKEN", f"attack of another game {_quote(game)}")
    action = rd.get(status, "ACTION", f"{field}.STATUS.ACTION")
    if action != "ATTACK":
        raise rd.fail(f"{field}.STATUS.ACTION", f"expected 'ATTACK', got {_quote(action)}")
    where = f"{field}.STATUS.DETAILS"
    details = rd.obj(rd.get(status, "DETAILS", where), where)

    def num(key: str) -> int:
        return rd.integer(rd.get(details, key, f"{where}.{key}"), f"{where}.{key}")

    return Attack(
        timestamp=rd.timestamp(
            rd.get(entry, "TIMESTAMP", f"{field}.TIMESTAMP"), f"{field}.TIMESTAMP"
        ),
        attacker=rd.text(
            rd.get(payload, "USER_TOKEN", f"{field}.PAYLOAD.USER_TOKEN"),
            f"{field}.PAYLOAD.USER_TOKEN",
        ),
        victim=rd.text(
            rd.get(details, "ENEMY_TOKEN", f"{where}.ENEMY_TOKEN"), f"{where}.ENEMY_TOKEN"
        ),
        damage=num("ENEMY_DAMAGE"),
        prior=num("ENEMY_HEALTH_PRIOR"),
        post=num("ENEMY_HEALTH_POST"),
    )


def parse_entry(raw: str | bytes, token: str, field: str = "entry") -> Attack:
    """One attack log entry of game ``token``, checked exactly as a snapshot's entries are (the
    listener refuses stream messages this parser would refuse later), or raise SnapshotError."""
    return _attack(_Reader(token), raw, field)


def _player_hero(rd: _Reader, raw: Any, field: str) -> PlayerHero:
    hero = rd.obj(raw, field)
    return PlayerHero(
        hero_id=rd.integer(rd.get(hero, "id", f"{field}.id"), f"{field}.id"),
        attack=rd.integer(rd.get(hero, "attack", f"{field}.attack"), f"{field}.attack"),
        health=rd.integer(rd.get(hero, "health", f"{field}.health"), f"{field}.health"),
    )


def _hero(rd: _Reader, raw: Any, field: str) -> Mapping[str, Any]:
    hero = rd.obj(rd.embedded_json(raw, field), field)
    if "name" in hero:
        rd.text(hero["name"], f"{field}.name")
    return MappingProxyType(hero)


def _load(doc: bytes | str | Mapping[str, Any], token: str) -> Mapping[str, Any]:
    if isinstance(doc, Mapping):
        return doc
    try:
        loaded = json.loads(doc)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SnapshotError(token, "<document>", f"not valid JSON ({exc})") from None
    except RecursionError:
        raise SnapshotError(token, "<document>", "nested too deeply") from None
    if not isinstance(loaded, dict):
        raise SnapshotError(token, "<document>", f"expected an object, got {_quote(loaded)}")
    return loaded


def parse_snapshot(
    doc: bytes | str | Mapping[str, Any], *, expected_token: str | None = None
) -> GameSnapshot:
    """Check every field of a schema-1 or -2 snapshot and return it typed (with the log chosen:
    ``attacks``, ``log_source``), or raise SnapshotError.

    ``expected_token`` is the partition key: a snapshot stored under one game but describing another
    is refused rather than written under the wrong name.
    """
    data = _load(doc, expected_token or "<unknown>")
    raw_token = data.get("game_token")
    label = expected_token or (raw_token if isinstance(raw_token, str) else "<unknown>")
    rd = _Reader(label if label.isprintable() and len(label) <= _QUOTE_CHARS else _quote(label))
    schema = data.get("schema")
    if isinstance(schema, bool) or schema not in READABLE_VERSIONS:
        raise rd.fail("schema", f"expected one of {READABLE_VERSIONS}, got {_quote(schema)}")
    token = rd.text(rd.get(data, "game_token", "game_token"), "game_token")
    if expected_token is not None and token != expected_token:
        raise rd.fail("game_token", f"snapshot describes game {_quote(token)}")

    def field(key: str) -> Any:
        return rd.get(data, key, key)

    players = rd.array(field("players"), "players")
    order = rd.array(field("order"), "order")
    hero_ids = rd.array(field("superheros"), "superheros")
    player_heroes = rd.obj(field("player_heroes"), "player_heroes")
    logs = rd.array(field("logs"), "logs")
    stream = rd.array(field("stream"), "stream") if schema >= 2 else []
    if data.get("stream_same_as_logs") is True:
        if stream:
            raise rd.fail("stream", "must be empty when stream_same_as_logs is true")
        stream = logs
    heroes = rd.obj(field("heroes"), "heroes")
    message_ts = field("message_timestamp")
    parsed_heroes = [
        (rd.integer(k, f"heroes[{k}]"), _hero(rd, v, f"heroes[{k}]"))
        for k, v in heroes.items()
        if v is not None  # HMGET of an id missing from the roster; the checks report it
    ]
    snap = GameSnapshot(
        token=token,
        status=rd.opt_text(field("status"), "status"),
        participants=rd.opt_integer(field("participants"), "participants"),
        host=rd.opt_text(field("host"), "host"),
        players=tuple(sorted(rd.text(u, f"players[{i}]") for i, u in enumerate(players))),
        order=tuple(rd.text(u, f"order[{i}]") for i, u in enumerate(order)),
        hero_ids=tuple(sorted(rd.integer(h, f"superheros[{i}]") for i, h in enumerate(hero_ids))),
        player_heroes=MappingProxyType(
            {
                u: _player_hero(rd, h, f"player_heroes[{u}]")
                for u, h in sorted(player_heroes.items())
                if h not in ({}, [])  # HGETALL of a missing hash: a player without a hero yet
            }
        ),
        attacks=(),
        heroes=MappingProxyType(dict(sorted(parsed_heroes, key=lambda pair: pair[0]))),
        captured_at=rd.timestamp(field("captured_at"), "captured_at"),
        captured_by=rd.text(field("captured_by"), "captured_by"),
        trigger=rd.text(field("trigger"), "trigger"),
        message_timestamp=None
        if message_ts is None
        else rd.timestamp(message_ts, "message_timestamp"),
        schema=schema,
    )
    list_attacks = tuple(_attack(rd, entry, f"logs[{i}]") for i, entry in enumerate(logs))
    # The stream usually equals the list (same strings): parse each distinct entry once.
    parsed = dict(zip(logs, list_attacks, strict=True)) if stream else {}
    stream_attacks = tuple(
        parsed[e] if isinstance(e, str) and e in parsed else _attack(rd, e, f"stream[{i}]")
        for i, e in enumerate(stream)
    )
    return _with_log(snap, list_attacks, stream_attacks)


def _with_log(
    snap: GameSnapshot, list_attacks: tuple[Attack, ...], stream_attacks: tuple[Attack, ...]
) -> GameSnapshot:
    """Walk both copies and keep the chosen one as ``attacks`` (rules: game_log)."""
    known = set(snap.players) | set(snap.order) | set(snap.player_heroes)
    initial = {}
    for user, hero in snap.player_heroes.items():
        health = game_log.initial_health(snap.heroes.get(hero.hero_id))
        if health is not None:
            initial[user] = health

    def walk(entries: tuple[Attack, ...]) -> game_log.Walk:
        users = known | {e.attacker for e in entries} | {e.victim for e in entries}
        return game_log.walk(entries, users, initial)

    list_walk, stream_walk = walk(list_attacks), walk(stream_attacks)
    source = game_log.choose(list_walk, stream_walk)
    chosen = {"list": list_attacks, "stream": stream_attacks}.get(source, ())
    return replace(
        snap,
        attacks=chosen,
        list_attacks=list_attacks,
        stream_attacks=stream_attacks,
        log_source=source,
        list_walk=list_walk,
        stream_walk=stream_walk,
    )
