"""SRDiff at run time: loading the model once, sampling with live previews, fusion and interpolation.

Runs on sr-desk's worker thread. Images arrive as float32 ``H x W x 3`` in
``[0, 1]`` and leave the same way; inside, everything is the paper's
``[-1, 1]`` convention (spec section 2.1).
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sr_desk.api import Context, Request, detail_of
from sr_desk.core.errors import SrDeskError
from sr_desk.core.resize import Filter, resize
from sr_desk.diffusion.consistency import back_project, residual_consistency
from sr_desk.diffusion.detail import DetailCurve, TemperedNoise
from sr_desk.diffusion.noise import BlendedNoise, NoiseSource, SeededNoise, blend
from sr_desk.diffusion.runtime import ModelCache, image_to_tensor, preview_of, tensor_to_image
from sr_desk.diffusion.samplers import make_sampler
from sr_desk.diffusion.schedule import NoiseSchedule, cosine_schedule
from sr_desk.diffusion.tiled import tiled_window_predictor
from sr_desk_plugins.srdiff import BUILTIN_WEIGHTS, DEFAULT_DETAIL, DEFAULT_ETA, DEFAULT_SAMPLER
from sr_desk_plugins.srdiff.checkpoints import load_encoder, load_model, read_metadata
from sr_desk_plugins.srdiff.config import SRDiffConfig
from sr_desk_plugins.srdiff.network import ConditionalUNet, RRDBNet, pad_to_multiple, up_sample_lr


@dataclass
class LoadedModel:
    encoder: RRDBNet
    unet: ConditionalUNet | None  # None for encoder-only weights
    config: SRDiffConfig
    schedule: NoiseSchedule
    official_quirk: bool
    source: str
    #: What the weights file says it was trained on ("" when it does not say).
    training_data: str = ""
    _cast: dict[tuple[str, torch.dtype], nn.Module] = field(default_factory=dict)

    def encoder_in(self, dtype: torch.dtype) -> RRDBNet:
        """The encoder with its weights in ``dtype``, cast once, its last conv kept in float32.

        That is what bf16 autocast computes (the last conv runs outside it, so the image keeps its grey
        levels), without casting every weight at every call: an RRDB spends as long in those casts as in
        its convolutions on the CPU.
        """
        return self._cast_once("encoder", self.encoder, dtype)  # type: ignore[return-value]

    def unet_in(self, dtype: torch.dtype) -> ConditionalUNet:
        """The U-Net with its weights in ``dtype``, cast once and kept.

        Run on inputs of that dtype it computes what bf16 autocast computes (autocast casts the same
        weights to bfloat16 at every call), without the casts: a 1 MP step on the CPU spends a quarter
        of its time in them once Mish is compiled.
        """
        assert self.unet is not None
        return self._cast_once("unet", self.unet, dtype)  # type: ignore[return-value]

    def _cast_once(self, name: str, module: nn.Module, dtype: torch.dtype) -> nn.Module:
        if next(module.parameters()).dtype == dtype:
            return module
        if (name, dtype) not in self._cast:
            cast = copy.deepcopy(module).to(dtype)
            if isinstance(cast, RRDBNet):
                cast.conv_last.float()
            self._cast[(name, dtype)] = cast
        return self._cast[(name, dtype)]


def _compute_dtype(context: Context | None) -> torch.dtype:
    """The dtype the networks run in for ``context``: bfloat16 where the worker runs in it, else float32."""
    return torch.bfloat16 if context is not None and context.dtype == "bfloat16" else torch.float32


def _load(path: Path, device: str) -> LoadedModel:
    metadata = read_metadata(path)
    if metadata.get("architecture") == "srdiff-encoder":
        encoder, config, metadata = load_encoder(path, device=device)
        unet = None
    else:
        model, config, metadata = load_model(path, device=device)
        encoder, unet = model.rrdb, model.denoise_fn
    for module in (encoder, unet):
        if module is not None:
            # channels-last: 1.3x faster convolutions on the CPU (bench/srdiff_speed.py), same maths.
            module.eval().requires_grad_(False).to(memory_format=torch.channels_last)
    return LoadedModel(
        encoder=encoder,
        unet=unet,
        config=config,
        schedule=cosine_schedule(config.timesteps, config.beta_s),
        # Official checkpoints learnt the /256 quirk of their data loader (spec 8.1); ours did not.
        official_quirk=metadata.get("format") != "sr-desk",
        source=path.name,
        training_data=str(metadata.get("training_data", "")),
    )


_models = ModelCache(BUILTIN_WEIGHTS, _load, method="SRDiff", trainer="srdiff",
                     alternative="an official SRDiff checkpoint")


def loaded_model(context: Context, *, need_unet: bool = True) -> LoadedModel:
    """The model for this context's weights and device, loaded once and kept (one at a time)."""
    loaded = _models(context)
    if need_unet and loaded.unet is None:
        raise SrDeskError(f"{loaded.source} holds only the SRDiff encoder; use the 'srdiff-encoder' method")
    return loaded


