"""decode(): every wire format accepted, every hostile payload a reason (never an exception)."""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from superhero_dagster.keys import CLEANING_MESSAGE
from superhero_dagster.listener.decode import Message, Rejected, deadletter_json, decode
from tests.listener_helpers import cleaning

T, U = str(uuid.uuid4()), str(uuid.uuid4())
MAX = 65536


@pytest.mark.parametrize("wire", ["original", "plain"])
def test_both_wire_formats(wire: str) -> None:
    msg = decode(cleaning(T, U, wire=wire).encode(), MAX)
    assert msg == Message(CLEANING_MESSAGE, True, T, U, "2023-07-25T10:00:03.123456")


def test_task_as_json_string_is_accepted() -> None:
    record = {
        "log_message": CLEANING_MESSAGE,
        "task": json.dumps({"game_token": T, "user_token": U}),
    }
    msg = decode(json.dumps(json.dumps(record)).encode(), MAX)
    assert isinstance(msg, Message) and msg.game_token == T and msg.timestamp is None


def test_other_records_are_ignored_not_rejected() -> None:
    record = {"log_message": "Attack Completed", "task": "not even json"}
    msg = decode(json.dumps(json.dumps(record)).encode(), MAX)
    assert isinstance(msg, Message) and not msg.cleaning and msg.game_token is None


def _cleaning_with(task: object, **top: object) -> bytes:
    return json.dumps({"log_message": CLEANING_MESSAGE, "task": task, **top}).encode()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json at all", "not JSON"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b"[1, 2, 3]", "not a JSON object"),
        (json.dumps("just a string").encode(), "not JSON"),
        (b"{}", "'log_message' missing"),
        (json.dumps({"log_message": 7}).encode(), "'log_message' missing or not a string"),
        (_cleaning_with(None), "'task' missing"),
        (_cleaning_with([T, U]), "'task' missing or not an object"),
        (_cleaning_with("{broken"), "'task' is a string but not JSON"),
        (_cleaning_with({"user_token": U}), "'task.game_token' missing"),
        (_cleaning_with({"game_token": 12345, "user_token": U}), "not a string"),
        (_cleaning_with({"game_token": "../../etc/passwd", "user_token": U}), "not a UUID"),
        (_cleaning_with({"game_token": "games:*", "user_token": U}), "not a UUID"),
        (_cleaning_with({"game_token": T + "\n", "user_token": U}), "not a UUID"),
        (_cleaning_with({"game_token": T}), "'task.user_token' missing"),
        (_cleaning_with({"game_token": T, "user_token": U}, timestamp=5), "'timestamp'"),
        (b"[" * 50_000 + b"]" * 50_000, "too large"),
        (b"[" * 30_000 + b"]" * 30_000, "not JSON"),
        (b'"\\ud800"', "not JSON"),
    ],
)
def test_hostile_payloads_are_reasons(raw: bytes, reason: str) -> None:
    result = decode(raw, MAX)
    assert isinstance(result, Rejected), result
    assert reason in result.reason


def test_size_limit_is_the_setting() -> None:
    raw = cleaning(T, U).encode()
    assert isinstance(decode(raw, len(raw)), Message)
    assert isinstance(decode(raw, len(raw) - 1), Rejected)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    assert isinstance(decode(raw, MAX), Message | Rejected)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
        max_leaves=20,
    )
)
def test_arbitrary_json_never_raises(value: object) -> None:
    for raw in (json.dumps(value), json.dumps(json.dumps(value))):
        result = decode(raw.encode(), MAX)
        if isinstance(result, Message) and result.cleaning:
            assert result.game_token == str(uuid.UUID(result.game_token))


def test_uppercase_token_is_refused_one_game_one_name() -> None:
    assert isinstance(decode(cleaning(T.upper(), U).encode(), MAX), Rejected)


def test_deadletter_raw_is_truncated_and_repr_safe() -> None:
    entry = json.loads(deadletter_json("r", "é" * 1000, at="now", listener="l"))
    assert entry["raw"] == "é" * 512 + "…"  # cut on characters, not in the middle of one
    binary = json.loads(deadletter_json("r", b"\xff" * 600, at="now", listener="l"))["raw"]
    assert binary.startswith("b'\\xff") and binary.endswith("…")
    assert set(entry) == {"reason", "raw", "at", "listener"}


def test_attack_fast_path_and_full_parser_agree() -> None:
    """The regex fast path for the original's own layout accepts exactly what the snapshot's
    entry parser accepts (a variant it does not match takes the full parser, same verdict)."""
    import json as _json

    from superhero_dagster.listener.decode import AttackEntry, _canonical_entry, decode_game
    from tests.stream_helpers import attack_payload

    game = "d0000000-0000-4000-8000-00000000000d"

    def entry(**details: object) -> dict:
        base = {
            "ENEMY_TOKEN": "v",
            "ENEMY_DAMAGE": 5,
            "ENEMY_HEALTH_PRIOR": 9,
            "ENEMY_HEALTH_POST": 4,
        }
        base.update(details)
        return {
            "TIMESTAMP": "2023-07-25T10:00:00Z",
            "PAYLOAD": {"GAME_TOKEN": game, "USER_TOKEN": "a"},
            "STATUS": {"ACTION": "ATTACK", "DETAILS": base},
        }

    canonical = _json.dumps(entry())
    assert _canonical_entry(canonical) == AttackEntry(game, canonical)
    variants = [
        canonical,
        _json.dumps(entry(), separators=(",", ":")),  # compact: full parser, still fine
        _json.dumps(entry(ENEMY_DAMAGE=2**53)),
        _json.dumps(entry(ENEMY_DAMAGE=2**53 + 1)),  # out of range: both refuse
        canonical.replace("2023-07-25T10:00:00Z", "2023-13-45T10:00:00Z"),
        canonical.replace('"a"', '"a\\"b"'),  # an escaped quote in a token text
        canonical.replace("ATTACK", "attack"),
    ]
    verdicts = []
    for text in variants:
        fast = _canonical_entry(text)
        full = decode_game(attack_payload(text), 65536)
        if fast is not None:
            assert fast == full
        verdicts.append(isinstance(full, AttackEntry))
    assert verdicts == [True, True, True, False, False, True, False]
