"""Calibrating the injection table of a Diff-SR prior on held-out photos (spec 2.6), written into its file.

    python -m sr_desk_plugins.diffsr.calibrate resources/weights/diffsr-prior.safetensors --data ../shared/data/train

For each scale of a grid and each noise level of a grid, the held-out crops
are shrunk by that scale (MATLAB bicubic, 8-bit), restored with Algorithm R
exactly as the method runs it (default steps, sampler and consistency, two
seeds), and scored with Y-PSNR against the originals. The table keeps, per
scale, the level with the smallest recovery error and its gain over no
injection (level 0): the paper's Perceptual Recoverable Field rule with the
true error measured directly, which spec 2.6 calls the reliable route (the
paper's weighted bound needs thresholds it never gives). A scale whose best
gain is not positive has no recoverable field. The crops are taken off
centre, so they are not the pixels ``bench/quality.py`` scores.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from sr_desk.diffusion.data import list_images, load_photo, split_holdout
from sr_desk.diffusion.imresize import imresize
from sr_desk.diffusion.noise import SeededNoise
from sr_desk.diffusion.schedule import from_scheduler_config
from sr_desk.diffusion.weights_file import read_weights_file
from sr_desk.training.metrics import psnr_y
from sr_desk_plugins.diffsr.checkpoints import load_model, save_safetensors
from sr_desk_plugins.diffsr.injection import InjectionTable
from sr_desk_plugins.diffsr.process import DEFAULT_STEPS, restore

SCALES = (1.5, 2.0, 2.5, 3.0, 4.0, 6.0, 8.0)
LEVELS = (0.0, 0.02, 0.05, 0.08, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6)
CROP = 192
SEEDS = (0, 1)


def calibration_crops(data: Path, crop: int = CROP) -> torch.Tensor:
    """One ``crop`` px HR crop per held-out photo, centred on its upper-left quarter (not the bench's centre crop)."""
    _, held_out = split_holdout(list_images(data))
    if not held_out:
        raise SystemExit(f"no held-out photos in {data}")
    crops = []
    for path in held_out:
        photo = torch.from_numpy(load_photo(path)).permute(2, 0, 1).float() / 255
        h, w = photo.shape[-2:]
        if min(h, w) < 2 * crop:
            continue
        y, x = max(0, h // 4 - crop // 2), max(0, w // 4 - crop // 2)
        crops.append(photo[:, y : y + crop, x : x + crop])
    return torch.stack(crops)


def shrink(hr: torch.Tensor, scale: float) -> torch.Tensor:
    """The LR image of ``hr`` at ``scale`` (MATLAB bicubic, quantised to 8 bits as a saved file would be)."""
    size = (round(hr.shape[-2] / scale), round(hr.shape[-1] / scale))
    return torch.round(imresize(hr, size=size).clamp(0, 1) * 255) / 255


def sweep(predict_noise, schedule, hr: torch.Tensor, multiple: int, scales: Sequence[float] = SCALES,
          levels: Sequence[float] = LEVELS, steps: int = DEFAULT_STEPS) -> dict[float, list[float]]:
    """Mean Y-PSNR (over crops and seeds) of Algorithm R for every scale and level."""
    results: dict[float, list[float]] = {}
    for scale in scales:
        lr = shrink(hr, scale)
        row = []
        for level in levels:
            scores = [psnr_y(restore(predict_noise, lr, tuple(hr.shape[-2:]), schedule, level=level, steps=steps,
                                     generator=SeededNoise(seed), multiple=multiple).clamp(0, 1), hr)
                      for seed in SEEDS]
            row.append(sum(scores) / len(scores))
        results[scale] = row
        best = max(range(len(levels)), key=row.__getitem__)
        print(f"x{scale:g}: " + " ".join(f"{lv:g}:{p:.2f}" for lv, p in zip(levels, row, strict=True))
              + f"  -> {levels[best]:g} (+{row[best] - row[0]:.2f} dB)", file=sys.stderr, flush=True)
    return results


def table_from(results: dict[float, list[float]], levels: Sequence[float] = LEVELS) -> InjectionTable:
    """Per scale, the level of the highest PSNR, and its gain over level 0."""
    scales, best_levels, gains = [], [], []
    for scale, row in sorted(results.items()):
        best = max(range(len(levels)), key=row.__getitem__)
        scales.append(scale)
        best_levels.append(levels[best])
        gains.append(round(row[best] - row[0], 3))
    return InjectionTable(tuple(scales), tuple(best_levels), tuple(gains))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sr_desk_plugins.diffsr.calibrate", description=__doc__.split("\n\n")[0])
    p.add_argument("weights", type=Path, help="a Diff-SR prior (safetensors); its table is replaced in place")
    p.add_argument("--data", type=Path, required=True, help="the training folder (its 10%% hold-out is used)")
    p.add_argument("--report", type=Path, help="also write the whole sweep here as JSON")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    network, config, _ = load_model(args.weights)
    schedule = from_scheduler_config(config.scheduler_config())
    hr = calibration_crops(args.data)
    print(f"{hr.shape[0]} held-out crops of {CROP} px, {len(SEEDS)} seeds", file=sys.stderr)
    results = sweep(lambda x, i: network(x, i).float(), schedule, hr, config.size_multiple)
    table = table_from(results)
    file = read_weights_file(args.weights)
    metadata = {k: v for k, v in file.metadata.items() if k not in ("architecture", "config")}
    dtype = next(iter(file.content.values())).dtype  # keep the file's precision (float16 when shipped)
    save_safetensors(network, config, args.weights, table=table, metadata=metadata, dtype=dtype)
    if args.report:
        args.report.write_text(json.dumps({"levels": list(LEVELS), "psnr": {str(k): v for k, v in results.items()},
                                           "table": json.loads(table.to_json())}, indent=1))
    print(f"wrote the table into {args.weights}: {table.to_json()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
