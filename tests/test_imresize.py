"""MATLAB-compatible bicubic imresize (sr_desk.diffusion.imresize)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from sr_desk.diffusion.imresize import imresize, output_size

# ---------------------------------------------------------------------------
# A slow reference written straight from MATLAB's documented algorithm:
# explicit loops over output pixels and taps, nothing vectorised.
# ---------------------------------------------------------------------------


def _ref_cubic(t: float) -> float:
    a = abs(t)
    if a <= 1:
        return 1.5 * a**3 - 2.5 * a**2 + 1
    if a <= 2:
        return -0.5 * a**3 + 2.5 * a**2 - 4 * a + 2
    return 0.0


def _ref_mirror(j: int, n: int) -> int:
    """1-based symmetric reflection: 0 -> 1, -1 -> 2, n+1 -> n, n+2 -> n-1, repeated as needed."""
    while j < 1 or j > n:
        j = 1 - j if j < 1 else 2 * n + 1 - j
    return j


def _ref_resize_1d(line: list[float], scale: float, out_len: int, antialias: bool = True) -> list[float]:
    n = len(line)
    shrink = antialias and scale < 1
    width = 4 / scale if shrink else 4
    out = []
    for x in range(1, out_len + 1):
        u = x / scale + 0.5 * (1 - 1 / scale)
        total = 0.0
        wsum = 0.0
        for j in range(math.floor(u - width / 2), math.ceil(u + width / 2) + 1):
            w = scale * _ref_cubic(scale * (u - j)) if shrink else _ref_cubic(u - j)
            total += w * line[_ref_mirror(j, n) - 1]
            wsum += w
        out.append(total / wsum)
    return out


def _ref_imresize(img: np.ndarray, scale: float) -> np.ndarray:
    """(H, W) float64 image; height first, then width (equal scales)."""
    h, w = img.shape
    oh, ow = math.ceil(h * scale - 1e-9), math.ceil(w * scale - 1e-9)
    cols = [_ref_resize_1d(list(img[:, c]), scale, oh) for c in range(w)]
    tmp = np.array(cols).T  # (oh, w)
    rows = [_ref_resize_1d(list(tmp[r, :]), scale, ow) for r in range(oh)]
    return np.array(rows)


def _smooth(h: int, w: int, channels: int = 3) -> torch.Tensor:
    y = torch.linspace(0, 1, h)[:, None]
    x = torch.linspace(0, 1, w)[None, :]
    planes = [0.5 + 0.3 * torch.sin(2.0 * x + 1.3 * y + c) * torch.cos(1.7 * y - 0.5 * x) for c in range(channels)]
    return torch.stack(planes)[None]


# ---------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [4, 1 / 4, 8, 1 / 8, 2.5])
def test_matches_slow_reference(scale: float) -> None:
    rng = np.random.default_rng(7)
    side = 16 if scale < 1 else 6
    img = rng.random((side, side + 3))
    ours = imresize(torch.from_numpy(img)[None, None].float(), scale=scale)[0, 0].double().numpy()
    ref = _ref_imresize(img, scale)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_float64_matches_reference_tightly() -> None:
    img = np.random.default_rng(1).random((5, 7))
    ours = imresize(torch.from_numpy(img), scale=1 / 3)
    np.testing.assert_allclose(ours.numpy(), _ref_imresize(img, 1 / 3), atol=1e-12)


@pytest.mark.parametrize("scale", [4, 0.25, 3, 1 / 3, 2.5])
def test_constant_image_is_preserved(scale: float) -> None:
    x = torch.full((2, 3, 12, 9), 0.37)
    y = imresize(x, scale=scale)
    torch.testing.assert_close(y, torch.full_like(y, 0.37), atol=1e-6, rtol=0)


@pytest.mark.parametrize(("size", "scale"), [((20, 20), 8), ((160, 160), 1 / 8), ((7, 5), 2.5), ((9, 11), 0.3)])
def test_output_size_is_ceil_like_matlab(size: tuple[int, int], scale: float) -> None:
    x = torch.zeros(1, 1, *size)
    y = imresize(x, scale=scale)
    assert tuple(y.shape[-2:]) == (math.ceil(size[0] * scale - 1e-9), math.ceil(size[1] * scale - 1e-9))
    assert output_size(10, 0.1) == 1  # 10 * 0.1 is 1.0000000000000002 in floating point


def test_size_argument_and_scale_per_axis() -> None:
    x = _smooth(8, 12)
    y = imresize(x, size=(32, 48))
    torch.testing.assert_close(y, imresize(x, scale=4))
    z = imresize(x, scale=(2, 0.5))
    assert tuple(z.shape[-2:]) == (16, 6)
    with pytest.raises(ValueError):
        imresize(x)
    with pytest.raises(ValueError):
        imresize(x, scale=2, size=(16, 24))
    with pytest.raises(TypeError):
        imresize(torch.zeros(1, 1, 4, 4, dtype=torch.uint8), scale=2)


def test_up_then_down_returns_close_to_original() -> None:
    x = _smooth(24, 20)
    back = imresize(imresize(x, scale=4), scale=1 / 4)
    assert back.shape == x.shape
    assert float((back - x).abs().max()) < 5e-3


def test_any_leading_axes() -> None:
    x = _smooth(6, 6)
    torch.testing.assert_close(imresize(x[0, 0], scale=2), imresize(x, scale=2)[0, 0])
    torch.testing.assert_close(imresize(x[0], scale=2), imresize(x, scale=2)[0])


def test_no_antialias_when_shrinking_uses_narrow_kernel() -> None:
    img = np.random.default_rng(3).random((16, 16))
    ours = imresize(torch.from_numpy(img)[None, None], scale=0.5, antialias=False)[0, 0].numpy()
    ref_cols = np.array([_ref_resize_1d(list(img[:, c]), 0.5, 8, antialias=False) for c in range(16)]).T
    ref = np.array([_ref_resize_1d(list(ref_cols[r]), 0.5, 8, antialias=False) for r in range(8)])
    np.testing.assert_allclose(ours, ref, atol=1e-12)


@pytest.mark.parametrize("scale", [4, 1 / 4])
def test_agrees_with_pillow_bicubic_away_from_borders(scale: float) -> None:
    # Pillow's BICUBIC is also Keys a = -0.5 with antialiasing, but clips the
    # kernel at the border instead of mirroring: compare the interior only.
    side = 16 if scale > 1 else 64
    plane = _smooth(side, side, channels=1)[0, 0].numpy()
    out = int(side * scale)
    pil = np.asarray(Image.fromarray(plane.astype(np.float32), mode="F").resize((out, out), Image.Resampling.BICUBIC))
    ours = imresize(torch.from_numpy(plane)[None, None], scale=scale)[0, 0].numpy()
    margin = int(3 * scale) if scale > 1 else 3  # output pixels whose taps reach the border
    inner = (slice(margin, out - margin),) * 2
    assert ours[inner].size >= 64
    np.testing.assert_allclose(ours[inner], pil[inner], atol=1e-5)  # same kernel: float32 noise only


def test_the_matrix_product_and_the_taps_give_the_same_resize(monkeypatch):
    """Issue 28: axes up to DENSE_LIMIT entries are resized as one matrix product, longer ones tap by tap."""
    import sr_desk.diffusion.imresize as module

    x = torch.rand(2, 3, 37, 53, dtype=torch.float64)
    cases = [dict(scale=0.25), dict(scale=4.0), dict(size=(50, 20)), dict(scale=1 / 3, antialias=False)]
    dense = [imresize(x, **case) for case in cases]
    monkeypatch.setattr(module, "DENSE_LIMIT", 0)
    for case, expected in zip(cases, dense, strict=True):
        torch.testing.assert_close(imresize(x, **case), expected, rtol=0, atol=1e-12)


def test_bf16_autocast_does_not_round_the_resize() -> None:
    """A training step under bf16 autocast gets the same float32 bicubic (targets, skips) as outside it."""
    x = torch.rand(2, 3, 24, 20, generator=torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = imresize(x, scale=4.0)
    assert inside.dtype == torch.float32
    assert torch.equal(inside, imresize(x, scale=4.0))


@pytest.mark.parametrize(("in_hw", "out_hw"), [((32, 24), (8, 6)), ((17, 23), (40, 9)), ((9, 9), (30, 30)), ((64, 48), (21, 13))])
def test_the_numpy_resize_of_the_editor_matches_the_torch_one(in_hw, out_hw):
    """Both apply sr_desk.core.matlab_resize's taps: one degradation model for the editor, the bench and training."""
    from sr_desk.core.matlab_resize import matlab_resize

    image = np.random.default_rng(3).random((*in_hw, 3), dtype=np.float32)
    expected = imresize(torch.from_numpy(image).permute(2, 0, 1)[None].double(), size=out_hw)[0].permute(1, 2, 0)
    got = matlab_resize(image, (out_hw[1], out_hw[0]))
    assert got.dtype == np.float32 and got.shape == (*out_hw, 3)
    np.testing.assert_allclose(got, expected.numpy(), atol=2e-6)
    gray = matlab_resize(image[..., 0], (out_hw[1], out_hw[0]))
    np.testing.assert_allclose(gray, got[..., 0], atol=1e-7)
