"""Baseline (a): the seed's design, a plain pub/sub subscriber doing all the work per game.

It decodes each message, and for the first 'Cleaning' of a game reads the game's state, computes
metadata and podium with the same pure functions as the assets, and writes the raw snapshot and
both sinks, all in one Python process. No orchestrator, no durability: what the pipeline must not
be much slower than. (It reads state through the listener's capture script, i.e. the same one
round trip the pipeline pays, then GETs the snapshot.)
"""

from __future__ import annotations

import signal
import sys
import threading

from superhero_dagster import games
from superhero_dagster.keys import ProjectKeys
from superhero_dagster.listener.capture import capture_game, load_script
from superhero_dagster.listener.decode import Message, decode
from superhero_dagster.redis_client import connect
from superhero_dagster.settings import Settings
from superhero_dagster.sinks import GAME_METADATA, GAME_PODIUM, SinkRoot
from superhero_dagster.snapshot import parse_snapshot


def main() -> None:
    settings = Settings.from_env()
    assert settings.redis_url
    client = connect(settings.redis_url)
    load_script(client)
    keys = ProjectKeys(settings.namespace)
    sink = SinkRoot(settings.data_dir)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(*settings.channels)
    print("subscribed", flush=True)
    seen: set[str] = set()
    while not stop.is_set():
        msg = pubsub.get_message(timeout=0.2)
        if msg is None:
            continue
        decoded = decode(msg["data"], settings.max_payload_bytes)
        if not isinstance(decoded, Message) or not decoded.cleaning or not decoded.game_token:
            continue
        token = decoded.game_token
        if token in seen:
            continue
        seen.add(token)
        capture_game(
            client,
            keys,
            token,
            listener_id="plain-subscriber",
            trigger="message",
            message_timestamp=decoded.timestamp,
            seen_ttl=settings.seen_ttl_seconds,
        )
        raw = client.get(keys.snapshot(token))
        snap = parse_snapshot(raw, expected_token=token)
        sink.write_raw_snapshot(token, raw)
        sink.write_rows(GAME_METADATA, token, games.metadata_rows(snap))
        sink.write_rows(GAME_PODIUM, token, games.podium_rows(snap))
    sys.exit(0)


if __name__ == "__main__":
    main()
