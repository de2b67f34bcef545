"""The editor's selection: which pixels an edit may touch, and how much.

A :class:`Selection` is an immutable value: every operation returns a new
one and the mask array is read-only. That is what lets the undo history keep
selections by reference (no copies) and hand the same object to a worker
thread while the user goes on editing.

The mask is float32 ``H x W`` in [0, 1] (1 = fully selected), so anti-aliased
and feathered edges are just intermediate values. ``None`` means nothing is
selected; an operation whose result selects nothing returns ``None`` too, so
:attr:`Selection.is_empty` is a cheap check.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from sr_desk.core.masks import feather_mask, mask_bbox, resize_mask

__all__ = ["CombineOp", "Selection"]

Mask = npt.NDArray[np.float32]
CombineOp = Literal["replace", "add", "subtract", "intersect"]
Box = tuple[int, int, int, int]

_SUPERSAMPLE = 4  # lasso edges: 4x4 sub-pixels give 17 coverage levels


@dataclass(frozen=True, eq=False)
class Selection:
    """A selection mask for an image of ``size`` = (width, height).

    Constructing one directly copies ``mask`` (the caller keeps its array);
    the class constructors and operations build fresh arrays and adopt them.
    Two selections are equal when their sizes and masks are identical.
    """

    size: tuple[int, int]
    mask: Mask | None = None

    def __post_init__(self) -> None:
        size = _check_size(self.size)
        object.__setattr__(self, "size", size)
        if self.mask is not None:
            object.__setattr__(self, "mask", _own(np.array(self.mask, dtype=np.float32), size))

    # ------------------------------------------------------------------ #
    # Constructors
    # ------------------------------------------------------------------ #

    @classmethod
    def none(cls, size: tuple[int, int]) -> Selection:
        """Nothing selected."""
        return cls(size)

    @classmethod
    def all(cls, size: tuple[int, int]) -> Selection:
        """Every pixel fully selected."""
        w, h = _check_size(size)
        return cls._adopt((w, h), np.ones((h, w), dtype=np.float32))

    @classmethod
    def rect(cls, size: tuple[int, int], box: Box) -> Selection:
        """The rectangle ``box`` = (x, y, w, h), clipped to the image.

        A negative width or height (a drag up or to the left) is normalised;
        a rectangle entirely outside the image selects nothing.
        """
        w, h = _check_size(size)
        x0, y0, x1, y1 = _clip_box(box, (w, h))
        mask = np.zeros((h, w), dtype=np.float32)
        mask[y0:y1, x0:x1] = 1.0
        return cls._adopt((w, h), mask)

    @classmethod
    def ellipse(cls, size: tuple[int, int], box: Box) -> Selection:
        """The ellipse inscribed in ``box`` = (x, y, w, h), with a 1 px anti-aliased edge.

        Coverage comes from the approximate signed distance of each pixel
        centre to the ellipse (first-order: level-set value over gradient
        length), which is exact enough for a 1 px ramp and keeps the area
        within a fraction of a percent of pi * a * b.
        """
        w, h = _check_size(size)
        bx, by, bw, bh = _normalise_box(box)
        mask = np.zeros((h, w), dtype=np.float32)
        x0, y0, x1, y1 = _clip_box((bx - 1, by - 1, bw + 2, bh + 2), (w, h))
        if bw > 0 and bh > 0 and x1 > x0 and y1 > y0:
            mask[y0:y1, x0:x1] = _ellipse_coverage(
                (bx + bw / 2, by + bh / 2), (bw / 2, bh / 2), (x0, y0, x1, y1)
            )
        return cls._adopt((w, h), mask)

    @classmethod
    def polygon(cls, size: tuple[int, int], points: Sequence[tuple[float, float]]) -> Selection:
        """A closed freehand lasso through ``points`` (image coordinates, floats).

        Rasterised by Pillow at 4x resolution over the polygon's bounding box
        only (a lasso on a 100 MP image must not allocate 16x the image) and
        averaged down, which anti-aliases the edge.
        """
        w, h = _check_size(size)
        mask = np.zeros((h, w), dtype=np.float32)
        if len(points) >= 3:
            pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
            x0, y0 = max(0, int(np.floor(pts[:, 0].min()))), max(0, int(np.floor(pts[:, 1].min())))
            x1, y1 = min(w, int(np.ceil(pts[:, 0].max()))), min(h, int(np.ceil(pts[:, 1].max())))
            if x1 > x0 and y1 > y0:
                mask[y0:y1, x0:x1] = _polygon_coverage(pts - (x0, y0), (x1 - x0, y1 - y0))
        return cls._adopt((w, h), mask)

    @classmethod
    def from_png_bytes(cls, data: bytes, size: tuple[int, int]) -> Selection:
        """Decode :meth:`to_png_bytes` output; ``ValueError`` unless it is a mask of ``size``."""
        w, h = _check_size(size)
        try:
            with Image.open(io.BytesIO(data), formats=["PNG"]) as im:
                im.load()
                if im.mode != "L" or im.size != (w, h):
                    got = f"{im.size[0]}x{im.size[1]} {im.mode}"
                    raise ValueError(f"expected a {w}x{h} L mask, got {got}")
                values = np.asarray(im, dtype=np.float32)
        except (OSError, SyntaxError) as exc:
            raise ValueError(f"not a PNG selection mask ({exc})") from None
        return cls._adopt((w, h), values / np.float32(255))

    @classmethod
    def from_mask(cls, size: tuple[int, int], mask: Mask | None) -> Selection:
        """A selection with ``mask``, copied only when it is writable.

        A read-only mask (another selection's, or one read back from undo
        history) is shared as is, which keeps undoing on huge images cheap.
        """
        if mask is None:
            return cls.none(size)
        if mask.flags.writeable:
            return cls(size, mask)
        return cls._adopt(_check_size(size), mask)

    @classmethod
    def _adopt(cls, size: tuple[int, int], mask: Mask) -> Selection:
        """Wrap an array without copying it: a fresh one of ours, or a read-only one."""
        sel = cls.__new__(cls)
        object.__setattr__(sel, "size", size)
        object.__setattr__(sel, "mask", _own(mask, size))
        return sel

    # ------------------------------------------------------------------ #
    # Properties
    # ------------------------------------------------------------------ #

    @property
    def is_empty(self) -> bool:
        return self.mask is None

    @property
    def bbox(self) -> Box | None:
        """(x, y, w, h) of the pixels with any selection, or None."""
        return None if self.mask is None else mask_bbox(self.mask)

    @property
    def area(self) -> float:
        """Selected pixels, partial ones counted by their weight."""
        return 0.0 if self.mask is None else float(self.mask.sum(dtype=np.float64))

    def mask_or_zeros(self) -> Mask:
        """The mask, or a (read-only) zero mask when nothing is selected."""
        if self.mask is not None:
            return self.mask
        zeros = np.zeros((self.size[1], self.size[0]), dtype=np.float32)
        zeros.flags.writeable = False
        return zeros

    # ------------------------------------------------------------------ #
    # Operations
    # ------------------------------------------------------------------ #

    def combine(self, other: Selection, op: CombineOp) -> Selection:
        """This selection combined with ``other``, as the selection tools' modifier keys do."""
        if other.size != self.size:
            raise ValueError(f"cannot combine a {other.size} selection with a {self.size} one")
        if op == "replace":
            return other
        if op == "add":
            if self.mask is None or other.mask is None:
                return other if self.mask is None else self
            return Selection._adopt(self.size, np.maximum(self.mask, other.mask))
        if op == "subtract":
            if self.mask is None or other.mask is None:
                return self
            return Selection._adopt(self.size, self.mask * (np.float32(1) - other.mask))
        if op == "intersect":
            if self.mask is None or other.mask is None:
                return Selection.none(self.size)
            return Selection._adopt(self.size, np.minimum(self.mask, other.mask))
        raise ValueError(f"unknown selection operation {op!r}")

    def invert(self) -> Selection:
        if self.mask is None:
            return Selection.all(self.size)
        return Selection._adopt(self.size, np.float32(1) - self.mask)

    def feathered(self, radius: float) -> Selection:
        """Edges softened over about ``radius`` px; pixels farther away stay exactly 0 or 1."""
        if self.mask is None:
            return self
        return Selection._adopt(self.size, feather_mask(self.mask, radius))

    def translated(self, dx: int, dy: int) -> Selection:
        """Moved by whole pixels; what leaves the image is lost, what enters is unselected."""
        dx, dy = int(dx), int(dy)
        if self.mask is None or (dx, dy) == (0, 0):
            return self
        w, h = self.size
        out = np.zeros((h, w), dtype=np.float32)
        src_x, dst_x = _shift_range(dx, w)
        src_y, dst_y = _shift_range(dy, h)
        out[dst_y, dst_x] = self.mask[src_y, src_x]
        return Selection._adopt(self.size, out)

    def resized(self, size: tuple[int, int]) -> Selection:
        """The same selection on an image resized to ``size`` (e.g. after a 4x upscale)."""
        size = _check_size(size)
        if size == self.size:
            return self
        if self.mask is None:
            return Selection.none(size)
        return Selection._adopt(size, resize_mask(self.mask, size))

    def to_png_bytes(self) -> bytes:
        """The mask as an 8-bit grayscale PNG (an empty selection is all black)."""
        values = np.clip(self.mask_or_zeros() * np.float32(255) + np.float32(0.5), 0, 255)
        buf = io.BytesIO()
        Image.fromarray(values.astype(np.uint8), mode="L").save(buf, format="PNG")
        return buf.getvalue()

    # ------------------------------------------------------------------ #

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Selection):
            return NotImplemented
        if self.size != other.size:
            return False
        if self.mask is None or other.mask is None:
            return self.mask is other.mask
        return bool(np.array_equal(self.mask, other.mask))

    def __hash__(self) -> int:
        return hash(self.size)

    def __repr__(self) -> str:
        return f"Selection(size={self.size}, bbox={self.bbox}, area={self.area:.1f})"


