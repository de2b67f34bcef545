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


def fake_method(method_id: str, name: str, task: Task, params: list, capabilities: Capabilities, description: str,
                steps: int = 5, delay: float = 0.0, fail_at: int | None = None) -> Method:
    """A method made with the public API only, as a plugin would; its run is a ``stepping_run``."""
    return Method(id=method_id, name=name, task=task, run=stepping_run(steps, delay, fail_at), params=params,
                  capabilities=capabilities, description=description)


def fake_upscaler(method_id: str = "fake-up", steps: int = 5, delay: float = 0.0, **kwargs) -> Method:
    return fake_method(
        method_id,
        kwargs.pop("name", "Fake upscaler"),
        Task.UPSCALE,
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
        steps=steps,
        delay=delay,
        fail_at=kwargs.pop("fail_at", None),
    )


def fake_fusion() -> Method:
    donor_and_strength = [ImageParam(name="donor", help="Donor image"),
                          IntParam(name="strength", default=50, maximum=100)]
    return fake_method("fake-fuse", "Fake fusion", Task.FUSE, donor_and_strength,
                       Capabilities(scales=(1,), default_scale=1, region=True, seeds=True), "Fuses a donor.", steps=2)


def fake_interpolation() -> Method:
    second_seed_and_blend = [SeedParam(name="seed_b", help="Second seed"),
                             FloatParam(name="blend", default=0.5, minimum=0.0, maximum=1.0, help="Blend")]
    return fake_method("fake-interp", "Fake interpolation", Task.INTERPOLATE, second_seed_and_blend,
                       Capabilities(scales=(2,), default_scale=2, seeds=True), "Blends two results.", steps=2)


def fake_any_scale() -> Method:
    tile = SizeParam(name="tile", default=(64, 32), help="A size")
    return fake_method("fake-any", "Fake any-scale", Task.UPSCALE, [tile],
                       Capabilities(scales=None, default_scale=3.0), "Any factor.", steps=1)
