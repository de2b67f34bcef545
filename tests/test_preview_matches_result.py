"""Issue 28: a live preview is the picture the method would give if stopped there, in the right colours and place.

Each built-in method that previews runs as the editor runs it (a worker, every
preview delivered); its previews are painted the way the canvas paints them
(scaled to fill their box, in output pixels), and where the last ones landed
they must match the result: SRDiff's once came in [-1, 1] (dark, red-shifted),
and tiles of a selection's window landed at the window's corner instead of their own.
"""

from __future__ import annotations

import numpy as np
import pytest

from sr_desk.core.imageio import ImageData
from sr_desk.core.resize import Filter, resize
from sr_desk.engine.pipeline import load_image_params
from sr_desk.engine.plugins import PluginHost
from sr_desk.engine.worker import EventKind
from tests.conftest import run_method

#: Mean absolute difference (of 1) allowed between the last previews and the result: what a method still does
#: after its last preview (DTLS's and LDDPM's LR back-projection) moves a grainy picture's pixels by about 0.02.
MATCH = 0.03
#: A channel's mean may move less than this: a tint (the [-1, 1] preview's red shift) moves it by far more.
TINT = 0.01
#: Diff-SR's calibrated level at x4 is 0 for the shipped prior (the input returned, no call, no preview).
PREVIEWING = {"diffsr": {"auto_level": False, "noise_level": 0.3}}


def photo(width: int, height: int, seed: int = 0) -> ImageData:
    """Smooth colour patches with some grain: a picture with structure that any offset or tint would show."""
    rng = np.random.default_rng(seed)
    patches = resize(rng.random((height // 6 + 1, width // 6 + 1, 3)).astype(np.float32), (width, height),
                     Filter.BICUBIC)
    rgb = np.clip(patches * 0.8 + rng.random((height, width, 3), dtype=np.float32) * 0.2, 0, 1)
    return ImageData(rgb=rgb, alpha=None, icc_profile=None, exif=None, bit_depth=8, grayscale=False,
                     source_format="PNG", dpi=None)


def painted(events: list, size: tuple[int, int]) -> np.ndarray:
    """The previews as the canvas shows them: each scaled to fill its box (the whole output without one)."""
    width, height = size
    canvas = np.full((height, width, 3), np.nan, np.float32)
    for event in events:
        if event.kind is not EventKind.PROGRESS or event.preview is None:
            continue
        x, y, w, h = event.preview_box or (0, 0, width, height)
        preview = event.preview[..., :3]
        if preview.shape[:2] != (h, w):
            preview = resize(preview, (w, h), Filter.BILINEAR)
        canvas[y : y + h, x : x + w] = preview[: max(0, height - y), : max(0, width - x)]
    return canvas


def assert_previews_match(events: list, result: ImageData, covers: tuple[int, int, int, int]) -> None:
    shown = painted(events, result.size)
    x, y, w, h = covers
    assert not np.isnan(shown[y : y + h, x : x + w]).any(), "the previews leave part of the job's area unshown"
    seen = ~np.isnan(shown[..., 0])
    difference = np.abs(shown[seen] - result.rgb[seen])
    assert difference.mean() < MATCH, f"the last previews differ from the result by {difference.mean():.3f}"
    # Per channel too: a tint (the [-1, 1] preview was red-shifted) moves channel means apart.
    assert np.abs(shown[seen].mean(0) - result.rgb[seen].mean(0)).max() < TINT


def upscalers(host: PluginHost) -> list[str]:
    return [m.id for m in host.methods("upscale") if m.capabilities.previews]


def test_every_built_in_upscaler_previews(host):
    assert set(upscalers(host)) >= {"srdiff", "dtls", "dossr", "diffsr", "lddpm"}


@pytest.mark.slow
@pytest.mark.parametrize("method_id", ["srdiff", "dtls", "dossr", "diffsr", "lddpm"])
def test_the_last_preview_of_a_whole_image_is_the_result(host, shipped, method_id):
    events: list = []
    result = run_method(photo(20, 16), host.method(method_id), events, weights_store=shipped, scale=4, seed=3,
                        params=PREVIEWING.get(method_id, {}))
    assert_previews_match(events, result, (0, 0, *result.size))


@pytest.mark.slow
@pytest.mark.parametrize("method_id", ["srdiff", "dtls", "dossr", "lddpm"])
def test_the_last_previews_of_tiles_of_a_selection_land_on_their_tiles(host, shipped, method_id):
    """A selection's window cut into tiles: each tile's preview at its own place, blended as the result will be."""
    method = host.method(method_id)
    if not method.capabilities.tiles:
        pytest.skip(f"{method_id} runs untiled")
    events: list = []
    # The window (the selection and a 16 px margin) starts away from the image's corner, as it mostly does.
    result = run_method(photo(80, 64), method, events, weights_store=shipped, scale=4, seed=5,
                        region=(34, 28, 20, 18), feather=2, tile_size=24, tile_overlap=4)
    boxes = {e.preview_box for e in events if e.kind is EventKind.PROGRESS and e.preview is not None}
    assert len(boxes) > 1, "the window was meant to be tiled"
    assert_previews_match(events, result, (34 * 4, 28 * 4, 20 * 4, 18 * 4))


@pytest.mark.slow
def test_fusion_and_interpolation_previews_are_their_results(host, shipped, tmp_path):
    from PIL import Image

    donor = tmp_path / "donor.png"
    Image.fromarray((photo(24, 24, seed=9).rgb * 255).astype(np.uint8)).save(donor)
    events: list = []
    fusion = host.method("srdiff-fusion")
    fused = run_method(photo(48, 48), fusion, events, weights_store=shipped, region=(12, 12, 24, 24), feather=2,
                       params=load_image_params(fusion, {"donor": str(donor)}), seed=1)
    assert_previews_match(events, fused, (12, 12, 24, 24))
    events = []
    between = run_method(photo(20, 16), host.method("srdiff-interpolate"), events, weights_store=shipped, scale=4, seed=1,
                         params={"seed_b": 2, "blend": 0.3})
    assert_previews_match(events, between, (0, 0, *between.size))
