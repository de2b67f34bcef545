"""What every model-backed method plugin does at run time, written once.

Its weights file is found by name (with a message that says what to do when
it is missing), the model built from it is kept for the next run on the same
device (one model in memory at a time: they are large), the network runs in
bfloat16 when the worker's device asks for it, and images cross from the
API's ``H x W x 3`` arrays to ``1 x 3 x H x W`` tensors.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from sr_desk.api import Context, WeightFile
from sr_desk.core.errors import SrDeskError

__all__ = ["ModelCache", "autocast_for", "image_to_tensor", "preview_of"]

Model = TypeVar("Model")


class ModelCache(Generic[Model]):
    """The model built from one weights file for one device, loaded on first use and kept.

    Called with a context, it returns the model for that context's weights
    and device; ``load(path, device)`` builds it when needed. A missing file
    is reported with how to train one (``sr-desk train trainer``) and what
    else the user can give (``alternative``). A new file, a changed file or
    another device replaces the kept model.
    """

    def __init__(self, weights: WeightFile, load: Callable[[Path, str], Model], *, method: str, trainer: str,
                 alternative: str) -> None:
        self.weights, self.load = weights, load
        self.missing = (f"{method} has no weights installed: train them with `sr-desk train {trainer}`, or give "
                        f"{alternative} with --weights")
        self._key: tuple[str, int, str] | None = None
        self.model: Model | None = None

    def __call__(self, context: Context) -> Model:
        try:
            path = context.weights.path(self.weights.name)
        except FileNotFoundError:
            raise SrDeskError(self.missing) from None
        key = (str(path), path.stat().st_mtime_ns, str(context.device))
        if key != self._key or self.model is None:
            self._key, self.model = None, None  # let the old model go before the new one loads
            self.model = self.load(path, context.device)
            self._key = key
        return self.model


def autocast_for(context: Context) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast for the network when the worker's device runs in bfloat16; else nothing."""
    if context.dtype == "bfloat16":
        return torch.autocast(torch.device(context.device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def image_to_tensor(image: np.ndarray, device: str) -> torch.Tensor:
    """``H x W x 3`` float32 array to a ``1 x 3 x H x W`` float32 tensor on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).unsqueeze(0).to(device, torch.float32)


def tensor_to_image(tensor: torch.Tensor) -> np.ndarray:
    """The first image of an ``N x 3 x H x W`` tensor in ``[0, 1]`` as ``H x W x 3`` float32, clamped, on the host."""
    return tensor[0].float().clamp(0, 1).permute(1, 2, 0).cpu().numpy().astype(np.float32)


def preview_of(context: Context, image: torch.Tensor) -> np.ndarray | None:
    """The preview the host wants now of ``image`` (``1 x 3 x H x W`` in ``[0, 1]``), or None.

    None (and no copy from the device) when the host would drop it: it shows
    a few previews a second, or none at all (the command line). Larger than
    the host's ``preview_side``, the image is shrunk on its own device first
    (area average), so only the small picture crosses to the host.
    """
    wants = getattr(context, "wants_preview", None)
    side = getattr(context, "preview_side", None)
    if side == 0 or (callable(wants) and not wants()):
        return None
    height, width = image.shape[-2:]
    if side and max(height, width) > side:
        ratio = side / max(height, width)
        size = (max(1, round(height * ratio)), max(1, round(width * ratio)))
        image = F.interpolate(image.float(), size=size, mode="area")
    return tensor_to_image(image)
