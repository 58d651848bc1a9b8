"""The captured game snapshot: the contract between the listener and the Dagster assets.

The listener's capture script writes one JSON document per game at ``ProjectKeys.snapshot(t)``
(no TTL); the ``game_snapshot`` asset persists it to ``raw/game_snapshot/<t>.json``; every
downstream asset reads only this document, never the simulator's keys (they expire 30 s after the
game ends).

Schema version 1 (values are kept exactly as Redis stored them, strings included, so a snapshot is
a faithful copy; parsing into typed values happens in :func:`parse_snapshot`)::

    {
      "schema": 1,
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
      "heroes": {"12": "<hero JSON string from the superheros hash>"}
    }

The capture script is Lua, whose cjson encodes an empty array as ``{}``: readers must accept ``{}``
where a list is expected.
"""
