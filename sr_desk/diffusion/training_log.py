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


def plot_log(csv_path: Path, png_path: Path, size: tuple[int, int] = (900, 360)) -> None:
    """One panel per stage: raw loss (light), moving average (dark), log-scaled y axis."""
    rows = read_log(csv_path)
    stages = list(dict.fromkeys(r["stage"] for r in rows))
    width, height = size
    image = Image.new("RGB", (width, height * max(1, len(stages))), "white")
    draw = ImageDraw.Draw(image)
    for panel, stage in enumerate(stages):
        points = [(int(r["step"]), float(r["loss"])) for r in rows if r["stage"] == stage and r["loss"]]
        top = panel * height
        left, right, upper, lower = 60, width - 20, top + 30, top + height - 40
        draw.text((left, top + 8), f"{stage}: training loss (L1) vs step", fill="black")
        if len(points) < 2:
            continue
        steps = [p[0] for p in points]
        losses = [max(p[1], 1e-8) for p in points]
        lo, hi = math.log10(min(losses)), math.log10(max(losses))
        hi = hi if hi > lo else lo + 1e-3
        s0, s1 = min(steps), max(steps)
        s1 = s1 if s1 > s0 else s0 + 1

        def xy(step: float, loss: float) -> tuple[float, float]:
            x = left + (step - s0) / (s1 - s0) * (right - left)
            y = lower - (math.log10(max(loss, 1e-8)) - lo) / (hi - lo) * (lower - upper)
            return x, y

        draw.rectangle((left, upper, right, lower), outline=(160, 160, 160))
        draw.line([xy(s, v) for s, v in zip(steps, losses)], fill=(170, 200, 240), width=1)
        smooth = _smooth(losses, max(1, len(losses) // 25))
        draw.line([xy(s, v) for s, v in zip(steps, smooth)], fill=(20, 70, 160), width=2)
        draw.text((left - 55, upper - 4), f"{10 ** hi:.3g}", fill="black")
        draw.text((left - 55, lower - 8), f"{10 ** lo:.3g}", fill="black")
        draw.text((left, lower + 6), f"{s0}", fill="black")
        draw.text((right - 50, lower + 6), f"{s1}", fill="black")
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    image.save(png_path)
