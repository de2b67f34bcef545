"""Keeping a super-resolved image consistent with its low-resolution input.

Iterative back-projection (Irani and Peleg, 1991): downscale the estimate
with the degradation the model assumes (MATLAB bicubic here), and add the
upscaled difference to the input back:

    x <- x + up(lr - down(x))

Each pass shrinks ``down(x) - lr`` while touching little of what ``down``
cannot see, the high frequencies a diffusion model adds. Applied to every
x0 prediction while sampling (``Sampler.sample(correct_x0=...)``), it is the
data-consistency step of DDNM/ILVR-style samplers: the sample then ends
consistent with the input, which is what a user who reads the compare
view's LR-PSNR expects of a super-resolution result.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from sr_desk.diffusion.imresize import imresize

__all__ = ["back_project", "back_project_to", "residual_consistency"]


def back_project(image: torch.Tensor, lr: torch.Tensor, scale: int, iterations: int = 1) -> torch.Tensor:
    """``image`` (``N x C x H x W``, H = scale x lr's height) corrected ``iterations`` times towards ``lr``.

    Any value range works (both tensors in the same one): the correction is
    linear. Values are not clipped.
    """
    if image.shape[-2:] != (lr.shape[-2] * scale, lr.shape[-1] * scale):
        raise ValueError(f"image {tuple(image.shape[-2:])} is not {scale}x the LR {tuple(lr.shape[-2:])}")
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    for _ in range(iterations):
        image = image + imresize(lr - imresize(image, scale=1.0 / scale), scale=float(scale))
    return image


def back_project_to(image: torch.Tensor, lr: torch.Tensor, iterations: int = 1) -> torch.Tensor:
    """:func:`back_project` for any pair of sizes (a non-integer scale, an exact target size).

    Each axis resizes by its own ratio, as MATLAB's ``imresize(..., [h w])``
    does; at an integer scale the result equals :func:`back_project`'s.
    """
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    big, small = tuple(image.shape[-2:]), tuple(lr.shape[-2:])
    if big[0] < small[0] or big[1] < small[1]:
        raise ValueError(f"image {big} is smaller than the LR {small}")
    for _ in range(iterations):
        image = image + imresize(lr - imresize(image, size=small), size=big)
    return image


def residual_consistency(base: torch.Tensor, lr: torch.Tensor, scale: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """An x0 correction for samplers whose x0 is a residual (image = x0 / 2 + base), as SRDiff's is.

    Each x0 is turned into its image, back-projected once onto ``lr`` and
    turned back into a residual; ``base`` and ``lr`` share one value range.
    """

    def correct(x0: torch.Tensor) -> torch.Tensor:
        return (back_project(x0 / 2 + base, lr, scale) - base) * 2

    return correct
