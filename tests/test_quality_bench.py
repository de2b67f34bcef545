"""bench/quality.py: its rows, its default-steps rule, and tiny end-to-end runs (the library: test_evaluation.py)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("skimage")

from sr_desk.engine.evaluation import RowResult, parse_method_list, parse_method_spec  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _load_bench():
    name = "sr_desk_bench_quality"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / "quality.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # loaded once for every test here
    spec.loader.exec_module(module)
    return module


q = _load_bench()


# -- rows ------------------------------------------------------------------------


def test_sweep_and_color_lock_rows_without_duplicates():
    from sr_desk_plugins.srdiff import DEFAULT_SAMPLER as d

    specs = parse_method_list(f"bicubic,srdiff:{d}:20,srdiff:ancestral:100")
    rows = [s.label for s in q.expand_specs(specs, [5, 20], "both")]
    assert rows == [
        "bicubic",
        f"srdiff:{d}:20", f"srdiff:{d}:20 +color-lock",
        "srdiff:ancestral:100", "srdiff:ancestral:100 +color-lock",
        f"srdiff:{d}:5", f"srdiff:{d}:5 +color-lock",
    ]
    assert [s.label for s in q.expand_specs(specs, [], "on")][1] == f"srdiff:{d}:20 +color-lock"
    assert parse_method_list(q.default_methods())[-1].label == "srdiff:ancestral:100"


# -- the default-steps rule and the grid's columns ----------------------------------


def fake_row(label: str, psnr: float, lr: float, steps: int | None = None, sampler: str | None = None):
    from sr_desk_plugins.srdiff import DEFAULT_SAMPLER

    sampler = sampler or DEFAULT_SAMPLER
    spec = parse_method_spec(label)
    resolved = {"sampler": sampler, "steps": steps} if steps is not None else {}
    return RowResult(spec, resolved, spec.method_id == "srdiff", psnr=[psnr], ssim=[0.5], lr_psnr=[lr],
                     detail=[0.75], sigma=[1.0], seconds=[2.0])


def test_recommendation_takes_the_fewest_steps_within_tolerance():
    rows = [
        fake_row("srdiff:ancestral:100", 25.0, 45.0, 100, "ancestral"),
        fake_row("srdiff:ddim:5", 25.5, 45.0, 5),  # PSNR too far (blurrier)
        fake_row("srdiff:ddim:10", 24.85, 44.2, 10),
        fake_row("srdiff:ddim:20", 25.0, 45.0, 20),
    ]
    assert "with 10 steps" in q.recommend_steps(rows)
    assert "none of" in q.recommend_steps(rows[:2])
    # Rows that change another parameter neither serve as the reference nor compete.
    variant = fake_row("srdiff:ddim:6:lr_consistency=false", 25.0, 45.0, 6)
    off_reference = fake_row("srdiff:ancestral:100:lr_consistency=false", 30.0, 50.0, 100, "ancestral")
    assert "with 10 steps" in q.recommend_steps([off_reference, *rows, variant])
    assert q.recommend_steps(rows[1:]) is None


def test_grid_columns_are_each_methods_default_row_then_srdiffs():
    from sr_desk_plugins.srdiff import DEFAULT_SAMPLER, DEFAULT_STEPS

    default = f"srdiff:{DEFAULT_SAMPLER}:{DEFAULT_STEPS}"
    rows = [fake_row(label, 25.0, 45.0) for label in ("dossr:solver=dos-sde-2", "dtls", "bicubic", "srdiff:ddim:2")]
    failed = RowResult(parse_method_spec("srdiff-encoder"), error="no weights")
    expected = [("bicubic", "bicubic"), ("DTLS", "dtls"), ("SRDiff ddim:2", "srdiff:ddim:2")]
    assert q.grid_columns([*rows, failed]) == expected
    rows.append(fake_row(default, 25.0, 45.0))
    assert q.grid_columns(rows)[-1] == (f"SRDiff {DEFAULT_SAMPLER}:{DEFAULT_STEPS}", default)


# -- end to end ----------------------------------------------------------------------


@pytest.fixture
def tiny_weights(tmp_path):
    import torch

    from sr_desk_plugins.srdiff.checkpoints import save_safetensors
    from sr_desk_plugins.srdiff.config import SRDiffConfig
    from sr_desk_plugins.srdiff.network import SRDiffModel

    torch.manual_seed(0)
    config = SRDiffConfig(scale=4, rrdb_nf=8, rrdb_nb=2, rrdb_gc=4, unet_dim=8, dim_mults=(1, 2, 2, 2))
    path = tmp_path / "tiny.safetensors"
    save_safetensors(SRDiffModel(config), config, path, metadata={"training_data": "none (random test weights)"})
    return path


@pytest.fixture
def photos(tmp_path):
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    yy, xx = np.mgrid[0:64, 0:64] / 64
    for i in range(3):  # smooth, so that bicubic down of bicubic up comes back close
        rgb = np.stack([0.5 + 0.4 * np.sin(2 * np.pi * (0.7 * (i + 1) * xx + 0.5 * yy) + c) for c in range(3)], -1)
        Image.fromarray(np.round(rgb * 255).astype(np.uint8)).save(folder / f"photo{i}.png")
    (folder / "README.md").write_text("not a photo")
    return folder


@pytest.fixture
def one_thread():
    """One torch thread: tiny convolutions gain nothing from two, and lose much when another job holds a core."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_tiny_end_to_end_run(photos, tiny_weights, tmp_path, capsys, one_thread):
    grid = tmp_path / "grid.png"
    methods = ["bicubic", "lanczos", "bench-bicubic-bp", "srdiff-encoder", "srdiff:dpm++2m:2"]
    argv = [
        "--data", str(photos), "--split", "all", "--crop", "32", "--methods", ",".join(methods),
        "--seeds", "2", "--weights", str(tiny_weights), "--device", "cpu", "--grid", str(grid),
    ]
    assert q.main(argv) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "command: python bench/quality.py " + " ".join(argv)
    assert "images: photo0.png, photo1.png, photo2.png" in out
    assert "central 32x32 HR crop" in out and "LPIPS" in out

    table = {}
    for line in lines:
        cells = re.split(r"\s{2,}", line.strip())
        if cells[0] in methods:
            table[cells[0]] = [float(c) for c in cells[1:]]
    assert set(table) == set(methods)
    for label, (psnr, ssim, lr_psnr, detail, sigma, seconds, count) in table.items():
        assert count == 3 and seconds >= 0 and -1 <= ssim <= 1 and psnr > 0 and lr_psnr > 0 and detail > 0, label
    assert table["bicubic"][2] > 40  # bicubic down of bicubic up comes back close
    assert table["bicubic"][4] == table["lanczos"][4] == table["srdiff-encoder"][4] == 0
    assert table["bench-bicubic-bp"][2] > table["bicubic"][2] + 3  # back-projection: far closer to the input
    assert table["srdiff:dpm++2m:2"][4] > 0  # two seeds, two different results

    from PIL import Image

    with Image.open(grid) as im:
        assert im.width > 5 * 32 and im.height > 3 * 32


