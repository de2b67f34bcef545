"""sr_desk.engine.evaluation and evaluation_report: LR-PSNR, method specs, photos, the tables and the grid.

Running methods through the engine is covered end to end by tests/test_quality_bench.py.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

pytest.importorskip("skimage")

from sr_desk.core.fidelity import downscale_to  # noqa: E402
from sr_desk.engine.evaluation import (  # noqa: E402
    MethodSpec,
    RowResult,
    hr_lr_pair,
    load_pairs,
    lr_psnr,
    parse_method_list,
    parse_method_spec,
    select_images,
)
from sr_desk.engine.evaluation_report import centre_box, format_table, write_grid  # noqa: E402


def grey(level: float, size: int = 32) -> np.ndarray:
    return np.full((size, size, 3), level, dtype=np.float32)


def row(label: str, psnr: float, lr: float) -> RowResult:
    return RowResult(parse_method_spec(label), psnr=[psnr], ssim=[0.5], lr_psnr=[lr], detail=[0.75], sigma=[1.0],
                     seconds=[2.0])


# -- LR-PSNR -------------------------------------------------------------------------


def test_lr_psnr_of_an_exact_downscale_is_inf_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert lr_psnr(grey(0.3), grey(0.3, 8)) == math.inf


def test_lr_psnr_refuses_mismatched_sizes():
    with pytest.raises(ValueError):
        lr_psnr(grey(0.5, 32), grey(0.5, 9))


def test_lr_psnr_downscales_matlab_style_and_compares_rgb(rng):
    # A flat image stays flat when shrunk, so the error is the level difference.
    assert lr_psnr(grey(0.5), grey(0.4, 8)) == pytest.approx(20.0, abs=1e-4)
    hr = rng.random((32, 32, 3), dtype=np.float32)
    assert lr_psnr(hr, downscale_to(hr, (8, 8))) == math.inf


# -- method specs --------------------------------------------------------------------


def test_method_spec_parser():
    assert parse_method_spec("bicubic") == MethodSpec("bicubic")
    spec = parse_method_spec("srdiff:dpm++2m:20")
    assert spec.method_id == "srdiff" and spec.param_dict == {"sampler": "dpm++2m", "steps": "20"}
    spec = parse_method_spec("srdiff:ddim:10:eta=0.5")
    assert spec.param_dict == {"sampler": "ddim", "steps": "10", "eta": "0.5"}
    assert spec.label == "srdiff:ddim:10:eta=0.5"
    assert parse_method_spec("srdiff:ancestral").param_dict == {"sampler": "ancestral"}
    assert parse_method_spec("srdiff:steps=5").label == "srdiff:steps=5"
    assert parse_method_spec(" srdiff : ddim ").label == "srdiff:ddim"
    assert parse_method_spec("srdiff:dpm++2m:4").with_color_lock().label == "srdiff:dpm++2m:4 +color-lock"
    bad_specs = ("", ":ddim", "srdiff::4", "srdiff:ddim:4:5", "srdiff:ddim:steps=4:4", "srdiff:eta=",
                 "srdiff:ddim:sampler=x")
    for bad in bad_specs:
        with pytest.raises(ValueError):
            parse_method_spec(bad)
    assert [s.label for s in parse_method_list("bicubic, srdiff:ddim:4,")] == ["bicubic", "srdiff:ddim:4"]
    with pytest.raises(ValueError):
        parse_method_list(" , ")


# -- photos --------------------------------------------------------------------------


def test_holdout_split_is_the_trainers_and_limit_applies(tmp_path):
    from sr_desk.training.data import list_images, split_holdout

    for i in range(25):
        (tmp_path / f"p{i:02d}.png").write_bytes(b"")
    held = split_holdout(list_images(tmp_path))[1]
    assert select_images(tmp_path) == held and len(held) == 3
    assert select_images(tmp_path, "all", limit=4) == list_images(tmp_path)[:4]
    with pytest.raises(ValueError):
        select_images(tmp_path, "training")


def test_crops_are_central_and_lr_is_the_degradation():
    import torch

    from sr_desk.training.data import degrade

    photo = (np.arange(48 * 40 * 3) % 251).astype(np.uint8).reshape(48, 40, 3)
    hr, lr = hr_lr_pair(photo, 16)
    assert hr.shape == (16, 16, 3) and lr.shape == (4, 4, 3)
    assert np.array_equal(hr, photo[16:32, 12:28].astype(np.float32) / 255)
    expected = degrade(torch.from_numpy(hr).permute(2, 0, 1)[None], 4)[0].permute(1, 2, 0).numpy()
    assert np.allclose(lr, expected)
    whole, small = hr_lr_pair(photo[:47, :39], 0)
    assert whole.shape == (44, 36, 3) and small.shape == (11, 9, 3)


def test_pairs_are_loaded_as_training_loads_photos(tmp_path):
    from PIL import Image

    from sr_desk.training.data import load_photo

    photo = (np.arange(40 * 48 * 3) % 251).astype(np.uint8).reshape(40, 48, 3)
    Image.fromarray(photo).save(tmp_path / "a.png")
    [(name, hr, lr)] = load_pairs([tmp_path / "a.png"], 16, 2)
    expected_hr, expected_lr = hr_lr_pair(load_photo(tmp_path / "a.png"), 16, 2)
    assert name == "a.png" and np.array_equal(hr, expected_hr) and np.array_equal(lr, expected_lr)
    assert lr.shape == (8, 8, 3)


# -- reporting -----------------------------------------------------------------------


def test_tables_plain_and_markdown():
    rows = [row("bicubic", 24.123, 47.5), row("srdiff:ddim:20", 25.0, math.inf)]
    failed = RowResult(parse_method_spec("srdiff:ancestral:100"), error="no weights")
    plain = format_table([*rows, failed]).splitlines()
    assert plain[0].split()[:2] == ["method", "PSNR"]
    assert plain[2].split() == ["bicubic", "24.12", "0.5000", "47.50", "0.75", "1.00", "2.000", "1"]
    assert plain[3].split()[3] == "inf"
    assert "failed" in plain[4]
    md = format_table(rows, markdown=True).splitlines()
    assert md[0] == "| method | PSNR (dB) | SSIM | LR-PSNR (dB) | detail | σ | s/image | images |"
    assert md[1].startswith("|---|")
    assert md[3] == "| `srdiff:ddim:20` | 25.00 | 0.5000 | inf | 0.75 | 1.00 | 2.000 | 1 |"
    assert format_table([RowResult(parse_method_spec("bicubic"))]).splitlines()[2].split()[1] == "n/a"


def test_grid_cells_are_central_crops_on_the_lr_grid(tmp_path):
    from PIL import Image

    assert centre_box(50, 30, size=16, scale=4) == (16, 4, 16, 16)
    assert centre_box(10, 10, size=16, scale=4) == (0, 0, 8, 8)
    hr = np.zeros((32, 32, 3), np.float32)
    pairs = [(f"p{i}", hr, hr[::4, ::4]) for i in range(4)]
    out = np.ones((32, 32, 3), np.float32)
    path = tmp_path / "sub" / "grid.png"
    write_grid(path, pairs, {"m": [out] * 3}, [("M", "m")], crop=16)
    with Image.open(path) as im:
        assert im.width == 4 + 3 * (120 + 4) and im.height == 16 + 3 * (16 + 16 + 4) + 4  # three photos at most
        cell = np.asarray(im.convert("RGB"))[16 + 16 : 16 + 32, 4 + 124 : 4 + 124 + 16]
    assert (cell == 255).all()  # the method's column is its kept output
