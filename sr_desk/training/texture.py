"""A training objective that rewards texture: the local amount of fine structure, matched whatever its phase.

A pixel loss (L1, L2) against a photo whose fine texture the input cannot
pin down is smallest for the average of every texture that fits the input,
which is smooth: that is why a network trained only on it draws no fur or
grass, however long it trains. This loss compares *how much* fine structure
each small window holds (the mean gradient magnitude of luma over the
window, the local form of the bench's detail ratio), not where each stroke
lies, so a prediction with texture of the right strength is not punished for
placing it differently from the photo. A smooth prediction of a textured
patch is. It adds to the pixel loss (which keeps the result faithful), with
a weight set on the trainer's command line (``--texture``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sr_desk.training.metrics import luma

__all__ = ["TEXTURE_WINDOW", "local_detail", "texture_loss"]

#: Side of the windows whose amount of fine structure is compared, in HR pixels.
TEXTURE_WINDOW = 8


def local_detail(rgb: torch.Tensor, window: int = TEXTURE_WINDOW) -> torch.Tensor:
    """Mean gradient magnitude of luma over each ``window`` x ``window`` block: ``(B, 1, H/w, W/w)``.

    ``rgb`` is ``(B, 3, H, W)`` in ``[-1, 1]`` (the trainers' range); forward
    differences, as the bench's detail ratio uses central ones (same amount,
    half the reach). The small epsilon keeps the gradient of a flat area finite.
    """
    y = luma(rgb * 0.5 + 0.5) / 127.5  # 8-bit luma back to the range's units: 2 per full swing
    dx = y[..., :, 1:] - y[..., :, :-1]
    dy = y[..., 1:, :] - y[..., :-1, :]
    magnitude = torch.sqrt(dx[..., :-1, :] ** 2 + dy[..., :, :-1] ** 2 + 1e-8)
    return F.avg_pool2d(magnitude, window, stride=window, ceil_mode=True)


def texture_loss(
    prediction: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None, window: int = TEXTURE_WINDOW
) -> torch.Tensor:
    """L1 between the local amount of fine structure of ``prediction`` and of ``target`` (both in ``[-1, 1]``).

    ``weights`` (one per sample) scale each sample's share of the mean: a
    noise-predicting model's x0 is only pinned down at low noise, so its
    trainer weights the samples by how much signal their step keeps.
    """
    difference = (local_detail(prediction.float(), window) - local_detail(target.float(), window)).abs()
    if weights is None:
        return difference.mean()
    return (difference.mean(dim=(1, 2, 3)) * weights.reshape(-1).to(difference.dtype)).mean()
