"""The Detail sweep of ``bench/quality.py --sweep detail``: rows, the perception-distortion chart and crops.

Every method that declares the shared Detail control (``sr_desk.api.DETAIL``)
runs at Detail 0, 0.25, 0.5, 0.75 and 1; the references (bicubic, the
no-model reference, the encoder, and the methods without Detail) run once.
The chart puts PSNR (distortion: higher is more faithful) against the detail
ratio (how much of the ground truth's fine structure a result has: 1 is the
photo's), one line per method from Detail 0 to 1; the ground truth is the
vertical line at 1. The crops show one textured photo at Detail 0, 0.5 and 1.

This module only shapes results; ``bench/quality.py`` runs them through the
engine, as for its other tables.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sr_desk.api import DETAIL

#: The Detail values of the sweep, and those of the crops.
LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)
CROP_LEVELS = (0.0, 0.5, 1.0)
#: Rows run once as landmarks on the chart (methods without Detail and the references).
REFERENCES = ("bicubic", "bench-bicubic-bp", "srdiff-encoder", "dtls")
#: The chart's colours, one per swept method, in order; references are grey marks.
COLOURS = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (140, 86, 75))


def detail_methods(methods: Sequence[Any]) -> list[str]:
    """The ids of the upscale methods whose first parameter is the shared Detail control."""
    return [m.id for m in methods if m.param_set.get(DETAIL) is not None]


def default_details(methods: Sequence[Any]) -> dict[str, float]:
    """Each Detail method's declared default."""
    return {m.id: float(m.param_set.get(DETAIL).default) for m in methods if m.param_set.get(DETAIL) is not None}


def sweep_specs(
    method_ids: Sequence[str], spec_of: Callable[[str], Any], defaults: dict[str, float] | None = None
) -> list[Any]:
    """The references, then every method at every level and at its default (``spec_of("srdiff:detail=0.25")``
    makes one row)."""
    defaults = defaults or {}
    rows = [spec_of(ref) for ref in REFERENCES]
    for method_id in method_ids:
        default = {defaults[method_id]} if method_id in defaults else set()
        rows += [spec_of(f"{method_id}:{DETAIL}={level:g}") for level in sorted({*LEVELS, *default})]
    return rows


def level_of(spec: Any) -> float | None:
    """The Detail a row's method spec asks for (``dossr:detail=0.5`` gives 0.5), None for a reference row."""
    value = spec.param_dict.get(DETAIL)
    return None if value is None else float(value)


def curves(rows: Sequence[Any]) -> dict[str, list[tuple[float, float, float]]]:
    """Each swept method's ``(Detail, PSNR, detail ratio)`` points in rising Detail, failed rows left out."""
    points: dict[str, list[tuple[float, float, float]]] = {}
    for row in rows:
        level = level_of(row.spec)
        if level is not None:
            points.setdefault(row.spec.method_id, [])
            if not row.error:
                points[row.spec.method_id].append((level, row.mean("psnr"), row.mean("detail")))
    return {method_id: sorted(curve) for method_id, curve in points.items()}


def most_textured(pairs: Sequence[tuple[str, np.ndarray, np.ndarray]], count: int) -> list[int]:
    """Indexes of the ``count`` photos with the most fine structure (mean gradient magnitude of Y), most first."""
    from sr_desk.core.metrics import gradient_magnitude, rgb_to_y

    scores = [gradient_magnitude(rgb_to_y(hr)) for _, hr, _ in pairs]
    return sorted(range(len(pairs)), key=lambda i: -scores[i])[:count]


def summary_lines(rows: Sequence[Any]) -> list[str]:
    """Per swept method: the most detail it reaches with PSNR above bicubic's, and where."""
    bicubic = next((r.mean("psnr") for r in rows if r.label == "bicubic" and not r.error), None)
    lines = []
    for method_id, points in curves(rows).items():
        above = [p for p in points if bicubic is None or p[1] > bicubic]
        if not above:
            lines.append(f"{method_id}: no Detail keeps PSNR above bicubic")
            continue
        level, psnr, detail = max(above, key=lambda p: p[2])
        lines.append(f"{method_id}: detail ratio {detail:.2f} at Detail {level:g} ({psnr:.2f} dB), "
                     f"the most with PSNR above bicubic")
    return lines


# -- the chart -------------------------------------------------------------------


