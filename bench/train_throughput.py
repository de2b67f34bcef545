"""Training throughput: the old SRDiff loop against the shared trainer (sr_desk.training), in one process.

    python bench/train_throughput.py [--data ../shared/data/train] [--device auto] [--batch 16] [--patch 96]
        [--stages encoder,diffusion] [--iters 5] [--peak-tflops N] [--profile N]

For each SRDiff stage (encoder; compact U-Net with the encoder frozen) and
each loop, patches per second of:

* data: making one batch of LR/HR patches on the training device. Old: the
  per-patch numpy crops of ``OldPatchSampler`` (below), MATLAB
  bicubic on the host, then a copy to the device (what ``plugins/srdiff/train.py``
  did). New: ``PhotoBank.batch`` (one gather on the device, the degradation there);
* step: forward, backward, optimiser and EMA on a batch already on the device.
  Old: Adam, a Python loop over parameters for the EMA. New: fused (or foreach)
  AdamW, gradient clipping, foreach EMA;
* loop: both, one after the other, as the training loop runs them.

"data share" is the data's part of one loop iteration (data time over data +
step time). FLOPs are the model's forward FLOPs per sample counted by torch's
FLOP counter, times 3 for training; "% peak" needs the device's dense peak
(known for a few GPUs, ``--peak-tflops`` otherwise). Without ``--data`` the
photos are synthetic (for a quick run). CUDA times are taken after a
``synchronize``. ``--profile N`` then runs N iterations of the new loop under
torch's profiler and prints the operators that take the most device time:
what limits the step.
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sr_desk.diffusion.data import degrade, list_images, load_photo, split_holdout
from sr_desk.training.loop import TrainingRun, TrainOptions, autocast_for, pick_device
from sr_desk.training.photos import PhotoBank
from sr_desk_plugins.srdiff.config import SRDiffConfig
from sr_desk_plugins.srdiff.network import ConditionalUNet, RRDBNet
from sr_desk_plugins.srdiff.train import PRESETS, DiffusionTask, EncoderTask

#: Dense bf16 tensor-core peaks (TFLOP/s) from the vendors' data sheets.
KNOWN_PEAKS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "RTX 4090": 165.0}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], iters: int, device: torch.device, warmup: int = 2) -> float:
    """Seconds per call, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    synchronize(device)
    return (time.perf_counter() - start) / iters


def photos_for(args: argparse.Namespace) -> list[np.ndarray]:
    if args.data is None:
        rng = np.random.default_rng(0)
        return [np.kron(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), np.ones((16, 16, 1), np.uint8))
                for _ in range(8)]
    train, _ = split_holdout(list_images(args.data))
    return [load_photo(p, 1536) for p in train]


@dataclass
class OldPatchSampler:
    """The old trainer's data: random HR patches cut one by one in numpy, degraded on the host (the baseline)."""

    photos: list[np.ndarray]
    patch: int
    scale: int
    seed: int = 0

    def __post_init__(self) -> None:
        if self.patch % self.scale:
            raise ValueError(f"patch {self.patch} must be a multiple of the scale {self.scale}")
        usable = [p for p in self.photos if min(p.shape[:2]) >= self.patch]
        if not usable:
            raise ValueError(f"no photo is at least {self.patch} px on both sides")
        self.photos = usable
        weights = np.array([p.shape[0] * p.shape[1] for p in usable], dtype=np.float64)
        self._weights = weights / weights.sum()
        self._rng = np.random.default_rng(self.seed)

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(lr, hr)`` float tensors in ``[0, 1]``, shapes ``(B, 3, P/s, P/s)`` and ``(B, 3, P, P)``."""
        crops = []
        for index in self._rng.choice(len(self.photos), size=size, p=self._weights):
            photo = self.photos[index]
            y = self._rng.integers(0, photo.shape[0] - self.patch + 1)
            x = self._rng.integers(0, photo.shape[1] - self.patch + 1)
            crop = photo[y : y + self.patch, x : x + self.patch]
            crop = np.rot90(crop, k=int(self._rng.integers(4)))
            if self._rng.integers(2):
                crop = crop[:, ::-1]
            crops.append(np.ascontiguousarray(crop))
        hr = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255
        return degrade(hr, self.scale), hr


def make_task(stage: str, device: torch.device, preset: str) -> EncoderTask | DiffusionTask:
    torch.manual_seed(0)
    config = SRDiffConfig(scale=4, **PRESETS[preset], encoder_skip=True)
    if stage == "encoder":
        return EncoderTask(config, RRDBNet(config).to(device))
    return DiffusionTask(config, RRDBNet(config).to(device), ConditionalUNet(config).to(device), validation_steps=1)


class OldStep:
    """The old loop's optimiser step: Adam, and an EMA that walks the parameters in Python."""

    def __init__(self, task, precision: str, device: torch.device):
        self.task, self.module = task, task.module
        self.optimizer = torch.optim.Adam(self.module.parameters(), lr=2e-4, foreach=False)
        self.shadow = copy.deepcopy(self.module).requires_grad_(False)
        self.autocast = autocast_for(device, precision)
        self.generator = torch.Generator(device=device).manual_seed(0)

    def __call__(self, lr: torch.Tensor, hr: torch.Tensor) -> None:
        with self.autocast:
            loss = self.task.loss(self.module, lr, hr, self.generator)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        with torch.no_grad():
            for s, p in zip(self.shadow.parameters(), self.module.parameters()):
                s.lerp_(p.detach(), 1 - 0.999)


