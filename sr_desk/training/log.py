"""A training log as CSV, and its loss curves drawn to PNG with Pillow (no plotting library needed)."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from pathlib import Path

from PIL import Image, ImageDraw

FIELDS = (
    "stage", "step", "loss", "lr", "grad_norm", "samples_per_s", "train_tflops", "elapsed_s", "val_psnr",
    "val_psnr_bicubic",
)


class TrainingLog:
    """Appends one row per logged step; survives restarts (a resumed run appends to the same file)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and self._header() != list(FIELDS):
            # A log written by an older trainer: keep it beside, start a new one with today's columns.
            self.path.replace(self.path.with_name(self.path.stem + ".old" + self.path.suffix))
        if not self.path.exists():
            with self.path.open("w", newline="") as f:
                csv.writer(f).writerow(FIELDS)

    def _header(self) -> list[str]:
        with self.path.open(newline="") as f:
            return next(csv.reader(f), [])

    def write(self, row: Mapping[str, object]) -> None:
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow([_fmt(row.get(k, "")) for k in FIELDS])


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def read_log(path: Path) -> list[dict[str, str]]:
    with Path(path).open(newline="") as f:
        return list(csv.DictReader(f))


def _smooth(values: list[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def plot_log(csv_path: Path, png_path: Path, size: tuple[int, int] = (900, 300)) -> None:
    """Two panels per stage: the training loss (raw, light; moving average, dark; log-scaled y),
    and the held-out PSNR of the EMA weights (green) against bicubic's (grey), when validated."""
    rows = read_log(csv_path)
    stages = list(dict.fromkeys(r["stage"] for r in rows))
    width, height = size
    panels = [(stage, kind) for stage in stages for kind in ("loss", "val")
              if kind == "loss" or any(_float(r.get("val_psnr", "")) for r in rows if r["stage"] == stage)]
    image = Image.new("RGB", (width, height * max(1, len(panels))), "white")
    draw = ImageDraw.Draw(image)
    for panel, (stage, kind) in enumerate(panels):
        stage_rows = [r for r in rows if r["stage"] == stage]
        top = panel * height
        box = (60, top + 30, width - 20, top + height - 40)
        if kind == "loss":
            points = [(int(r["step"]), v) for r in stage_rows if (v := _float(r["loss"])) is not None]
            _draw_series(draw, box, points, f"{stage}: training loss vs step (log scale)", log_y=True,
                         raw=(170, 200, 240), smooth=(20, 70, 160))
        else:
            points = [(int(r["step"]), v) for r in stage_rows if (v := _float(r.get("val_psnr", ""))) is not None]
            floor = [(int(r["step"]), v) for r in stage_rows
                     if (v := _float(r.get("val_psnr_bicubic", ""))) is not None]
            _draw_series(draw, box, points, f"{stage}: held-out PSNR (dB) of the EMA weights; grey: bicubic",
                         log_y=False, raw=(30, 140, 60), smooth=None, extra=floor)
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    image.save(png_path)


def _draw_series(
    draw: ImageDraw.ImageDraw,
    box: tuple[int, int, int, int],
    points: list[tuple[int, float]],
    title: str,
    *,
    log_y: bool,
    raw: tuple[int, int, int],
    smooth: tuple[int, int, int] | None,
    extra: list[tuple[int, float]] | None = None,
) -> None:
    left, upper, right, lower = box
    draw.text((left, upper - 22), title, fill="black")
    if not points:
        return
    transform = (lambda v: math.log10(max(v, 1e-8))) if log_y else (lambda v: v)
    values = [transform(v) for _, v in points] + [transform(v) for _, v in extra or []]
    lo, hi = min(values), max(values)
    hi = hi if hi > lo else lo + 1e-3
    steps = [p[0] for p in points] + [p[0] for p in extra or []]
    s0, s1 = min(steps), max(steps)
    s1 = s1 if s1 > s0 else s0 + 1

    def xy(step: float, value: float) -> tuple[float, float]:
        return (left + (step - s0) / (s1 - s0) * (right - left),
                lower - (transform(value) - lo) / (hi - lo) * (lower - upper))

    draw.rectangle((left, upper, right, lower), outline=(160, 160, 160))
    if extra and len(extra) > 1:
        draw.line([xy(s, v) for s, v in extra], fill=(150, 150, 150), width=1)
    if len(points) > 1:
        draw.line([xy(s, v) for s, v in points], fill=raw, width=1 if smooth else 2)
    else:
        x, y = xy(*points[0])
        draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=raw)
    if smooth is not None and len(points) > 1:
        averaged = _smooth([v for _, v in points], max(1, len(points) // 25))
        draw.line([xy(s, v) for (s, _), v in zip(points, averaged)], fill=smooth, width=2)
    label = (lambda v: f"{10 ** v:.3g}") if log_y else (lambda v: f"{v:.2f}")
    draw.text((left - 55, upper - 4), label(hi), fill="black")
    draw.text((left - 55, lower - 8), label(lo), fill="black")
    draw.text((left, lower + 6), f"{s0}", fill="black")
    draw.text((right - 50, lower + 6), f"{s1}", fill="black")