def write_chart(path: Path, rows: Sequence[Any], size: tuple[int, int] = (760, 480)) -> None:
    """The perception-distortion chart as a PNG: PSNR (y) against detail ratio (x)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    good = [r for r in rows if not r.error]
    swept = {method_id: points for method_id, points in curves(rows).items() if points}
    references = [r for r in good if level_of(r.spec) is None]
    xs = [r.mean("detail") for r in good] + [1.0]
    ys = [r.mean("psnr") for r in good]
    x0, x1 = _padded_range(xs, 0.05)
    y0, y1 = _padded_range(ys, 0.3)
    width, height = size
    left, top, right, bottom = 60, 30, width - 190, height - 45
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)

    def at(x: float, y: float) -> tuple[float, float]:
        return (left + (x - x0) / (x1 - x0) * (right - left), bottom - (y - y0) / (y1 - y0) * (bottom - top))

    draw.text((left, 8), "Perception-distortion: held-out PSNR (dB) against detail ratio", fill="black", font=font)
    draw.rectangle((left, top, right, bottom), outline=(150, 150, 150))
    for tick in _ticks(x0, x1, 0.1):
        x, _ = at(tick, y0)
        draw.line((x, bottom, x, bottom + 4), fill="black")
        draw.text((x - 10, bottom + 7), f"{tick:.1f}", fill="black", font=font)
    for tick in _ticks(y0, y1, 0.5):
        _, y = at(x0, tick)
        draw.line((left - 4, y, left, y), fill="black")
        draw.text((left - 40, y - 6), f"{tick:.1f}", fill="black", font=font)
    draw.text(((left + right) / 2 - 110, height - 20), "detail ratio (ground truth = 1)", fill="black", font=font)
    truth, _ = at(1.0, y0)
    draw.line((truth, top, truth, bottom), fill=(120, 120, 120), width=1)
    draw.text((truth - 68, top + 3), "ground truth", fill=(90, 90, 90), font=font)
    bicubic = next((r for r in references if r.label == "bicubic"), None)
    if bicubic is not None:  # above this line a result is more faithful than plain bicubic
        _, level = at(x0, bicubic.mean("psnr"))
        for x in range(left, right, 8):
            draw.line((x, level, min(x + 4, right), level), fill=(150, 150, 150))
    legend_y = top
    for row in references:
        x, y = at(row.mean("detail"), row.mean("psnr"))
        draw.rectangle((x - 3, y - 3, x + 3, y + 3), fill=(110, 110, 110))
        draw.text((x + 5, y - 12), row.label.replace("bench-bicubic-bp", "no-model ref."), fill=(70, 70, 70), font=font)
    for index, (method_id, points) in enumerate(swept.items()):
        colour = COLOURS[index % len(COLOURS)]
        line = [at(detail, psnr) for _, psnr, detail in points]
        if len(line) > 1:
            draw.line(line, fill=colour, width=2)
        for (level, _, _), (x, y) in zip(points, line):
            draw.ellipse((x - 4, y - 4, x + 4, y + 4), fill=colour)
            if level in (0.0, 1.0):
                draw.text((x + 5, y + 2), f"{level:g}", fill=colour, font=font)
        draw.line((right + 15, legend_y + 7, right + 35, legend_y + 7), fill=colour, width=3)
        draw.text((right + 40, legend_y), f"{method_id}, Detail 0 to 1", fill="black", font=font)
        legend_y += 18
    draw.rectangle((right + 22, legend_y + 4, right + 28, legend_y + 10), fill=(110, 110, 110))
    draw.text((right + 40, legend_y), "one setting only", fill="black", font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def _padded_range(values: Sequence[float], pad: float) -> tuple[float, float]:
    finite = [v for v in values if np.isfinite(v)]
    lo, hi = min(finite), max(finite)
    return lo - pad, hi + pad


def _ticks(lo: float, hi: float, step: float) -> list[float]:
    first = np.ceil(lo / step) * step
    return [round(float(t), 6) for t in np.arange(first, hi + 1e-9, step)]


# -- the crops -------------------------------------------------------------------


def write_crops(
    path: Path,
    pairs: Sequence[tuple[str, np.ndarray, np.ndarray]],
    kept: dict[str, list[np.ndarray]],
    method_ids: Sequence[str],
    crop: int = 128,
) -> None:
    """A PNG per photo block: one row per method, columns bicubic, Detail 0, 0.5, 1, ground truth (centre crops)."""
    from PIL import Image, ImageDraw, ImageFont

    from sr_desk.core.imageio import to_uint8

    font = ImageFont.load_default()
    titles = ["bicubic", *(f"Detail {level:g}" for level in CROP_LEVELS), "ground truth"]
    pad, label_h = 4, 16
    blocks = [(name, hr) for name, hr, _ in pairs[: min(len(pairs), *(len(v) for v in kept.values()))]]
    cell = min(crop, *(min(hr.shape[:2]) for _, hr in blocks))
    height = sum(label_h + len(method_ids) * (cell + label_h + pad) for _ in blocks) + label_h + pad
    width = pad + len(titles) * (cell + pad) + 90
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    for c, title in enumerate(titles):
        draw.text((90 + pad + c * (cell + pad), 2), title, fill="black", font=font)
    top = label_h
    for index, (name, hr) in enumerate(blocks):
        y, x = (hr.shape[0] - cell) // 2, (hr.shape[1] - cell) // 2
        draw.text((pad, top + 2), name, fill="black", font=font)
        top += label_h
        for method_id in method_ids:
            images = [kept["bicubic"][index]]
            images += [kept[f"{method_id}:{DETAIL}={level:g}"][index] for level in CROP_LEVELS]
            images.append(hr)
            draw.text((pad, top + 2), method_id, fill="black", font=font)
            for c, picture in enumerate(images):
                tile = to_uint8(picture[y : y + cell, x : x + cell])
                canvas.paste(Image.fromarray(tile), (90 + pad + c * (cell + pad), top))
            top += cell + pad
        top += label_h // 2
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.crop((0, 0, width, top + pad)).save(path)
