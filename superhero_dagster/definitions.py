"""The code location: ``defs``, built when Dagster loads it (not at import time)."""

from __future__ import annotations

import dagster as dg

from superhero_dagster.assembly import build_definitions
from superhero_dagster.settings import Settings


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(Settings.from_env())
