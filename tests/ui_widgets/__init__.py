"""Tests of the editor's job-side widgets: parameter widgets, method panel, jobs, compare, preferences.

Shared fakes live here: methods made with the public API only, as a plugin
would make them, so the widgets are shown to need no method-specific code.
"""

from __future__ import annotations

import time

import numpy as np

from sr_desk.api import (
    BoolParam,
    Capabilities,
    ChoiceParam,
    FloatParam,
    ImageParam,
    IntParam,
    Method,
    SeedParam,
    SizeParam,
    Task,
)
from sr_desk.core.imageio import ImageData


def tiny_image(width: int = 6, height: int = 4) -> ImageData:
    rng = np.random.default_rng(7)
    return ImageData(rgb=rng.random((height, width, 3), dtype=np.float32))


def stepping_run(steps: int = 5, delay: float = 0.0, fail_at: int | None = None):
    """A run function: ``steps`` model steps, each with a preview; nearest-neighbour result."""

    def run(request, context):
        w, h = request.output_size
        for step in range(1, steps + 1):
            if delay:
                time.sleep(delay)
            if fail_at is not None and step == fail_at:
                raise RuntimeError(f"exploded at step {step}")
            preview = np.full((h, w, 3), step / steps, dtype=np.float32)
            context.report(step, steps, preview=preview)
        factor_y, factor_x = h // request.image.shape[0], w // request.image.shape[1]
        return np.repeat(np.repeat(request.image, factor_y, 0), factor_x, 1)

    return run


def fake_upscaler(method_id: str = "fake-up", steps: int = 5, delay: float = 0.0, **kwargs) -> Method:
    return Method(
        id=method_id,
        name=kwargs.pop("name", "Fake upscaler"),
        task=Task.UPSCALE,
        run=stepping_run(steps, delay, kwargs.pop("fail_at", None)),
        params=kwargs.pop(
            "params",
            [
                IntParam(name="steps", default=20, minimum=1, maximum=100, help="How many steps"),
                FloatParam(name="strength", default=0.5, minimum=0.0, maximum=1.0, step=0.05, help="How strong"),
                BoolParam(name="sharpen", default=False, help="Sharpen"),
                ChoiceParam(name="sampler", choices=("ddim", "euler"), default="ddim", help="Sampler"),
            ],
        ),
        capabilities=kwargs.pop(
            "capabilities", Capabilities(scales=(2, 4), default_scale=2, previews=True, seeds=True)
        ),
        description=kwargs.pop("description", "A fake method for tests."),
    )


def fake_fusion() -> Method:
    return Method(
        id="fake-fuse",
        name="Fake fusion",
        task=Task.FUSE,
        run=stepping_run(2),
        params=[ImageParam(name="donor", help="Donor image"), IntParam(name="strength", default=50, maximum=100)],
        capabilities=Capabilities(scales=(1,), default_scale=1, region=True, seeds=True),
        description="Fuses a donor.",
    )


def fake_interpolation() -> Method:
    return Method(
        id="fake-interp",
        name="Fake interpolation",
        task=Task.INTERPOLATE,
        run=stepping_run(2),
        params=[
            SeedParam(name="seed_b", help="Second seed"),
            FloatParam(name="blend", default=0.5, minimum=0.0, maximum=1.0, help="Blend"),
        ],
        capabilities=Capabilities(scales=(2,), default_scale=2, seeds=True),
        description="Blends two results.",
    )


def fake_any_scale() -> Method:
    return Method(
        id="fake-any",
        name="Fake any-scale",
        task=Task.UPSCALE,
        run=stepping_run(1),
        params=[SizeParam(name="tile", default=(64, 32), help="A size")],
        capabilities=Capabilities(scales=None, default_scale=3.0),
        description="Any factor.",
    )
