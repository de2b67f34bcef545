"""Classic interpolation: bicubic and Lanczos at any scale.

The baseline every learned method is measured against, and the fast method
for whatever lies outside a selection. No weights, no torch.
"""

from __future__ import annotations

import numpy as np

from sr_desk.api import Capabilities, Context, Method, Request, Task, hookimpl
from sr_desk.core.resize import Filter, resize

SR_DESK_API_VERSION = "1.0"

_ANY_SCALE = Capabilities(scales=None, default_scale=4.0, previews=False, seeds=False)


def _interpolator(filter: Filter):  # type: ignore[no-untyped-def]
    def run(request: Request, context: Context) -> np.ndarray:
        context.report(0, 1, message=f"{filter.value} interpolation")
        result = resize(request.image, request.output_size, filter)
        context.report(1, 1)
        return result

    run.__name__ = f"run_{filter.value}"
    return run


@hookimpl
def sr_desk_methods() -> list[Method]:
    return [
        Method(
            id="bicubic",
            name="Bicubic",
            task=Task.UPSCALE,
            run=_interpolator(Filter.BICUBIC),
            capabilities=_ANY_SCALE,
            description="Bicubic interpolation (a = -0.5, as MATLAB's imresize). Fast, soft, invents nothing.",
        ),
        Method(
            id="lanczos",
            name="Lanczos",
            task=Task.UPSCALE,
            run=_interpolator(Filter.LANCZOS),
            capabilities=_ANY_SCALE,
            description="Lanczos-3 interpolation: a little sharper than bicubic, with faint ringing at edges.",
        ),
    ]
