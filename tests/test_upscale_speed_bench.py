"""bench/upscale_speed.py: how it names CLI methods, and one tiny run through the real command line."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load():
    name = "sr_desk_bench_upscale_speed"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / "upscale_speed.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


bench = _load()


def test_method_specs_become_cli_arguments():
    assert bench.split_method("srdiff:ancestral:100") == ["--method", "srdiff", "--param", "sampler=ancestral",
                                                          "--param", "steps=100"]
    assert bench.split_method("diffsr:steps=3") == ["--method", "diffsr", "--param", "steps=3"]
    assert bench.split_steps("dossr:solver=ddim") == "dossr:steps=1" and bench.split_steps("bicubic") == "bicubic"


def test_a_tiny_run_prints_seconds_megapixels_per_second_and_memory(capsys):
    assert bench.main(["--sizes", "16,24", "--methods", "bicubic,lanczos", "--devices", "cpu",
                       "--baseline-sizes", ""]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith(("bicubic", "lanczos"))]
    assert [(r[0], r[2]) for r in rows] == [("bicubic", "16px"), ("bicubic", "24px"), ("lanczos", "16px"),
                                            ("lanczos", "24px")]
    assert all(float(r[3]) > 0 and float(r[4]) > 0 and float(r[6]) > 0 for r in rows)
    assert "device: CPU" in out


def test_process_mode_times_the_whole_command_cold_and_warm_beside_the_reference(capsys):
    """Issue 28: the bench times what users run (a whole `sr-desk upscale` process) and the Real-ESRGAN network."""
    assert bench.main(["--sizes", "16", "--methods", "bicubic", "--devices", "cpu", "--baseline-sizes", "",
                       "--process", "--markdown"]) == 0
    out = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[1:-1]]
            for line in out.splitlines() if line.startswith("| ") and "px" in line}
    reference, bicubic = rows[bench.ESRGAN], rows["bicubic"]
    assert float(reference[3]) > 0
    cold, warm = float(bicubic[9]), float(bicubic[10])
    assert cold > 0 and warm > 0
    cold_ratio, warm_ratio = (float(v) for v in bicubic[11].split("/"))  # of unrounded seconds: only their sign here
    assert cold_ratio > 0 and warm_ratio > 0


def test_the_live_draft_bench_times_first_previews_against_the_full_size_draft(capsys):
    """Issue 28: a slider move's first picture, measured (not asserted in time): the quick look and its baseline."""
    spec = importlib.util.spec_from_file_location("sr_desk_bench_live_draft", ROOT / "bench" / "live_draft.py")
    live = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(live)
    assert live.main(["--selection", "112", "--moves", "1"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| full-size") or line.startswith("| quick look")]
    assert len(rows) == 2
    for row in rows:
        first, finished = (float(v) for v in row.split("|")[2:4])
        assert 0 < first <= finished
