"""The README's content-fusion example, from two freely licensed training photos (no faces).

    python docs/make_fusion_example.py [--data ../shared/data/train] [--out docs/images/fusion-example.png]

The heart of MATE's "YellowFlower" goes into the middle of its "Garden" marigold (both GPL-2+, MATE
backgrounds; see ../shared/data/train/README.md) through the command line, as a user would run it, at
strengths 10, 50 and 90 with one seed; the picture shows base, donor and the three results side by side.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from sr_desk.cli import main as sr_desk

ROOT = Path(__file__).resolve().parents[1]
#: ``(file, centre x, centre y)`` of each crop in the full photo; crops of ``CROP`` pixels shown at ``SIDE``.
BASE = ("mate_Garden.jpg", 1720, 600)
DONOR = ("mate_YellowFlower.jpg", 2255, 1285)
CROP, SIDE = 600, 256
REGION = (68, 68, 120, 120)
STRENGTHS = (10, 50, 90)


def crop(data: Path, spec: tuple[str, int, int]) -> Image.Image:
    name, x, y = spec
    with Image.open(data / name) as photo:
        half = CROP // 2
        return photo.convert("RGB").crop((x - half, y - half, x + half, y + half)).resize((SIDE, SIDE), Image.LANCZOS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "train")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "fusion-example.png")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        base, donor = crop(args.data, BASE), crop(args.data, DONOR)
        base.save(work / "base.png")
        donor.save(work / "donor.png")
        results = []
        for strength in STRENGTHS:
            out = work / f"fused-{strength}.png"
            code = sr_desk(["run", "srdiff-fusion", str(work / "base.png"), "-o", str(out), "--seed", "0",
                            "--region", ",".join(map(str, REGION)), "--feather", "12",
                            "--param", f"donor={work / 'donor.png'}", "--param", f"strength={strength}"])
            if code != 0:
                return code
            with Image.open(out) as image:
                results.append(image.convert("RGB"))
    outlined = base.copy()
    x, y, w, h = REGION
    ImageDraw.Draw(outlined).rectangle((x, y, x + w - 1, y + h - 1), outline="white")
    cells = [("base (selection)", outlined), ("donor", donor)]
    cells += [(f"strength {s}", image) for s, image in zip(STRENGTHS, results)]
    label, pad = 16, 4
    sheet = Image.new("RGB", (pad + len(cells) * (SIDE + pad), label + SIDE + pad), "white")
    draw, font = ImageDraw.Draw(sheet), ImageFont.load_default()
    for i, (title, image) in enumerate(cells):
        left = pad + i * (SIDE + pad)
        draw.text((left, 2), title, fill="black", font=font)
        sheet.paste(image, (left, label))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
