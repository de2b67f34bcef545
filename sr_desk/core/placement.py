"""Laying a second image over the first: where it goes by default, and pasting it there.

Content fusion needs the donor on the base image's pixel grid. The user
places it on the canvas (a box in base pixels); without a placement the
donor covers the selection's bounding box, as dropping a face onto a face
needs.
"""

from __future__ import annotations

import numpy as np

from sr_desk.core.resize import Filter, clip01, resize

__all__ = ["Placement", "cover_box", "place_image"]

#: ``(x, y, width, height)`` in base-image pixels; floats, since a box scaled on screen need not land on whole pixels.
Placement = tuple[float, float, float, float]


def cover_box(content_size: tuple[int, int], target: tuple[int, int, int, int]) -> Placement:
    """The box, aspect kept, that covers ``target`` and shares its centre (the overflow is cropped when pasting)."""
    cw, ch = content_size
    x, y, w, h = target
    if cw < 1 or ch < 1 or w < 1 or h < 1:
        raise ValueError(f"cannot cover a {w}x{h} box with a {cw}x{ch} image")
    factor = max(w / cw, h / ch)
    width, height = cw * factor, ch * factor
    return (x + (w - width) / 2, y + (h - height) / 2, width, height)


def place_image(base: np.ndarray, content: np.ndarray, placement: Placement) -> np.ndarray:
    """A copy of ``base`` with ``content`` resized into ``placement`` (Lanczos), clipped to the image.

    The box is rounded to whole pixels; a placement wholly outside ``base``
    raises ``ValueError``, since the caller would otherwise fuse nothing.
    """
    height, width = base.shape[:2]
    x, y, w, h = placement
    x0, y0 = round(x), round(y)
    pw, ph = max(1, round(x + w) - x0), max(1, round(y + h) - y0)
    left, top = max(0, x0), max(0, y0)
    right, bottom = min(width, x0 + pw), min(height, y0 + ph)
    if right <= left or bottom <= top:
        raise ValueError(f"the placed image ({w:.0f}x{h:.0f} at {x:.0f},{y:.0f}) lies outside the {width}x{height} image")
    scaled = clip01(resize(np.ascontiguousarray(content, dtype=np.float32), (pw, ph), Filter.LANCZOS))
    placed = base.copy()
    placed[top:bottom, left:right] = scaled[top - y0 : bottom - y0, left - x0 : right - x0]
    return placed
