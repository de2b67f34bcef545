"""SRDiff (Li et al., 2022): diffusion super-resolution of the residual over bicubic.

Three methods share one model: upscaling (whole image, region or tiles),
content fusion (SDEdit-style, paper Algorithm 3) and latent interpolation
(paper Algorithm 4); a fourth runs the LR encoder alone as a fast
deterministic 4x upscaler. Declarations only here: torch and the network are
imported when a method first runs, so discovery stays cheap.
"""

from __future__ import annotations

from typing import Any

from sr_desk.api import BoolParam, Capabilities, ChoiceParam, FloatParam, ImageParam, IntParam, Method, SeedParam
from sr_desk.api import Task, Trainer, WeightFile, detail_param, hookimpl, lazy, lr_consistency_param

SR_DESK_API_VERSION = "1.6"

#: The built-in 4x model (resources/weights), trained by this project; see MODEL_CARD.md.
BUILTIN_WEIGHTS = WeightFile(name="srdiff-x4.safetensors", license="MIT (weights trained by sr-desk)")

SAMPLERS = ("ddim", "dpm++2m", "ancestral")
# Chosen on bench/quality.py's held-out crops with the built-in weights: DDIM with fresh noise at every step
# (eta 1) scored the best PSNR and SSIM of the samplers, and 6 steps as well as 10 and 20 in a fraction of
# the time; the sweep and its figures are in plugins/srdiff/MODEL_CARD.md.
DEFAULT_SAMPLER = "ddim"
DEFAULT_STEPS = 6
DEFAULT_ETA = 1.0
#: The Detail slider's default: the sampler's own temperature with the last fresh draw's gain at 1.8, the point on
#: the perception-distortion curve kept as the default, for the reason given in MODEL_CARD.md.
DEFAULT_DETAIL = 0.7
#: Content fusion: the seamless blend re-synthesised by the model (default), or the paper's Algorithm 3.
FUSION_MODES = ("blend", "paper")
#: Content fusion's default strength (the redraw's start step t̄, of 100).
DEFAULT_STRENGTH = 50


def _sampling_params() -> list[Any]:
    return [
        ChoiceParam(
            name="sampler",
            advanced=True,
            choices=SAMPLERS,
            default=DEFAULT_SAMPLER,
            help="ddim: the paper's sampler over fewer steps (with eta 1, the default); dpm++2m: a deterministic "
            "ODE solver; ancestral: the paper's 100-step sampler",
        ),
        IntParam(
            name="steps",
            advanced=True,
            default=DEFAULT_STEPS,
            minimum=1,
            maximum=100,
            help="Denoising steps for ddim and dpm++2m (ancestral always takes all 100)",
        ),
        FloatParam(
            name="eta",
            advanced=True,
            default=DEFAULT_ETA,
            minimum=0.0,
            maximum=1.0,
            help="DDIM only: 1 adds fresh noise at each step like the paper's sampler (sharper with these weights), "
            "0 is deterministic given the seed",
        ),
    ]


_SAMPLER_CONSISTENCY = (
    "Back-project onto the input at every step, so the result downscales to the input "
    "(higher PSNR and LR-PSNR); off runs the paper's sampler as published"
)
_ENCODER_CONSISTENCY = (
    "Back-project the encoder's upscale onto the input a few times, so the result downscales to the "
    "input (higher PSNR and LR-PSNR); off gives the network's output as it is"
)



# x4 is the built-in model's scale; x8 lets official 8x (CelebA) checkpoints given with --weights run at
# their own scale. A model asked for the other scale answers through a Lanczos resize of its own result.
#: Peak working memory per output pixel, float32 (bench/upscale_speed.py, 256 px input: 1.4 GB for 1 MP).
MEMORY_PER_OUTPUT_PIXEL = 1100
_MODEL = Capabilities(scales=(4, 8), default_scale=4, previews=True, seeds=True, weights=(BUILTIN_WEIGHTS,),
                      memory_per_output_pixel=MEMORY_PER_OUTPUT_PIXEL)


