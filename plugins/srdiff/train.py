"""Training SRDiff: the LR encoder first (L1 to HR), then the noise predictor with the encoder frozen.

    sr-desk train srdiff --data ../shared/data/train --out runs/srdiff --stage encoder --steps 20000
    sr-desk train srdiff --data ../shared/data/train --out runs/srdiff --stage diffusion --steps 100000
    sr-desk train srdiff --out runs/srdiff --export resources/weights/srdiff-x4.safetensors
    sr-desk train srdiff --convert model_ckpt_steps_400000.ckpt --export srdiff-div2k.safetensors

``python -m sr_desk_plugins.srdiff.train`` is the same program.

Every stage checkpoints to ``OUT/<stage>.pt`` and appends to ``OUT/log.csv``;
``--resume`` continues where a run stopped, and ``--minutes`` ends a run
cleanly (checkpoint written) inside a time budget. The paper's recipe (spec
section 4): Adam 2e-4, step decay, L1 losses, frozen encoder in stage 2,
eps-prediction, T = 100 cosine schedule. Our additions: an EMA of the weights
(the exported weights), flips and rotations, bf16 autocast.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from sr_desk.diffusion.data import PatchSampler, centre_crops, list_images, load_photo, split_holdout
from sr_desk.diffusion.schedule import cosine_schedule
from sr_desk.diffusion.training_log import TrainingLog, plot_log
from sr_desk_plugins.srdiff.checkpoints import convert_official, save_safetensors
from sr_desk_plugins.srdiff.config import SRDiffConfig
from sr_desk_plugins.srdiff.network import SRDiffModel, up_sample_lr

PRESETS = {
    # The paper's released 4x configuration (DF2K): 1.48 M + 11.76 M parameters.
    "official-4x": dict(rrdb_nf=32, rrdb_nb=8, rrdb_gc=16, unet_dim=64, dim_mults=(1, 2, 3, 4)),
    # A compact model that trains on a laptop CPU in hours rather than days.
    "compact-4x": dict(rrdb_nf=32, rrdb_nb=8, rrdb_gc=16, unet_dim=32, dim_mults=(1, 2, 2, 4)),
    # For tests.
    "tiny-4x": dict(rrdb_nf=8, rrdb_nb=2, rrdb_gc=4, unet_dim=8, dim_mults=(1, 2, 2, 2)),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sr-desk train srdiff", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, help="folder of HR photos (10%% held out by name for validation)")
    p.add_argument("--out", type=Path, default=Path("runs/srdiff"), help="run folder: checkpoints, log.csv, loss.png")
    p.add_argument("--stage", choices=("encoder", "diffusion"), default="encoder")
    p.add_argument("--preset", choices=sorted(PRESETS), default="official-4x")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--steps", type=int, default=1000, help="total optimiser steps of this stage")
    p.add_argument("--minutes", type=float, default=None, help="stop (with a checkpoint) after this long")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--patch", type=int, default=128, help="HR patch side (a multiple of 8 and of the scale)")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--decay-every", type=int, default=200_000, help="halve the learning rate every N steps")
    p.add_argument("--ema", type=float, default=0.999, help="EMA decay of the exported weights")
    p.add_argument("--device", default="auto", help="auto, cuda, mps or cpu")
    p.add_argument("--precision", choices=("fp32", "bf16"), default=None, help="default: bf16 on CUDA")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--ckpt-every", type=int, default=500)
    p.add_argument("--val-every", type=int, default=1000, help="encoder stage: PSNR on held-out crops")
    p.add_argument("--max-side", type=int, default=1536, help="shrink photos to this longer side on load")
    p.add_argument("--resume", action="store_true", help="continue from OUT/<stage>.pt")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--export", type=Path, help="write the EMA weights of OUT as safetensors and stop")
    p.add_argument("--convert", type=Path, metavar="CKPT",
                   help="with --export: convert an official SRDiff checkpoint to safetensors instead")
    p.add_argument("--fp16", action="store_true", help="with --export: store float16 (half the size)")
    return p


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(name)


class EMA:
    """Exponential moving average of a module's parameters (the weights we export)."""

    def __init__(self, module: nn.Module, decay: float):
        self.decay = decay
        self.shadow = copy.deepcopy(module).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, module: nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))  # warm up: early averages follow the model
        for s, p in zip(self.shadow.parameters(), module.parameters()):
            s.lerp_(p.detach(), 1 - decay)
        for s, b in zip(self.shadow.buffers(), module.buffers()):
            s.copy_(b)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = torch.mean((a.clamp(0, 1) - b.clamp(0, 1)) ** 2).item()
    return 10 * math.log10(1 / max(mse, 1e-12))


