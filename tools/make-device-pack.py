#!/usr/bin/env python3
"""Pack the training photos for a lent GPU, small enough to travel beside the shipped weights.

The device tool sends at most 64 MiB: the working tree (about 44 MiB, most of it
the shipped weights) and the carried pack together. ``../shared/tools/make-train-pack``
writes every photo as JPEG quality 95 (26 MiB: too much beside the weights); this
one keeps quality 95 for the held-out photos, so the validation crops barely
change, and uses quality 90 for the training photos (17.5 MiB in all). The file
names stay those of the source folder, so the hold-out by name is the same.

Usage, from the repository root (``.trainpack/`` is in ``.git/info/exclude``):
    python tools/make-device-pack.py .trainpack [--src ../shared/data/train]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sr_desk.training.data import list_images, split_holdout  # noqa: E402
from sr_desk.training.export import SOURCE_NOTE  # noqa: E402

MAX_SIDE = 1536  # what load_photo shrinks to: CPU and GPU runs see the same pictures


def source_name(src: Path) -> str:
    """``../shared/data/train`` for the default source, as the model cards name it; else the path given."""
    parts = src.resolve().parts
    return "../shared/data/train" if parts[-3:] == ("shared", "data", "train") else str(src)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--src", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "train")
    args = p.parse_args()
    paths = list_images(args.src)
    if not paths:
        print(f"no photos in {args.src}", file=sys.stderr)
        return 1
    held_out = set(split_holdout(paths)[1])
    args.out.mkdir(parents=True, exist_ok=True)
    total = 0
    for path in paths:
        with Image.open(path) as im:
            im = im.convert("RGB")
            shrink = min(1.0, MAX_SIDE / max(im.size))
            if shrink < 1.0:
                im = im.resize((round(im.width * shrink), round(im.height * shrink)), Image.LANCZOS)
            target = args.out / path.name  # the same name: the same side of the hold-out
            im.save(target, "JPEG", quality=95 if path in held_out else 90)
            total += target.stat().st_size
    (args.out / SOURCE_NOTE).write_text(
        f"the photos of {source_name(args.src)} as JPEG (quality 95 held out, 90 trained on), at most {MAX_SIDE} px\n",
        encoding="utf-8")
    print(f"{len(paths)} photos ({len(held_out)} held out), {total / 2**20:.1f} MiB in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
