"""``tools/gpu-session.sh --dry-run``: the lent GPU's one command, run whole on the CPU with tiny models."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_NAMES = {"srdiff-x4", "dtls-x4", "dossr-x4", "diffsr-prior", "lddpm-x4"}
PART_LIMIT = 16 * 2**20


def dry_run(tmp_path: Path, call: str, **env_vars: str) -> tuple[set[str], dict[str, str]]:
    """One dry-run call with its own OUT and WORK; the names in its packed results and their texts."""
    out = tmp_path / call / "out"
    env = dict(os.environ, OUT=str(out), WORK=str(tmp_path / call / "work"),
               PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", **env_vars)
    env.pop("SR_DESK_HOME", None)
    done = subprocess.run(["bash", "tools/gpu-session.sh", "--dry-run"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    parts = sorted(out.glob("results.tar.part-*"))
    assert parts and all(p.stat().st_size < PART_LIMIT for p in parts)
    with tarfile.open(fileobj=io.BytesIO(b"".join(p.read_bytes() for p in parts))) as tar:
        names = set(tar.getnames())
        text = {name: tar.extractfile(name).read().decode() for name in names if name.endswith((".md", ".log", ".csv", ".txt"))}
    return names, text


@pytest.mark.slow
def test_dry_run_trains_every_model_measures_and_packs_parts_then_a_second_call_continues(tmp_path):
    names, text = dry_run(tmp_path, "first")
    assert {Path(n).stem for n in names if n.startswith("pack/weights/")} == SHIPPED_NAMES
    for run in ("srdiff", "lddpm", "dtls", "dossr", "diffsr"):
        assert f"pack/{run}/log.csv" in names and f"pack/{run}/loss.png" in names
    for stage in ("srdiff-encoder", "srdiff-unet", "lddpm-denoise", "lddpm-adversarial", "dtls", "dossr", "diffsr"):
        assert "step=2 " in text[f"pack/{stage}.log"], text[f"pack/{stage}.log"][-500:]  # both steps ran
    throughput = [line for line in text["pack/throughput.md"].splitlines() if line.startswith("| encoder")]
    assert [line.split(" | ")[1] for line in throughput] == ["old", "bf16"]
    for which in ("shipped", "new"):
        rows = {line.split(" | ")[0].strip("| `") for line in text[f"pack/quality-{which}.md"].splitlines()
                if line.startswith("| `")}
        assert {"bicubic", "srdiff-encoder", "dtls", "dossr", "diffsr", "lddpm", "srdiff"} <= rows
    assert "weights: " in text["pack/quality-new.md"] and "then installed" in text["pack/quality-new.md"]
    assert "| srdiff | cpu | 32px |" in text["pack/speed.md"]
    assert "srdiff-x4.safetensors: srdiff " in text["pack/better.txt"]  # what the next call would continue

    # The next call on the same warm machine: every model continues the first call's weights, no throughput bench.
    first_weights = tmp_path / "first" / "work" / "weights"
    names, text = dry_run(tmp_path, "second", INIT_DIR=str(first_weights), THROUGHPUT="0")
    assert "pack/throughput.md" not in names
    for stage, file in [("srdiff-encoder", "srdiff-x4"), ("srdiff-unet", "srdiff-x4"), ("lddpm-denoise", "lddpm-x4"),
                        ("dtls", "dtls-x4"), ("dossr", "dossr-x4"), ("diffsr", "diffsr-prior")]:
        assert f"--init {first_weights}/{file}.safetensors " in text[f"pack/{stage}.log"].splitlines()[0]
        assert "step=2 " in text[f"pack/{stage}.log"]
    assert f"--init {tmp_path}/second/work/weights/lddpm-denoise.safetensors " in \
        text["pack/lddpm-adversarial.log"].splitlines()[0]  # this call's own first stage


def test_the_files_kept_for_the_next_call_are_those_that_beat_the_shipped_ones(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("pick_better_weights", ROOT / "tools" / "pick-better-weights.py")
    picker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(picker)
    header = "| method | PSNR (dB) | SSIM |\n|---|---:|---:|\n"
    shipped = tmp_path / "shipped.md"
    shipped.write_text(header + "| `bicubic` | 31.81 | 0.8 |\n| `srdiff` | 33.99 | 0.85 |\n| `dtls` | 34.12 | 0.85 |\n"
                       "| `dossr` | 33.30 | 0.84 |\n| `lddpm` | 34.51 | 0.86 |\n")
    new = tmp_path / "new.md"
    new.write_text(header + "| `bicubic` | 31.81 | 0.8 |\n| `srdiff` | 34.08 | 0.85 |\n| `dtls` | 34.19 | 0.86 |\n"
                   "| `dossr` | 33.05 | 0.84 |\n| `lddpm` | 34.51 | 0.86 |\n| `diffsr` | 31.23 | 0.79 |\n")
    weights = tmp_path / "weights"
    weights.mkdir()
    for file in picker.DECIDING_ROW:
        (weights / file).write_bytes(file.encode())
    assert picker.main([str(shipped), str(new), str(weights), str(tmp_path / "better")]) == 0
    # higher PSNR only; a tie (LDDPM) or a row missing from one table (Diff-SR) keeps nothing
    assert sorted(p.name for p in (tmp_path / "better").iterdir()) == ["dtls-x4.safetensors", "srdiff-x4.safetensors"]
    assert (tmp_path / "better" / "dtls-x4.safetensors").read_bytes() == b"dtls-x4.safetensors"
