"""The headless CLI, driven in-process as a user would type it."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sr_desk.cli import main


@pytest.fixture
def photo(tmp_path, rng) -> Path:
    path = tmp_path / "photo.png"
    Image.fromarray((rng.random((24, 32, 3)) * 255).astype(np.uint8)).save(path)
    return path


def test_upscale_4x_writes_a_4x_image(photo, tmp_path):
    out = tmp_path / "out.png"
    assert main(["upscale", str(photo), "-o", str(out), "--scale", "4", "--method", "bicubic"]) == 0
    assert Image.open(out).size == (128, 96)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tiff"])
def test_a_large_result_is_written_band_by_band_with_the_same_pixels(photo, tmp_path, monkeypatch, capsys, suffix):
    """Issue 16: a 4x of a 24 MP photo held 9.6 GB; past STREAM_MIN_PIXELS the result arrives as tiles finish."""
    from sr_desk.engine import job_work, pipeline

    whole = tmp_path / f"whole{suffix}"
    assert main(["upscale", str(photo), "-o", str(whole), "--scale", "4", "--method", "bicubic", "--tile", "8"]) == 0
    streamed_jobs = []
    real_stream_job = job_work.stream_job
    monkeypatch.setattr(job_work, "stream_job", lambda *a: streamed_jobs.append(1) or real_stream_job(*a))
    monkeypatch.setattr(pipeline, "STREAM_MIN_PIXELS", 100 * 100)
    streamed = tmp_path / "new" / "folder" / f"streamed{suffix}"  # folders are made, as for any output
    assert main(["upscale", str(photo), "-o", str(streamed), "--scale", "4", "--method", "bicubic", "--tile", "8"]) == 0
    assert streamed_jobs and f"{streamed} (128x96)" in capsys.readouterr().err
    np.testing.assert_array_equal(np.asarray(Image.open(streamed)), np.asarray(Image.open(whole)))


def test_size_gives_exactly_that_size_and_fit_keeps_the_aspect(photo, tmp_path):
    out = tmp_path / "hd.png"
    assert main(["upscale", str(photo), "-o", str(out), "--size", "1920x1080", "--method", "lanczos"]) == 0
    assert Image.open(out).size == (1920, 1080)
    fit = tmp_path / "fit.png"
    assert main(["upscale", str(photo), "-o", str(fit), "--size", "1920x1080", "--fit", "--method", "lanczos"]) == 0
    assert Image.open(fit).size == (1440, 1080)


def test_a_stretching_size_and_a_clipped_region_are_warned_about(photo, tmp_path, capsys):
    """Issue 19: --size without --fit stretched silently; a region reaching outside was clipped without a word."""
    out = tmp_path / "out.png"
    assert main(["upscale", str(photo), "-o", str(out), "--size", "1920x1080", "-m", "bicubic"]) == 0
    assert "stretches photo.png (32x24" in capsys.readouterr().err
    assert main(["upscale", str(photo), "-o", str(out), "--size", "320x240", "-m", "bicubic"]) == 0
    assert "warning" not in capsys.readouterr().err  # the same aspect: nothing to say
    assert main(["upscale", str(photo), "-o", str(out), "--region", "20,10,30,30", "-m", "bicubic"]) == 0
    assert "--region 20,10,30,30 reaches outside photo.png (32x24); using 20,10,12,14" in capsys.readouterr().err


def test_the_default_upscaler_is_the_best_shipped_one_and_help_says_so(photo, tmp_path, capsys):
    from sr_desk.engine.plugins import PREFERRED_UPSCALERS, PluginHost, default_upscaler

    host = PluginHost()
    host.discover()
    assert default_upscaler(host.methods()).id == PREFERRED_UPSCALERS[0] == "srdiff-encoder"
    with pytest.raises(SystemExit):
        main(["upscale", "--help"])
    assert "default: the first installed of srdiff-encoder" in " ".join(capsys.readouterr().out.split())


def test_transparent_png_stays_transparent(tmp_path):
    src = tmp_path / "logo.png"
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[4:12, 4:12] = (200, 40, 40, 255)
    Image.fromarray(rgba, "RGBA").save(src)
    out = tmp_path / "logo_x2.png"
    assert main(["upscale", str(src), "-o", str(out), "--scale", "2", "--method", "bicubic"]) == 0
    result = Image.open(out)
    assert result.mode == "RGBA" and result.size == (32, 32)
    alpha = np.asarray(result)[..., 3]
    assert alpha[0, 0] == 0 and alpha[16, 16] == 255


def test_rotated_jpeg_comes_out_upright(tmp_path):
    src = tmp_path / "phone.jpg"
    pixels = np.zeros((20, 40, 3), np.uint8)  # stored landscape, 40 wide
    pixels[:, :8] = 255  # a white band on the stored left edge
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    image.save(src, exif=exif.tobytes(), quality=95)
    out = tmp_path / "upright.png"
    assert main(["upscale", str(src), "-o", str(out), "--scale", "2", "--method", "bicubic"]) == 0
    result = np.asarray(Image.open(out).convert("L"))
    assert result.shape == (80, 40)  # portrait after applying the orientation
    assert result[:8].mean() > 200 and result[-8:].mean() < 50  # the band is now on top


def test_region_upscale_changes_only_the_region(photo, tmp_path):
    plain = tmp_path / "plain.png"
    region = tmp_path / "region.png"
    main(["upscale", str(photo), "-o", str(plain), "--scale", "2", "--method", "bicubic"])
    assert main(
        ["upscale", str(photo), "-o", str(region), "--scale", "2", "--method", "lanczos",
         "--region", "4,4,8,8", "--feather", "1"]
    ) == 0
    a = np.asarray(Image.open(plain)).astype(int)
    b = np.asarray(Image.open(region)).astype(int)
    assert a.shape == b.shape
    assert np.array_equal(a[40:, 40:], b[40:, 40:])  # far from the region: the bicubic base
    assert np.abs(a[10:22, 10:22] - b[10:22, 10:22]).sum() > 0  # inside: Lanczos


def test_batch_folder_skips_failures_and_exits_non_zero(tmp_path, rng, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray((rng.random((8, 8, 3)) * 255).astype(np.uint8)).save(folder / name)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    out = tmp_path / "out"
    code = main(["upscale", str(folder), "-o", str(out), "--scale", "2", "--method", "bicubic"])
    err = capsys.readouterr().err
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
    assert "skipped broken.png" in err and "1 of 3" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["upscale", "{missing}", "-o", "{out}", "--scale", "2"], "no such file"),
        (["upscale", "{corrupt}", "-o", "{out}", "--scale", "2"], "corrupt.png"),
        (["upscale", "{photo}", "-o", "{out}", "--scale", "2", "--method", "nope"], "unknown method 'nope'"),
        (["upscale", "{photo}", "-o", "{out}", "--scale", "2", "--param", "steps=3"], "unknown parameter 'steps'"),
        (["upscale", "{photo}", "-o", "{out}", "--region", "500,500,4,4"], "outside"),
        (["upscale", "{photo}", "-o", "{photo}", "--scale", "2"], "refusing to overwrite the input"),
        (["upscale", "{photo}", "-o", "{out}", "--fit"], "--fit needs --size"),
        (["upscale", "{photo}", "-o", "{tmp}/out.gif", "--scale", "2"], "unsupported format"),
    ],
)
def test_bad_input_gives_one_line_a_non_zero_exit_and_no_output(photo, tmp_path, capsys, args, message):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"garbage" * 10)
    before = photo.read_bytes()
    names = dict(missing=tmp_path / "missing.png", corrupt=corrupt, photo=photo, out=tmp_path / "out.png", tmp=tmp_path)
    code = main([a.format(**names) for a in args])
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert message in err
    assert len(err.splitlines()) == 1 and err.startswith("sr-desk: error:")
    assert not (tmp_path / "out.png").exists() and not (tmp_path / "out.gif").exists()
    assert photo.read_bytes() == before


def test_methods_json_lists_ids_tasks_plugins_and_params(capsys):
    assert main(["methods", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    bicubic = next(r for r in rows if r["id"] == "bicubic")
    assert {"id", "name", "task", "plugin", "params"} <= set(bicubic)
    assert bicubic["task"] == "upscale" and bicubic["plugin"] == "classic"
    assert bicubic["capabilities"]["arbitrary_scale"] is True


def test_methods_and_plugins_are_listed_for_people(capsys):
    assert main(["methods"]) == 0
    assert "bicubic  [upscale, any scale, plugin classic]" in capsys.readouterr().out
    assert main(["plugins"]) == 0
    assert "classic 0.1.0 (built-in) [ok]" in capsys.readouterr().out
    assert main(["plugins", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["status"] == "ok"


def test_demo_upscales_the_bundled_sample_without_a_screen(tmp_path, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    out = tmp_path / "demo.png"
    assert main(["demo", "-o", str(out)]) == 0
    assert Image.open(out).size == (1024, 768)


def test_python_dash_m_works():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "sr_desk", "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("sr-desk ")


def test_file_paths_without_a_command_open_the_editor(photo, monkeypatch, capsys):
    import sr_desk.cli as cli

    opened = []
    monkeypatch.setattr(cli, "_gui_entry", lambda: lambda paths: opened.append(paths) or 0)
    monkeypatch.setattr(cli, "_has_screen", lambda: True)
    assert main([str(photo)]) == 0
    assert opened == [[str(photo)]]
    monkeypatch.setattr(cli, "_has_screen", lambda: False)
    assert main([str(photo)]) == 1
    assert "needs a screen" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["upscal"])  # a mistyped command is still a usage error, not a file


def test_progress_is_logged_in_lines_when_the_output_is_not_a_terminal(photo, tmp_path, capsys):
    """Issue 19: with stderr piped, nothing showed between the seed and the result."""
    out = tmp_path / "out.png"
    assert main(["upscale", str(photo), "-o", str(out), "-m", "srdiff", "--seed", "0", "--param", "steps=2"]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert lines[-1].endswith("(128x96, seed 0)")  # the seed with the result, not a line before a failure
    assert any(line.startswith("srdiff: 100% (") for line in lines[:-1])


SLEEPER = """
import os
import time
import numpy as np
from sr_desk.api import Capabilities, Method, Task, hookimpl
SR_DESK_API_VERSION = "1.0"

