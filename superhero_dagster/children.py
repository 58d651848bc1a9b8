"""Child processes that never outlive the process that started them (Linux)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def die_with_parent_hook() -> Callable[[], object] | None:
    """A ``preexec_fn`` that makes the child get SIGTERM when its parent dies, even by SIGKILL.

    Children run in their own session (so stopping one reaches what it spawned); without this, a
    supervisor killed outright would leave them running. ``prctl`` is looked up here, in the
    parent, so the hook run between fork and exec only makes the system call.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    return lambda: prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Signal the child's whole process group; a group that is already gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
