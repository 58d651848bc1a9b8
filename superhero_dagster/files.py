"""Writing a file so that readers see the old version or the new one, never half of either."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def atomic_write(path: Path, data: bytes, *, fsync: bool = True, mode: int = 0o666) -> None:
    """Temp file in the same folder, then rename: a crash leaves at most a hidden
    ``.<name>.<hex>.tmp`` behind, never a half-written file. ``mode`` (before the umask) is for
    files that may hold secrets, e.g. a dagster.yaml with a Postgres password (0o600)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
