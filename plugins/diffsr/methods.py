"""Diff-SR at run time: loading the prior once, then resample, inject, reverse (spec 5).

Runs on sr-desk's worker thread; images are float32 ``H x W x 3`` in
``[0, 1]``. The method works at the output size directly, so any scale
(2.7x) and any exact size come out exactly; the network runs on
overlapping tiles blended at every step, so a 4K canvas fits in memory and
shows no seams. Noise comes from a CPU stream seeded by the request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sr_desk.api import Context, Request, detail_of
from sr_desk.core.errors import SrDeskError
from sr_desk.diffusion.detail import DetailCurve
from sr_desk.diffusion.noise import SeededNoise
from sr_desk.diffusion.runtime import ModelCache, autocast_for, image_to_tensor, preview_of, tensor_to_image
from sr_desk.diffusion.schedule import NoiseSchedule, from_scheduler_config
from sr_desk.diffusion.tiled import tiled_predictor
from sr_desk_plugins.diffsr import BUILTIN_WEIGHTS, DEFAULT_DETAIL, DEFAULT_SAMPLER
from sr_desk_plugins.diffsr.checkpoints import load_model
from sr_desk_plugins.diffsr.diffusers_prior import is_diffusers_folder, load_diffusers_prior
from sr_desk_plugins.diffsr.injection import InjectionTable, fallback_level
from sr_desk_plugins.diffsr.process import DEFAULT_CONSISTENCY, DEFAULT_STEPS, restore, scale_of

#: Network calls of a draft (the editor's live preview).
DRAFT_STEPS = 3
#: Detail's means, both rising from Detail 0 (the calibrated level, no gain) in a straight line: the injected
#: noise level, up to ``TOP_LEVEL``, and the gain of the ddpm sampler's last fresh draw (the noise the final
#: network call meets), up to 3. With the built-in prior the gain gives more detail at equal PSNR than a higher
#: level (the sweep is in MODEL_CARD.md).
TOP_LEVEL = 0.2
LAST_NOISE_GAIN = DetailCurve(((0.0, 1.0), (1.0, 3.0)))


def level_for_detail(detail: float, calibrated: float) -> float:
    """The injected noise level: the calibrated one at Detail 0, rising in a straight line to ``TOP_LEVEL`` at 1."""
    return DetailCurve(((0.0, calibrated), (1.0, max(calibrated, TOP_LEVEL)))).at(detail)


#: Output-pixel tile of the network (a multiple of every prior's size multiple), and the tiles' overlap.
TILE, OVERLAP = 512, 64


@dataclass
class LoadedPrior:
    predict_noise: Callable[[torch.Tensor, int], torch.Tensor]
    schedule: NoiseSchedule
    table: InjectionTable | None
    size_multiple: int
    source: str

    def level_for(self, scale: float) -> float:
        """The calibrated noise level for ``scale``, or the paper's line for an uncalibrated prior."""
        return self.table.level(scale) if self.table is not None else fallback_level(scale)


def _load(path: Path, device: str) -> LoadedPrior:
    if path.is_dir():
        if not is_diffusers_folder(path):
            raise SrDeskError(f"{path} is a folder without a diffusers config.json (or unet/config.json)")
        prior = load_diffusers_prior(path, device)
        return LoadedPrior(prior.predictor(), prior.schedule, None, prior.size_multiple, path.name)
    network, config, table = load_model(path, device=device)
    network.requires_grad_(False).to(memory_format=torch.channels_last)

    def predict(x: torch.Tensor, i: int) -> torch.Tensor:
        return network(x.contiguous(memory_format=torch.channels_last), i)

    return LoadedPrior(predict, from_scheduler_config(config.scheduler_config()), table, config.size_multiple,
                       path.name)


#: The prior for a context's weights and device, loaded once and kept (one at a time).
loaded_prior = ModelCache(BUILTIN_WEIGHTS, _load, method="Diff-SR", trainer="diffsr",
                          alternative="a Diff-SR safetensors file or a diffusers UNet2DModel folder")


@torch.no_grad()
def super_resolve(
    prior: LoadedPrior,
    lr: torch.Tensor,
    size: tuple[int, int],
    context: Context,
    *,
    seed: int,
    detail: float = 0.0,
    level: float | None = None,
    steps: int = DEFAULT_STEPS,
    sampler: str = DEFAULT_SAMPLER,
    consistency: str = DEFAULT_CONSISTENCY,
) -> torch.Tensor:
    """The SR image (``1 x 3 x H x W``, ``size`` = ``(H, W)``) in ``[0, 1]``, a preview after every call.

    ``level`` None: the prior's calibrated level for this scale, raised by ``detail``, which also raises the
    last fresh draw's gain; a ``level`` given by hand is the paper's chain, without the gain.
    """
    if size[0] < lr.shape[-2] or size[1] < lr.shape[-1]:
        raise SrDeskError(f"Diff-SR only enlarges: asked for {size[1]}x{size[0]} from {lr.shape[-1]}x{lr.shape[-2]}; "
                          "use a resampling method to shrink")
    scale = scale_of(lr, size)
    gain = 1.0
    if level is None:
        gain = LAST_NOISE_GAIN.at(detail)
        level = level_for_detail(detail, prior.level_for(scale))
        if detail == 0 and prior.table is not None and not prior.table.recoverable(scale):
            context.report(0, steps, message=f"Diff-SR: at x{scale:.3g} no noise level beat the enlarged input on "
                           f"held-out photos with this prior, so it injects {level:.2f}; for generated texture, "
                           "raise Detail")
    precision = autocast_for(context)
    network = tiled_predictor(prior.predict_noise, TILE, OVERLAP, prior.size_multiple)

    def call(x: torch.Tensor, i: int) -> torch.Tensor:
        with precision:
            return network(x, i).float()

    def on_call(k: int, total: int, x0: torch.Tensor) -> None:
        context.report(k, total, preview=preview_of(context, x0))

    context.report(0, steps)
    try:
        return restore(call, lr, size, prior.schedule, level=level, steps=steps, sampler=sampler,
                       generator=SeededNoise(seed), consistency=consistency, callback=on_call,
                       multiple=prior.size_multiple, last_noise_gain=gain)
    except ValueError as exc:  # an unknown sampler or mode from a hand-written request
        raise SrDeskError(f"Diff-SR: {exc}") from None


def upscale(request: Request, context: Context) -> np.ndarray:
    """The requested size in one pass, from the input resampled to it."""
    prior = loaded_prior(context)
    width, height = request.output_size
    params = request.params
    lr = image_to_tensor(request.image, context.device)
    steps = DRAFT_STEPS if request.draft else int(params.get("steps", DEFAULT_STEPS))
    level = None if params.get("auto_level", True) else float(params.get("noise_level", 0.3))
    sr = super_resolve(prior, lr, (height, width), context, seed=request.seed,
                       detail=detail_of(params, DEFAULT_DETAIL), level=level, steps=steps,
                       sampler=params.get("sampler", DEFAULT_SAMPLER),
                       consistency=params.get("consistency", DEFAULT_CONSISTENCY))
    return tensor_to_image(sr)
