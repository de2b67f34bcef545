"""Image quality on tensors from the training device, by the one definition of sr_desk.core.metrics; and model cost."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from sr_desk.core import metrics


def luma(rgb01: torch.Tensor) -> torch.Tensor:
    """Y of BT.601 in ``[16, 235]`` from ``(B, 3, H, W)`` RGB in ``[0, 1]``: ``(B, 1, H, W)``, differentiable (losses)."""
    w = torch.tensor(metrics.Y_WEIGHTS, dtype=rgb01.dtype, device=rgb01.device).view(1, 3, 1, 1)
    return (rgb01 * w).sum(dim=1, keepdim=True) + metrics.Y_OFFSET


def psnr_y(sr01: torch.Tensor, hr01: torch.Tensor, shave: int = 0) -> float:
    """Mean over the batch of :func:`sr_desk.core.metrics.psnr_y` (the bench's Y-PSNR), ``shave`` border pixels
    ignored; the result is quantised to 8 bits first, as it would be in a saved file.
    """
    sr = sr01.detach().float().permute(0, 2, 3, 1).cpu().numpy()
    hr = hr01.detach().float().permute(0, 2, 3, 1).cpu().numpy()
    return float(np.mean([metrics.psnr_y(metrics.quantize8(a), b, shave) for a, b in zip(sr, hr, strict=True)]))


def forward_flops(forward: Callable[[], object]) -> float | None:
    """FLOPs of one call of ``forward`` (a model's forward on one sample), by torch's counter; None if it cannot."""
    try:
        from torch.utils.flop_counter import FlopCounterMode

        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            forward()
        return float(counter.get_total_flops())
    except Exception:  # noqa: BLE001 - a throughput figure is not worth failing a run over
        return None
