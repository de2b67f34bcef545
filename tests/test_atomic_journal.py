"""The journal of temporary files (sr_desk.core.atomic): a start removes what dead writers left, never a live save.

Issue 30 item 3: a start removed listed temporaries older than ten minutes, and a
streamed save touches its temporary only when a band of tiles is done, so a
long band made a live save look abandoned; it then failed at 100%. Each
cleanup here runs in another process, as a second ``sr-desk`` start would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sr_desk.core import atomic, file_locks
from sr_desk.core.atomic import atomic_write
from sr_desk.core.imageio import ImageData, save_png_bands

REPO = Path(__file__).resolve().parents[1]
TWO_HOURS = 2 * 3600
#: Only a guard against a hang, never a measured limit.
HANG_GUARD_S = 120

posix_only = pytest.mark.skipif(os.name != "posix", reason="the writer's lock is an flock")


def run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -c code args...`` in a fresh process that imports this checkout's sr_desk."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=HANG_GUARD_S, check=False
    )


START_ELSEWHERE = (
    "import json, sys; from sr_desk.core.atomic import start_journal; print(json.dumps(start_journal(sys.argv[1])))"
)


def start_in_another_process(journal: Path) -> list[str]:
    """What a second sr-desk start removes (the CLI and the editor both call start_journal)."""
    done = run_python(START_ELSEWHERE, str(journal))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def journal(tmp_path: Path):
    path = tmp_path / "cache" / "pending-writes.txt"
    atomic.set_journal(path)
    yield path
    atomic.set_journal(None)


def listed_paths(journal: Path) -> list[str]:
    return atomic.listed_temp_files(journal)


@posix_only
def test_a_live_save_older_than_the_staleness_limit_survives_another_start(tmp_path: Path, journal: Path) -> None:
    """The measured failure: a band longer than the limit, a second start meanwhile, the save lost at 100%."""
    target = tmp_path / "result.bin"
    seen: dict[str, object] = {}

    def write(f) -> None:
        f.write(b"first band ")
        f.flush()
        old = time.time() - TWO_HOURS
        os.utime(f.name, (old, old))  # a band that took far longer than STALE_AFTER_S
        seen["removed"] = start_in_another_process(journal)
        seen["temp still there"] = os.path.exists(f.name)
        f.write(b"last band")

    atomic_write(target, write)
    assert seen == {"removed": [], "temp still there": True}
    assert target.read_bytes() == b"first band last band"
    assert journal.read_text() == ""


@posix_only
def test_a_streamed_png_save_survives_a_start_during_a_long_band(tmp_path: Path, journal: Path) -> None:
    """The editor's "Save to a file..." and the CLI's large results go through save_png_bands."""
    target = tmp_path / "big.png"
    rows = np.arange(16 * 8 * 3, dtype=np.uint8).reshape(16, 8, 3)
    removed: list[list[str]] = []

    def produce(start) -> None:
        write_rows = start()
        write_rows(rows[:8])
        for temp in listed_paths(journal):
            old = time.time() - TWO_HOURS
            os.utime(temp, (old, old))
        removed.append(start_in_another_process(journal))
        write_rows(rows[8:])

    save_png_bands(target, ImageData(rgb=np.zeros((1, 1, 3), np.float32)), (8, 16), produce)
    assert removed == [[]]
    with Image.open(target) as im:
        assert np.array_equal(np.asarray(im), rows)


KILLED_WRITER = """
import sys, time
from sr_desk.core import atomic
atomic.set_journal(sys.argv[1])
def write(f):
    f.write(b"half a picture")
    f.flush()
    print(f.name, flush=True)
    time.sleep(3600)
atomic.atomic_write(sys.argv[2], write)
"""


@posix_only
def test_the_temporary_of_a_killed_writer_is_removed_at_the_next_start_however_young(tmp_path: Path) -> None:
    """SIGKILL runs no cleanup; the kernel drops the writer's lock, and that is what the next start looks at."""
    journal = tmp_path / "cache" / "pending-writes.txt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(journal), str(tmp_path / "photo.png")],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        temp = writer.stdout.readline().strip()  # type: ignore[union-attr]
        assert temp and os.path.exists(temp)
        assert start_in_another_process(journal) == []  # alive: left alone
        assert os.path.exists(temp)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(HANG_GUARD_S)
        writer.stdout.close()  # type: ignore[union-attr]
    assert time.time() - os.stat(temp).st_mtime < atomic.STALE_AFTER_S  # young: no age rule could remove it
    assert start_in_another_process(journal) == [temp]
    assert not os.path.exists(temp) and not (tmp_path / "photo.png").exists()
    assert journal.read_text() == ""


def test_a_listed_name_that_is_now_a_symlink_or_a_fifo_is_never_touched(tmp_path: Path) -> None:
    journal = tmp_path / "pending-writes.txt"
    victim = tmp_path / "precious.png"
    victim.write_bytes(b"keep me")
    link = tmp_path / ".photo.png.abc123.tmp"
    link.symlink_to(victim)
    listed = [link]
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / ".other.png.def456.tmp"
        os.mkfifo(fifo)
        listed.append(fifo)
    for path in listed:
        os.utime(path, (0, 0), follow_symlinks=False)
    journal.write_text("".join(f"{path}\n" for path in listed))
    assert start_in_another_process(journal) == []
    assert victim.read_bytes() == b"keep me" and all(os.path.lexists(path) for path in listed)


