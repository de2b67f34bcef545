"""DTLS at run time: loading the model once, and the three samplers with a preview at every call.

Runs on sr-desk's worker thread; images are float32 ``H x W x 3`` in
``[0, 1]``, which is also DTLS's own range (spec 8.5). What the official code
cannot do and a desktop editor needs: inputs of any size and aspect (the
levels are fractions of the output size; sides are padded to the U-Net's
multiple and cropped back), any scale up to the model's deepest level, and
exact target sizes, all through the size schedule rather than a final resize.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sr_desk.api import Context, Request
from sr_desk.core.errors import SrDeskError
from sr_desk.core.resize import Filter, resize
from sr_desk.diffusion.consistency import back_project
from sr_desk.diffusion.resolution import (
    Degradation,
    chain_sample,
    momentum_sample,
    start_level,
    two_call_sample,
)
from sr_desk.diffusion.runtime import ModelCache, autocast_for, image_to_tensor, preview_of, tensor_to_image
from sr_desk_plugins.dtls import BUILTIN_WEIGHTS, DEFAULT_SAMPLER
from sr_desk_plugins.dtls.checkpoints import load_model
from sr_desk_plugins.dtls.config import DTLSConfig
from sr_desk_plugins.dtls.network import DTLSUNet, pad_to_multiple

#: Back-projection passes onto the input after the last call (the no-model reference uses the same kernel).
CONSISTENCY_PASSES = 3


@dataclass
class LoadedModel:
    unet: DTLSUNet
    config: DTLSConfig
    degrade: Degradation
    source: str


def _load(path: Path, device: str) -> LoadedModel:
    unet, config, _ = load_model(path, device=device)
    unet.requires_grad_(False).to(memory_format=torch.channels_last)
    return LoadedModel(unet, config, Degradation(config.levels, config.downscale), path.name)


#: The model for a context's weights and device, loaded once and kept (one at a time).
loaded_model = ModelCache(BUILTIN_WEIGHTS, _load, method="DTLS", trainer="dtls",
                          alternative="an official DTLS checkpoint")


def start_for(scale: float, config: DTLSConfig) -> int:
    """The level an input ``scale`` times smaller starts at; refuses what the model was not trained for."""
    if scale <= 1.0 + 1e-6:
        raise SrDeskError(f"DTLS only enlarges: the output must be larger than the input (asked for x{scale:.3g})")
    return min(start_level(scale, config.levels), config.max_level)


@torch.no_grad()
def super_resolve(
    loaded: LoadedModel,
    lr: torch.Tensor,
    size: tuple[int, int],
    context: Context,
    sampler: str = DEFAULT_SAMPLER,
) -> torch.Tensor:
    """The SR image (``1 x 3 x H x W``, ``size`` = ``(H, W)``), unclamped, with a preview after every call."""
    scale = (size[0] * size[1] / (lr.shape[-2] * lr.shape[-1])) ** 0.5
    t0 = start_for(scale, loaded.config)
    start, _ = pad_to_multiple(loaded.degrade.enlarge(lr, size), loaded.config.size_multiple)
    unet, precision = loaded.unet, autocast_for(context)

    def predict(x: torch.Tensor, t: int) -> torch.Tensor:
        with precision:
            return unet(x.contiguous(memory_format=torch.channels_last), t).float()

    def on_step(step: int, total: int, prediction: torch.Tensor) -> None:
        context.report(step, total, preview=preview_of(context, prediction[..., : size[0], : size[1]]))

    context.report(0, 2 if sampler == "fast" else t0)
    if sampler == "fast":
        out = two_call_sample(predict, start, t0, loaded.degrade, callback=on_step)
    elif sampler == "momentum":
        out = momentum_sample(predict, start, t0, loaded.degrade, callback=on_step)
    elif sampler == "chain":
        out = chain_sample(predict, start, t0, loaded.degrade, callback=on_step)
    else:
        raise SrDeskError(f"unknown DTLS sampler {sampler!r}")
    return out[..., : size[0], : size[1]]


def model_size(request: Request, config: DTLSConfig) -> tuple[int, int]:
    """``(height, width)`` the model produces: the requested size, or the largest it reaches on the way there."""
    width, height = request.output_size
    in_w, in_h = request.input_size
    reach = min(1.0, config.max_scale / max(width / in_w, height / in_h))  # a shrink is refused by start_for
    return round(height * reach), round(width * reach)


def upscale(request: Request, context: Context) -> np.ndarray:
    """The requested size through the size schedule; beyond the deepest level, the rest by Lanczos."""
    loaded = loaded_model(context)
    size = model_size(request, loaded.config)
    lr = image_to_tensor(request.image, context.device)
    sr = super_resolve(loaded, lr, size, context, request.params.get("sampler", DEFAULT_SAMPLER))
    scale = size[1] / lr.shape[-1]
    integer = scale == int(scale) and size[0] == lr.shape[-2] * int(scale)
    if request.params.get("lr_consistency") and integer:
        sr = back_project(sr, lr, int(scale), CONSISTENCY_PASSES)
    image = tensor_to_image(sr)
    width, height = request.output_size
    if size != (height, width):
        context.report(1, 1, message=f"x{loaded.config.max_scale:g} by DTLS, the rest by Lanczos")
        image = resize(image, (width, height), Filter.LANCZOS)
    return image
