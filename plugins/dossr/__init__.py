"""DoSSR (Cui et al., NeurIPS 2024): diffusion super-resolution in five network calls.

The diffusion process itself shifts from the HR image towards the
(pre-restored) LR image, so sampling starts halfway, from the noised input,
and the domain-shift SDE solvers reach the result in a few steps. sr-desk
runs the paper's process and solvers on a compact pixel-space network of its
own (spec section 9) in place of Stable Diffusion with a ControlNet.
Declarations only here: torch and the network load when the method first runs.
"""

from __future__ import annotations

from sr_desk.api import BoolParam, Capabilities, ChoiceParam, IntParam, Method, Task, Trainer, WeightFile, hookimpl
from sr_desk.api import detail_param, lazy, lr_consistency_param

SR_DESK_API_VERSION = "1.5"

#: The built-in model (resources/weights), trained by this project; see MODEL_CARD.md.
BUILTIN_WEIGHTS = WeightFile(name="dossr-x4.safetensors", license="MIT (weights trained by sr-desk)")
#: The Detail slider's default: the solvers' own noise (temperature 1), for the reason given in MODEL_CARD.md.
DEFAULT_DETAIL = 0.5



@hookimpl
def sr_desk_methods() -> list[Method]:
    return [
        Method(
            id="dossr",
            name="DoSSR",
            task=Task.UPSCALE,
            run=lazy("sr_desk_plugins.dossr.methods:upscale"),
            params=[
                detail_param(DEFAULT_DETAIL),
                IntParam(
                    name="steps",
                    default=5,
                    minimum=1,
                    maximum=50,
                    help="Network calls. 5 is the paper's default; 1 is its one-step mode (the live preview "
                    "uses it); more steps add texture, not fidelity",
                ),
                ChoiceParam(
                    name="solver",
                    advanced=True,
                    choices=("dos-sde-3", "dos-sde-2", "dos-sde-1", "ddim"),
                    default="dos-sde-3",
                    help="dos-sde-1/2/3: the paper's domain-shift SDE solvers of that order (3 is its default); "
                    "ddim: plain DDIM of the same network, blind to the domain shift (the paper's baseline)",
                ),
                BoolParam(
                    name="color_fix",
                    label="Colour fix",
                    default=True,
                    help="Keep the colours and shading of the enlarged input and take only the fine detail from "
                    "the model (the official wavelet colour fix)",
                ),
                lr_consistency_param(integer_scales_only=True),
            ],
            capabilities=Capabilities(scales=None, default_scale=4, previews=True, seeds=True,
                                      weights=(BUILTIN_WEIGHTS,),
                                      memory_per_output_pixel=1000),  # 1.3 GB at 256 px in, float32
            description="Diffusion super-resolution in five network calls from the noised input (DoSSR): any scale "
            "or exact size, the fastest diffusion method here. Pick it for quick variants: its texture changes "
            "with the seed.",
        ),
    ]



@hookimpl
def sr_desk_trainers() -> list[Trainer]:
    return [Trainer(name="dossr", description="Train the DoSSR network (L1 on x0 over the domain-shift process)",
                    main=lazy("sr_desk_plugins.dossr.train:main"))]
