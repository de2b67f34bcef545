"""The batch on one machine against the batch on a local Ray cluster: images per second, and the start-up cost.

    python bench/cluster_batch.py --data ../shared/data/train [--images 24] [--side 128] [--methods bicubic,srdiff-encoder]

Both run the command a user runs (``sr-desk upscale DIR -o OUT``, then with ``--cluster local``) in a
subprocess, on the same folder of crops of the photos, one after the other on this machine. The wall time
of each is split into its start (until the first output exists: Python, plugins, for the cluster also Ray's
start, the actors and their models) and the rest, whose images per second is the throughput. The ratio is
the cluster's throughput over the local one's, measured in the same process.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from sr_desk.training.data import list_images


def make_inputs(data: Path, folder: Path, count: int, side: int) -> None:
    """``count`` crops of ``side`` pixels, from the photos' centres and corners, as PNG."""
    folder.mkdir(parents=True)
    photos = list_images(data)
    if not photos:
        raise SystemExit(f"bench/cluster_batch.py: no photos in {data}")
    for i in range(count):
        with Image.open(photos[i % len(photos)]) as photo:
            rgb = photo.convert("RGB")
            rgb.thumbnail((side * 4, side * 4))
            x = (i // len(photos)) * side % max(1, rgb.width - side)
            rgb.crop((x, 0, x + side, side)).save(folder / f"crop{i:03d}.png")


def timed_batch(command: Sequence[str], out: Path, count: int) -> tuple[float, float]:
    """``(start-up seconds, images per second after it)`` of one batch command writing ``count`` images."""
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    first = None
    while process.poll() is None:
        if first is None and out.is_dir() and any(out.glob("*.png")):
            first = time.monotonic() - started
        time.sleep(0.05)
    total = time.monotonic() - started
    if process.returncode != 0:
        raise SystemExit(f"bench/cluster_batch.py: {shlex.join(command)} failed:\n{process.stderr.read()}")
    first = total if first is None else first
    return first, (count - 1) / max(total - first, 1e-6)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="folder of photos to crop the inputs from")
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--side", type=int, default=128, help="side of each input crop in pixels")
    parser.add_argument("--methods", default="bicubic,srdiff-encoder")
    args = parser.parse_args(argv)
    print("command: python bench/cluster_batch.py " + shlex.join(argv))
    print(f"inputs: {args.images} crops of {args.side}x{args.side} px from {args.data}; outputs x4 PNG; "
          "local: one process, one image at a time; cluster: --cluster local (a Ray instance started by the run, "
          "its default pool: one worker per two CPUs)")
    rows = ["| method | batch | start (s) | images/s after the start | throughput vs local |", "|---|---|---:|---:|---:|"]
    with tempfile.TemporaryDirectory() as folder:
        inputs = Path(folder) / "in"
        make_inputs(args.data, inputs, args.images, args.side)
        for method in args.methods.split(","):
            base = [sys.executable, "-m", "sr_desk", "upscale", str(inputs), "-m", method, "--seed", "0"]
            local_out, cluster_out = Path(folder) / f"{method}-local", Path(folder) / f"{method}-cluster"
            local = timed_batch([*base, "-o", str(local_out)], local_out, args.images)
            cluster = timed_batch([*base, "-o", str(cluster_out), "--cluster", "local"], cluster_out, args.images)
            rows.append(f"| `{method}` | local | {local[0]:.1f} | {local[1]:.2f} | 1.00 |")
            rows.append(f"| `{method}` | `--cluster local` | {cluster[0]:.1f} | {cluster[1]:.2f} | "
                        f"{cluster[1] / local[1]:.2f} |")
            print(f"{method}: local start {local[0]:.1f} s, {local[1]:.2f} images/s; cluster start {cluster[0]:.1f} s, "
                  f"{cluster[1]:.2f} images/s", file=sys.stderr, flush=True)
    print("\n" + "\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