# -- tensors ---------------------------------------------------------------------


def to_image(tensor: torch.Tensor) -> np.ndarray:
    """``[-1, 1]`` NCHW to ``[0, 1]`` H x W x 3 float32."""
    return tensor_to_image(tensor.float() / 2 + 0.5)


def pad_lr(lr: torch.Tensor, config: SRDiffConfig, *, edge_margin: bool = True) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad (reflecting) so that the HR sides are multiples of 8 and at least 16; returns the HR size to crop to.

    A margin of one multiple (8 HR pixels) is always added on the right and
    at the bottom: the U-Net weights (the built-in ones, and those trained
    from them) learnt a defect at the right edge of their input, whose last
    column comes out as coloured noise; it now falls in the margin, which is
    cropped off. Fusion, whose window already has a margin outside the
    selection, goes without (``edge_margin=False``).
    """
    scale = config.scale
    multiple = max(1, config.size_multiple // math.gcd(config.size_multiple, scale))
    h, w = lr.shape[-2:]
    if edge_margin:
        lr = F.pad(lr, (0, multiple, 0, multiple), mode="reflect" if multiple < min(h, w) else "replicate")
    lr, _ = pad_to_multiple(lr, multiple, min_size=math.ceil(config.min_side / scale))
    return lr, (h * scale, w * scale)


# -- sampling --------------------------------------------------------------------


@dataclass
class Conditioned:
    """Everything that depends only on the LR image: computed once per image (or tile)."""

    up: torch.Tensor  # what the residual is measured from, in [-1, 1]: bicubic LR, or the encoder's upscale
    projected: torch.Tensor  # the U-Net's condition, after cond_proj
    hr_size: tuple[int, int]  # (height, width) before padding
    lr: torch.Tensor  # the padded LR in [-1, 1], what LR consistency projects onto
    scale: int


@torch.no_grad()
def condition(
    loaded: LoadedModel, lr01: torch.Tensor, *, context: Context | None = None, edge_margin: bool = True
) -> Conditioned:
    """The encoder's condition, in ``context``'s precision (float32 without one), and the base image in float32."""
    lr, hr_size = pad_lr(lr01, loaded.config, edge_margin=edge_margin)
    assert loaded.unet is not None
    dtype = _compute_dtype(context)
    encoder, unet = loaded.encoder_in(dtype), loaded.unet_in(dtype)  # cast once: autocast's numbers
    if loaded.config.residual_base == "encoder":
        # "Predict, then refine": the U-Net's residual is measured from the encoder's own upscale.
        cond, up = encoder.encode_and_upscale(lr * 2 - 1)
    else:
        cond = encoder.encode(lr * 2 - 1)
    projected = unet.project_condition(cond)
    if loaded.config.residual_base != "encoder":
        up = up_sample_lr(lr, loaded.config.scale, official_quirk=loaded.official_quirk)
    return Conditioned(up=up.float(), projected=projected, hr_size=hr_size, lr=lr * 2 - 1, scale=loaded.config.scale)


def _crop(x: torch.Tensor, hr_size: tuple[int, int]) -> torch.Tensor:
    return x[..., : hr_size[0], : hr_size[1]]


#: Above this output side each U-Net step on the CPU runs on overlapping windows, blended at every step (no seams):
#: windows keep the activations small at large sizes for no loss of speed (README, Performance). 1088 lets a
#: 256 px input (1032 px out with its edge margin) run whole instead of in four windows that redo their overlaps.
STEP_TILE, STEP_OVERLAP = 1088, 64


@torch.no_grad()
def denoise(
    loaded: LoadedModel,
    cond: Conditioned,
    x: torch.Tensor,
    params: dict[str, Any],
    noise: NoiseSource,
    context: Context,
    *,
    start: int | None = None,
    preview: Callable[[torch.Tensor], torch.Tensor] | None = None,
    preview_box: tuple[int, int, int, int] | None = None,
    last_noise_gain: float = 1.0,
) -> torch.Tensor:
    """Run the reverse process from ``x`` (at step ``start``); returns the clean residual, padded size.

    Each step's predicted image (``x0 + up(LR)``) goes to ``context.report``
    as a preview, through ``preview`` when the caller shows it differently.
    ``last_noise_gain``: see :meth:`Sampler.sample`.
    """
    sampler_name = params.get("sampler", DEFAULT_SAMPLER)
    options = {"eta": params.get("eta", DEFAULT_ETA)} if sampler_name == "ddim" else {}
    steps = None if sampler_name == "ancestral" else params.get("steps")
    sampler = make_sampler(sampler_name, loaded.schedule, steps, **options)
    # In bf16 the U-Net's weights are cast once (what autocast would compute, without its casts at every call).
    dtype = _compute_dtype(context)
    denoise_fn = loaded.unet_in(dtype)
    # Added to the activations at level 0: in float32 it would promote bf16 ones.
    projected = cond.projected.to(dtype).contiguous(memory_format=torch.channels_last)

    def predict_window(x_t: torch.Tensor, index: int, box: tuple[int, int]) -> torch.Tensor:
        top, left = box
        cond_window = projected[..., top : top + x_t.shape[-2], left : left + x_t.shape[-1]]
        return denoise_fn(x_t.to(dtype).contiguous(memory_format=torch.channels_last), index, cond_window).float()

    def predict_whole(x_t: torch.Tensor, index: int) -> torch.Tensor:
        return predict_window(x_t, index, (0, 0))

    # A GPU is kept busiest by one call a step (windows there are unmeasured).
    predict_noise = (
        tiled_window_predictor(predict_window, STEP_TILE, STEP_OVERLAP, loaded.config.size_multiple)
        if x.device.type == "cpu" else predict_whole
    )

    def on_step(step: int, total: int, x0: torch.Tensor) -> None:
        sr = x0.clamp(-1, 1) / 2 + cond.up  # in [-1, 1], as the result before to_image
        shown = preview(sr) if preview is not None else _crop(sr, cond.hr_size)
        context.report(step, total, preview=preview_of(context, shown / 2 + 0.5), box=preview_box)

    correct = residual_consistency(cond.up, cond.lr, cond.scale) if params.get("lr_consistency") else None
    return sampler.sample(predict_noise, x, start=start, generator=noise, callback=on_step, correct_x0=correct,
                          last_noise_gain=last_noise_gain)


#: Detail's means, one after the other. Up to ``TRAINED_DETAIL``: the noise temperature of every draw (the start
#: and each step's fresh noise); 0 follows the mean path, 1 samples as trained, and below 0.8 the result hardly
#: changes, so the first half of the way goes there. Above it: the gain of the last fresh draw alone (the noise
#: the final network call meets), which these weights turn into fine grain, where raising every draw's
#: temperature past 1.05 breaks their first predictions into blotches. The sweeps are in MODEL_CARD.md.
TRAINED_DETAIL = 0.5
TEMPERATURE = DetailCurve(((0.0, 0.0), (TRAINED_DETAIL / 2, 0.8), (TRAINED_DETAIL, 1.0), (1.0, 1.0)))
LAST_NOISE_GAIN = DetailCurve(((0.0, 1.0), (TRAINED_DETAIL, 1.0), (1.0, 3.0)))


def last_noise_gain(params: dict[str, Any]) -> float:
    """The gain of the sampler's last fresh draw that the request's Detail asks for."""
    return LAST_NOISE_GAIN.at(detail_of(params, DEFAULT_DETAIL))


def seeded_noise(seed: int, params: dict[str, Any]) -> NoiseSource:
    """The seed's noise stream at the temperature the request's Detail asks for."""
    return TemperedNoise(SeededNoise(seed), TEMPERATURE.at(detail_of(params, DEFAULT_DETAIL)))


def super_resolve(
    loaded: LoadedModel, lr01: torch.Tensor, params: dict[str, Any], noise: NoiseSource, context: Context
) -> torch.Tensor:
    """Algorithm S: the SR image in ``[-1, 1]``, cropped to the LR size times the scale."""
    cond = condition(loaded, lr01, context=context)
    x = noise(cond.up.shape, device=cond.up.device, dtype=torch.float32)
    residual = denoise(loaded, cond, x, params, noise, context, last_noise_gain=last_noise_gain(params))
    return _crop(residual.clamp(-1, 1) / 2 + cond.up, cond.hr_size)


def _at_requested_size(image: np.ndarray, request: Request) -> np.ndarray:
    """The model's native result resized (Lanczos) when the model's scale is not the one asked for.

    The methods declare x4 and x8 so that official 8x checkpoints are usable;
    a 4x model asked for x8 (or the reverse) still answers, via a resize.
    """
    width, height = request.output_size
    if image.shape[:2] == (height, width):
        return image
    return resize(image, (width, height), Filter.LANCZOS)


# -- methods ---------------------------------------------------------------------


def upscale(request: Request, context: Context) -> np.ndarray:
    loaded = loaded_model(context)
    lr = image_to_tensor(request.image, context.device)
    sr = to_image(super_resolve(loaded, lr, request.params, seeded_noise(request.seed, request.params), context))
    return _at_requested_size(sr, request)


ENCODER_BACK_PROJECTIONS = 3  # one pass per sampler step for diffusion; the encoder gets them all at once


@torch.no_grad()
def encoder_upscale(request: Request, context: Context) -> np.ndarray:
    loaded = loaded_model(context, need_unet=False)
    lr, hr_size = pad_lr(image_to_tensor(request.image, context.device), loaded.config, edge_margin=False)  # no U-Net here
    context.report(0, 1)
    out = loaded.encoder_in(_compute_dtype(context)).upscale(lr * 2 - 1).float()
    if request.params.get("lr_consistency"):
        out = back_project(out, lr * 2 - 1, loaded.config.scale, ENCODER_BACK_PROJECTIONS)
    context.report(1, 1)
    return _at_requested_size(to_image(_crop(out, hr_size)), request)


# -- interpolation -----------------------------------------------------------------

_results: OrderedDict[tuple[Any, ...], torch.Tensor] = OrderedDict()


def _cached_result(
    loaded: LoadedModel, lr: torch.Tensor, image_key: str, seed: int, params: dict[str, Any], context: Context
) -> torch.Tensor:
    """One seed's SR result, kept so that moving the slider does not recompute both ends."""
    sampling = (params.get("sampler"), params.get("steps"), params.get("eta"), detail_of(params, DEFAULT_DETAIL))
    key = (loaded.source, image_key, seed, sampling)
    if key not in _results:
        _results[key] = super_resolve(loaded, lr, params, seeded_noise(seed, params), context)
        while len(_results) > 4:
            _results.popitem(last=False)
    return _results[key]


