"""Checks that several diffusion methods' tests make in the app alike (DoSSR, DTLS, Diff-SR), written once.

Each takes the module's ``host`` fixture, the method's id, its weights file and the ``rng`` fixture, and draws
its image from ``rng`` as the tests it serves did.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sr_desk.core.errors import SrDeskError
from sr_desk.core.imageio import ImageData
from sr_desk.engine.worker import EventKind
from tests.conftest import run_plugin


def random_headed(network_class, config, seed: int = 0) -> torch.nn.Module:
    """``network_class(config)`` drawn with ``seed``, its (zero) head made random, in eval mode."""
    torch.manual_seed(seed)
    network = network_class(config)
    torch.nn.init.normal_(network.head.weight, std=0.05)
    return network.eval()


def upscale_with_previews(host, method_id: str, weights_file, rng, previews: int, **fields):
    """A 10x12 image enlarged x4 with ``fields``: the image and the 40x48 result, ``previews`` previews shown."""
    image = ImageData(rgb=rng.random((12, 10, 3), dtype=np.float32))
    events = []
    result = run_plugin(host, method_id, image, weights_file, events, scale=4, **fields)
    assert result.size == (40, 48)
    shown = [e for e in events if e.kind is EventKind.PROGRESS and e.preview is not None]
    assert len(shown) == previews and shown[0].preview.shape == (48, 40, 3)
    return image, result


def check_exact_sizes_and_shrinks(host, method_id: str, weights_file, rng, scale: float, expected, **fields):
    """An exact size is met, ``scale`` gives ``expected`` (width, height) and a shrink is refused."""
    image = ImageData(rgb=rng.random((9, 16, 3), dtype=np.float32))
    assert run_plugin(host, method_id, image, weights_file, size=(50, 30), **fields).size == (50, 30)
    assert run_plugin(host, method_id, image, weights_file, scale=scale, **fields).size == expected
    with pytest.raises(SrDeskError, match="only enlarges"):
        run_plugin(host, method_id, image, weights_file, scale=0.5)


def check_lr_consistency_pulls_onto_the_input(host, method_id: str, weights_file, rng):
    """With ``lr_consistency`` on, the x4 result shrunk back lies less than half as far from the input as off."""
    from sr_desk.diffusion.imresize import imresize

    image = ImageData(rgb=rng.random((12, 12, 3), dtype=np.float32) * 0.6 + 0.2)
    errors = []
    for on in (False, True):
        result = run_plugin(host, method_id, image, weights_file, scale=4, params={"lr_consistency": on})
        down = imresize(torch.from_numpy(result.rgb).permute(2, 0, 1)[None], scale=0.25)[0].permute(1, 2, 0)
        errors.append(float(np.abs(down.numpy() - image.rgb).mean()))
    assert errors[1] < 0.5 * errors[0]


def check_region_upscale(host, method_id: str, weights_file, rng):
    """An x4 upscale of a region of a 16x16 image: the whole 64x64 image comes back, with previews on the way."""
    image = ImageData(rgb=rng.random((16, 16, 3), dtype=np.float32))
    events = []
    result = run_plugin(host, method_id, image, weights_file, events, scale=4, region=(4, 4, 8, 8), feather=0)
    assert result.size == (64, 64)
    assert any(e.preview is not None for e in events)


#: The checks above that need only the host, the method id, the weights and rng: one parametrisation of a test.
SHARED_APP_CHECKS = pytest.mark.parametrize(
    "check", [check_lr_consistency_pulls_onto_the_input, check_region_upscale],
    ids=lambda check: check.__name__.removeprefix("check_"),
)
