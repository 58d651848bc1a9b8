"""Pub/sub listener: turns the seed's at-most-once broadcast into an exactly-once buffer.

Modules: ``decode`` (payload -> message or reason), ``capture`` (+ ``capture.lua``: gate,
snapshot and buffer push in one atomic script), ``attack_stream`` (+ ``attack_stream.lua``: each
game's 'Attack Completed' entries kept once, in order, the copy of the log that survives the
clean-up worker), ``reconcile`` (safety net for missed messages; seeds the streams of games in
play), ``service`` (the loop), ``status`` and ``command`` (CLI).
"""