def run(request, context):
    open(os.environ["SLEEPER_STARTED"], "w").close()
    time.sleep(60)  # never calls context.report: no cancel point
    return np.zeros((request.output_size[1], request.output_size[0], 3), np.float32)

@hookimpl
def sr_desk_methods():
    return [Method(id="sleeper", name="Sleeper", task=Task.UPSCALE, run=run, capabilities=Capabilities(scales=(2,)))]
"""


@pytest.mark.slow
def test_a_second_ctrl_c_quits_a_method_that_never_reports(photo, tmp_path, site_dir):
    """Issue 18: a method that never calls context.report ignored Ctrl-C."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import install_fake_plugin

    install_fake_plugin(site_dir, "sleeper", SLEEPER)
    out = tmp_path / "out.png"
    started = tmp_path / "started"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site_dir), *sys.path]), "SLEEPER_STARTED": str(started)}
    # Ctrl-C's default action restored in the child: a suite started in the background (``pytest &``) runs with
    # SIGINT ignored, which its children would inherit, and a user's terminal never does that.
    proc = subprocess.Popen([sys.executable, "-m", "sr_desk", "upscale", str(photo), "-o", str(out), "-m", "sleeper"],
                            stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)  # until the method is inside run(), however slow the start on a loaded machine
    assert started.exists(), "the method never started"
    proc.send_signal(signal.SIGINT)
    time.sleep(2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode != 0 and "Ctrl-C again to quit now" in err and "nothing was written" in err
    assert not out.exists()


def test_a_batch_writes_unwritable_formats_as_png_and_survives_any_failure(tmp_path, rng, capsys, monkeypatch):
    """Issue 18: GIF, BMP and MPO inputs always failed in a batch (after being upscaled), and any error
    other than the app's own aborted the batch with a traceback."""
    import sr_desk.cli as cli

    folder = tmp_path / "in"
    folder.mkdir()
    pixels = (rng.random((6, 8, 3)) * 255).astype(np.uint8)
    for name in ("a.gif", "b.bmp", "c.png", "d.png"):
        Image.fromarray(pixels).save(folder / name)
    real = cli.load_image

    def flaky(path, *args, **kwargs):
        if Path(path).name == "d.png":
            raise RuntimeError("decoder exploded")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(cli, "load_image", flaky)
    out = tmp_path / "out"
    assert main(["upscale", str(folder), "-o", str(out), "-m", "bicubic", "--scale", "2"]) == 1
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c.png"]
    err = capsys.readouterr().err
    assert "skipped d.png: RuntimeError: decoder exploded" in err and "1 of 4 image(s) failed" in err
    assert "Traceback" not in err


def test_an_unwritable_output_is_refused_before_any_work(photo, tmp_path, capsys, monkeypatch):
    """Issue 18: an unsupported extension was found only after the whole computation."""
    import sr_desk.cli as cli

    monkeypatch.setattr(cli, "_run_one", lambda *a, **k: pytest.fail("the method ran"))
    (tmp_path / "file").write_text("x")
    for target, reason in ((tmp_path / "out.gif", "unsupported format"), (tmp_path / "file" / "o.png", "is a file")):
        assert main(["upscale", str(photo), "-o", str(target), "-m", "bicubic"]) == 1
        assert reason in capsys.readouterr().err


def test_any_unexpected_error_is_one_line(photo, tmp_path, capsys, monkeypatch):
    import sr_desk.cli as cli

    def boom(*args, **kwargs):
        raise AssertionError("palette PNG without PLTE")

    monkeypatch.setattr(cli, "load_image", boom)
    assert main(["upscale", str(photo), "-o", str(tmp_path / "o.png"), "-m", "bicubic"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["sr-desk: error: AssertionError: palette PNG without PLTE (run with -v for the traceback)"]


@pytest.mark.parametrize("args", [["--scale", "abc"], ["--size", "1920"], ["--region", "1,2"]])
def test_a_bad_option_value_is_one_line_not_a_usage_block(photo, tmp_path, capsys, args):
    """Issue 18: a 9-line usage block for a bad --scale, --size or --region."""
    with pytest.raises(SystemExit) as exit_info:
        main(["upscale", str(photo), "-o", str(tmp_path / "o.png"), *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"sr-desk upscale: error: argument {args[0]}")
    assert err[0].endswith("(see `sr-desk upscale --help`)")


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--scale", "inf", "expected a finite number"),
    ("--scale", "1e400", "expected a finite number"),
    ("--feather", "nan", "expected a finite number"),
    ("--feather", "-1", "must be 0 or more"),
])
def test_option_values_that_are_not_finite_or_in_range_are_refused(photo, tmp_path, capsys, option, value, message):
    with pytest.raises(SystemExit) as stop:
        main(["upscale", str(photo), "-o", str(tmp_path / "o.png"), "-m", "bicubic", option, value])
    assert stop.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert message in line


def test_a_result_larger_than_the_free_memory_is_refused_before_the_compute(photo, tmp_path, monkeypatch, capsys):
    from sr_desk.engine import memory
    from sr_desk.engine.worker import Worker

    monkeypatch.setattr(memory, "free_memory", lambda device: 2**30)
    monkeypatch.setattr(Worker, "submit", lambda *a, **k: pytest.fail("the upscale started"))
    assert main(["upscale", str(photo), "-o", str(tmp_path / "o.png"), "-m", "bicubic", "--size", "20000x20000"]) == 1
    assert "needs at least 4.5 GiB of memory and 1.0 GiB is free" in capsys.readouterr().err


def test_an_error_message_never_carries_a_terminal_escape_or_a_newline():
    from sr_desk.core.errors import SrDeskError

    assert str(SrDeskError("unknown field '\x1b[2J\x1b[31mgotcha'\nsecond line")) == (
        "unknown field '?[2J?[31mgotcha' second line")