DRAFT_STEPS = 8
#: A live move's first look: the input shrunk to at most this many pixels a side, sampled in ``QUICK_STEPS``
#: (the default's count: fewer fall apart into noise with these weights).
QUICK_SIDE, QUICK_STEPS = 96, 6


def draft_params(params: dict[str, Any], steps: int = DRAFT_STEPS) -> dict[str, Any]:
    """Sampling settings for a quick look: the same sampler with at most ``steps`` steps.

    The live slider reruns the whole reverse process at every move, so a
    draft trades fine detail for a preview that keeps up; Run then renders
    with the panel's own settings. The 100-step ancestral sampler becomes
    DPM-Solver++(2M), which needs no fresh noise to stay smooth in a few steps.
    """
    sampler = params.get("sampler", DEFAULT_SAMPLER)
    wanted = int(params.get("steps") or steps)
    if sampler == "ancestral":
        sampler, wanted = "dpm++2m", steps
    return {**params, "sampler": sampler, "steps": min(wanted, steps)}


class _Quiet:
    """A context for work whose steps are not shown: cancel still stops it, no preview is made."""

    preview_side = 0

    def __init__(self, inner: Context) -> None:
        self._inner = inner
        self.device, self.dtype = inner.device, inner.dtype

    def report(self, step: int, total: int, preview: Any = None, message: str = "", box: Any = None) -> None:
        self._inner.check_cancelled()

    def check_cancelled(self) -> None:
        self._inner.check_cancelled()

    def wants_preview(self) -> bool:
        return False


