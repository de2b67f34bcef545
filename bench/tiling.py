"""Tiling overhead: tiled vs whole-image bicubic x4, in one process.

    python bench/tiling.py [--size 768] [--tile 256] [--overlap 16]

Prints seconds and peak traced memory (numpy allocations, via tracemalloc)
for the whole-image run (the baseline), the tiled run into RAM and the tiled
run into a memory-mapped output, with their ratios to the baseline, and the
largest difference between tiled and whole results.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from sr_desk.core.resize import Filter, resize, scaled_size
from sr_desk.core.tiling import tiled_upscale

SCALE = 4


def measure(fn):
    tracemalloc.start()
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return result, seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=768)
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--overlap", type=int, default=16)
    args = parser.parse_args()
    image = np.random.default_rng(0).random((args.size, args.size, 3), dtype=np.float32)
    out_size = scaled_size((args.size, args.size), SCALE)

    def bicubic(crop):
        return resize(crop, scaled_size((crop.shape[1], crop.shape[0]), SCALE), Filter.BICUBIC)

    whole, t_whole, m_whole = measure(lambda: resize(image, out_size, Filter.BICUBIC))
    tiled, t_tiled, m_tiled = measure(
        lambda: tiled_upscale(image, SCALE, bicubic, tile=args.tile, overlap=args.overlap)
    )
    with tempfile.TemporaryDirectory() as tmp:
        target = np.lib.format.open_memmap(
            Path(tmp) / "out.npy", mode="w+", dtype=np.float32, shape=(out_size[1], out_size[0], 3)
        )
        mapped, t_mapped, m_mapped = measure(
            lambda out=target: tiled_upscale(image, SCALE, bicubic, tile=args.tile, overlap=args.overlap, out=out)
        )
        diff_mapped = float(np.abs(np.asarray(mapped) - whole).max())
        del mapped, target
    diff = float(np.abs(tiled - whole).max())
    print(f"bicubic x{SCALE}, {args.size}x{args.size} -> {out_size[0]}x{out_size[1]}, "
          f"tile {args.tile}, overlap {args.overlap}")
    print(f"{'run':<22}{'seconds':>9}{'ratio':>8}{'peak MB':>10}{'ratio':>8}{'max |diff|':>12}")
    for name, t, m, d in (
        ("whole image (base)", t_whole, m_whole, 0.0),
        ("tiled, in RAM", t_tiled, m_tiled, diff),
        ("tiled, memory-mapped", t_mapped, m_mapped, diff_mapped),
    ):
        print(f"{name:<22}{t:9.2f}{t / t_whole:8.2f}{m / 2**20:10.0f}{m / m_whole:8.2f}{d:12.1e}")


if __name__ == "__main__":
    main()
