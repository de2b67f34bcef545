"""numpy <-> QImage, without per-pixel Python loops.

The editor keeps pixels as float32 arrays (``ImageData.rgb`` in [0, 1]);
Qt paints ``QImage``. :func:`rgb_to_qimage` writes straight into a QImage
that Qt allocated, so the result owns its memory and no numpy buffer has to
be kept alive behind Qt's back. It produces ``Format_RGB32`` (opaque) or
``Format_ARGB32_Premultiplied`` (with alpha): the two formats the raster
paint engine draws without converting on every paint.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from PySide6.QtGui import QImage

__all__ = ["qimage_to_arrays", "qimage_to_rgb", "rgb_to_qimage"]


_CHUNK_ROWS = 256  # float temporaries stay small for a 100 MP image


def _as_uint8(values: npt.NDArray[np.generic]) -> npt.NDArray[np.uint8]:
    """Float [0, 1] -> uint8 with rounding; out-of-range values clip, NaN -> 0."""
    if values.dtype == np.uint8:
        return values  # type: ignore[return-value]
    out = np.empty(values.shape, dtype=np.uint8)
    for start in range(0, values.shape[0], _CHUNK_ROWS):
        part = np.multiply(values[start : start + _CHUNK_ROWS], np.float32(255), dtype=np.float32)
        part += np.float32(0.5)
        np.fmax(part, np.float32(0), out=part)  # fmax/fmin turn NaN into the bound
        np.fmin(part, np.float32(255), out=part)
        out[start : start + _CHUNK_ROWS] = part
    return out


def _pixel_view(image: QImage) -> npt.NDArray[np.uint8]:
    """The QImage's 32-bit pixels as a writable (H, W, 4) uint8 view (B, G, R, A in memory on little endian)."""
    height, width, stride = image.height(), image.width(), image.bytesPerLine()
    buffer = np.frombuffer(image.bits(), dtype=np.uint8, count=stride * height)  # type: ignore[call-overload]
    return buffer.reshape(height, stride)[:, : width * 4].reshape(height, width, 4)


def rgb_to_qimage(
    rgb: npt.NDArray[np.generic],
    alpha: npt.NDArray[np.generic] | None = None,
    *,
    premultiplied: bool = True,
) -> QImage:
    """An ``(H, W, 3)`` float [0, 1] or uint8 array (and optional ``(H, W)`` alpha) as a QImage.

    Without alpha the result is ``Format_RGB32``; with alpha it is
    ``Format_ARGB32_Premultiplied`` (or ``Format_ARGB32`` when
    ``premultiplied`` is False, which keeps the colour of fully transparent
    pixels). The QImage owns its pixels.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4):
        raise ValueError(f"expected an (H, W, 3) array, got shape {rgb.shape}")
    if rgb.shape[2] == 4 and alpha is None:
        alpha = rgb[:, :, 3]
    rgb = rgb[:, :, :3]
    height, width = rgb.shape[:2]
    if height < 1 or width < 1:
        raise ValueError(f"cannot make an image of {width}x{height} pixels")
    if alpha is not None and np.shape(alpha) != (height, width):
        raise ValueError(f"alpha shape {np.shape(alpha)} does not match rgb {rgb.shape[:2]}")

    if alpha is None:
        fmt = QImage.Format.Format_RGB32
    elif premultiplied:
        fmt = QImage.Format.Format_ARGB32_Premultiplied
    else:
        fmt = QImage.Format.Format_ARGB32
    image = QImage(width, height, fmt)
    if image.isNull():
        raise MemoryError(f"not enough memory for a {width}x{height} display image")
    view = _pixel_view(image)
    little = np.little_endian
    order = (2, 1, 0) if little else (1, 2, 3)  # channel index of R, G, B in memory
    a_index = 3 if little else 0
    colour = _as_uint8(rgb)
    if alpha is None:
        for channel, index in enumerate(order):
            view[:, :, index] = colour[:, :, channel]
        view[:, :, a_index] = 255
        return image
    a8 = _as_uint8(np.asarray(alpha))
    if premultiplied:
        # Premultiply in uint16 with rounding: c * a / 255.
        a16 = a8.astype(np.uint16)
        for channel, index in enumerate(order):
            product = colour[:, :, channel].astype(np.uint16) * a16 + 127
            view[:, :, index] = ((product + (product >> 8)) >> 8).astype(np.uint8)
    else:
        for channel, index in enumerate(order):
            view[:, :, index] = colour[:, :, channel]
    view[:, :, a_index] = a8
    return image


def qimage_to_arrays(image: QImage) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32] | None]:
    """A QImage as float32 ``(H, W, 3)`` RGB in [0, 1] and ``(H, W)`` alpha (None if the image has none)."""
    if image.isNull():
        raise ValueError("the image is empty")
    has_alpha = image.hasAlphaChannel()
    target = QImage.Format.Format_ARGB32 if has_alpha else QImage.Format.Format_RGB32
    if image.format() != target:
        image = image.convertToFormat(target)
    height, width, stride = image.height(), image.width(), image.bytesPerLine()
    buffer = np.frombuffer(image.constBits(), dtype=np.uint8, count=stride * height)  # type: ignore[call-overload]
    pixels = buffer.reshape(height, stride)[:, : width * 4].reshape(height, width, 4)
    order = [2, 1, 0] if np.little_endian else [1, 2, 3]
    scale = np.float32(1 / 255)
    rgb = pixels[:, :, order].astype(np.float32) * scale
    alpha = None
    if has_alpha:
        alpha = pixels[:, :, 3 if np.little_endian else 0].astype(np.float32) * scale
    return rgb, alpha


def qimage_to_rgb(image: QImage) -> npt.NDArray[np.float32]:
    """A QImage's colour as float32 ``(H, W, 3)`` in [0, 1] (alpha dropped, not composited)."""
    return qimage_to_arrays(image)[0]
