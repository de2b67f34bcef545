"""Live marks: a dead writer's mark is found, a living one's never, however old."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from sr_desk.core.live_marks import LiveMark, left_by_the_dead, live_mark

HOLD = """
import sys, time
from pathlib import Path
from sr_desk.core.live_marks import LiveMark
LiveMark(Path(sys.argv[1]), sys.argv[2])
print("marked", flush=True)
if sys.argv[3] == "exit":
    import os; os._exit(3)
time.sleep(600)
"""


def hold_mark(folder, text, then):
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), text, then], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "marked"
    return process


def test_a_living_writers_mark_is_left_alone_however_old(tmp_path):
    living = hold_mark(tmp_path, "busy plugin", "sleep")
    try:
        (mark,) = tmp_path.glob("*.mark")
        os.utime(mark, (time.time() - 86400, time.time() - 86400))
        assert left_by_the_dead(tmp_path) == []
        assert mark.exists()
    finally:
        living.kill()
        living.wait()
    assert left_by_the_dead(tmp_path) == ["busy plugin"]  # killed: now it is a dead writer's
    assert list(tmp_path.iterdir()) == []


def test_a_mark_left_by_os_exit_is_found_once(tmp_path):
    dead = hold_mark(tmp_path, "crasher", "exit")
    assert dead.wait(60) == 3
    assert left_by_the_dead(tmp_path) == ["crasher"]
    assert left_by_the_dead(tmp_path) == []


def test_this_process_marks_are_alive_and_removed_when_the_work_ends(tmp_path):
    mark = LiveMark(tmp_path, "mine")
    checker = subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                              "from sr_desk.core.live_marks import left_by_the_dead; "
                              "print(left_by_the_dead(Path(sys.argv[1])))", str(tmp_path)],
                             capture_output=True, text=True, timeout=60)
    assert checker.stdout.strip() == "[]"
    mark.remove()
    assert list(tmp_path.iterdir()) == []
    with live_mark(tmp_path, "block"):
        assert len(list(tmp_path.glob("*.mark"))) == 1
    assert list(tmp_path.iterdir()) == []
    with live_mark(None, "nowhere"):  # no folder: the work runs unmarked
        pass
