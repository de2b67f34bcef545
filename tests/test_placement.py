import numpy as np
import pytest

from sr_desk.core.placement import cover_box, place_image


def test_cover_box_covers_the_target_with_the_aspect_kept_and_the_same_centre():
    x, y, w, h = cover_box((200, 100), (10, 20, 40, 40))
    assert (w, h) == (80, 40)  # height limits: 40 / 100 = 0.4 -> 80 x 40
    assert (x + w / 2, y + h / 2) == (30, 40)
    assert cover_box((50, 50), (0, 0, 50, 50)) == (0, 0, 50, 50)


def test_cover_box_refuses_empty_sizes():
    with pytest.raises(ValueError):
        cover_box((0, 10), (0, 0, 5, 5))


def test_place_image_pastes_the_resized_content_into_the_box_only():
    base = np.zeros((30, 40, 3), np.float32)
    content = np.ones((5, 10, 3), np.float32)
    placed = place_image(base, content, (4.0, 6.0, 20.0, 10.0))
    inside = np.zeros((30, 40), bool)
    inside[6:16, 4:24] = True
    assert np.allclose(placed[inside], 1.0) and np.array_equal(placed[~inside], base[~inside])
    assert base.max() == 0  # the base is not touched


def test_place_image_clips_a_box_that_overhangs_the_image():
    base = np.zeros((10, 10, 3), np.float32)
    content = np.linspace(0, 1, 20, dtype=np.float32)[None, :, None].repeat(20, 0).repeat(3, 2)
    placed = place_image(base, content, (-10.0, -10.0, 20.0, 20.0))
    # The content's bottom-right quarter lands in the top-left 10x10 corner: the right half of a ramp.
    assert placed[:, :, 0].min() > 0.45 and np.all(np.diff(placed[0, :, 0]) > 0)


def test_place_image_refuses_a_box_outside_the_image():
    with pytest.raises(ValueError, match="outside"):
        place_image(np.zeros((10, 10, 3), np.float32), np.ones((4, 4, 3), np.float32), (20.0, 0.0, 5.0, 5.0))