@hookimpl
def sr_desk_methods() -> list[Method]:
    return [
        Method(
            id="srdiff",
            name="SRDiff",
            task=Task.UPSCALE,
            run=lazy("sr_desk_plugins.srdiff.methods:upscale"),
            params=[detail_param(DEFAULT_DETAIL), *_sampling_params(), lr_consistency_param(_SAMPLER_CONSISTENCY)],
            capabilities=_MODEL,
            description="Diffusion 4x super-resolution (SRDiff): the encoder's upscale with detail sampled by the "
            "diffusion model on top; each seed gives a variant. Pick it for a little more detail than the encoder "
            "and for fusion and interpolation of its results; still smoother than a photo.",
        ),
        Method(
            id="srdiff-encoder",
            name="SRDiff encoder (fast)",
            task=Task.UPSCALE,
            run=lazy("sr_desk_plugins.srdiff.methods:encoder_upscale"),
            params=[lr_consistency_param(_ENCODER_CONSISTENCY)],
            capabilities=Capabilities(scales=(4, 8), default_scale=4, weights=(BUILTIN_WEIGHTS,),
                                      memory_per_output_pixel=400),  # 1.9 GB at 512 px in (4.2 MP out)
            description="SRDiff's RRDB encoder alone: a fast deterministic 4x upscaler, no diffusion. Pick it for "
            "a faithful result in a fraction of a second; smooth.",
        ),
        Method(
            id="srdiff-fusion",
            name="SRDiff content fusion",
            task=Task.FUSE,
            run=lazy("sr_desk_plugins.srdiff.fusion:fuse"),
            params=[
                ImageParam(
                    name="donor",
                    placeable=True,
                    help="Image whose content goes into the selection: drag it on the canvas to move it, "
                    "drag a corner to scale it (until then a face in it is aligned to the face in the selection; "
                    "anything else covers the selection)",
                ),
                ChoiceParam(
                    name="mode",
                    choices=FUSION_MODES,
                    default=FUSION_MODES[0],
                    help="blend: the donor is cloned in seamlessly (its features, this photo's shading at the "
                    "edge), then the model redraws its texture to match the photo; paper: the paper's Algorithm 3, "
                    "where the base photo's own LR steers the result and the donor only nudges it",
                ),
                IntParam(
                    name="strength",
                    default=DEFAULT_STRENGTH,
                    minimum=1,
                    maximum=100,
                    help="How much the model redraws (noise level t̄): low shows the donor as pasted and blended, "
                    "high re-synthesises the region's texture and grain, above 50 from more noise, so they match the "
                    "photo",
                ),
                BoolParam(
                    name="match_colors",
                    label="Match colours",
                    default=True,
                    help="paper mode: move the donor's colours to the base's inside the selection before fusing, so "
                    "a face from another photo takes this photo's light (the blend mode does this by itself)",
                ),
                *_sampling_params(),
            ],
            capabilities=Capabilities(
                scales=(1,), default_scale=1, region=True, previews=True, seeds=True, tiles=False,
                weights=(BUILTIN_WEIGHTS,),
            ),
            description="Put a donor image's content (a face, say) into the selection: cloned in seamlessly, then "
            "redrawn by SRDiff so its texture matches the photo; outside the selection nothing changes.",
        ),
        Method(
            id="srdiff-interpolate",
            name="SRDiff latent interpolation",
            task=Task.INTERPOLATE,
            run=lazy("sr_desk_plugins.srdiff.methods:interpolate"),
            params=[
                detail_param(DEFAULT_DETAIL),
                SeedParam(name="seed_b", help="Seed of the second result (the first is the job's seed)"),
                FloatParam(
                    name="blend",
                    default=0.5,
                    minimum=0.0,
                    maximum=1.0,
                    help="0 gives the first seed's result, 1 the second's; values between blend their latents",
                ),
                ChoiceParam(
                    name="mode",
                    advanced=True,
                    choices=("slerp", "linear"),
                    default="slerp",
                    help="slerp keeps the latent's noise level at every blend; linear (the paper's) "
                    "shrinks it towards the middle, which smooths the result",
                ),
                IntParam(
                    name="noise_level",
                    advanced=True,
                    default=100,
                    minimum=1,
                    maximum=100,
                    help="Step t̄ at which the two latents are blended (100: from pure noise, endpoints exact)",
                ),
                *_sampling_params(),
                lr_consistency_param(_SAMPLER_CONSISTENCY),
            ],
            capabilities=_MODEL,
            description="Move between two SRDiff results of the same image with a slider.",
        ),
    ]



@hookimpl
def sr_desk_trainers() -> list[Trainer]:
    return [Trainer(name="srdiff", description="Train the SRDiff LR encoder, then its noise predictor",
                    main=lazy("sr_desk_plugins.srdiff.train:main"))]