def test_a_line_from_an_older_sr_desk_falls_back_to_the_age_rule(tmp_path: Path) -> None:
    """A bare path (what an sr-desk before the lock wrote) says nothing of its writer: only its age can."""
    journal = tmp_path / "pending-writes.txt"
    old, young = tmp_path / ".a.png.old1.tmp", tmp_path / ".b.png.new1.tmp"
    old.write_bytes(b"x")
    young.write_bytes(b"y")
    os.utime(old, (0, 0))
    journal.write_text(f"{old}\n{young}\n")
    assert start_in_another_process(journal) == [str(old)]
    assert journal.read_text() == f"{young}\n"


def test_a_name_with_a_newline_is_listed_as_one_entry(tmp_path: Path, journal: Path) -> None:
    folder = tmp_path / "odd\nfolder"
    folder.mkdir()
    seen: list[list[str]] = []
    atomic_write(folder / "a.png", lambda f: seen.append(listed_paths(journal)))
    assert len(seen[0]) == 1 and seen[0][0].startswith(str(folder / ".a.png."))
    assert journal.read_text() == ""


CONCURRENT_WRITER = """
import sys
from sr_desk.core import atomic
journal, folder, tag = sys.argv[1:4]
atomic.set_journal(journal)
missing = 0
def write(f):
    global missing
    if f.name not in atomic.listed_temp_files(journal):
        missing += 1
    f.write(b"x")
for i in range(60):
    atomic.atomic_write(f"{folder}/{tag}-{i % 3}.bin", write)
    if i % 10 == 0:
        atomic.remove_stale_temp_files(journal)
print(missing)
"""


@posix_only
def test_journal_updates_from_several_processes_lose_no_line(tmp_path: Path) -> None:
    """Each writer checks, while writing, that its own line is listed; at the end nothing is."""
    journal = tmp_path / "cache" / "pending-writes.txt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_WRITER, str(journal), str(tmp_path), f"w{n}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for n in range(4)
    ]
    results = [writer.communicate(timeout=HANG_GUARD_S) for writer in writers]
    assert [writer.returncode for writer in writers] == [0] * 4, [err for _, err in results]
    assert [out.strip() for out, _ in results] == ["0"] * 4
    assert journal.read_text() == ""
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache") == sorted(
        f"w{n}-{i}.bin" for n in range(4) for i in range(3)
    )


linux_only = pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="start times come from /proc")


@linux_only
def test_where_files_cannot_be_locked_the_writers_pid_and_start_time_decide(tmp_path: Path, monkeypatch) -> None:
    """No flock (Windows, a filesystem without locks): a live writer is known by its pid and start time."""
    monkeypatch.setattr(file_locks, "fcntl", None)
    journal = tmp_path / "pending-writes.txt"
    old = time.time() - TWO_HOURS
    me, my_start = os.getpid(), atomic._process_start(os.getpid())
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    try:
        its_start = atomic._process_start(sleeper.pid)
    finally:
        sleeper.kill()
        sleeper.wait(HANG_GUARD_S)

    def line(path: Path, pid: int, start: int | None) -> str:
        fields = {"path": str(path), "place": atomic._this_place(), "pid": pid, "start": start, "locked": False}
        return json.dumps(fields)

    alive, dead, recycled = (tmp_path / f".{n}.png.x1y2z3.tmp" for n in ("alive", "dead", "recycled"))
    for path in (alive, dead, recycled):
        path.write_bytes(b"x")
    os.utime(alive, (old, old))  # old, but its writer runs
    lines = [line(alive, me, my_start), line(dead, sleeper.pid, its_start), line(recycled, me, my_start + 1)]
    journal.write_text("".join(f"{text}\n" for text in lines))
    assert atomic.remove_stale_temp_files(journal) == [str(dead), str(recycled)]  # young, but their writers are gone
    assert alive.exists() and atomic.listed_temp_files(journal) == [str(alive)]


@posix_only
def test_a_process_stuck_holding_the_journal_cannot_hang_a_save(tmp_path: Path, journal: Path, monkeypatch) -> None:
    """The journal only serves the cleanup: past a short wait the save goes on without its lock."""
    import fcntl

    monkeypatch.setattr(atomic, "JOURNAL_LOCK_WAIT_S", 0.05)
    journal.parent.mkdir(parents=True)
    with open(f"{journal}.lock", "w") as stuck:
        fcntl.flock(stuck.fileno(), fcntl.LOCK_EX)  # another open file description: it conflicts like a process would
        atomic.atomic_write_bytes(tmp_path / "a.png", b"saved")
    assert (tmp_path / "a.png").read_bytes() == b"saved" and journal.read_text() == ""
