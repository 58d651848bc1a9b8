"""Reading and acknowledging the listener's buffer from the sensor's side.

The buffer is a Redis list: listeners RPUSH at the tail, only the sensor removes from the head.
A span of the head is removed only once a committed tick (or a launched run) accounts for it, and
only if the element at its last position is the one we expect, so replaying an acknowledgement
after a crash can never drop a game that was not requested.
"""

from __future__ import annotations

import redis

from superhero_dagster.redis_client import reply_text

# KEYS[1] = buffer; ARGV[1] = span length; ARGV[2] = expected head; ARGV[3] = expected element at span-1.
_TRIM_IF_TAIL_MATCHES = """
local span = tonumber(ARGV[1])
if redis.call('LINDEX', KEYS[1], 0) == ARGV[2] and redis.call('LINDEX', KEYS[1], span - 1) == ARGV[3] then
  redis.call('LTRIM', KEYS[1], span, -1)
  return 1
end
return 0
"""


class BufferReader:
    """The sensor's view of the buffer list."""

    def __init__(self, client: redis.Redis, buffer_key: str) -> None:
        self._client = client
        self._key = buffer_key
        self._trim = client.register_script(_TRIM_IF_TAIL_MATCHES)

    def head(self) -> str | None:
        value = self._client.lindex(self._key, 0)
        return None if value is None else reply_text(value)

    def peek(self, count: int) -> list[str]:
        """The oldest ``count`` entries, without removing them."""
        return [reply_text(v) for v in self._client.lrange(self._key, 0, count - 1)]

    def ack(self, span: int, head: str, last: str) -> bool:
        """Remove the first ``span`` entries if they start with ``head`` and end with ``last``.

        Tokens are unique in the buffer (the listener's gate), so a span that was already removed
        can never match again: acknowledging twice is harmless.
        """
        return bool(self._trim(keys=[self._key], args=[span, head, last]))

    def depth(self) -> int:
        return int(self._client.llen(self._key))
