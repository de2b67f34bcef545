"""Running a method on a document: sizes, regions, tiles and alpha.

Methods only ever see RGB pixels at a scale they support. Everything a user
expects from an editor on top of that is done here once, for every method:
reaching any scale or exact size, working on a selection, splitting large
images into tiles, and keeping the alpha channel.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import math
import secrets
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from sr_desk.api import ImageInput, ImageParam, Method, Request, SeedParam, Task
from sr_desk.api.params import MAX_SEED
from sr_desk.core.allocator import release_free_memory
from sr_desk.core.color import color_lock
from sr_desk.core.errors import SrDeskError
from sr_desk.core.imageio import ImageData, load_image, to_uint8
from sr_desk.core.masks import composite, feather_mask, mask_bbox, rect_mask, resize_mask
from sr_desk.core.resize import Filter, clip01, fit_within, resize, scaled_size
from sr_desk.core.special_files import check_openable_file, check_openable_tree
from sr_desk.core.tiling import plan_tiles, tiled_bands, tiled_upscale
from sr_desk.engine.memory import free_memory
from sr_desk.engine.worker import JobContext

Box = tuple[int, int, int, int]
T = TypeVar("T")


class MethodOutputError(SrDeskError):
    """A method returned something other than the image it was asked for."""


@dataclass(frozen=True)
class JobSpec:
    """Everything one run needs besides the pixels; serialisable to JSON.

    ``region`` is ``(x, y, width, height)`` in input pixels; ``selection``, a
    float32 mask at input size (the editor's selection, any shape, already
    feathered), takes its place when given. ``seed=None``
    draws a seed when the job is prepared, so the run is reproducible from
    the prepared spec. ``draft`` marks a quick look (the editor's live
    slider), passed to the method as ``Request.draft``.
    """

    method_id: str
    scale: float | None = None
    size: tuple[int, int] | None = None
    fit: bool = False
    region: Box | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    seed: int | None = None
    feather: float = 8.0
    tile_size: int = 512
    tile_overlap: int = 32
    color_lock: bool = False
    weights: str | None = None
    draft: bool = False
    selection: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        params = {k: (v.source if isinstance(v, ImageInput) else v) for k, v in self.params.items()}
        return {
            "method_id": self.method_id,
            "scale": self.scale,
            "size": list(self.size) if self.size else None,
            "fit": self.fit,
            "region": list(self.region) if self.region else None,
            "selection": mask_bbox(self.selection) if self.selection is not None else None,
            "params": params,
            "seed": self.seed,
            "feather": self.feather,
            "tile_size": self.tile_size,
            "tile_overlap": self.tile_overlap,
            "color_lock": self.color_lock,
            "weights": self.weights,
            "draft": self.draft,
        }


#: Tasks whose result is the input enlarged: the host confines them to a selection itself (the method
#: runs on the selection's box with a margin, bicubic does the rest), so they honour "selection only".
ENLARGING_TASKS = (Task.UPSCALE, Task.INTERPOLATE)


def new_seed() -> int:
    return secrets.randbelow(MAX_SEED + 1)


def target_size(input_size: tuple[int, int], spec: JobSpec, method: Method) -> tuple[int, int]:
    """The output size a user asked for with ``--scale``, ``--size`` or ``--size --fit``."""
    if spec.size is not None:
        return fit_within(input_size, spec.size) if spec.fit else spec.size
    scale = spec.scale if spec.scale is not None else method.capabilities.default_scale
    if not scale > 0:
        raise SrDeskError(f"scale must be positive (got {scale:g})")
    return scaled_size(input_size, scale)


def run_scale_for(in_size: tuple[int, int], out_size: tuple[int, int], method: Method) -> float:
    """The scale ``method`` runs at to reach ``out_size``: the larger axis ratio, or its next native scale up."""
    return method.capabilities.native_scale_for(max(out_size[0] / in_size[0], out_size[1] / in_size[1]))


def load_image_params(method: Method, values: Mapping[str, Any]) -> dict[str, Any]:
    """Replace file paths given for image parameters by loaded ``ImageInput`` values."""
    loaded = dict(values)
    for param in method.param_set:
        value = loaded.get(param.name)
        if isinstance(param, ImageParam) and isinstance(value, str):
            image = load_image(value)
            loaded[param.name] = ImageInput(image.rgb, image.alpha, source=value)
    return loaded


def clip_region(region: Box, size: tuple[int, int]) -> Box:
    x, y, w, h = region
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(size[0], x + w), min(size[1], y + h)
    if x1 <= x0 or y1 <= y0:
        raise SrDeskError(f"region {x},{y},{w},{h} lies outside the {size[0]}x{size[1]} image")
    return x0, y0, x1 - x0, y1 - y0


def prepare(method: Method, spec: JobSpec) -> JobSpec:
    """Validate parameters and fix the seed before the job is queued, so bad input fails at once."""
    params = method.param_set.resolve(dict(spec.params))
    seed = spec.seed if spec.seed is not None else new_seed()
    if not 0 <= seed <= MAX_SEED:
        raise SrDeskError(f"seed must be between 0 and {MAX_SEED} (got {seed})")
    return JobSpec(**{**spec.__dict__, "params": params, "seed": seed})


def run_job(image: ImageData, method: Method, spec: JobSpec, context: JobContext) -> ImageData:
    """Run ``method`` on ``image`` as ``spec`` says; returns the new document pixels.

    ``spec`` must come from ``prepare``. The result has exactly the target size.
    """
    assert spec.seed is not None, "run prepare() first"
    if spec.weights:
        context.weights = PreferredWeights(method, Path(spec.weights), context.weights)
    in_size = image.size
    out_size = target_size(in_size, spec, method)
    run_scale = run_scale_for(in_size, out_size, method)
    mask = region_mask(spec, in_size)

    if mask is not None and not method.capabilities.region:
        if method.task not in ENLARGING_TASKS:
            raise SrDeskError(f"method {method.id!r} cannot work on a region")
        rgb = _upscale_region(image.rgb, method, spec, mask, run_scale, context)
    else:
        exact = out_size if method.capabilities.arbitrary_scale else None
        rgb = _upscale(image.rgb, method, spec, run_scale, mask, context, exact_size=exact)

    if (rgb.shape[1], rgb.shape[0]) != out_size:
        rgb = resize(rgb, out_size, Filter.LANCZOS)
    if spec.color_lock:
        rgb = color_lock(rgb, image.rgb)
    alpha = None
    if image.alpha is not None:
        alpha = clip01(resize(image.alpha, out_size, Filter.BICUBIC))
    return image.with_pixels(clip01(rgb), alpha)


#: Results at least this large go to their file band by band when the job allows it (:func:`can_stream`).
STREAM_MIN_PIXELS = 50_000_000
#: The tile side a streamed job uses when the user asked for none: it needs tiles to stream.
STREAM_TILE = 512
#: Rows quantised and handed to the writer at a time (a 2048-row band of a 24,064 px wide result is 148 MB as 8 bits).
STREAM_WRITE_ROWS = 256


def can_stream(image: ImageData, method: Method, spec: JobSpec) -> bool:
    """Whether ``run_job`` would be the method run in tiles and nothing else, so its rows can go to a file.

    That is: an upscale over the whole image (no region, no selection), a
    method that accepts tiles, no colour lock, no alpha, 8 bits, and a
    target size that the tiles reach by themselves (no final resize).
    """
    if method.task is not Task.UPSCALE or not method.capabilities.tiles:
        return False
    if spec.region is not None or spec.selection is not None or spec.color_lock:
        return False
    if image.alpha is not None or image.bit_depth != 8:
        return False
    out_size = target_size(image.size, spec, method)
    return scaled_size(image.size, run_scale_for(image.size, out_size, method)) == out_size


def stream_job(
    image: ImageData,
    method: Method,
    spec: JobSpec,
    context: JobContext,
    start: Callable[[], Callable[[np.ndarray], None]],
) -> tuple[int, int]:
    """``run_job`` for results too large to hold: tiles blended a band at a time, each band written as 8 bits.

    ``start()`` begins the output and returns the function taking the next
    uint8 rows (``save_image_bands`` provides both). Memory holds the input,
    one row of tiles and one band, whatever the output size. Out of memory
    in a tile, the output starts again in tiles of half the side, as
    ``run_job`` does. Returns the output size. Needs :func:`can_stream`.
    """
    assert spec.seed is not None, "run prepare() first"
    if not can_stream(image, method, spec):
        raise SrDeskError(f"this {method.id} job cannot be written band by band")
    if spec.weights:
        context.weights = PreferredWeights(method, Path(spec.weights), context.weights)
    out_size = target_size(image.size, spec, method)
    run_scale = run_scale_for(image.size, out_size, method)
    spec = dataclasses.replace(spec, tile_size=spec.tile_size or STREAM_TILE)
    spec = within_limits(spec, method, run_scale, context, side=max(image.size))
    _in_smaller_tiles_when_out_of_memory(
        lambda tiled: _stream_once(image, method, tiled, run_scale, context, start()),
        spec, method, context, side=max(image.size),
    )
    return out_size


def _stream_once(
    image: ImageData,
    method: Method,
    spec: JobSpec,
    run_scale: float,
    context: JobContext,
    write_rows: Callable[[np.ndarray], None],
) -> None:
    run_tile, next_tile = _tile_runner(image.size, method, spec, run_scale, context)
    bands = tiled_bands(image.rgb, run_scale, run_tile, tile=spec.tile_size, overlap=spec.tile_overlap,
                        on_tile=next_tile)
    for _, rows in bands:
        np.clip(rows, 0.0, 1.0, out=rows)  # the band is ours until the next: no copy of it
        for start in range(0, len(rows), STREAM_WRITE_ROWS):  # 8-bit copies of a few rows, not of the band
            chunk = rows[start : start + STREAM_WRITE_ROWS]
            write_rows(to_uint8(chunk.mean(axis=2) if image.grayscale else chunk))
        release_free_memory()  # what this row of tiles freed, before the output's own buffers grow


def _call_method(
    method: Method,
    rgb: np.ndarray,
    run_scale: float,
    size: tuple[int, int],
    spec: JobSpec,
    mask: np.ndarray | None,
    context: JobContext,
    tile_index: int | None = None,
) -> np.ndarray:
    request = Request(
        image=np.ascontiguousarray(rgb, dtype=np.float32),
        scale=run_scale,
        output_size=size,
        params=dict(spec.params) if tile_index is None else tile_params(method, spec, tile_index),
        seed=int(spec.seed or 0) if tile_index is None else tile_seed(int(spec.seed or 0), tile_index),
        mask=mask,
        draft=spec.draft,
    )
    with contextlib.redirect_stdout(sys.stderr):  # a plugin's print() must not mix into the CLI's output
        result = method.run(request, context)
    if not isinstance(result, np.ndarray) or result.ndim != 3 or result.shape[2] != 3:
        got = getattr(result, "shape", type(result).__name__)
        raise MethodOutputError(f"method {method.id!r} returned {got}, not an H x W x 3 image")
    if (result.shape[1], result.shape[0]) != size:
        raise MethodOutputError(
            f"method {method.id!r} returned {result.shape[1]}x{result.shape[0]}, expected {size[0]}x{size[1]}"
        )
    return checked_values(method, result)


def checked_values(method: Method, result: np.ndarray) -> np.ndarray:
    """The result as float32, or MethodOutputError when its values cannot be an image.

    Integers, booleans, complex numbers or strings would be saved as an
    all-black or all-white picture, and NaN or infinity (broken weights, a
    diverged sampler) as black: a method that returns them has failed.
    """
    if not np.issubdtype(result.dtype, np.floating):
        raise MethodOutputError(
            f"method {method.id!r} returned {result.dtype} values; a result must be floats in [0, 1]"
        )
    finite = np.isfinite(result)
    if not finite.all():
        share = 1 - float(finite.mean())
        raise MethodOutputError(
            f"method {method.id!r} returned NaN or infinite values in {share:.1%} of the image "
            "(damaged weights or a diverged model); nothing was changed"
        )
    return result.astype(np.float32, copy=False)


#: Tiles are never made smaller than this when retrying after running out of memory.
MIN_RETRY_TILE = 64


def is_out_of_memory(exc: BaseException) -> bool:
    """True for the allocation failures of numpy, the CPU allocator and CUDA (torch.OutOfMemoryError)."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def _release_memory() -> None:
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _upscale(
    rgb: np.ndarray,
    method: Method,
    spec: JobSpec,
    run_scale: float,
    mask: np.ndarray | None,
    context: JobContext,
    exact_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Run the method on the whole of ``rgb``, in tiles when it is large or would not fit the free
    memory (:func:`within_limits`); out of memory all the same, in smaller tiles.

    A method that can be tiled and runs out of memory (on the whole image or
    in a tile) runs again from the start in tiles of half the side, down to
    ``MIN_RETRY_TILE`` input pixels; the user sees why in the progress text.
    """
    return _in_smaller_tiles_when_out_of_memory(
        lambda tiled: _upscale_once(rgb, method, tiled, run_scale, mask, context, exact_size),
        within_limits(spec, method, run_scale, context, side=max(rgb.shape[:2])) if mask is None else spec,
        method, context, side=max(rgb.shape[:2]),
        can_retry=method.capabilities.tiles and mask is None,
    )


def _in_smaller_tiles_when_out_of_memory(
    attempt: Callable[[JobSpec], T],
    spec: JobSpec,
    method: Method,
    context: JobContext,
    *,
    side: int,
    can_retry: bool = True,
) -> T:
    """``attempt(spec)``; out of memory, again from the start in tiles of half the side (``side``: the input's).

    Down to ``MIN_RETRY_TILE`` input pixels, then one clear message; the
    user sees each retry in the progress text.
    """
    while True:
        try:
            return attempt(spec)
        except Exception as exc:
            if not is_out_of_memory(exc) or not can_retry:
                raise
            current = spec.tile_size if 0 < spec.tile_size < side else side
            smaller = current // 2
            if smaller < MIN_RETRY_TILE:
                raise SrDeskError(f"{method.name} ran out of memory even in {current} px tiles; "
                                  "close other programs or choose a smaller image") from None
            del exc
            _release_memory()
            context.report(0, 1, message=f"out of memory: trying again in {smaller} px tiles")
            spec = dataclasses.replace(spec, tile_size=smaller, tile_overlap=min(spec.tile_overlap, smaller // 4))


#: The share of the device's free memory a method's tiles are sized to (the rest: the document, the app, others).
MEMORY_SHARE = 0.5


def within_limits(spec: JobSpec, method: Method, run_scale: float, context: JobContext, *, side: int) -> JobSpec:
    """``spec`` with tiles within the method's limit and within the free memory; says so when memory decides.

    ``side`` is the input's longer side: an image that fits in one tile of
    the new size is not tiled, and nothing is said.
    """
    spec = within_method_tile_limit(spec, method, run_scale)
    fitted = within_free_memory(spec, method, run_scale, free_memory(context.device))
    if fitted.tile_size != spec.tile_size and fitted.tile_size < side:
        context.report(0, 1, message=f"tiles of {fitted.tile_size} px, to fit in the free memory")
    return fitted


def within_free_memory(spec: JobSpec, method: Method, run_scale: float, free: int | None) -> JobSpec:
    """``spec`` with tiles whose working memory fits in ``MEMORY_SHARE`` of ``free`` bytes.

    Needs the method's ``Capabilities.memory_per_output_pixel``; without it,
    or without a figure for the free memory, ``spec`` as it is. Tiles are a
    multiple of 64 input pixels, at least ``MIN_RETRY_TILE``, and replace
    "no tiles" too: a whole image that does not fit would swap or be killed.
    """
    per_pixel = method.capabilities.memory_per_output_pixel
    if per_pixel is None or free is None or run_scale <= 0:
        return spec
    output_side = math.sqrt(max(0.0, free * MEMORY_SHARE / per_pixel))
    tile = max(MIN_RETRY_TILE, int(output_side / run_scale) // 64 * 64)
    return _tiles_at_most(spec, tile, overlap=tile // 4)


def _tiles_at_most(spec: JobSpec, tile: int, *, overlap: int) -> JobSpec:
    """``spec`` with tiles of at most ``tile`` px ("no tiles" included) and an overlap of at most ``overlap``."""
    if 0 < spec.tile_size <= tile:
        return spec
    return dataclasses.replace(spec, tile_size=tile, tile_overlap=min(spec.tile_overlap, overlap))


def within_method_tile_limit(spec: JobSpec, method: Method, run_scale: float) -> JobSpec:
    """``spec`` with tiles no larger than the method computes in one piece (``Capabilities.max_output_tile``).

    The overlap shrinks with such tiles (an eighth of the side), so that
    small tiles do not compute most pixels twice.
    """
    limit = method.capabilities.max_output_tile
    if limit is None or run_scale <= 0:
        return spec
    tile = max(MIN_RETRY_TILE // 2, int(limit / run_scale))
    return _tiles_at_most(spec, tile, overlap=max(4, tile // 8))


def _upscale_once(
    rgb: np.ndarray,
    method: Method,
    spec: JobSpec,
    run_scale: float,
    mask: np.ndarray | None,
    context: JobContext,
    exact_size: tuple[int, int] | None = None,
) -> np.ndarray:
    in_size = (rgb.shape[1], rgb.shape[0])
    needs_tiles = (
        method.capabilities.tiles and mask is None and spec.tile_size > 0 and max(in_size) > spec.tile_size
    )
    if not needs_tiles:
        size = exact_size or scaled_size(in_size, run_scale)
        return _call_method(method, rgb, run_scale, size, spec, mask, context)

    run_tile, next_tile = _tile_runner(in_size, method, spec, run_scale, context)
    return tiled_upscale(
        rgb, run_scale, run_tile, tile=spec.tile_size, overlap=spec.tile_overlap, on_tile=next_tile
    )


def _tile_runner(
    in_size: tuple[int, int], method: Method, spec: JobSpec, run_scale: float, context: JobContext
) -> tuple[Callable[[np.ndarray], np.ndarray], Callable[[int, int], None]]:
    """``(run_tile, next_tile)`` for ``tiled_upscale``/``tiled_bands``: the method on each tile, with its
    progress span, seed and box, and tile-level progress (the cancel point between tiles)."""
    tiles = plan_tiles(in_size, run_scale, spec.tile_size, spec.tile_overlap)
    done = 0

    def run_tile(crop: np.ndarray) -> np.ndarray:
        x0, y0, x1, y1 = tiles[done].out_box
        sub = context.span(done, len(tiles), (x0, y0, x1 - x0, y1 - y0))
        return _call_method(method, crop, run_scale, (x1 - x0, y1 - y0), spec, None, sub, tile_index=done)

    def next_tile(index: int, count: int) -> None:
        nonlocal done
        done = index + 1
        context.report(done, count)

    return run_tile, next_tile


def tile_seed(seed: int, index: int) -> int:
    """Each tile its own noise: one seed for all would repeat the same grain pattern tile after tile."""
    return (seed + 0x9E3779B1 * index) % (MAX_SEED + 1)


def tile_params(method: Method, spec: JobSpec, index: int) -> dict[str, Any]:
    """The job's parameters for tile ``index``: extra seeds (``SeedParam``) move on per tile like the main seed."""
    params = dict(spec.params)
    for param in method.param_set:
        if isinstance(param, SeedParam) and params.get(param.name) is not None:
            params[param.name] = tile_seed(params[param.name], index)
    return params


@dataclass(frozen=True)
class PreferredWeights:
    """Serves a user-chosen file or folder (``--weights``) for the method's main weights; other names as before."""

    method: Method
    file: Path
    fallback: Any

    def path(self, name: str) -> Path:
        declared = self.method.capabilities.weights
        if not declared:
            raise SrDeskError(f"method {self.method.id!r} uses no weights file")
        if name != declared[0].name:
            return self.fallback.path(name)
        if not self.file.exists() and not self.file.is_symlink():
            raise SrDeskError(f"weights {str(self.file)!r} do not exist")
        # A FIFO would block the method's open() forever, a device would be read without end. A folder is a
        # model in a folder format (a diffusers model, say), whose loader opens every file in it by itself.
        check_openable_file(self.file, "weights", allow_folder=True)
        if self.file.is_dir():
            check_openable_tree(self.file, "weights")
        return self.file


def region_mask(spec: JobSpec, size: tuple[int, int]) -> np.ndarray | None:
    """The job's selection as a mask at input size: the editor's own (any shape), or the feathered ``region``."""
    if spec.selection is not None:
        mask = np.asarray(spec.selection, dtype=np.float32)
        if mask.shape != (size[1], size[0]):
            raise SrDeskError(f"the selection is {mask.shape[1]}x{mask.shape[0]}, the image {size[0]}x{size[1]}")
        if mask_bbox(mask) is None:
            raise SrDeskError("the selection is empty")
        return mask
    if spec.region is not None:
        return feather_mask(rect_mask(size, clip_region(spec.region, size)), spec.feather)
    return None


def _upscale_region(
    rgb: np.ndarray, method: Method, spec: JobSpec, selection: np.ndarray, run_scale: float, context: JobContext
) -> np.ndarray:
    """Upscale the selection with ``method`` and the rest with bicubic, blended over its soft edge.

    The method sees the selection's bounding box plus a margin of context, so
    its borders are as good as its middle; pixels where the mask is 0 are the
    bicubic result exactly.
    """
    in_size = (rgb.shape[1], rgb.shape[0])
    out_size = scaled_size(in_size, run_scale)
    base = resize(rgb, out_size, Filter.BICUBIC)
    mask = resize_mask(selection, out_size)

    margin = 16
    box = mask_bbox(selection)
    assert box is not None
    x, y, w, h = box
    x0, y0 = max(0, x - margin), max(0, y - margin)
    x1, y1 = min(in_size[0], x + w + margin), min(in_size[1], y + h + margin)
    ox0, oy0 = round(x0 * run_scale), round(y0 * run_scale)
    crop_out_size = scaled_size((x1 - x0, y1 - y0), run_scale)
    ox1 = min(out_size[0], ox0 + crop_out_size[0])
    oy1 = min(out_size[1], oy0 + crop_out_size[1])

    window = (slice(oy0, oy1), slice(ox0, ox1))
    region_context = BlendedPreviews(context.span(0, 1, (ox0, oy0, ox1 - ox0, oy1 - oy0)), base[window], mask[window])
    crop = rgb[y0:y1, x0:x1]
    result = _upscale(crop, method, spec, run_scale, None, region_context)
    result = result[: oy1 - oy0, : ox1 - ox0]

    out = base.copy()
    out[window] = composite(base[window], result, mask[window])
    return out


class BlendedPreviews:
    """A context that shows a region's previews as they will be applied: blended into the base over the mask.

    Without it, the preview of a selection would show the method's raw output
    over the whole working window, margin included, and then visibly shrink
    to the selection when the result lands. A preview the host had shrunk is
    blended over the base and mask shrunk alike; a tile of the window
    (``span``) over its own part of them.
    """

    def __init__(self, inner: JobContext, base: np.ndarray, mask: np.ndarray):
        self._inner, self._base, self._mask = inner, base, mask
        self._shrunk: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def span(self, index: int, count: int, box: Box | None = None) -> BlendedPreviews:
        inner = self._inner.span(index, count, box)
        if box is None:
            return BlendedPreviews(inner, self._base, self._mask)
        x, y, w, h = box
        return BlendedPreviews(inner, self._base[y : y + h, x : x + w], self._mask[y : y + h, x : x + w])

    def _base_and_mask_at(self, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        if (height, width) not in self._shrunk:
            self._shrunk[(height, width)] = (
                resize(self._base, (width, height), Filter.BILINEAR),
                resize_mask(self._mask, (width, height)),
            )
        return self._shrunk[(height, width)]

    def report(
        self,
        step: int,
        total: int,
        preview: np.ndarray | None = None,
        message: str = "",
        box: Box | None = None,
    ) -> None:
        if preview is not None and box is None:
            h, w = self._base.shape[:2]
            if preview.shape[0] >= h and preview.shape[1] >= w:
                preview = composite(self._base, preview[:h, :w], self._mask)
            else:  # shrunk to the host's preview side: the window's whole picture at a smaller size
                base, mask = self._base_and_mask_at(*preview.shape[:2])
                preview = composite(base, preview[..., :3], mask)
        self._inner.report(step, total, preview, message, box)