class Run:
    """One stage of training: model, optimiser, EMA, data, checkpoint and log."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.device = pick_device(args.device)
        precision = args.precision or ("bf16" if self.device.type == "cuda" else "fp32")
        self.autocast = (
            torch.autocast(self.device.type, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
        )
        self.precision = precision
        self.config = SRDiffConfig(scale=args.scale, **PRESETS[args.preset])
        self.model = SRDiffModel(self.config).to(self.device)
        self.schedule = cosine_schedule(self.config.timesteps, self.config.beta_s)
        self.abar = self.schedule.alphas_cumprod.to(self.device, torch.float32)
        self.stage = args.stage
        self.step = 0
        if self.stage == "diffusion":
            self._load_encoder()
        self.trained = self.model.rrdb if self.stage == "encoder" else self.model.denoise_fn
        self.optimizer = torch.optim.Adam(self.trained.parameters(), lr=args.lr)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, args.decay_every, gamma=0.5)
        self.ema = EMA(self.trained, args.ema)
        self.log = TrainingLog(args.out / "log.csv")
        if args.resume and self.checkpoint_path.exists():
            self._resume()

    @property
    def checkpoint_path(self) -> Path:
        return self.args.out / f"{self.stage}.pt"

    def _load_encoder(self) -> None:
        path = self.args.out / "encoder.pt"
        if not path.exists():
            raise SystemExit(f"stage 'diffusion' needs a trained encoder: {path} is missing (run --stage encoder)")
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.model.rrdb.load_state_dict(state["ema"])
        self.model.rrdb.eval().requires_grad_(False)

    def _resume(self) -> None:
        state = torch.load(self.checkpoint_path, map_location="cpu", weights_only=True)
        if json.loads(state["config"]) != json.loads(self.config.to_json()):
            raise SystemExit(f"{self.checkpoint_path} was trained with another configuration")
        self.trained.load_state_dict(state["model"])
        self.ema.shadow.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        print(f"resumed {self.stage} at step {self.step}", file=sys.stderr)

    def save(self) -> None:
        state = {
            "step": self.step,
            "config": self.config.to_json(),
            "model": self.trained.state_dict(),
            "ema": self.ema.shadow.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
        }
        tmp = self.checkpoint_path.with_suffix(".pt.tmp")
        torch.save(state, tmp)
        tmp.replace(self.checkpoint_path)

    def loss(self, lr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        if self.stage == "encoder":
            out, _ = self.model.rrdb(lr * 2 - 1)
            return (out.float() - (hr * 2 - 1)).abs().mean()
        with torch.no_grad():
            cond = self.model.rrdb.encode(lr * 2 - 1)
            up = up_sample_lr(lr, self.config.scale, official_quirk=False)
            x0 = ((hr * 2 - 1 - up) * 2).clamp(-1, 1)
        index = torch.randint(0, self.config.timesteps, (lr.shape[0],), device=self.device)
        noise = torch.randn_like(x0)
        abar = self.abar[index].view(-1, 1, 1, 1)
        x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
        projected = self.model.denoise_fn.project_condition(cond)
        return (self.model.denoise_fn(x_t, index, projected).float() - noise).abs().mean()

    @torch.no_grad()
    def validate(self, val: tuple[torch.Tensor, torch.Tensor]) -> tuple[float, float]:
        lr, hr = (t.to(self.device) for t in val)
        bicubic = (up_sample_lr(lr, self.config.scale, official_quirk=False) + 1) / 2
        if self.stage != "encoder":
            return float("nan"), psnr(bicubic, hr)
        out, _ = self.ema.shadow(lr * 2 - 1)
        return psnr((out.float() + 1) / 2, hr), psnr(bicubic, hr)

    def train(self, sampler: PatchSampler, val: tuple[torch.Tensor, torch.Tensor] | None) -> None:
        args = self.args
        started = time.monotonic()
        window_start, window_samples = time.monotonic(), 0
        self.trained.train()
        while self.step < args.steps:
            lr, hr = (t.to(self.device, non_blocking=True) for t in sampler.batch(args.batch))
            with self.autocast:
                loss = self.loss(lr, hr)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            self.step += 1
            self.ema.update(self.trained, self.step)
            window_samples += lr.shape[0]
            elapsed = time.monotonic() - started
            out_of_time = args.minutes is not None and elapsed > args.minutes * 60
            if self.step % args.log_every == 0 or self.step == args.steps or out_of_time:
                row = {
                    "stage": self.stage,
                    "step": self.step,
                    "loss": loss.item(),
                    "lr": self.scheduler.get_last_lr()[0],
                    "samples_per_s": window_samples / max(1e-9, time.monotonic() - window_start),
                    "elapsed_s": elapsed,
                }
                if val is not None and (self.step % args.val_every == 0 or self.step == args.steps or out_of_time):
                    row["val_psnr"], row["val_psnr_bicubic"] = self.validate(val)
                self.log.write(row)
                print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
                      file=sys.stderr, flush=True)
                window_start, window_samples = time.monotonic(), 0
            if self.step % args.ckpt_every == 0 or self.step == args.steps or out_of_time:
                self.save()
            if out_of_time:
                break
        plot_log(args.out / "log.csv", args.out / "loss.png")


def export(args: argparse.Namespace) -> int:
    """EMA weights of the run folder into one safetensors file (encoder, plus the U-Net once trained)."""
    config = None
    model = None
    for stage in ("encoder", "diffusion"):
        path = args.out / f"{stage}.pt"
        if not path.exists():
            continue
        state = torch.load(path, map_location="cpu", weights_only=True)
        config = SRDiffConfig.from_json(state["config"])
        model = model or SRDiffModel(config)
        target = model.rrdb if stage == "encoder" else model.denoise_fn
        target.load_state_dict(state["ema"])
        print(f"{stage}: step {state['step']}", file=sys.stderr)
    if model is None or config is None:
        raise SystemExit(f"nothing to export: no encoder.pt or diffusion.pt in {args.out}")
    has_unet = (args.out / "diffusion.pt").exists()
    state_dict = model.state_dict() if has_unet else {f"rrdb.{k}": v for k, v in model.rrdb.state_dict().items()}
    meta = {
        "training_data": "sr-desk ../shared/data/train (freely licensed photos), 90% by name, bicubic x4 degradation",
        "trained_by": "sr-desk train srdiff",
        "version": "1",
    }
    save_safetensors(
        state_dict,
        config,
        args.export,
        metadata=meta,
        dtype=torch.float16 if args.fp16 else torch.float32,
        architecture="srdiff" if has_unet else "srdiff-encoder",
    )
    print(f"wrote {args.export} ({args.export.stat().st_size / 1e6:.1f} MB)", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.convert:
        if not args.export:
            raise SystemExit("--convert needs --export OUT.safetensors")
        config = convert_official(args.convert, args.export)
        print(f"wrote {args.export}: SRDiff x{config.scale}, {config.to_json()}", file=sys.stderr)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    if args.export:
        return export(args)
    if args.data is None:
        raise SystemExit("--data is required for training")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    photos_paths = list_images(args.data)
    train_paths, val_paths = split_holdout(photos_paths)
    if not train_paths:
        raise SystemExit(f"no training photos in {args.data}")
    (args.out / "split.json").write_text(
        json.dumps({"train": [p.name for p in train_paths], "validation": [p.name for p in val_paths]}, indent=1)
    )
    print(f"{len(train_paths)} training photos, {len(val_paths)} held out", file=sys.stderr)
    photos = [load_photo(p, args.max_side) for p in train_paths]
    run = Run(args)
    sampler = PatchSampler(photos, args.patch, args.scale, seed=args.seed + run.step)
    val = None
    if val_paths:
        val = centre_crops([load_photo(p, args.max_side) for p in val_paths], 192, args.scale)
    print(
        f"stage {run.stage}: preset {args.preset}, {sum(p.numel() for p in run.trained.parameters()):,} "
        f"trainable parameters, {run.device} {run.precision}, batch {args.batch}, patch {args.patch}",
        file=sys.stderr,
    )
    run.train(sampler, val)
    return 0


if __name__ == "__main__":
    sys.exit(main())
