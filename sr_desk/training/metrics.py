"""Image quality as SR papers measure it, on tensors already on the training device; and model cost."""

from __future__ import annotations

from collections.abc import Callable

import torch

#: ITU-R BT.601 luma, as MATLAB's rgb2ycbcr (and every SR paper's Y-channel PSNR) uses.
_Y_WEIGHTS = (65.481, 128.553, 24.966)


def luma(rgb01: torch.Tensor) -> torch.Tensor:
    """Y of BT.601 in ``[16, 235]`` from ``(B, 3, H, W)`` RGB in ``[0, 1]``: ``(B, 1, H, W)``."""
    w = torch.tensor(_Y_WEIGHTS, dtype=rgb01.dtype, device=rgb01.device).view(1, 3, 1, 1)
    return (rgb01 * w).sum(dim=1, keepdim=True) + 16.0


def psnr_y(sr01: torch.Tensor, hr01: torch.Tensor, shave: int = 0) -> float:
    """Mean over the batch of the Y-channel PSNR (dB, 8-bit peak), with ``shave`` border pixels ignored.

    The result is quantised to 8 bits first, as it would be in a saved file.
    """
    sr = torch.round(sr01.float().clamp(0, 1) * 255) / 255
    a, b = luma(sr), luma(hr01.float())
    if shave:
        a, b = a[..., shave:-shave, shave:-shave], b[..., shave:-shave, shave:-shave]
    mse = ((a - b) ** 2).mean(dim=(1, 2, 3)).clamp_min(1e-10)
    return float((10 * torch.log10(255.0**2 / mse)).mean())



def forward_flops(forward: Callable[[], object]) -> float | None:
    """FLOPs of one call of ``forward`` (a model's forward on one sample), by torch's counter; None if it cannot."""
    try:
        from torch.utils.flop_counter import FlopCounterMode

        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            forward()
        return float(counter.get_total_flops())
    except Exception:  # noqa: BLE001 - a throughput figure is not worth failing a run over
        return None
