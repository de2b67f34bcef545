"""DTLS (Hui, Siu and Law, 2023): super-resolution by domain transfer, without noise.

A time-conditioned U-Net predicts the HR image from a copy blurred by
shrinking and enlarging it; sampling starts from the enlarged input and walks
the levels down to full resolution. One model serves x4, x8, x16 and any
exact size between, since its levels are fractions of the output size.
Declarations only here: torch and the network load when the method first runs.
"""

from __future__ import annotations

from sr_desk.api import Capabilities, ChoiceParam, Method, Task, Trainer, WeightFile, hookimpl, lazy
from sr_desk.api import lr_consistency_param

SR_DESK_API_VERSION = "1.5"

#: The built-in model (resources/weights), trained by this project; see MODEL_CARD.md.
BUILTIN_WEIGHTS = WeightFile(name="dtls-x4.safetensors", license="MIT (weights trained by sr-desk)")

SAMPLERS = ("fast", "momentum", "chain")
DEFAULT_SAMPLER = "fast"



@hookimpl
def sr_desk_methods() -> list[Method]:
    return [
        Method(
            id="dtls",
            name="DTLS",
            task=Task.UPSCALE,
            run=lazy("sr_desk_plugins.dtls.methods:upscale"),
            params=[
                ChoiceParam(
                    name="sampler",
                    advanced=True,
                    choices=SAMPLERS,
                    default=DEFAULT_SAMPLER,
                    help="fast: the paper's momentum sampler in its exact two-call form (same image, about 12x "
                    "quicker at x4); momentum: the official loop, one call per level; chain: the loop without "
                    "momentum (the paper's ablation)",
                ),
                lr_consistency_param(integer_scales_only=True),
            ],
            capabilities=Capabilities(scales=None, default_scale=4, previews=True, weights=(BUILTIN_WEIGHTS,),
                                      memory_per_output_pixel=1500),  # 1.8 GB at 256 px in, float32
            description="Deterministic super-resolution by domain transfer (DTLS): any enlargement up to 16x or an "
            "exact size from one model. Pick it for large or uneven enlargements where the same input must always "
            "give the same result; smooth, like the SRDiff encoder.",
        ),
    ]



@hookimpl
def sr_desk_trainers() -> list[Trainer]:
    return [Trainer(name="dtls", description="Train the DTLS U-Net (L1 to HR over the resolution levels)",
                    main=lazy("sr_desk_plugins.dtls.train:main"))]
