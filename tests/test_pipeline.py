"""Sizes, regions, tiles and alpha, for any method."""

import numpy as np
import pytest

from sr_desk.api import Capabilities, Method, Task
from sr_desk.core.errors import SrDeskError
from sr_desk.core.imageio import ImageData
from sr_desk.core.resize import Filter, resize
from sr_desk.engine.pipeline import JobSpec, MethodOutputError, prepare
from tests.conftest import random_image, run_method


def document(rgb, alpha=None) -> ImageData:
    return ImageData(rgb=rgb, alpha=alpha, icc_profile=None, exif=None, bit_depth=8, grayscale=False,
                     source_format="PNG", dpi=None)


def nearest_run(request, context):
    factor = int(request.scale)
    context.report(1, 1, preview=np.zeros((request.output_size[1], request.output_size[0], 3), np.float32))
    return np.repeat(np.repeat(request.image, factor, 0), factor, 1)


NEAREST = Method(id="nearest-x", name="Nearest", task=Task.UPSCALE, run=nearest_run,
                 capabilities=Capabilities(scales=(2, 4)))
BICUBIC = Method(id="bicubic-x", name="Bicubic", task=Task.UPSCALE,
                 run=lambda r, c: resize(r.image, r.output_size, Filter.BICUBIC))



def test_integer_scale_method_reaches_other_scales_via_lanczos(rng):
    image = document(random_image(rng, 10, 12))
    assert run_method(image, NEAREST, scale=2).rgb.shape == (20, 24, 3)
    assert run_method(image, NEAREST, scale=3).rgb.shape == (30, 36, 3)  # ran at x4, resized
    assert run_method(image, NEAREST, size=(50, 17)).size == (50, 17)
    assert run_method(image, NEAREST, size=(100, 100), fit=True).size == (100, 83)


def test_default_scale_comes_from_the_method(rng):
    image = document(random_image(rng, 8, 8))
    assert run_method(image, NEAREST).size == (32, 32)


def test_alpha_is_upscaled_separately_and_kept(rng):
    alpha = np.zeros((8, 8), np.float32)
    alpha[2:6, 2:6] = 1
    result = run_method(document(random_image(rng, 8, 8), alpha), NEAREST, scale=2)
    assert result.alpha is not None and result.alpha.shape == (16, 16)
    assert result.alpha[0, 0] == 0 and result.alpha[8, 8] == 1


def test_region_outside_the_feather_is_the_bicubic_base_exactly(rng):
    image = document(random_image(rng, 40, 40))
    result = run_method(image, NEAREST, scale=2, region=(10, 10, 8, 8), feather=2)
    base = np.clip(resize(image.rgb, (80, 80), Filter.BICUBIC), 0, 1)
    far = np.ones((80, 80), bool)
    far[8:48, 8:48] = False  # region (20..36 in output) plus a generous feather
    assert np.array_equal(result.rgb[far], base[far])
    nearest = np.repeat(np.repeat(image.rgb, 2, 0), 2, 1)
    assert np.allclose(result.rgb[26:30, 26:30], nearest[26:30, 26:30], atol=1e-6)


def test_an_interpolation_honours_the_region_too(rng):
    """Issue 19: Interpolate showed "selection only" ticked and processed the whole photo."""
    seen = []

    def blend(request, context):
        seen.append(request.image.shape)
        return nearest_run(request, context)

    interpolate = Method(id="blend-x", name="Blend", task=Task.INTERPOLATE, run=blend,
                         capabilities=Capabilities(scales=(2,)))
    image = document(random_image(rng, 60, 60))
    result = run_method(image, interpolate, scale=2, region=(10, 10, 8, 8), feather=2)
    assert seen == [(36, 36, 3)]  # the region's box and its margin, not the 60 x 60 photo
    base = np.clip(resize(image.rgb, (120, 120), Filter.BICUBIC), 0, 1)
    assert np.array_equal(result.rgb[100:, 100:], base[100:, 100:])


def test_tiled_run_equals_untiled(rng):
    image = document(random_image(rng, 70, 90))
    whole = run_method(image, BICUBIC, scale=2, tile_size=0)
    tiled_events = []
    tiled = run_method(image, BICUBIC, tiled_events, scale=2, tile_size=32, tile_overlap=8)
    assert np.abs(whole.rgb - tiled.rgb).max() < 1e-5
    progress = [e.step for e in tiled_events if e.kind.value == "progress"]
    assert progress == sorted(progress) and progress[-1] == 1000


def test_previews_carry_the_box_they_belong_to(rng):
    events = []
    run_method(document(random_image(rng, 40, 40)), NEAREST, events, scale=2, region=(10, 10, 8, 8), feather=1)
    boxes = [e.preview_box for e in events if e.preview is not None]
    assert boxes and all(box[0] <= 20 and box[0] + box[2] >= 36 for box in boxes)


