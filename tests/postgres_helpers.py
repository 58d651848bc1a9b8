"""A throwaway database on an existing PostgreSQL server (tests and benchmarks)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import psycopg2

#: The machine's server: 127.0.0.1:5432, user postgres, trust auth (see README, "make test").
LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432"


@contextlib.contextmanager
def throwaway_database(server: str = LOCAL_SERVER, prefix: str = "superhero_test") -> Iterator[str]:
    """Create a uniquely named database, yield its URL, drop it (even if still in use)."""
    admin = psycopg2.connect(f"{server}/postgres", connect_timeout=3)
    admin.autocommit = True
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield f"{server}/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
