"""Calibrating the injection table of a Diff-SR prior on held-out photos (spec 2.6), written into its file.

    python -m sr_desk_plugins.diffsr.calibrate resources/weights/diffsr-prior.safetensors --data ../shared/data/train

For each scale of a grid and each noise level of a grid, the held-out crops
are shrunk by that scale (MATLAB bicubic, 8-bit), restored with Algorithm R
exactly as the method runs it (default steps, sampler and consistency, two
seeds) and measured against the originals: Y-PSNR (fidelity) and the ratio
of fine structure (``detail``: 1 is as much as the photo has). The level per
scale is the paper's Perceptual Recoverable Field rule on those measured
curves (:func:`prf_index`): spec 2.6 calls the measured route the reliable
one, as the paper's bound needs thresholds it never gives. The crops are
taken off centre, so they are not the pixels ``bench/quality.py`` scores.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sr_desk.training.data import list_images, load_photo, split_holdout
from sr_desk.diffusion.imresize import imresize
from sr_desk.diffusion.noise import SeededNoise
from sr_desk.diffusion.schedule import from_scheduler_config
from sr_desk.diffusion.weights_file import read_weights_file
from sr_desk.training.metrics import luma, psnr_y
from sr_desk_plugins.diffsr.checkpoints import load_model, save_safetensors
from sr_desk_plugins.diffsr.injection import InjectionTable
from sr_desk_plugins.diffsr.process import DEFAULT_STEPS, resample, restore

SCALES = (1.5, 2.0, 2.5, 3.0, 4.0, 6.0, 8.0)
LEVELS = (0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6)
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


def detail(sr: torch.Tensor, hr: torch.Tensor) -> float:
    """Mean gradient magnitude of the result's luma over the originals' (1 = as much fine structure; bicubic ~0.5)."""

    def energy(x: torch.Tensor) -> torch.Tensor:
        y = luma(x.clamp(0, 1))
        return ((y[..., 1:, :-1] - y[..., :-1, :-1]) ** 2 + (y[..., :-1, 1:] - y[..., :-1, :-1]) ** 2).sqrt().mean()

    return float(energy(sr) / energy(hr))


@dataclass
class Sweep:
    """Per scale, mean Y-PSNR and detail of Algorithm R at every level, and bicubic's PSNR (no model, no projection)."""

    levels: tuple[float, ...]
    psnr: dict[float, list[float]] = field(default_factory=dict)
    detail: dict[float, list[float]] = field(default_factory=dict)
    bicubic: dict[float, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {"levels": list(self.levels), "psnr": {str(k): v for k, v in self.psnr.items()},
                "detail": {str(k): v for k, v in self.detail.items()},
                "bicubic_psnr": {str(k): v for k, v in self.bicubic.items()}}


def sweep(predict_noise, schedule, hr: torch.Tensor, multiple: int, scales: Sequence[float] = SCALES,
          levels: Sequence[float] = LEVELS, steps: int = DEFAULT_STEPS) -> Sweep:
    """Algorithm R as the method runs it, for every scale and level (mean over crops and seeds)."""
    result = Sweep(tuple(levels))
    size = tuple(hr.shape[-2:])
    for scale in scales:
        lr = shrink(hr, scale)
        result.bicubic[scale] = psnr_y(resample(lr, size).clamp(0, 1), hr)
        psnr_row, detail_row = [], []
        for level in levels:
            outs = [restore(predict_noise, lr, size, schedule, level=level, steps=steps,
                            generator=SeededNoise(seed), multiple=multiple).clamp(0, 1) for seed in SEEDS]
            psnr_row.append(sum(psnr_y(o, hr) for o in outs) / len(outs))
            detail_row.append(sum(detail(o, hr) for o in outs) / len(outs))
        result.psnr[scale], result.detail[scale] = psnr_row, detail_row
        chosen = prf_index(psnr_row, detail_row, result.bicubic[scale])
        print(f"x{scale:g} (bicubic {result.bicubic[scale]:.2f}): "
              + " ".join(f"{lv:g}:{p:.2f}/{d:.2f}" for lv, p, d in zip(levels, psnr_row, detail_row, strict=True))
              + f"  -> {levels[chosen]:g}", file=sys.stderr, flush=True)
    return result


def prf_index(psnr: Sequence[float], detail: Sequence[float], bicubic: float) -> int:
    """The paper's PRF rule (spec 2.5) on measured curves: the index of the level to inject.

    The recoverable field is every level whose result is no worse than the
    unprocessed input (bicubic PSNR), the edge the paper reports (sec. 4.3.1).
    Inside it, ``t* = argmin L_S + w L_F`` with the signature loss L_S = the
    drift from the most faithful result in the field (PSNR lost) and the
    fidelity loss L_F = how far the result's fine structure is from the
    photos' (``|1 - detail|``: blur not removed, or noise left). The paper
    picks ``w`` so that both terms have the same magnitude; here each is
    measured against its own full scale, which does that without the paper's
    unstated pixel units (spec 2.6): the drift against the field's depth (the
    best PSNR over bicubic's), the blur against that of the result without
    noise (level 0).
    """
    field_ = [k for k, p in enumerate(psnr) if p >= bicubic] or [0]
    best = max(psnr[k] for k in field_)
    depth = max(best - bicubic, 1e-6)
    blur_at_zero = max(abs(1.0 - detail[0]), 1e-6)

    def loss(k: int) -> float:
        return (best - psnr[k]) / depth + abs(1.0 - detail[k]) / blur_at_zero

    return min(field_, key=lambda k: (loss(k), -psnr[k]))


def table_from(result: Sweep) -> InjectionTable:
    """Per scale, the PRF level, and what it gains over bicubic (dB) on the calibration crops."""
    scales, levels, gains = [], [], []
    for scale in sorted(result.psnr):
        psnr, detail_row = result.psnr[scale], result.detail[scale]
        k = prf_index(psnr, detail_row, result.bicubic[scale])
        scales.append(scale)
        levels.append(result.levels[k])
        gains.append(round(psnr[k] - result.bicubic[scale], 3))
    return InjectionTable(tuple(scales), tuple(levels), tuple(gains))


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
        args.report.write_text(json.dumps({**results.to_json(), "table": json.loads(table.to_json())}, indent=1))
    print(f"wrote the table into {args.weights}: {table.to_json()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
