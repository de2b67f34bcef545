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