# ---------------------------------------------------------------------- #
# Helpers
# ---------------------------------------------------------------------- #


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    w, h = int(size[0]), int(size[1])
    if w < 1 or h < 1:
        raise ValueError(f"selection size must be positive (width, height), got {size!r}")
    return w, h


def _own(mask: Mask, size: tuple[int, int]) -> Mask | None:
    """Validate a mask, freeze it, and turn "selects nothing" into None.

    A writable mask is ours to fix up (clipped in place); a read-only one
    already went through here, or was frozen by its owner.
    """
    if mask.shape != (size[1], size[0]) or mask.dtype != np.float32:
        expected = (size[1], size[0])
        got = f"{mask.dtype} {mask.shape}"
        raise ValueError(f"expected a float32 mask of shape {expected}, got {got}")
    if mask.flags.writeable:
        mask = np.ascontiguousarray(mask)
        np.clip(mask, 0.0, 1.0, out=mask)  # rounding overshoot of blends and resizes
    if not mask.any():
        return None
    mask.flags.writeable = False
    return mask


def _normalise_box(box: Box) -> Box:
    x, y, w, h = (int(round(v)) for v in box)
    if w < 0:
        x, w = x + w, -w
    if h < 0:
        y, h = y + h, -h
    return x, y, w, h


def _clip_box(box: Box, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of ``box`` inside the image; x1 <= x0 when nothing is left."""
    x, y, w, h = _normalise_box(box)
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = max(x0, min(size[0], x + w)), max(y0, min(size[1], y + h))
    return x0, y0, x1, y1


def _ellipse_coverage(
    centre: tuple[float, float], radii: tuple[float, float], window: tuple[int, int, int, int]
) -> Mask:
    """Coverage of the pixels in ``window`` (x0, y0, x1, y1) by the ellipse."""
    (cx, cy), (a, b) = centre, radii
    x0, y0, x1, y1 = window
    u = (np.arange(x0, x1, dtype=np.float64) + 0.5 - cx)[None, :] / a
    v = (np.arange(y0, y1, dtype=np.float64) + 0.5 - cy)[:, None] / b
    r = np.sqrt(u * u + v * v)
    # |grad r| = sqrt((u/a)^2 + (v/b)^2) / r; distance ~ (r - 1) / |grad r|.
    grad = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        dist = np.where(grad > 0, (r - 1.0) * r / grad, -np.inf)
    return np.clip(0.5 - dist, 0.0, 1.0).astype(np.float32)


def _polygon_coverage(points: npt.NDArray[np.float64], size: tuple[int, int]) -> Mask:
    """Anti-aliased coverage of a polygon over a ``size`` (w, h) window."""
    w, h = size
    s = _SUPERSAMPLE
    canvas = Image.new("L", (w * s, h * s), 0)
    # Pillow fills the sub-pixels whose centres are inside; sub-pixel centres
    # sit at (i + 0.5) / s in image coordinates, hence the half-pixel shift.
    scaled = [(float(x) * s - 0.5, float(y) * s - 0.5) for x, y in points]
    ImageDraw.Draw(canvas).polygon(scaled, fill=255)
    fine = np.asarray(canvas, dtype=np.float32).reshape(h, s, w, s)
    return (fine.mean(axis=(1, 3)) / np.float32(255)).astype(np.float32)


def _shift_range(d: int, n: int) -> tuple[slice, slice]:
    """Source and destination slices for moving a length-``n`` axis by ``d``."""
    if abs(d) >= n:
        return slice(0, 0), slice(0, 0)
    if d >= 0:
        return slice(0, n - d), slice(d, n)
    return slice(-d, n), slice(0, n + d)
