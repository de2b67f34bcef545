"""Nearest-neighbour upscaling: every pixel becomes a crisp block (pixel art, screenshots)."""

import numpy as np

from sr_desk.api import BoolParam, Capabilities, Method, Task, hookimpl

SR_DESK_API_VERSION = "1.0"


def run(request, context):
    factor = int(request.scale)
    image = request.image
    if request.params["invert"]:
        image = 1.0 - image
    context.report(0, 1)
    result = np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)
    context.report(1, 1)
    return result


@hookimpl
def sr_desk_methods():
    return [
        Method(
            id="nearest",
            name="Nearest neighbour",
            task=Task.UPSCALE,
            run=run,
            params=[BoolParam(name="invert", default=False, help="Invert the colours too (a test switch).")],
            capabilities=Capabilities(scales=(2, 3, 4), default_scale=4),
            description="Each pixel becomes a block of pixels.",
        )
    ]
