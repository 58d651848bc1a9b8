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