def test_a_method_returning_the_wrong_size_fails_loudly(rng):
    wrong = Method(id="wrong", name="Wrong", task=Task.UPSCALE, run=lambda r, c: r.image)
    with pytest.raises(SrDeskError, match="returned 8x8, expected 16x16"):
        run_method(document(random_image(rng, 8, 8)), wrong, scale=2)
    assert issubclass(MethodOutputError, SrDeskError)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (lambda shape: np.full(shape, np.nan, np.float32), "NaN or infinite values in 100.0%"),
        (lambda shape: np.full(shape, np.inf, np.float32), "NaN or infinite"),
        (lambda shape: np.zeros(shape, np.uint8), "returned uint8 values"),
        (lambda shape: np.ones(shape, bool), "returned bool values"),
        (lambda shape: np.ones(shape, np.complex64), "returned complex64 values"),
        (lambda shape: np.full(shape, "x"), "returned <U1 values"),
    ],
)
def test_a_method_returning_values_that_are_not_an_image_fails_loudly(rng, values, message):
    """Issue 18: NaN, Inf, integers, booleans, complex numbers and strings were saved as images with exit 0."""
    bad = Method(id="bad", name="Bad", task=Task.UPSCALE, run=lambda r, c: values((16, 16, 3)))
    with pytest.raises(SrDeskError, match=message.replace("(", r"\(").replace(".", r"\.")):
        run_method(document(random_image(rng, 8, 8)), bad, scale=2)


def test_prepare_fixes_a_seed_and_validates_params(rng):
    spec = prepare(NEAREST, JobSpec(method_id="nearest-x"))
    assert isinstance(spec.seed, int)
    assert spec.to_dict()["seed"] == spec.seed


def test_an_editor_selection_of_any_shape_is_a_region(rng):
    from sr_desk.core.masks import feather_mask

    image = document(random_image(rng, 40, 40))
    yy, xx = np.mgrid[:40, :40]
    disc = feather_mask(((xx - 20) ** 2 + (yy - 20) ** 2 <= 36).astype(np.float32), 2)
    result = run_method(image, NEAREST, scale=2, selection=disc)
    base = np.clip(resize(image.rgb, (80, 80), Filter.BICUBIC), 0, 1)
    far = np.ones((80, 80), bool)
    far[20:60, 20:60] = False
    assert np.array_equal(result.rgb[far], base[far])
    nearest = np.repeat(np.repeat(image.rgb, 2, 0), 2, 1)
    assert np.allclose(result.rgb[38:42, 38:42], nearest[38:42, 38:42], atol=1e-6)
    with pytest.raises(SrDeskError, match="selection is empty"):
        run_method(image, NEAREST, scale=2, selection=np.zeros((40, 40), np.float32))


