"""Turn one pub/sub payload into a typed message or a reason to reject it (pure, no I/O).

Why so defensive: the channel is open to anyone who can PUBLISH, and the original publisher has
quirks (payload JSON-encoded twice; ``task`` an object for 'Cleaning Game Records' but a JSON
string for other records). Errors are values here so the listener loop never sees an exception.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from superhero_dagster.keys import (
    ATTACK_MESSAGE,
    CLEANING_MESSAGE,
    DEAD_ENEMY_MESSAGE,
    TOKEN_PATTERN,
    is_token,
)
from superhero_dagster.snapshot import SnapshotError, parse_entry

#: A canonical UUID string, lowercase (what ``str(uuid.uuid4())`` prints; the same rule as
#: ``sinks.validate_token``: one game, one name). Anything else, e.g. ``../../etc/passwd``, a glob
#: or an uppercase variant, must never reach a Redis key name or a file name.


@dataclass(frozen=True, slots=True)
class Message:
    """A well-formed log record. Only ``cleaning`` records carry validated tokens."""

    log_message: str
    cleaning: bool
    game_token: str | None = None
    user_token: str | None = None
    timestamp: str | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why a payload was refused (goes to the dead-letter list verbatim)."""

    reason: str


#: Bytes of a rejected payload kept in its dead letter.
RAW_MAX = 512


def raw_for_deadletter(raw: object) -> str:
    """Truncated payload that is always valid JSON text (non-UTF-8 bytes shown as a repr)."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    if not isinstance(raw, bytes):
        return repr(raw)[:RAW_MAX]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return repr(raw[:RAW_MAX]) + ("…" if len(raw) > RAW_MAX else "")
    return text[:RAW_MAX] + ("…" if len(text) > RAW_MAX else "")


def deadletter_json(reason: str, raw: object, *, at: str, listener: str) -> str:
    """One dead-letter entry: {reason, raw (truncated, repr-safe), at, listener}."""
    return json.dumps(
        {"reason": reason, "raw": raw_for_deadletter(raw), "at": at, "listener": listener}
    )


def _loads(raw: str) -> object:
    """JSON, tolerating the original's double encoding (a JSON string holding the JSON)."""
    value = json.loads(raw)
    if isinstance(value, str):
        value = json.loads(value)
    return value


