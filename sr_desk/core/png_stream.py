"""A PNG written a band of rows at a time, for results too large to hold whole.

Pillow encodes a PNG from a whole image in its own memory (4 bytes a pixel
for RGB); a 4x of a 24 MP photo is 386 MP, 1.5 GB in Pillow besides the
pixels themselves. This writer takes 8-bit rows as they are finished and
compresses them at once, so the file is the only full-size copy. Each row is
filtered with Paeth (PNG filter 4, the one that suits photographs), computed
with numpy over a band of rows at a time, and deflated with zlib at level 6,
as Pillow does. ICC profile, EXIF and DPI are written as ``iCCP``,
``eXIf`` and ``pHYs`` chunks.
"""

from __future__ import annotations

import struct
import zlib
from typing import BinaryIO

import numpy as np

__all__ = ["PngStreamWriter"]

SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type (gray, gray+alpha, RGB, RGBA)
PAETH = 4
FILTER_ROWS = 64  # rows filtered at a time: the int16 temporaries stay a few MB wide
IDAT_BYTES = 1 << 20  # compressed bytes gathered before an IDAT chunk is written


class PngStreamWriter:
    """Write ``height`` rows of ``width`` 8-bit pixels with ``channels`` channels to ``file``, in order.

    Call :meth:`write_rows` with consecutive bands (``rows x width [x channels]``
    uint8) and :meth:`close` after the last; close checks that every row came.
    """

    def __init__(
        self,
        file: BinaryIO,
        width: int,
        height: int,
        channels: int = 3,
        *,
        icc_profile: bytes | None = None,
        exif: bytes | None = None,
        dpi: tuple[float, float] | None = None,
        level: int = 6,
    ) -> None:
        if channels not in COLOUR_TYPES:
            raise ValueError(f"channels must be 1-4, got {channels}")
        if not (0 < width < 2**31 and 0 < height < 2**31):
            raise ValueError(f"bad PNG size {width}x{height}")
        self._file, self.width, self.height, self.channels = file, width, height, channels
        self._rows_written = 0
        self._previous = np.zeros((width * channels,), np.uint8)  # the row above the first: zeros, as PNG says
        self._deflate = zlib.compressobj(level)
        self._pending: list[bytes] = []
        self._pending_size = 0
        file.write(SIGNATURE)
        self._chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, COLOUR_TYPES[channels], 0, 0, 0))
        if icc_profile:
            self._chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc_profile))
        if dpi is not None and dpi[0] > 0 and dpi[1] > 0:
            per_metre = [round(d / 0.0254) for d in dpi]
            if all(0 < p < 2**31 for p in per_metre):
                self._chunk(b"pHYs", struct.pack(">IIB", per_metre[0], per_metre[1], 1))
        if exif:
            self._chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif)

    def write_rows(self, rows: np.ndarray) -> None:
        """Filter and compress the next ``rows`` (uint8, ``n x width [x channels]``)."""
        rows = np.asarray(rows)
        expected = (self.width, self.channels) if self.channels > 1 else (self.width,)
        if rows.dtype != np.uint8 or rows.shape[1:] != expected:
            raise ValueError(f"expected uint8 rows of shape (n, {', '.join(map(str, expected))}), "
                             f"got {rows.dtype} {rows.shape}")
        if self._rows_written + rows.shape[0] > self.height:
            raise ValueError(f"more than {self.height} rows")
        flat = rows.reshape(rows.shape[0], -1)
        for start in range(0, flat.shape[0], FILTER_ROWS):
            band = flat[start : start + FILTER_ROWS]
            self._push(self._deflate.compress(paeth_filtered(band, self._previous, self.channels).tobytes()))
            self._previous = band[-1].copy()
        self._rows_written += rows.shape[0]

    def close(self) -> None:
        """Finish the stream; raises if fewer rows than the height were written."""
        if self._rows_written != self.height:
            raise ValueError(f"{self._rows_written} of {self.height} rows were written")
        self._push(self._deflate.flush())
        self._flush_idat()
        self._chunk(b"IEND", b"")

    def _push(self, data: bytes) -> None:
        if data:
            self._pending.append(data)
            self._pending_size += len(data)
        if self._pending_size >= IDAT_BYTES:
            self._flush_idat()

    def _flush_idat(self) -> None:
        if self._pending:
            self._chunk(b"IDAT", b"".join(self._pending))
            self._pending, self._pending_size = [], 0

    def _chunk(self, kind: bytes, data: bytes) -> None:
        self._file.write(struct.pack(">I", len(data)) + kind + data)
        self._file.write(struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)) & 0xFFFFFFFF))


def paeth_filtered(rows: np.ndarray, previous: np.ndarray, bpp: int) -> np.ndarray:
    """``rows`` (``n x stride`` uint8) as PNG scanlines with Paeth filtering: a filter byte, then the differences.

    For encoding, the predictor's neighbours (left ``a``, above ``b``, upper
    left ``c``) are all original bytes, so a whole band is filtered at once.
    """
    raw = rows.astype(np.int16)
    above = np.vstack([previous[None].astype(np.int16), raw[:-1]])
    left = np.zeros_like(raw)
    left[:, bpp:] = raw[:, :-bpp]
    upper_left = np.zeros_like(raw)
    upper_left[:, bpp:] = above[:, :-bpp]
    estimate = left + above - upper_left
    pa, pb, pc = np.abs(estimate - left), np.abs(estimate - above), np.abs(estimate - upper_left)
    predictor = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, above, upper_left))
    out = np.empty((rows.shape[0], rows.shape[1] + 1), np.uint8)
    out[:, 0] = PAETH
    out[:, 1:] = (raw - predictor).astype(np.uint8)  # modulo 256, as the format says
    return out