class NewStep:
    """The shared trainer's step, exactly as ``sr_desk.training.fit`` runs it (``TrainingRun.train_step``)."""

    def __init__(self, task, precision: str, device: torch.device):
        self.run = TrainingRun(task, TrainOptions(out=Path(".")), device)
        self.autocast = autocast_for(device, precision)

    def __call__(self, lr: torch.Tensor, hr: torch.Tensor) -> None:
        self.run.train_step(lr, hr, self.autocast)


def measure_stage(stage: str, photos: list[np.ndarray], args: argparse.Namespace, device: torch.device,
                  precision: str) -> list[dict[str, object]]:
    batch, patch = args.batch, args.patch
    old_sampler = OldPatchSampler(photos, patch, 4, seed=0)
    bank = PhotoBank(photos, patch, 4, device)
    generator = torch.Generator(device=device).manual_seed(0)

    def old_data() -> tuple[torch.Tensor, torch.Tensor]:
        lr, hr = old_sampler.batch(batch)
        return lr.to(device, non_blocking=True), hr.to(device, non_blocking=True)

    def new_data() -> tuple[torch.Tensor, torch.Tensor]:
        return bank.batch(batch, generator)

    fixed = new_data()
    rows = []
    for name, data, step_cls in (("old", old_data, OldStep), ("new", new_data, NewStep)):
        flops = make_task(stage, torch.device("cpu"), args.preset).flops_per_sample(patch) or float("nan")
        task = make_task(stage, device, args.preset)
        step = step_cls(task, precision, device)
        t_data = timed(data, args.iters, device)
        t_step = timed(lambda: step(*fixed), args.iters, device)
        t_loop = timed(lambda: step(*data()), args.iters, device)
        rows.append(dict(stage=stage, loop=name, data=batch / t_data, step=batch / t_step, whole=batch / t_loop,
                         share=t_data / (t_data + t_step), tflops=3 * flops * batch / t_loop / 1e12))
    return rows


def profile_new_loop(stage: str, photos: list[np.ndarray], args: argparse.Namespace, device: torch.device,
                     precision: str, top: int = 10) -> str:
    """The profiler's table of the operators with the most self time on the device, for the new loop."""
    from torch.profiler import ProfilerActivity, profile

    bank = PhotoBank(photos, args.patch, 4, device)
    generator = torch.Generator(device=device).manual_seed(0)
    step = NewStep(make_task(stage, device, args.preset), precision, device)
    for _ in range(2):
        step(*bank.batch(args.batch, generator))
    synchronize(device)
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]
    with profile(activities=activities) as prof:
        for _ in range(args.profile):
            step(*bank.batch(args.batch, generator))
        synchronize(device)
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=top, max_name_column_width=60)


def peak_of(device: torch.device, given: float | None) -> float | None:
    if given:
        return given
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return next((peak for key, peak in KNOWN_PEAKS.items() if key in name), None)
    return None


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU, {torch.get_num_threads()} threads"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=None, help="photo folder (default: synthetic photos)")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="bf16")
    p.add_argument("--batch", type=int, default=None, help="default: 64 on CUDA, 16 on the CPU")
    p.add_argument("--patch", type=int, default=None, help="HR patch side; default: 160 on CUDA, 96 on the CPU")
    p.add_argument("--stages", default="encoder,diffusion")
    p.add_argument("--preset", choices=sorted(PRESETS), default="compact-4x", help="SRDiff size (tiny-4x: tests)")
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--peak-tflops", type=float, default=None, help="the device's dense peak, for '%% peak'")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="then profile N iterations of the new loop and print its top operators")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    cuda = device.type == "cuda"
    args.batch = args.batch or (64 if cuda else 16)
    args.patch = args.patch or (160 if cuda else 96)
    if cuda:
        torch.backends.cudnn.benchmark = True
    photos = photos_for(args)
    peak = peak_of(device, args.peak_tflops)
    print(f"device: {device_name(device)}; SRDiff {args.preset}; {args.precision}; batch {args.batch}, {args.patch} px HR patches; "
          f"{len(photos)} photos; {args.iters} timed iterations after 2 warm-up")
    header = ("stage", "loop", "data patches/s", "step patches/s", "loop patches/s", "data share", "TFLOP/s",
              "% peak", "loop vs old")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|")
    for stage in args.stages.split(","):
        rows = measure_stage(stage, photos, args, device, args.precision)
        old = rows[0]["whole"]
        for r in rows:
            share = f"{100 * r['share']:.1f}%"
            pct = f"{100 * r['tflops'] / peak:.1f}%" if peak else "n/a"
            print(f"| {r['stage']} | {r['loop']} | {r['data']:.4g} | {r['step']:.4g} | {r['whole']:.4g} | {share} | "
                  f"{r['tflops']:.3g} | {pct} | {r['whole'] / old:.2f}x |", flush=True)
    for stage in args.stages.split(",") if args.profile else ():
        print(f"\nnew loop, {stage} stage: top operators by self time on {device_name(device)} "
              f"({args.profile} iterations)\n")
        print(profile_new_loop(stage, photos, args, device, args.precision), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
