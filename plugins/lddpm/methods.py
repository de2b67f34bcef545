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
from typing import Any

import numpy as np

from sr_desk.api import Context, Request, detail_of
from sr_desk.core.errors import SrDeskError
from sr_desk.diffusion.detail import DetailCurve, TemperedNoise
from sr_desk.diffusion.noise import NoiseSource, SeededNoise
from sr_desk.diffusion.runtime import ModelCache, autocast_for, image_to_tensor, preview_of, tensor_to_image
from sr_desk.diffusion.schedule import NoiseSchedule
from sr_desk_plugins.lddpm import BUILTIN_WEIGHTS, DEFAULT_DETAIL
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


#: Detail's means. The temperature of every draw (the start and posterior noise, the CVAE and GAN latents) up to
#: the trained sampler: at 0 one picture whatever the seed. The residual gain (``process.restore``) over the whole
#: range, to the gain whose result the held-out sweep still puts above bicubic (MODEL_CARD.md).
TEMPERATURE = DetailCurve(((0.0, 0.0), (0.25, 1.0), (1.0, 1.0)))
RESIDUAL_GAIN = DetailCurve(((0.0, 1.0), (1.0, 2.2)))


def seeded_noise(seed: int, params: dict[str, Any]) -> NoiseSource:
    """The request's noise stream at Detail's temperature."""
    return TemperedNoise(SeededNoise(seed), TEMPERATURE.at(detail_of(params, DEFAULT_DETAIL)))


def residual_gain(params: dict[str, Any]) -> float:
    """The request's gain on the network's residual (``process.restore(residual_gain=...)``)."""
    return RESIDUAL_GAIN.at(detail_of(params, DEFAULT_DETAIL))


def upscale(request: Request, context: Context) -> np.ndarray:
    """The requested size in four network calls, a preview after each."""
    loaded = loaded_model(context)
    width, height = request.output_size
    lr = image_to_tensor(request.image, context.device)
    if height < lr.shape[-2] or width < lr.shape[-1]:
        raise SrDeskError(f"LDDPM only enlarges: asked for {width}x{height} from {lr.shape[-1]}x{lr.shape[-2]}")
    total = loaded.schedule.T
    context.report(0, total)
    sr = restore(loaded.network, lr, (height, width), loaded.schedule, seeded_noise(request.seed, request.params),
                 lr_consistency=bool(request.params.get("lr_consistency", True)),
                 residual_gain=residual_gain(request.params),
                 callback=lambda k, n, x0: context.report(k, n, preview=preview_of(context, x0)),
                 precision=lambda: autocast_for(context))
    return tensor_to_image(sr)

