"""The results of :mod:`sr_desk.engine.evaluation` shown: a plain or Markdown table, and a PNG grid of crops.

Which methods get a column in the grid, and under what title, is the
caller's choice (``columns``): this module only lays the cells out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sr_desk.core.imageio import to_uint8
from sr_desk.engine.evaluation import DEFAULT_SCALE, Pair, RowResult

__all__ = ["COLUMNS", "GRID_CROP", "GRID_ROWS", "centre_box", "format_table", "table_rows", "write_grid"]

COLUMNS = ("method", "PSNR (dB)", "SSIM", "LR-PSNR (dB)", "detail", "sigma", "s/image", "images")
#: The grid shows at most this many photos, each as a central crop of this many HR pixels a side.
GRID_ROWS = 3
GRID_CROP = 128


def _number(value: float, digits: int) -> str:
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"


def table_rows(rows: Sequence[RowResult]) -> list[list[str]]:
    """The cells of each row, in the order of :data:`COLUMNS`; a failed row says so in its PSNR cell."""
    out = []
    for row in rows:
        if row.error:
            out.append([row.label, "failed", "", "", "", "", "", "0"])
            continue
        out.append([
            row.label,
            _number(row.mean("psnr"), 2),
            _number(row.mean("ssim"), 4),
            _number(row.mean("lr_psnr"), 2),
            _number(row.mean("detail"), 2),
            _number(row.mean("sigma"), 2),
            _number(row.mean("seconds"), 3),
            str(row.count),
        ])
    return out


def format_table(rows: Sequence[RowResult], markdown: bool = False) -> str:
    """The results as an aligned plain-text table, or as a Markdown table for the README."""
    cells = table_rows(rows)
    if markdown:
        header = ["method", "PSNR (dB)", "SSIM", "LR-PSNR (dB)", "detail", "σ", "s/image", "images"]
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
        lines += ["| " + " | ".join([f"`{r[0]}`", *r[1:]]) + " |" for r in cells]
        return "\n".join(lines)
    widths = [max(len(line[i]) for line in [list(COLUMNS), *cells]) for i in range(len(COLUMNS))]

    def line(values: Sequence[str]) -> str:
        first = values[0].ljust(widths[0])
        rest = [v.rjust(w) for v, w in zip(values[1:], widths[1:])]
        return "  ".join([first, *rest]).rstrip()

    return "\n".join([line(COLUMNS), "  ".join("-" * w for w in widths), *(line(r) for r in cells)])


def centre_box(height: int, width: int, size: int = GRID_CROP, scale: int = DEFAULT_SCALE) -> tuple[int, int, int, int]:
    """``(y, x, h, w)`` of a central HR crop aligned to the LR grid."""
    h, w = min(size, height), min(size, width)
    h, w = h - h % scale, w - w % scale
    y = ((height - h) // 2) // scale * scale
    x = ((width - w) // 2) // scale * scale
    return y, x, h, w


def write_grid(
    path: Path,
    pairs: Sequence[Pair],
    kept: dict[str, list[np.ndarray]],
    columns: Sequence[tuple[str, str]],
    crop: int = GRID_CROP,
    scale: int = DEFAULT_SCALE,
) -> None:
    """A PNG: one row per photo (at most :data:`GRID_ROWS`), columns LR (nearest), methods, ground truth; labelled.

    ``columns``: ``(title, row label)`` of each method column; ``kept[label]``
    holds that row's outputs of the first photos (``evaluate(..., keep=)``).
    """
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    titles = [f"LR (nearest x{scale})", *(title for title, _ in columns), "ground truth"]
    shown = list(pairs[:GRID_ROWS])
    boxes = [centre_box(hr.shape[0], hr.shape[1], crop, scale) for _, hr, _ in shown]
    cell_h = max(b[2] for b in boxes)
    cell_w = max(max(b[3] for b in boxes), 120)
    label_h, pad = 16, 4
    width = pad + len(titles) * (cell_w + pad)
    height = label_h + len(shown) * (label_h + cell_h + pad) + pad
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    for c, title in enumerate(titles):
        draw.text((pad + c * (cell_w + pad), 2), title, fill="black", font=font)

    def u8(image: np.ndarray) -> Image.Image:
        return Image.fromarray(to_uint8(image))

    for r, ((name, hr, lr), (y, x, h, w)) in enumerate(zip(shown, boxes)):
        top = label_h + r * (label_h + cell_h + pad)
        draw.text((pad, top + 2), f"{name} (centre {w}x{h} HR px)", fill="black", font=font)
        lr_crop = u8(lr[y // scale : (y + h) // scale, x // scale : (x + w) // scale])
        cells = [lr_crop.resize((w, h), Image.Resampling.NEAREST)]
        cells += [u8(kept[label][r][y : y + h, x : x + w]) for _, label in columns]
        cells.append(u8(hr[y : y + h, x : x + w]))
        for c, cell in enumerate(cells):
            canvas.paste(cell, (pad + c * (cell_w + pad), top + label_h))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
