"""Diff-SR (Li et al. 2023): any scale, any target size, from an unconditional diffusion prior.

No super-resolution training at all: the input is resampled to the target
size, noised to the level that suits the scale, and an ordinary image DDPM
runs its reverse chain from there (spec 5). The noise level comes from a
table calibrated on held-out photos (the paper's Perceptual Recoverable
Field, spec 2.5-2.6). sr-desk ships its own compact prior and also runs a
user's diffusers ``UNet2DModel`` folder. Declarations only here: torch and
the network load when the method first runs.
"""

from __future__ import annotations

from sr_desk.api import BoolParam, Capabilities, ChoiceParam, FloatParam, IntParam, Method, Task, Trainer, WeightFile
from sr_desk.api import detail_param, hookimpl, lazy

SR_DESK_API_VERSION = "1.4"

#: The built-in prior (resources/weights), trained and calibrated by this project; see MODEL_CARD.md.
BUILTIN_WEIGHTS = WeightFile(name="diffsr-prior.safetensors", license="MIT (weights trained by sr-desk)")
#: The Detail slider's default: a little above the calibrated level, for the reason given in MODEL_CARD.md.
DEFAULT_DETAIL = 0.2
#: Fresh noise at every step: Detail's gain on its last draw needs some (the reason is in MODEL_CARD.md).
DEFAULT_SAMPLER = "ddpm"


@hookimpl
def sr_desk_methods() -> list[Method]:
    return [
        Method(
            id="diffsr",
            name="Diff-SR",
            task=Task.UPSCALE,
            run=lazy("sr_desk_plugins.diffsr.methods:upscale"),
            params=[
                detail_param(DEFAULT_DETAIL),
                IntParam(name="steps", default=10, minimum=1, maximum=100,
                         help="Network calls of the reverse chain from the injected noise (DDIM); the live "
                         "preview uses 3"),
                BoolParam(name="auto_level", label="Noise level from Detail", default=True, advanced=True,
                          help="Detail 0 injects the noise level calibrated for this scale on held-out photos (the "
                          "paper's Perceptual Recoverable Field), higher Detail more; off: use the slider below"),
                FloatParam(name="noise_level", label="Noise level", default=0.3, minimum=0.0, maximum=0.8,
                           step=0.01, advanced=True,
                           help="With the level from Detail off: how far the input is noised (t/T). 0 returns the "
                           "enlarged input; more lets the prior redraw more detail and drift further from the input"),
                ChoiceParam(name="sampler", advanced=True, choices=("ddim", "ddpm"), default=DEFAULT_SAMPLER,
                            help="ddpm: fresh noise at every step, the last one raised with Detail; ddim: "
                            "deterministic after the injected noise (the paper's), Detail only raises the level"),
                ChoiceParam(name="consistency", label="LR consistency", advanced=True,
                            choices=("every-step", "end", "off"), default="every-step",
                            help="Back-project onto the input: every x0 prediction (DDNM-style), only the "
                            "result, or never (the paper's plain chain)"),
            ],
            capabilities=Capabilities(scales=None, default_scale=4, previews=True, seeds=True, tiles=False,
                                      weights=(BUILTIN_WEIGHTS,)),
            description="Any scale or exact target size (1080p, 4K) from an unconditional diffusion prior "
            "(Diff-SR): the input is enlarged, noised (more with more Detail) and denoised; runs a diffusers "
            "UNet2DModel folder too. Pick it for a target size or to try your own prior; at Detail 0 the built-in "
            "prior injects no noise, so the result is the back-projected enlargement.",
        ),
    ]



@hookimpl
def sr_desk_trainers() -> list[Trainer]:
    return [Trainer(name="diffsr", description="Train Diff-SR's unconditional prior (epsilon MSE on HR patches)",
                    main=lazy("sr_desk_plugins.diffsr.train:main"))]
