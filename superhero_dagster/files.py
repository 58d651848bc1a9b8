"""Writing a file so that readers see the old version or the new one, never half of either."""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import itertools
import os
import secrets
import threading
import time
from pathlib import Path

WRITE_AREA = ".writing"
"""The sink's folder for files being written (see :class:`WriteArea`)."""

_PENDING_GRACE_S = 60.0
_AREAS: dict[Path, WriteArea] = {}
_AREAS_LOCK = threading.Lock()


def atomic_write(
    path: Path,
    data: bytes,
    *,
    fsync: bool = True,
    mode: int = 0o666,
    temp: Path | None = None,
) -> None:
    """Temp file, then rename: a crash never leaves a half-written file at ``path``. The temp
    file is ``temp`` (a :class:`WriteArea` name, on the same filesystem) or a hidden
    ``.<name>.<hex>.tmp`` next to ``path``. ``mode`` (before the umask) is for files that may hold
    secrets, e.g. a dagster.yaml with a Postgres password (0o600)."""
    tmp = temp or path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
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


def write_area(folder: Path) -> WriteArea:
    """The process's one :class:`WriteArea` for ``folder``: sink roots are built per run and per
    resource, and each area holds a lock file open, so areas are shared, not rebuilt."""
    with _AREAS_LOCK:
        area = _AREAS.get(folder)
        if area is None:
            area = _AREAS[folder] = WriteArea(folder)
        return area


class WriteArea:
    """One folder for the temp files of every process that writes a sink, so that a writer
    killed mid-write (``kill -9``, OOM) leaves nothing that lingers.

    Why not temp files next to their targets: a dead writer's ``.<name>.<hex>.tmp`` would only be
    found by scanning every folder, a cost that grows with history. Here each process claims an
    owner id by holding an ``flock`` on ``<id>.lock`` and names its temp files ``<id>.<n>.tmp``;
    the kernel drops the lock when the process dies, however it dies. A process sweeps the
    folder when it claims its id: files of owners whose lock it can take are a dead writer's, and
    go. The folder holds one lock per live writer plus what died since the last claim, so the
    sweep costs nothing that grows with the number of games. ``flock`` works across processes and
    containers sharing one filesystem (the compose volume); the folder sits inside the sink root
    so the final rename stays on one filesystem.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._owner: str | None = None
        self._pid = 0
        self._fd = -1
        self._counter = itertools.count(1)
        self._claiming = threading.Lock()

    def temp_path(self) -> Path:
        """A fresh temp file name, unique across processes and threads' calls."""
        if not self._claimed():
            with self._claiming:
                if not self._claimed():
                    self._claim()
        return self.folder / f"{self._owner}.{next(self._counter)}.tmp"

    def _claimed(self) -> bool:
        """False on first use, in a forked child, and when the lock file is gone (the folder
        deleted by hand while the process runs): then a sweeper would take our temp files."""
        return (
            self._owner is not None
            and self._pid == os.getpid()
            and os.path.exists(self.folder / f"{self._owner}.lock")
        )

    def _claim(self) -> None:
        if self._pid == os.getpid() and self._fd >= 0:
            os.close(self._fd)  # our old lock file was deleted under us
        self.folder.mkdir(parents=True, exist_ok=True)
        owner = secrets.token_hex(8)
        # Locked before it gets the name sweepers look at: a sweeper never sees a live owner's
        # lock file unlocked.
        pending = self.folder / f"{owner}.pending"
        fd = os.open(pending, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.replace(pending, self.folder / f"{owner}.lock")
        self._owner, self._pid, self._fd = owner, os.getpid(), fd
        atexit.register(self._release, owner, fd)
        self.sweep()

    def _release(self, owner: str, fd: int) -> None:
        """At a clean exit: nothing of ours is in flight, so our lock can go with us."""
        if os.getpid() != self._pid or owner != self._owner:
            return
        with contextlib.suppress(OSError):
            (self.folder / f"{owner}.lock").unlink()
        with contextlib.suppress(OSError):
            os.close(fd)

    def sweep(self) -> list[Path]:
        """Delete the files of dead owners; returns what went."""
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return []
        by_owner: dict[str, list[str]] = {}
        for name in names:
            by_owner.setdefault(name.split(".", 1)[0], []).append(name)
        gone: list[Path] = []
        for owner, files in by_owner.items():
            if owner == self._owner or not self._dead(owner, files):
                continue
            for name in sorted(files, key=lambda n: n.endswith(".lock")):  # the lock last
                path = self.folder / name
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    gone.append(path)
        return gone

    def _dead(self, owner: str, files: list[str]) -> bool:
        lock = self.folder / f"{owner}.lock"
        if f"{owner}.lock" not in files:
            pending = self.folder / f"{owner}.pending"
            if f"{owner}.pending" in files:  # died between creating and naming its lock, or
                with contextlib.suppress(FileNotFoundError):  # is doing that right now
                    return time.time() - pending.stat().st_mtime > _PENDING_GRACE_S
                return False
            return True  # temp files without any lock: their owner's lock was already swept
        try:
            fd = os.open(lock, os.O_RDWR)
        except FileNotFoundError:
            return False  # its owner exited cleanly just now, or another sweeper took it
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                return False
            raise
        finally:
            os.close(fd)  # closing drops the lock if we took it
        return True
