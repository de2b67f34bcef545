"""Windowed noise prediction: each window gets its place, so a per-pixel condition can be cropped to it."""

import torch

from sr_desk.diffusion.tiled import tiled_window_predictor


def test_a_pointwise_conditional_network_gives_the_same_noise_in_windows():
    condition = torch.randn(1, 4, 200, 136)

    def conditional(x, step, box):
        top, left = box
        return torch.tanh(x) * step + condition[..., top : top + x.shape[-2], left : left + x.shape[-1]].mean(1, True)

    x = torch.randn(1, 3, 200, 136)
    whole = conditional(x, 2, (0, 0))
    boxes = []

    def recording(window, step, box):
        boxes.append(box)
        return conditional(window, step, box)

    tiled = tiled_window_predictor(recording, 64, 16, 8)(x, 2)
    torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-5)
    assert len(boxes) > 4 and all(top % 8 == 0 and left % 8 == 0 for top, left in boxes)


def test_an_image_within_one_tile_is_predicted_whole():
    seen = []
    x = torch.randn(1, 3, 64, 40)
    tiled_window_predictor(lambda window, step, box: seen.append((window.shape, box)) or window, 64, 16, 8)(x, 0)
    assert seen == [(x.shape, (0, 0))]
