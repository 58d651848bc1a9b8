"""Pub/sub listener: turns the seed's at-most-once broadcast into an exactly-once buffer.

Modules: ``decode`` (payload -> message or reason), ``capture`` (+ ``capture.lua``: gate,
snapshot and buffer push in one atomic script), ``reconcile`` (safety net for missed messages),
``service`` (the loop), ``status`` and ``command`` (CLI).
"""
