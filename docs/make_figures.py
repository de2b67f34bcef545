"""Draws docs/images/hero.png for the README: the bundled sample as given and as sr-desk upscales it.

    python docs/make_figures.py [--method lanczos]

Runs the real CLI path (plugins, worker, pipeline), so the picture shows
what a user gets. Until the editor lands, this is the README's picture.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

from sr_desk_resources import SAMPLE_IMAGE

HERE = Path(__file__).resolve().parent
CROP = (16, 120, 112, 184)  # the fence and the hills of the sample, in input pixels
SCALE = 4


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--method", default="lanczos")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "x4.png"
        subprocess.run(
            [sys.executable, "-m", "sr_desk", "upscale", str(SAMPLE_IMAGE), "-o", str(out),
             "--method", args.method, "--scale", str(SCALE), "--seed", "0"],
            check=True,
        )
        result = Image.open(out).convert("RGB")
        result.load()
    source = Image.open(SAMPLE_IMAGE).convert("RGB")
    box = tuple(v * SCALE for v in CROP)
    panels = [
        ("input (pixels enlarged)", source.crop(CROP).resize((box[2] - box[0], box[3] - box[1]), Image.NEAREST)),
        (f"sr-desk x{SCALE}: {args.method}", result.crop(box)),
    ]
    pad, label = 8, 18
    width = sum(p.width for _, p in panels) + pad * (len(panels) + 1)
    height = panels[0][1].height + label + 2 * pad
    figure = Image.new("RGB", (width, height), (32, 33, 36))
    draw = ImageDraw.Draw(figure)
    x = pad
    for text, panel in panels:
        figure.paste(panel, (x, pad + label))
        draw.text((x, pad), text, fill=(230, 230, 230))
        x += panel.width + pad
    target = HERE / "images" / "hero.png"
    figure.save(target, optimize=True)
    print(f"wrote {target} ({figure.width}x{figure.height})")


if __name__ == "__main__":
    main()