# -- the Detail sweep (issue 31) -----------------------------------------------------


def _load_sweep():
    spec = importlib.util.spec_from_file_location("sr_desk_bench_detail_sweep", ROOT / "bench" / "detail_sweep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sweep = _load_sweep()


def _row(label: str, psnr: float, detail: float):
    row = RowResult(parse_method_spec(label))
    row.psnr, row.detail = [psnr], [detail]
    return row


def test_sweep_rows_levels_and_the_summary():
    specs = sweep.sweep_specs(["dossr", "diffsr"], parse_method_spec, {"dossr": 0.5, "diffsr": 0.2})
    labels = [s.label for s in specs]
    assert labels[: len(sweep.REFERENCES)] == list(sweep.REFERENCES)
    swept = labels[len(sweep.REFERENCES):]
    assert swept[:5] == [f"dossr:detail={v:g}" for v in sweep.LEVELS]  # its default, 0.5, is one of them
    assert swept[5:] == [f"diffsr:detail={v:g}" for v in (0, 0.2, 0.25, 0.5, 0.75, 1)]  # its default added
    assert [sweep.level_of(spec) for spec in specs[-2:]] == [0.75, 1.0]
    assert sweep.level_of(parse_method_spec("dtls")) is None
    rows = [_row("bicubic", 30.0, 0.5), _row("dossr:detail=0", 32.0, 0.6), _row("dossr:detail=0.5", 31.0, 0.8),
            _row("dossr:detail=1", 29.0, 1.1), _row("srdiff:detail=0", 29.5, 0.9)]
    lines = sweep.summary_lines(rows)
    assert lines == ["dossr: detail ratio 0.80 at Detail 0.5 (31.00 dB), the most with PSNR above bicubic",
                     "srdiff: no Detail keeps PSNR above bicubic"]


def test_the_most_textured_photos_come_first(rng):
    flat = np.full((16, 16, 3), 0.5, np.float32)
    busy = rng.random((16, 16, 3), dtype=np.float32)
    pairs = [("flat", flat, flat[:4, :4]), ("busy", busy, busy[:4, :4]), ("half", flat * 0.5 + busy * 0.5, flat)]
    assert sweep.most_textured(pairs, 2) == [1, 2]


@pytest.mark.slow
def test_detail_sweep_end_to_end_with_the_shipped_weights(photos, tmp_path, capsys, one_thread):
    chart, grid = tmp_path / "chart.png", tmp_path / "crops.png"
    argv = ["--data", str(photos), "--split", "all", "--crop", "32", "--seeds", "1", "--device", "cpu",
            "--sweep", "detail", "--chart", str(chart), "--grid", str(grid)]
    assert q.main(argv) == 0
    out = capsys.readouterr().out
    for label in ("srdiff:detail=0.25", "dossr:detail=1", "diffsr:detail=0.5", "lddpm:detail=0", "bench-bicubic-bp",
                  "dtls"):
        assert re.search(rf"^{re.escape(label)}\s", out, re.M), label
    assert "the most with PSNR above bicubic" in out or "no Detail keeps PSNR above bicubic" in out

    from PIL import Image

    with Image.open(chart) as im:
        assert im.size == (760, 480)
    with Image.open(grid) as im:  # three photos, four methods, five columns of 32 px crops
        assert im.width > 5 * 32 and im.height > 3 * 3 * 32
