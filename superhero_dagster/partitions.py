"""The ``games`` dynamic partitions: one partition per captured game, keyed by its token."""

from __future__ import annotations

import dagster as dg

GAMES_PARTITIONS_NAME = "games"

#: Owned here so the sensor, the assets and the retention job agree on one definition.
games_partitions = dg.DynamicPartitionsDefinition(name=GAMES_PARTITIONS_NAME)
