"""LDDPM at run time: the network loaded once, four coarse steps from noise to the result.

Runs on sr-desk's worker thread; images are float32 ``H x W x 3`` in
``[0, 1]``. Any enlargement or exact size from one network (the LR is
enlarged to the output size first, SR3-style); sides are padded to the
network's multiple and cropped back. Every draw comes from one CPU stream
seeded by the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sr_desk.api import Context, Request
from sr_desk.core.errors import SrDeskError
from sr_desk.diffusion.noise import SeededNoise
from sr_desk.diffusion.runtime import ModelCache, autocast_for, image_to_tensor, preview_of, tensor_to_image
from sr_desk.diffusion.schedule import NoiseSchedule
from sr_desk_plugins.lddpm import BUILTIN_WEIGHTS
from sr_desk_plugins.lddpm.checkpoints import load_model
from sr_desk_plugins.lddpm.network import LDDPMNet
from sr_desk_plugins.lddpm.process import coarse_schedule, restore


@dataclass
class LoadedModel:
    network: LDDPMNet
    schedule: NoiseSchedule
    source: str


def _load(path: Path, device: str) -> LoadedModel:
    network, _, _ = load_model(path, device=device)
    network.requires_grad_(False)
    return LoadedModel(network, coarse_schedule(), path.name)


loaded_model = ModelCache(BUILTIN_WEIGHTS, _load, method="LDDPM", trainer="lddpm",
                          alternative="an LDDPM safetensors file")


def upscale(request: Request, context: Context) -> np.ndarray:
    """The requested size in four network calls, a preview after each."""
    loaded = loaded_model(context)
    width, height = request.output_size
    lr = image_to_tensor(request.image, context.device)
    if height < lr.shape[-2] or width < lr.shape[-1]:
        raise SrDeskError(f"LDDPM only enlarges: asked for {width}x{height} from {lr.shape[-1]}x{lr.shape[-2]}")
    total = loaded.schedule.T
    context.report(0, total)
    sr = restore(loaded.network, lr, (height, width), loaded.schedule, SeededNoise(request.seed),
                 lr_consistency=bool(request.params.get("lr_consistency", True)),
                 callback=lambda k, n, x0: context.report(k, n, preview=preview_of(context, x0)),
                 precision=lambda: autocast_for(context))
    return tensor_to_image(sr)

