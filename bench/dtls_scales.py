"""DTLS at x4, x8 and x16 from one model, against bicubic and the no-model reference, on held-out photos.

    python bench/dtls_scales.py --data ../shared/data/train [--crop 256] [--scales 4,8,16] [--markdown]

The same measures as ``bench/quality.py`` (Y-PSNR with a border of the
scale, MATLAB-bicubic degradation quantised to 8 bits, the real engine path),
at each scale: bicubic, bicubic with three back-projection passes (the
no-model reference), and DTLS's fast and official samplers, with seconds per
image and the official sampler's time over the fast one's (same process).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from sr_desk.core.imageio import ImageData
from sr_desk.core.metrics import psnr_y, quantize8
from sr_desk.diffusion.consistency import back_project
from sr_desk.engine.evaluation import Runner, select_images
from sr_desk.training.data import centre_crops, load_photo
from sr_desk.diffusion.imresize import imresize

ROWS = ("bicubic", "bicubic + 3 back-projections (no model)", "dtls (fast)", "dtls (momentum, official loop)")


def run_dtls(runner, lr: np.ndarray, scale: int, sampler: str) -> tuple[np.ndarray, float]:  # type: ignore[no-untyped-def]
    from sr_desk.engine.pipeline import JobSpec, prepare, run_job
    from sr_desk.engine.worker import JobState

    method = runner.host.method("dtls")
    spec = prepare(method, JobSpec(method_id="dtls", scale=scale, params={"sampler": sampler}, seed=0,
                                   weights=runner.weights))
    start = time.perf_counter()
    job = runner.worker.submit(lambda ctx: run_job(ImageData(rgb=lr), method, spec, ctx))
    job.wait()
    if job.state is not JobState.FINISHED:
        raise SystemExit(f"dtls failed: {job.error}")
    return quantize8(job.result.rgb), time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=Path("../shared/data/train"))
    p.add_argument("--crop", type=int, default=256, help="central HR crop (a multiple of 16)")
    p.add_argument("--scales", default="4,8,16")
    p.add_argument("--weights", default=None, help="a DTLS weights file instead of the built-in one")
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args(argv)
    scales = [int(s) for s in args.scales.split(",")]
    photos = [load_photo(path) for path in select_images(args.data)]
    table: dict[tuple[str, int], list[float]] = {}
    seconds: dict[tuple[str, int], list[float]] = {}
    with Runner(weights=args.weights, device="cpu") as runner:
        for scale in scales:
            lr_t, hr_t = centre_crops(photos, args.crop, scale)
            for lr1, hr1 in zip(lr_t, hr_t):
                to_np = lambda t: np.ascontiguousarray(t.permute(1, 2, 0).numpy(), dtype=np.float32)  # noqa: E731
                lr, hr = to_np(lr1), to_np(hr1)
                bicubic = imresize(lr1[None], scale=float(scale))
                outputs = {
                    ROWS[0]: (quantize8(to_np(bicubic[0].clamp(0, 1))), 0.0),
                    ROWS[1]: (quantize8(to_np(back_project(bicubic, lr1[None], scale, 3)[0].clamp(0, 1))), 0.0),
                    ROWS[2]: run_dtls(runner, lr, scale, "fast"),
                    ROWS[3]: run_dtls(runner, lr, scale, "momentum"),
                }
                for row, (out, took) in outputs.items():
                    table.setdefault((row, scale), []).append(psnr_y(out, hr, border=scale))
                    seconds.setdefault((row, scale), []).append(took)
    head = ["method", *(f"x{s} PSNR (dB)" for s in scales), *(f"x{s} s/image" for s in scales)]
    lines = [head]
    for row in ROWS:
        psnr = [f"{np.mean(table[(row, s)]):.2f}" for s in scales]
        took = [f"{np.mean(seconds[(row, s)]):.2f}" if row.startswith("dtls") else "-" for s in scales]
        lines.append([row, *psnr, *took])
    ratio = [np.mean(seconds[(ROWS[3], s)]) / np.mean(seconds[(ROWS[2], s)]) for s in scales]
    print(f"{len(photos)} held-out photos, central {args.crop} px HR crops, torch {torch.__version__}, CPU")
    if args.markdown:
        print("| " + " | ".join(head) + " |")
        print("|---" + "|---:" * (len(head) - 1) + "|")
        for line in lines[1:]:
            print("| " + " | ".join(line) + " |")
    else:
        for line in lines:
            print("  ".join(f"{cell:>12}" for cell in line))
    print("official loop / fast sampler time: " + ", ".join(f"x{s} {r:.1f}x" for s, r in zip(scales, ratio)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
