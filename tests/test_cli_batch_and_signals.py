"""Issue 30: a batch keeps every result or refuses before any work; sr-desk stops at once when told to."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sr_desk import cli
from sr_desk.cli import main


def write_images(folder: Path, *names: str) -> None:
    folder.mkdir(exist_ok=True)
    for i, name in enumerate(names):
        Image.fromarray(np.full((6, 8, 3), 40 * i, np.uint8)).save(folder / name)


def test_a_batch_keeps_the_results_of_inputs_that_share_a_stem(tmp_path, capsys):
    write_images(tmp_path / "in", "scan.png", "scan.bmp", "scan.gif", "other.gif")
    out = tmp_path / "out"
    assert main(["upscale", str(tmp_path / "in"), "-o", str(out), "-m", "bicubic", "--scale", "2"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["other.png", "scan.bmp.png", "scan.gif.png", "scan.png"]
    for name, level in (("scan.png", 0), ("scan.bmp.png", 40), ("scan.gif.png", 80)):
        assert np.asarray(Image.open(out / name))[0, 0, 0] == level  # each from its own input
    assert "wrote 4 of 4 image(s)" in capsys.readouterr().err


def test_a_batch_whose_names_still_meet_is_refused_before_any_work(tmp_path, capsys):
    write_images(tmp_path / "in", "scan.gif", "scan.gif.png", "scan.png")
    out = tmp_path / "out"
    assert main(["upscale", str(tmp_path / "in"), "-o", str(out), "-m", "bicubic", "--scale", "2"]) == 2
    assert not out.exists()
    (line,) = capsys.readouterr().err.splitlines()
    assert "would both be written as 'scan.gif.png'" in line


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_batch_says_which_entries_it_cannot_read(tmp_path, capsys):
    folder = tmp_path / "in"
    write_images(folder, "good.png")
    os.mkfifo(folder / "pipe.png")
    (folder / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    out = tmp_path / "out"
    assert main(["upscale", str(folder), "-o", str(out), "-m", "bicubic", "--scale", "2"]) == 1
    assert [p.name for p in out.iterdir()] == ["good.png"]
    err = capsys.readouterr().err
    assert "skipped pipe.png: it is a pipe (FIFO), not a file" in err
    assert "skipped gone.jpg: it is a broken link" in err
    assert "wrote 1 of 3 image(s)" in err and "2 of 3 image(s) failed" in err


@pytest.mark.parametrize("command", [["upscale", "{image}", "-m", ""], ["run", "", "{image}"]])
def test_an_empty_method_name_is_refused_not_taken_for_the_default(tmp_path, capsys, command):
    write_images(tmp_path, "in.png")
    args = [a.replace("{image}", str(tmp_path / "in.png")) for a in command]
    assert main([*args, "-o", str(tmp_path / "out.png")]) == 2
    assert not (tmp_path / "out.png").exists()
    assert "unknown method ''" in capsys.readouterr().err


def test_ctrl_c_ends_the_whole_batch(tmp_path, monkeypatch, capsys):
    write_images(tmp_path / "in", "a.png", "b.png")
    ran = []

    def cancelled(worker, method, spec, source, *rest):
        ran.append(source.name)
        raise cli.Cancelled("cancelled; nothing was written")

    monkeypatch.setattr(cli, "_run_one", cancelled)
    assert main(["upscale", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", "bicubic"]) == 1
    assert ran == ["a.png"]  # b.png is not started after the user stopped the run


STUCK_METHOD = textwrap.dedent("""
    import os, signal, sys, threading
    from pathlib import Path
    import numpy as np
    from sr_desk.api import Capabilities, Method, Task
    from sr_desk.engine.plugins import PluginHost
    from sr_desk.engine.worker import Worker
    import sr_desk.cli as cli

    Worker.stop.__defaults__ = (3600.0,)  # the worker's own patience: far beyond this test's limit

    def run(request, context):  # never reports progress, so it cannot be cancelled
        os.kill(os.getpid(), signal.SIGTERM)
        threading.Event().wait(3600)

    host = PluginHost()
    host.register(type("Stuck", (), {"SR_DESK_API_VERSION": "1.2", "sr_desk_methods": staticmethod(
        __import__("sr_desk.api", fromlist=["hookimpl"]).hookimpl(lambda: [Method(
            id="stuck", name="Stuck", task=Task.UPSCALE, run=run, capabilities=Capabilities(scales=(2,)))]))}),
        "stuck")
    cli._plugin_host = lambda settings: host
    sys.exit(cli.main(["upscale", sys.argv[1], "-o", sys.argv[2], "-m", "stuck", "--scale", "2"]))
""")


def test_sigterm_ends_a_method_that_never_reports_progress_without_waiting_for_it(tmp_path):
    write_images(tmp_path, "in.png")
    done = subprocess.run([sys.executable, "-c", STUCK_METHOD, str(tmp_path / "in.png"), str(tmp_path / "out.png")],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "SR_DESK_HOME": str(tmp_path)})
    assert done.returncode == 128 + 15, done.stderr
    assert not (tmp_path / "out.png").exists()


def test_a_size_the_output_format_cannot_hold_is_refused_before_the_compute(tmp_path, monkeypatch, capsys):
    from sr_desk.engine.worker import Worker

    Image.new("RGB", (4200, 2), (90, 90, 90)).save(tmp_path / "strip.png")

    def no_compute(*args, **kwargs):
        raise AssertionError("the upscale started")

    monkeypatch.setattr(Worker, "submit", no_compute)
    out = tmp_path / "strip.webp"
    assert main(["upscale", str(tmp_path / "strip.png"), "-o", str(out), "-m", "bicubic", "--scale", "4"]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert "16383 pixels a side" in line and "16800x8" in line and not out.exists()
