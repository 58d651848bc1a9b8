"""What a game's 'Cleaning Game Records' does to its keys: the original's worker, or expiry only.

``original`` (the default) is the original clean-up worker as read from its code and seen against
the running original (SYSTEM.md): on the *host's* message it deletes ``games:<t>:logs`` at once,
removes the game from ``games:participants`` and ``games:players:<P>``, and sets the expiry on
the other keys. The simulator sends these commands in the same round trip, right after the host's
PUBLISH, so a consumer that reads the list when it receives that message loses the race (as it
does against a fast worker); the attack log then survives only on pub/sub ('Attack Completed').

``expire`` is the earlier, gentler model: nothing is deleted, every game key expires after
``expire_after`` (0 = never), after all of the game's messages.
"""

from __future__ import annotations

from superhero_dagster import keys

ORIGINAL = "original"
EXPIRE = "expire"
CLEANUP_MODES = (ORIGINAL, EXPIRE)


def on_host_cleaning(
    mode: str, token: str, participants: int, users: list[str], expire_ms: int
) -> list[tuple[str, ...]]:
    """The worker's commands right after the host's message (none in ``expire`` mode)."""
    if mode != ORIGINAL:
        return []
    logs = keys.game_logs(token)
    out: list[tuple[str, ...]] = [
        ("DEL", logs),
        ("ZREM", keys.GAMES_PARTICIPANTS, token),
        ("LREM", keys.games_players(participants), "0", token),
    ]
    if expire_ms > 0:
        ms = str(expire_ms)
        out.extend(("PEXPIRE", key, ms) for key in keys.game_keys(token, users) if key != logs)
    return out


def after_all_cleaning(
    mode: str, token: str, users: list[str], expire_ms: int
) -> list[tuple[str, ...]]:
    """The ``expire`` mode's commands, after every Cleaning message (none in ``original`` mode)."""
    if mode != EXPIRE or expire_ms <= 0:
        return []
    return [("PEXPIRE", key, str(expire_ms)) for key in keys.game_keys(token, users)]
