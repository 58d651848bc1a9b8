"""Connecting to Redis with errors a user can act on (the URL shown without its password)."""

from __future__ import annotations

import redis

from superhero_dagster.settings import redact_url


class RedisUnavailable(ConnectionError):
    """The configured Redis server cannot be reached or refused us."""


def connect(url: str, *, decode_responses: bool = False, timeout: float = 5.0) -> redis.Redis:
    """A client for ``url`` that has answered PING, or :class:`RedisUnavailable` naming the URL."""
    client = redis.Redis.from_url(
        url,
        decode_responses=decode_responses,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        health_check_interval=30,
    )
    try:
        client.ping()
    except redis.AuthenticationError:
        client.close()
        raise RedisUnavailable(f"Redis at {redact_url(url)} refused the credentials") from None
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        client.close()
        reason = (
            str(exc).replace(url, redact_url(url)).splitlines()[0]
            if str(exc)
            else type(exc).__name__
        )
        raise RedisUnavailable(f"cannot reach Redis at {redact_url(url)}: {reason}") from None
    return client


def reply_text(value: object) -> str:
    """A Redis reply as text, whether the client decodes responses or not (bytes are UTF-8;
    anything undecodable is replaced rather than raised, since replies may hold hostile data)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
