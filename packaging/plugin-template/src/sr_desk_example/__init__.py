"""example-sharpen: bicubic upscaling, then an unsharp mask to bring back edge contrast.

This module is a template for sr-desk method plugins. Everything sr-desk
needs from it is the module constant ``SR_DESK_API_VERSION`` and the
``sr_desk_methods`` hook; the entry point in ``pyproject.toml`` names this
module. The plugin API is documented in sr-desk's ``docs/plugins.md``.
"""

from __future__ import annotations

import numpy as np

from sr_desk.api import Capabilities, FloatParam, IntParam, Method, Task, hookimpl
from sr_desk.core.resize import Filter, resize

# The plugin API this plugin was written for: it loads on any sr-desk 1.y, y >= 0.
SR_DESK_API_VERSION = "1.0"

_STEPS = 3


def gaussian_kernel(radius: int) -> np.ndarray:
    """A normalised 1-D Gaussian of ``2 * radius + 1`` taps (sigma = radius / 2, at least 0.5)."""
    sigma = max(radius / 2.0, 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float32)
    kernel = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return (kernel / kernel.sum()).astype(np.float32)


def blur(image: np.ndarray, radius: int) -> np.ndarray:
    """Separable Gaussian blur of an H x W x C float image; the border pixels are extended."""
    kernel = gaussian_kernel(radius)
    out = image
    for axis in (0, 1):
        pad = [(0, 0)] * image.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="edge")
        length = out.shape[axis]
        acc = np.zeros_like(out)
        for tap, weight in enumerate(kernel):
            window = [slice(None)] * image.ndim
            window[axis] = slice(tap, tap + length)
            acc += weight * padded[tuple(window)]
        out = acc
    return out


def run(request, context):  # type: ignore[no-untyped-def]
    """Runs on sr-desk's worker thread. ``request.params`` holds every declared parameter, validated."""
    amount = request.params["amount"]
    radius = request.params["radius"]
    # report() shows progress and raises Cancelled when the user pressed Cancel.
    context.report(0, _STEPS, message="bicubic")
    upscaled = resize(request.image, request.output_size, Filter.BICUBIC)
    context.report(1, _STEPS, message="blur")
    blurred = blur(upscaled, radius)
    context.report(2, _STEPS, message="sharpen")
    result = upscaled + amount * (upscaled - blurred)
    np.clip(result, 0.0, 1.0, out=result)
    context.report(3, _STEPS)
    return result.astype(np.float32, copy=False)


@hookimpl
def sr_desk_methods():  # type: ignore[no-untyped-def]
    return [
        Method(
            id="example-sharpen",
            name="Bicubic + sharpen (example)",
            task=Task.UPSCALE,
            run=run,
            params=[
                FloatParam(
                    name="amount",
                    default=0.6,
                    minimum=0.0,
                    maximum=2.0,
                    step=0.05,
                    help="How much edge contrast is added back: 0 is plain bicubic, 2 is very crisp (with halos).",
                ),
                IntParam(
                    name="radius",
                    default=2,
                    minimum=1,
                    maximum=10,
                    help="Size of the blur the sharpening is measured against, in output pixels.",
                ),
            ],
            # scales=None: any factor and any exact size; sr-desk does the rest.
            capabilities=Capabilities(scales=None, default_scale=4.0),
            description="Bicubic interpolation followed by an unsharp mask. A template for plugin authors.",
        )
    ]