def test_region_previews_show_the_result_as_it_will_be_applied(rng):
    events = []
    image = document(random_image(rng, 60, 60))
    run_method(image, NEAREST, events, scale=2, region=(20, 20, 10, 10), feather=1)
    preview_event = next(e for e in events if e.preview is not None)
    x, y, w, h = preview_event.preview_box
    base = resize(image.rgb, (120, 120), Filter.BICUBIC)
    # NEAREST previews all-black; in the margin around the selection the preview must be the base image.
    assert np.allclose(preview_event.preview[0, 0], base[y, x], atol=1e-6)
    assert np.allclose(preview_event.preview[h // 2, w // 2], 0.0)


def memory_hungry(limit: int, error: type[BaseException] = MemoryError):
    """A nearest x2 that runs out of memory on inputs with a side over ``limit`` (as a GPU would)."""
    sides = []

    def run(request, context):
        sides.append(max(request.image.shape[:2]))
        if sides[-1] > limit:
            raise error("CUDA out of memory. Tried to allocate 2.00 GiB" if error is RuntimeError else "")
        return np.repeat(np.repeat(request.image, 2, 0), 2, 1)

    method = Method(id="hungry", name="Hungry", task=Task.UPSCALE, run=run, capabilities=Capabilities(scales=(2,)))
    return method, sides


@pytest.fixture
def small_tiles_allowed(monkeypatch):
    from sr_desk.engine import pipeline

    monkeypatch.setattr(pipeline, "MIN_RETRY_TILE", 8)  # test images are tiny


@pytest.mark.parametrize("error", [MemoryError, RuntimeError])
def test_out_of_memory_in_a_tile_retries_with_smaller_tiles(rng, error, small_tiles_allowed):
    image = document(random_image(rng, 100, 90))
    method, sides = memory_hungry(40, error)
    events = []
    result = run_method(image, method, events, scale=2, tile_size=64, tile_overlap=8)
    expected = np.repeat(np.repeat(image.rgb, 2, 0), 2, 1)
    assert result.size == (180, 200) and np.allclose(result.rgb, expected, atol=1e-5)
    assert max(sides) > 40 and sides[-1] <= 40  # the 64 px tiles failed, the 32 px ones ran
    assert any("trying again in 32 px tiles" in (e.message or "") for e in events)


def test_out_of_memory_on_the_whole_image_tiles_it_and_gives_up_at_last(rng, small_tiles_allowed):
    image = document(random_image(rng, 50, 50))
    method, sides = memory_hungry(30)
    assert run_method(image, method, scale=2, tile_size=0).size == (100, 100)
    assert sides[0] == 50 and max(sides[1:]) <= 30  # the whole image failed, then 25 px tiles ran
    starving, _ = memory_hungry(5)
    with pytest.raises(SrDeskError, match="ran out of memory even in"):
        run_method(document(random_image(rng, 60, 60)), starving, scale=2, tile_size=0)


def recording_nearest_x2(method_id: str = "attentive", **declared):
    """A nearest x2 with ``declared`` capabilities (a tile limit, its working memory); records each input side."""
    sides = []

    def run(request, context):
        sides.append(max(request.image.shape[:2]))
        return np.repeat(np.repeat(request.image, 2, 0), 2, 1)

    capabilities = Capabilities(scales=(2,), **declared)
    return Method(id=method_id, name=method_id.title(), task=Task.UPSCALE, run=run, capabilities=capabilities), sides


def test_a_method_tile_limit_tiles_even_when_the_user_asked_for_none(rng):
    image = document(random_image(rng, 120, 90))
    method, sides = recording_nearest_x2(max_output_tile=100)
    result = run_method(image, method, scale=2, tile_size=0)
    assert result.size == (180, 240)
    assert np.allclose(result.rgb, np.repeat(np.repeat(image.rgb, 2, 0), 2, 1), atol=1e-5)
    assert len(sides) > 1 and max(sides) <= 50  # 100 output px at x2: 50 px input tiles
    method, sides = recording_nearest_x2(max_output_tile=100)
    run_method(image, method, scale=2, tile_size=40, tile_overlap=8)
    assert max(sides) <= 40  # the user's smaller tiles stand


def test_a_tile_limit_needs_tiles_and_a_sane_size():
    from sr_desk.api import DeclarationError

    with pytest.raises(DeclarationError, match="max_output_tile"):
        Capabilities(tiles=False, max_output_tile=512)
    with pytest.raises(DeclarationError, match="max_output_tile"):
        Capabilities(max_output_tile=16)


def stream_to_png(image, method, path, **spec_fields):
    """``stream_job`` into ``save_image_bands`` on a worker, as the command line does for large results."""
    from sr_desk.core.imageio import save_image_bands
    from sr_desk.engine.pipeline import prepare, stream_job, target_size
    from sr_desk.engine.worker import JobState, Worker

    spec = prepare(method, JobSpec(method_id=method.id, **spec_fields))
    size = target_size(image.size, spec, method)
    with Worker(device="cpu") as worker:
        job = worker.submit(lambda ctx: save_image_bands(path, image, size, lambda start: stream_job(image, method, spec, ctx, start)))
        assert job.wait(120)
    if job.state is JobState.FAILED:
        raise SrDeskError(job.error)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tif"])
@pytest.mark.parametrize("grayscale", [False, True])
def test_a_streamed_result_has_exactly_the_pixels_of_the_whole_result(rng, tmp_path, grayscale, suffix):
    from sr_desk.core.imageio import load_image, save_image

    rgb = random_image(rng, 70, 90)
    if grayscale:
        rgb = np.repeat(rgb.mean(axis=2, keepdims=True), 3, axis=2)
    image = dataclasses_replace(document(rgb), grayscale=grayscale, icc_profile=None)
    streamed, whole = tmp_path / f"streamed{suffix}", tmp_path / f"whole{suffix}"
    stream_to_png(image, BICUBIC, streamed, scale=3, tile_size=32, tile_overlap=8)
    save_image(whole, run_method(image, BICUBIC, scale=3, tile_size=32, tile_overlap=8))
    a, b = load_image(streamed), load_image(whole)
    assert a.size == b.size == (270, 210) and a.grayscale == b.grayscale == (grayscale and suffix != ".webp")
    assert streamed.read_bytes() == whole.read_bytes() or suffix == ".png"  # the same encoder: the same file
    np.testing.assert_array_equal(a.rgb, b.rgb)


def test_out_of_memory_while_streaming_starts_the_file_again_in_smaller_tiles(rng, tmp_path, small_tiles_allowed):
    from sr_desk.core.imageio import load_image

    image = document(random_image(rng, 100, 90))
    method, sides = memory_hungry(40)
    stream_to_png(image, method, tmp_path / "out.png", scale=2, tile_size=64, tile_overlap=8)
    assert max(sides) > 40 and sides[-1] <= 40
    expected = np.repeat(np.repeat(image.rgb, 2, 0), 2, 1)
    assert np.abs(load_image(tmp_path / "out.png").rgb - expected).max() <= 0.5 / 255 + 1e-6


def test_only_whole_image_upscales_that_tiles_reach_by_themselves_are_streamed(rng):
    from sr_desk.engine.pipeline import can_stream

    image = document(random_image(rng, 20, 30))
    assert can_stream(image, BICUBIC, JobSpec(method_id="bicubic-x", scale=2))
    assert can_stream(image, NEAREST, JobSpec(method_id="nearest-x", scale=4))
    assert not can_stream(image, NEAREST, JobSpec(method_id="nearest-x", scale=3))  # x4 then resized
    assert not can_stream(image, BICUBIC, JobSpec(method_id="bicubic-x", scale=2, region=(0, 0, 5, 5)))
    assert not can_stream(image, BICUBIC, JobSpec(method_id="bicubic-x", scale=2, color_lock=True))
    assert not can_stream(document(random_image(rng, 20, 30), alpha=np.ones((20, 30), np.float32)), BICUBIC,
                          JobSpec(method_id="bicubic-x", scale=2))


def test_a_failing_method_while_streaming_leaves_the_old_file(rng, tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")

    def broken(request, context):
        raise RuntimeError("the network fell over")

    method = Method(id="broken", name="Broken", task=Task.UPSCALE, run=broken, capabilities=Capabilities(scales=(2,)))
    with pytest.raises(SrDeskError, match="fell over"):
        stream_to_png(document(random_image(rng, 40, 40)), method, target, scale=2, tile_size=16, tile_overlap=4)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["out.png"]


def dataclasses_replace(image, **changes):
    import dataclasses

    return dataclasses.replace(image, **changes)


def measured_nearest_x2(per_pixel: int):
    """A nearest x2 that declares its working memory per output pixel, and records each input side."""
    return recording_nearest_x2("measured", memory_per_output_pixel=per_pixel)


def test_tiles_are_sized_to_fit_half_the_free_memory():
    from dataclasses import replace

    from sr_desk.engine.pipeline import within_free_memory

    method, _ = measured_nearest_x2(1000)
    spec = JobSpec(method_id="measured", tile_size=512, tile_overlap=32)
    # Half of 2 GB at 1000 bytes a pixel: 1 MP of output, 1000 px a side, 500 input px at x2, 448 in 64s.
    assert within_free_memory(spec, method, 2, 2_000_000_000) == replace(spec, tile_size=448)
    assert within_free_memory(replace(spec, tile_size=256), method, 2, 2_000_000_000).tile_size == 256
    assert within_free_memory(replace(spec, tile_size=0), method, 2, 2_000_000_000).tile_size == 448  # "no tiles"
    assert within_free_memory(spec, method, 2, 1000) == replace(spec, tile_size=64, tile_overlap=16)  # the floor
    assert within_free_memory(spec, method, 2, None) == spec  # free memory unknown
    assert within_free_memory(spec, NEAREST, 2, 1000) == spec  # nothing declared


def test_a_job_is_tiled_to_fit_the_free_memory_and_says_so(rng, monkeypatch):
    from sr_desk.engine import pipeline

    monkeypatch.setattr(pipeline, "free_memory", lambda device: 40_000_000)  # 20 MB at 1000 B/px: 128 px out
    image = document(random_image(rng, 150, 200))
    method, sides = measured_nearest_x2(1000)
    events = []
    result = run_method(image, method, events, scale=2, tile_size=512, tile_overlap=8)
    assert np.allclose(result.rgb, np.repeat(np.repeat(image.rgb, 2, 0), 2, 1), atol=1e-5)
    assert len(sides) > 1 and max(sides) <= 64
    assert any("tiles of 64 px, to fit in the free memory" in (e.message or "") for e in events)


def test_a_declared_working_memory_needs_tiles():
    from sr_desk.api import DeclarationError

    with pytest.raises(DeclarationError, match="memory_per_output_pixel"):
        Capabilities(tiles=False, memory_per_output_pixel=100)
    with pytest.raises(DeclarationError, match="memory_per_output_pixel"):
        Capabilities(memory_per_output_pixel=0)


def test_free_memory_is_read_from_the_system():
    from sr_desk.engine.memory import free_memory, mem_available

    assert mem_available("MemTotal:       24000000 kB\nMemAvailable:   16000000 kB\n") == 16_000_000 * 1024
    assert mem_available("MemTotal:       24000000 kB\n") is None
    free = free_memory("cpu")
    assert free is None or free > 0
    assert free_memory("mps") is None