def _quick_input(image: np.ndarray) -> np.ndarray | None:
    """The input shrunk to ``QUICK_SIDE`` px on its longer side, or None when it is that small already."""
    height, width = image.shape[:2]
    factor = QUICK_SIDE / max(height, width)
    if factor >= 0.75:  # the draft itself is about as quick
        return None
    return resize(image, (max(1, round(width * factor)), max(1, round(height * factor))), Filter.BICUBIC)


_conditions: OrderedDict[tuple[Any, ...], Conditioned] = OrderedDict()


def _cached_condition(loaded: LoadedModel, lr: torch.Tensor, image_key: str, context: Context) -> Conditioned:
    """The image's condition, kept between the slider's moves (the encoder need not run again)."""
    key = (loaded.source, image_key, tuple(lr.shape), context.dtype)
    if key not in _conditions:
        _conditions[key] = condition(loaded, lr, context=context)
        while len(_conditions) > 2:
            _conditions.popitem(last=False)
    return _conditions[key]


def interpolate(request: Request, context: Context) -> np.ndarray:
    """Algorithm I (spec 5.3), with seeded per-step noise so the slider moves smoothly.

    At ``noise_level`` 100 the latents are the two seeds' starting noises and
    blend 0 and 1 give exactly the two results. Below 100, the two results
    are computed (and cached), noised to that level and blended there, as
    the paper does; the ends then re-generate each result from its noised
    version rather than reproduce it bit for bit.

    A draft (the live slider) shows a quick look first, from the input shrunk
    to ``QUICK_SIDE`` px in ``QUICK_STEPS`` steps, then refines it at full size.
    """
    loaded = loaded_model(context)
    params = request.params
    if request.draft:
        small = _quick_input(request.image)
        if small is not None:
            quick = _interpolated(loaded, small, request.seed, params, draft_params(params, QUICK_STEPS), _Quiet(context))
            context.report(0, 1, preview=preview_of(context, quick / 2 + 0.5))
    sampling = draft_params(params) if request.draft else params  # the ends stay full quality: they are cached
    out = _interpolated(loaded, request.image, request.seed, params, sampling, context)
    return _at_requested_size(to_image(out), request)


