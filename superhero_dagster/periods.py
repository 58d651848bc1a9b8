"""Compaction periods (``SUPERHERO_COMPACTION_PERIOD``): partition keys and which period a moment
is in, shared by the game asset (which indexes each game under its period), the compaction, the
late-period sensor and retention, so they can never disagree on a key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import dagster as dg


@dataclass(frozen=True)
class Period:
    """The compaction period (``hour`` or ``day``): partition keys and the period of a moment."""

    unit: str

    def __post_init__(self) -> None:
        if self.unit not in ("hour", "day"):
            raise ValueError(f"compaction period must be 'hour' or 'day', got {self.unit!r}")

    @property
    def _format(self) -> str:
        return "%Y-%m-%d-%H:%M" if self.unit == "hour" else "%Y-%m-%d"

    @property
    def length(self) -> timedelta:
        return timedelta(hours=1) if self.unit == "hour" else timedelta(days=1)

    def key(self, moment: datetime) -> str:
        """The partition key of the period holding ``moment`` (naive = UTC)."""
        utc = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
        floor = utc.replace(minute=0, second=0, microsecond=0)
        if self.unit == "day":
            floor = floor.replace(hour=0)
        return floor.strftime(self._format)

    def parse(self, key: str) -> datetime | None:
        """Start of the period named ``key``; None for anything else (e.g. a hostile name)."""
        try:
            start = datetime.strptime(key, self._format).replace(tzinfo=UTC)
        except (TypeError, ValueError):
            return None
        return start if start.strftime(self._format) == key and self.key(start) == key else None

    def bounds(self, key: str) -> tuple[datetime, datetime]:
        start = self.parse(key)
        if start is None:
            raise ValueError(f"{key!r} is not a {self.unit} partition key")
        return start, start + self.length

    def partitions_def(self, start: date) -> dg.TimeWindowPartitionsDefinition:
        """Periods from ``start`` through the **current** one (``end_offset=1``): the current
        period is compacted while it runs (re-compacting merges, so each run only adds)."""
        if self.unit == "hour":
            return dg.HourlyPartitionsDefinition(
                start_date=f"{start.isoformat()}-00:00", timezone="UTC", end_offset=1
            )
        return dg.DailyPartitionsDefinition(
            start_date=start.isoformat(), timezone="UTC", end_offset=1
        )
