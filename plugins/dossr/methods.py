"""DoSSR at run time: loading the network once, and five calls from the noised input to the result.

Runs on sr-desk's worker thread; images are float32 ``H x W x 3`` in
``[0, 1]``. Any input size (sides padded to the network's multiple and
cropped back) and any enlargement: ``x_hat`` is the input enlarged to the
requested size, so an exact size or a non-integer scale needs no final
resize. Noise comes from a CPU stream seeded by the request, so a seed gives
the same image on any device.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sr_desk.api import Context, Request, detail_of
from sr_desk.core.errors import SrDeskError
from sr_desk.diffusion.detail import DetailCurve, TemperedNoise
from sr_desk.diffusion.domain_shift import DomainShiftProcess
from sr_desk.diffusion.noise import SeededNoise
from sr_desk.diffusion.runtime import ModelCache, autocast_for, image_to_tensor, preview_of, tensor_to_image
from sr_desk_plugins.dossr import BUILTIN_WEIGHTS, DEFAULT_DETAIL
from sr_desk_plugins.dossr.checkpoints import load_model
from sr_desk_plugins.dossr.config import DoSSRConfig
from sr_desk_plugins.dossr.network import DoSSRUNet
from sr_desk_plugins.dossr.process import DEFAULT_SOLVER, DEFAULT_STEPS, process_for, restore

#: Network calls of a draft (the editor's live preview): the paper's one-step mode (spec 2.6).
DRAFT_STEPS = 1
#: Detail's means: the temperature of the start noise and of every solver step's fresh noise. 0 follows the
#: mean path from the enlarged input, 1 samples as the paper does, above 1 the network is pushed to more texture
#: (the sweep is in MODEL_CARD.md).
TEMPERATURE = DetailCurve(((0.0, 0.0), (DEFAULT_DETAIL, 1.0), (1.0, 1.6)))


@dataclass
class LoadedModel:
    network: DoSSRUNet
    config: DoSSRConfig
    process: DomainShiftProcess
    source: str


def _load(path: Path, device: str) -> LoadedModel:
    network, config, _ = load_model(path, device=device)
    network.requires_grad_(False).to(memory_format=torch.channels_last)
    return LoadedModel(network, config, process_for(config.timesteps, config.t1), path.name)


#: The network for a context's weights and device, loaded once and kept (one at a time).
loaded_model = ModelCache(BUILTIN_WEIGHTS, _load, method="DoSSR", trainer="dossr",
                          alternative="a DoSSR safetensors file")


@torch.no_grad()
def super_resolve(
    loaded: LoadedModel,
    lr: torch.Tensor,
    size: tuple[int, int],
    context: Context,
    *,
    seed: int,
    temperature: float = 1.0,
    solver: str = DEFAULT_SOLVER,
    steps: int = DEFAULT_STEPS,
    color_fix: bool = True,
    lr_consistency: bool = True,
) -> torch.Tensor:
    """The SR image (``1 x 3 x H x W``, ``size`` = ``(H, W)``) in ``[0, 1]``, with a preview after every call."""
    if size[0] < lr.shape[-2] or size[1] < lr.shape[-1] or size == tuple(lr.shape[-2:]):
        raise SrDeskError(f"DoSSR only enlarges: asked for {size[1]}x{size[0]} from "
                          f"{lr.shape[-1]}x{lr.shape[-2]}")
    network, precision = loaded.network, autocast_for(context)

    def call(x: torch.Tensor, x_hat: torch.Tensor, t: int) -> torch.Tensor:
        with precision:
            channels_last = torch.channels_last
            return network(x.contiguous(memory_format=channels_last),
                           x_hat.contiguous(memory_format=channels_last), t).float()

    def on_call(k: int, total: int, x0: torch.Tensor) -> None:
        context.report(k, total, preview=preview_of(context, x0))

    context.report(0, steps)
    try:
        return restore(call, lr, size, loaded.process, solver=solver, steps=steps,
                       generator=TemperedNoise(SeededNoise(seed), temperature), color_fix=color_fix,
                       lr_consistency=lr_consistency, callback=on_call, multiple=loaded.config.size_multiple)
    except ValueError as exc:  # an unknown solver or step count from a hand-written request
        raise SrDeskError(f"DoSSR: {exc}") from None


def upscale(request: Request, context: Context) -> np.ndarray:
    """The requested size in one pass: ``x_hat`` is the input enlarged to it (spec 9, one model for any scale)."""
    loaded = loaded_model(context)
    width, height = request.output_size
    params = request.params
    lr = image_to_tensor(request.image, context.device)
    steps = DRAFT_STEPS if request.draft else int(params.get("steps", DEFAULT_STEPS))
    sr = super_resolve(loaded, lr, (height, width), context, seed=request.seed,
                       temperature=TEMPERATURE.at(detail_of(params, DEFAULT_DETAIL)),
                       solver=params.get("solver", DEFAULT_SOLVER), steps=steps,
                       color_fix=params.get("color_fix", True), lr_consistency=params.get("lr_consistency", True))
    return tensor_to_image(sr)
