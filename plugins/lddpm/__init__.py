"""LDDPM (Zhou et al.): latent-feature diffusion SR in a few adversarial steps.

Every mechanism of the paper at spec 9's size: the conditional flow
(:mod:`.flow`); the network with the LR encoder, cross-attention, CVAE and
flow (:mod:`.network`); DDGAN's pairs, discriminator and losses
(:mod:`.adversarial`); the four coarse steps
(``sr_desk.diffusion.schedule.vp_coarse_schedule``); sampling with its three
seeded noise sources (:mod:`.process`); both training stages on the shared
trainer (:mod:`.train`, ``python -m sr_desk.training lddpm``); the method
(:mod:`.methods`). How its built-in weights were trained and how they
score is in MODEL_CARD.md. Declarations only here: torch loads when the method first runs.
"""

from __future__ import annotations

from sr_desk.api import (Capabilities, Method, Task, Trainer, WeightFile, detail_param, hookimpl, lazy,
                         lr_consistency_param)

SR_DESK_API_VERSION = "1.5"

#: The built-in weights (resources/weights), trained by this project; see MODEL_CARD.md.
BUILTIN_WEIGHTS = WeightFile(name="lddpm-x4.safetensors", license="MIT (weights trained by sr-desk)")
#: The Detail slider's default: the trained sampler with a mild residual gain, for the reason in MODEL_CARD.md.
DEFAULT_DETAIL = 0.25



@hookimpl
def sr_desk_methods() -> list[Method]:
    return [
        Method(
            id="lddpm",
            name="LDDPM",
            task=Task.UPSCALE,
            run=lazy("sr_desk_plugins.lddpm.methods:upscale"),
            params=[detail_param(DEFAULT_DETAIL), lr_consistency_param()],
            # The cross-attention is global over the bottleneck (an eighth of the output side): its cost
            # grows with the square of the pixels, and it was trained on 96 px patches. 512 px output
            # tiles keep it at 4,096 positions (a 1024 px output in one piece took 10 GB and 47 s).
            capabilities=Capabilities(scales=None, default_scale=4, previews=True, seeds=True,
                                      weights=(BUILTIN_WEIGHTS,), max_output_tile=512,
                                      memory_per_output_pixel=900),  # 1.2 GB at 256 px in, float32
            description="Latent-feature diffusion SR in four adversarial steps (LDDPM): a CVAE latent, a flow and "
            "cross-attention to the LR in the middle of the network; any scale or exact size. Pick it for a "
            "faithful diffusion result in a few network calls.",
        ),
    ]



@hookimpl
def sr_desk_trainers() -> list[Trainer]:
    return [Trainer(name="lddpm", description="Train LDDPM (denoise stage, then adversarial)",
                    main=lazy("sr_desk_plugins.lddpm.train:main"))]
