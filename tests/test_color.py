import numpy as np

from sr_desk.core.color import color_lock
from sr_desk.core.resize import Filter, resize


def test_color_lock_removes_a_colour_cast_and_keeps_detail(rng):
    source = rng.random((32, 32, 3), dtype=np.float32)
    upscaled = resize(source, (128, 128), Filter.BICUBIC)
    detail = 0.05 * np.sin(np.arange(128) * 2.5)[None, :, None].astype(np.float32)
    cast = np.array([0.08, -0.05, 0.02], np.float32)
    locked = color_lock(upscaled + detail + cast, source)
    assert np.abs(locked.mean(axis=(0, 1)) - upscaled.mean(axis=(0, 1))).max() < 0.005
    added = locked - upscaled  # what is left of the method's change: the detail, not the cast
    assert np.corrcoef(added[64, :, 0], detail[0, :, 0])[0, 1] > 0.95
    assert np.abs(added - detail).max() < 0.03


def test_color_lock_leaves_a_consistent_result_alone(rng):
    source = np.full((16, 16, 3), 0.4, np.float32)
    assert np.allclose(color_lock(np.full((64, 64, 3), 0.4, np.float32), source), 0.4, atol=1e-6)


def test_match_colors_moves_mean_and_spread_inside_the_mask():
    from sr_desk.core.color import match_colors

    rng = np.random.default_rng(3)
    content = (0.6 + 0.2 * rng.random((20, 20, 3))).astype(np.float32)
    reference = (0.2 + 0.1 * rng.random((20, 20, 3))).astype(np.float32)
    mask = np.zeros((20, 20), np.float32)
    mask[5:15, 5:15] = 1.0
    matched = match_colors(content, reference, mask)
    inside = mask > 0
    assert np.allclose(matched[inside].mean(axis=0), reference[inside].mean(axis=0), atol=1e-4)
    assert np.allclose(matched[inside].std(axis=0), reference[inside].std(axis=0), atol=1e-4)
    assert np.array_equal(match_colors(content, reference, np.zeros_like(mask)), content)  # nothing selected