def _interpolated(
    loaded: LoadedModel, image: np.ndarray, seed_a: int, params: dict[str, Any], sampling: dict[str, Any],
    context: Context,
) -> torch.Tensor:
    """The blend of seeds ``seed_a`` and ``seed_b`` of ``image``, in ``[-1, 1]`` at the model's scale."""
    seed_b = params.get("seed_b")
    seed_b = (seed_a + 1) % 2**32 if seed_b is None else seed_b
    weight, mode = float(params["blend"]), params["mode"]
    level = int(params["noise_level"])
    lr = image_to_tensor(image, context.device)
    image_key = hashlib.sha1(image.tobytes()).hexdigest()
    cond = _cached_condition(loaded, lr, image_key, context)
    shape, device = cond.up.shape, cond.up.device
    noise_a, noise_b = seeded_noise(seed_a, params), seeded_noise(seed_b, params)
    if level >= loaded.config.timesteps:
        x = blend(noise_a(shape, device=device, dtype=torch.float32), noise_b(shape, device=device, dtype=torch.float32),
                  weight, mode)
        start = None
    else:
        ends = [_cached_result(loaded, lr, image_key, s, params, context) for s in (seed_a, seed_b)]
        start = level - 1
        latents = []
        for end, stream in zip(ends, (noise_a, noise_b)):
            padded = F.pad(end, (0, shape[-1] - end.shape[-1], 0, shape[-2] - end.shape[-2]), mode="replicate")
            residual = ((padded - cond.up) * 2).clamp(-1, 1)
            latents.append(loaded.schedule.q_sample(residual, start, stream(shape, device=device, dtype=torch.float32)))
        x = blend(latents[0], latents[1], weight, mode)
    out = denoise(loaded, cond, x, sampling, BlendedNoise(noise_a, noise_b, weight), context, start=start,
                  last_noise_gain=last_noise_gain(params))
    return _crop(out.clamp(-1, 1) / 2 + cond.up, cond.hr_size)
