"""The sinks' write area: a writer killed mid-write leaves nothing that lingers, a live writer's
temp files are never taken from it, and two writers of one file never see each other's half.

Writers are real processes killed with SIGKILL (the kernel drops their flock, as for a run worker
that is OOM-killed); nothing about locks is mocked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from superhero_dagster.files import WRITE_AREA, WriteArea, atomic_write
from superhero_dagster.sinks import SinkRoot

# Claims the area, leaves half a file in a temp name, says where, then waits to be killed.
_HALF_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from superhero_dagster.files import WriteArea
    temp = WriteArea(Path(sys.argv[1])).temp_path()
    temp.write_bytes(b"half of a parq")
    print(temp, flush=True)
    time.sleep(600)
    """
)


def _half_writer(folder: Path) -> tuple[subprocess.Popen[str], Path]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HALF_WRITER, str(folder)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line, f"writer exited early with {proc.wait()}"
    return proc, Path(line)


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_a_killed_writers_temp_file_goes_with_the_next_writers_claim(tmp_path: Path) -> None:
    folder = tmp_path / WRITE_AREA
    proc, temp = _half_writer(folder)
    _kill(proc)
    assert temp.exists()  # the kill left it: nothing else cleans up after SIGKILL
    sweeper = WriteArea(folder)
    sweeper.temp_path()  # claiming sweeps
    assert not temp.exists()
    assert not (folder / f"{temp.name.split('.')[0]}.lock").exists()
    assert sorted(p.suffix for p in folder.iterdir()) == [".lock"]  # the sweeper's own


def test_a_live_writers_temp_file_is_left_alone(tmp_path: Path) -> None:
    folder = tmp_path / WRITE_AREA
    proc, temp = _half_writer(folder)
    try:
        sweeper = WriteArea(folder)
        sweeper.temp_path()
        assert sweeper.sweep() == []
        assert temp.read_bytes() == b"half of a parq"
    finally:
        _kill(proc)
    assert temp in sweeper.sweep()


def test_a_clean_exit_takes_its_lock_along(tmp_path: Path) -> None:
    folder = tmp_path / WRITE_AREA
    code = (
        "import sys; from pathlib import Path; from superhero_dagster.files import WriteArea;"
        "print(WriteArea(Path(sys.argv[1])).temp_path())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(folder)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().endswith(".1.tmp")
    assert list(folder.iterdir()) == []


def test_a_lock_being_named_is_not_swept_but_an_old_orphan_is(tmp_path: Path) -> None:
    """A process that died between creating its lock and naming it leaves `<id>.pending`; one that
    is doing it right now looks the same for a moment, so only an old one counts as dead."""
    folder = tmp_path / WRITE_AREA
    folder.mkdir()
    fresh, old = folder / "aaaa.pending", folder / "bbbb.pending"
    fresh.touch()
    old.touch()
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    stray = folder / "cccc.7.tmp"  # a temp file whose owner's lock is already gone
    stray.touch()
    gone = WriteArea(folder).sweep()
    assert sorted(gone) == sorted([old, stray])
    assert fresh.exists()


def test_sink_roots_of_one_process_share_one_lock(tmp_path: Path) -> None:
    """Sink roots are built per run and per resource; each must not hold a lock file of its own."""
    for _ in range(5):
        SinkRoot(tmp_path).write_file(tmp_path / "x" / "f.bin", b"1")
    assert len(list((tmp_path / WRITE_AREA).glob("*.lock"))) == 1
    assert list((tmp_path / WRITE_AREA).glob("*.tmp")) == []


def test_writers_of_one_file_never_show_half_of_it(tmp_path: Path) -> None:
    """Threads of one process share an owner id; their temp names still differ, so each rename
    publishes one writer's whole file."""
    area = WriteArea(tmp_path / WRITE_AREA)
    target = tmp_path / "shared.bin"
    versions = [bytes([n]) * 200_000 for n in range(4)]
    seen: set[bytes] = set()
    done = threading.Event()

    def write(data: bytes) -> None:
        for _ in range(25):
            atomic_write(target, data, fsync=False, temp=area.temp_path())

    def read() -> None:
        while not done.is_set():
            if target.exists():
                seen.add(target.read_bytes())

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=write, args=(v,)) for v in versions]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    done.set()
    reader.join()
    assert seen <= set(versions)
    assert target.read_bytes() in versions
    assert list((tmp_path / WRITE_AREA).glob("*.tmp")) == []


def test_a_writer_whose_folder_was_emptied_claims_again(tmp_path: Path) -> None:
    """Someone empties the sink by hand while a worker runs: without its lock file, its next temp
    files would look like a dead writer's to every sweeper."""
    folder = tmp_path / WRITE_AREA
    area = WriteArea(folder)
    first = area.temp_path()
    for path in folder.iterdir():
        path.unlink()
    second = area.temp_path()
    assert second.name.split(".")[0] != first.name.split(".")[0]
    assert (folder / f"{second.name.split('.')[0]}.lock").exists()
    second.touch()
    assert WriteArea(folder).sweep() == []  # a live owner's file, even after the hand clean-up