def _record(raw: bytes | str, max_bytes: int) -> tuple[dict[str, Any], str] | Rejected:
    """The envelope checks every record passes: size, UTF-8, JSON object, ``log_message``."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    if len(raw) > max_bytes:
        return Rejected(f"payload too large: {len(raw)} bytes > {max_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejected(f"not UTF-8: {exc.reason} at byte {exc.start}")
    try:
        record = _loads(text)
    except RecursionError:
        return Rejected("not JSON: nested too deeply")
    except ValueError as exc:  # JSONDecodeError, and also lone-surrogate / huge-int errors
        return Rejected(f"not JSON: {str(exc)[:120]}")
    if not isinstance(record, dict):
        return Rejected(f"not a JSON object: {type(record).__name__}")
    log_message = record.get("log_message")
    if not isinstance(log_message, str):
        return Rejected("field 'log_message' missing or not a string")
    return record, log_message


def decode(raw: bytes | str, max_bytes: int) -> Message | Rejected:
    """Decode a lobby-channel payload; never raises.

    Non-'Cleaning' records are returned as ``Message(cleaning=False)`` after only the checks that
    make them records at all (the listener counts them as ignored), so a malformed ``task`` in a
    record we do not act on is not a dead letter.
    """
    got = _record(raw, max_bytes)
    if isinstance(got, Rejected):
        return got
    record, log_message = got
    if log_message != CLEANING_MESSAGE:
        return Message(log_message=log_message, cleaning=False)
    return _cleaning(record, log_message)


#: The entry exactly as the original writes it (``json.dumps`` of SYSTEM.md's object). Strings
#: without escapes or control characters, integers without leading zeros: every text this matches
#: is JSON that ``parse_entry`` accepts once the numbers' range and the timestamp are checked.
_STR = r'"([^"\\\x00-\x1f]{1,100})"'
_INT = r"(0|[1-9][0-9]{0,15})"
_CANONICAL = re.compile(
    rf'\{{"TIMESTAMP": {_STR}, "PAYLOAD": \{{"GAME_TOKEN": "({TOKEN_PATTERN.pattern})", '
    rf'"USER_TOKEN": {_STR}\}}, "STATUS": \{{"ACTION": "ATTACK", "DETAILS": \{{"ENEMY_TOKEN": '
    rf'{_STR}, "ENEMY_DAMAGE": {_INT}, "ENEMY_HEALTH_PRIOR": {_INT}, "ENEMY_HEALTH_POST": '
    rf"{_INT}\}}\}}\}}"
)
_MAX_INT = 2**53


def _canonical_entry(task: str) -> AttackEntry | None:
    """Fast path for the original's own layout (no JSON decoding, ~5x cheaper); None sends the
    entry through the full parser, which gives the same verdict with a reason."""
    m = _CANONICAL.fullmatch(task)
    if m is None or any(int(m.group(i)) > _MAX_INT for i in (5, 6, 7)):
        return None
    try:
        datetime.fromisoformat(m.group(1))
    except ValueError:
        return None
    return AttackEntry(m.group(2), task)


@dataclass(frozen=True, slots=True)
class AttackEntry:
    """An 'Attack Completed' record: ``entry`` is the log entry text, exactly as the list holds it."""

    game_token: str
    entry: str


#: What a game-channel payload is: an attack, a turn at a dead enemy (counted, not a log entry),
#: another record (ignored), or a reason to refuse it.
GameRecord = AttackEntry | Literal["dead_enemy", "ignored"] | Rejected


def decode_game(raw: bytes | str, max_bytes: int) -> GameRecord:
    """Decode a game-channel payload; never raises.

    An 'Attack Completed' entry is checked with the snapshot's own entry parser, so nothing the
    stream stores can make the game's snapshot unreadable later.
    """
    got = _record(raw, max_bytes)
    if isinstance(got, Rejected):
        return got
    record, log_message = got
    if log_message == DEAD_ENEMY_MESSAGE:
        return "dead_enemy"
    if log_message != ATTACK_MESSAGE:
        return "ignored"
    task = record.get("task")
    if isinstance(task, dict):  # not the original's wire form; the list holds json.dumps of it
        task = json.dumps(task)
    if not isinstance(task, str):
        return Rejected("'Attack Completed': field 'task' missing or not a JSON string")
    fast = _canonical_entry(task)
    if fast is not None:
        return fast
    try:
        entry = json.loads(task)
    except (ValueError, RecursionError):
        return Rejected("'Attack Completed': field 'task' is not JSON")
    payload = entry.get("PAYLOAD") if isinstance(entry, dict) else None
    token = payload.get("GAME_TOKEN") if isinstance(payload, dict) else None
    if not is_token(token):
        return Rejected(f"'Attack Completed': no game token (UUID) in task.PAYLOAD: {task[:80]!r}")
    try:
        parse_entry(entry, token, "task")
    except SnapshotError as exc:
        return Rejected(f"'Attack Completed': field {exc.field}: {exc.reason}")
    return AttackEntry(token, task)


def _cleaning(record: dict[str, object], log_message: str) -> Message | Rejected:
    task = record.get("task")
    if isinstance(task, str):  # the original sends a JSON string for most records; accept both
        try:
            task = json.loads(task)
        except (ValueError, RecursionError):
            return Rejected("field 'task' is a string but not JSON")
    if not isinstance(task, dict):
        return Rejected("field 'task' missing or not an object")
    game_token = task.get("game_token")
    if not isinstance(game_token, str):
        return Rejected("field 'task.game_token' missing or not a string")
    if not is_token(game_token):
        return Rejected(f"field 'task.game_token' is not a UUID: {game_token[:80]!r}")
    user_token = task.get("user_token")
    if not isinstance(user_token, str):
        return Rejected("field 'task.user_token' missing or not a string")
    if not is_token(user_token):
        return Rejected(f"field 'task.user_token' is not a UUID: {user_token[:80]!r}")
    timestamp = record.get("timestamp")
    if timestamp is not None and not isinstance(timestamp, str):
        return Rejected("field 'timestamp' is not a string")
    return Message(
        log_message=log_message,
        cleaning=True,
        game_token=game_token,
        user_token=user_token,
        timestamp=timestamp[:64] if timestamp else None,
    )
