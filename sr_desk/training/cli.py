"""The command-line options every trainer shares, and loading its data onto the device.

A plugin's trainer adds its own options (stage, preset, ...) to the parser
from :func:`add_training_arguments` and calls :func:`load_data`; the loop's
options come from :func:`options_from`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from sr_desk.training.data import centre_crops, list_images, load_photo, split_holdout
from sr_desk.training.loop import (
    TrainingTask,
    TrainOptions,
    ValidationSet,
    bicubic_score,
    fit,
    pick_device,
)
from sr_desk.training.photos import PhotoBank
from sr_desk.training.step import PRECISIONS

#: Held-out validation crops: one central crop of this side per held-out photo.
VALIDATION_CROP = 192

Config = TypeVar("Config")
Network = TypeVar("Network", bound=nn.Module)


def add_training_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, help="folder of HR photos (10%% held out by name for validation)")
    p.add_argument("--out", type=Path, required=False, help="run folder: checkpoints, log.csv, loss.png")
    p.add_argument("--steps", type=int, default=1000, help="optimiser steps of this stage (the cosine ends there); 0: as many as --minutes allows, "
                        "the cosine paced by the time budget (for a lent GPU)")
    p.add_argument("--minutes", type=float, default=None, help="stop (with a checkpoint) after this long")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--patch", type=int, default=128, help="HR patch side (a multiple of 8 and of the scale)")
    p.add_argument("--lr", type=float, default=2e-4, help="peak learning rate")
    p.add_argument("--warmup", type=int, default=100, help="linear warm-up steps")
    p.add_argument("--lr-floor", type=float, default=0.1, help="the cosine ends at this fraction of the peak")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--grad-clip", type=float, default=1.0, help="clip the gradient norm to this")
    p.add_argument("--ema", type=float, default=0.999, help="EMA decay of the exported weights")
    p.add_argument("--device", default="auto", help="auto, cuda, mps or cpu")
    p.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="bf16: weights cast once, float32 master weights; bf16-autocast: the old mixed precision "
                   "(default: bf16 on CUDA and on CPUs with bfloat16 instructions, else fp32)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the loss, forward and backward (default: on CUDA only; falls back to eager)")
    p.add_argument("--compile-mode", choices=("default", "reduce-overhead", "max-autotune-no-cudagraphs"),
                   default=None, help="torch.compile's mode (reduce-overhead: CUDA graphs)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--ckpt-every", type=int, default=500)
    p.add_argument("--val-every", type=int, default=1000, help="Y-PSNR of the EMA weights on the held-out crops")
    p.add_argument("--max-side", type=int, default=1536, help="shrink photos to this longer side on load")
    p.add_argument("--resume", action="store_true", help="continue from OUT/<stage>.pt")
    p.add_argument("--init", type=Path, metavar="FILE.safetensors",
                   help="start from these weights (shipped ones, say) instead of random ones; ignored on --resume")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="log lines only, no progress bar")


def add_export_arguments(p: argparse.ArgumentParser, official: str | None = None) -> None:
    """``--export`` and ``--fp16``, what every trainer offers besides training; ``--convert`` only where the
    method's authors released checkpoints (``official`` names them, e.g. "DTLS ({step, model, ema})")."""
    p.add_argument("--export", type=Path, help="write the EMA weights of OUT as safetensors and stop")
    if official is not None:
        p.add_argument("--convert", type=Path, metavar="CKPT",
                       help=f"with --export: convert an official {official} checkpoint to safetensors instead")
    p.add_argument("--fp16", action="store_true", help="with --export: store float16 (half the size)")


def starting_network(
    args: argparse.Namespace,
    *,
    load: Callable[[Path], tuple[Network, Config, Any]],
    presets: Mapping[str, Config],
    fresh: Callable[[Config], Network],
    patch_multiple: Callable[[Config], int] | None = None,
) -> tuple[Network, Config]:
    """The network a run starts from, with its config: ``--init``'s weights (a fine-tune of shipped ones,
    say) or ``fresh(config)`` of ``--preset``. On ``--resume`` the loop loads its checkpoint over it.

    ``patch_multiple(config)``: what ``--patch`` must be a multiple of for the network's down- and
    upsampling; the run stops with a message before it starts when it is not.
    """
    if args.init is not None and not args.resume:
        network, config, _ = load(args.init)
        print(f"--init {args.init.name}: {config.to_json()}", file=sys.stderr)  # type: ignore[attr-defined]
        network.train()
    else:
        config = presets[args.preset]
        network = fresh(config)
    multiple = patch_multiple(config) if patch_multiple is not None else 1
    if args.patch % multiple:
        raise SystemExit(f"--patch must be a multiple of {multiple} for this network")
    return network, config


def run_trainer(
    args: argparse.Namespace,
    *,
    build_task: Callable[[argparse.Namespace], TrainingTask],
    export: Callable[[argparse.Namespace], int],
    convert: Callable[[Path, Path], str] | None = None,
) -> int:
    """A trainer's command: ``--convert`` (``convert`` describes what it wrote), ``--export``, or train one stage."""
    if convert is not None and args.convert:
        if not args.export:
            raise SystemExit("--convert needs --export OUT.safetensors")
        print(f"wrote {args.export}: {convert(args.convert, args.export)}", file=sys.stderr)
        return 0
    if args.out is None:
        raise SystemExit("--out is required")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.export:
        return export(args)
    options = options_from(args)
    torch.manual_seed(args.seed)
    task = build_task(args)
    bank, val = load_data(args, task.scale)
    trainable = sum(p.numel() for p in task.module.parameters() if p.requires_grad)
    print(f"stage {task.stage}: {task.config_json()}, {trainable:,} trainable parameters, {bank.device}, "
          f"batch {args.batch}, patch {args.patch}", file=sys.stderr)
    fit(task, bank, val, options)
    return 0


def options_from(args: argparse.Namespace) -> TrainOptions:
    if args.out is None:
        raise SystemExit("--out is required")
    if args.threads:
        torch.set_num_threads(args.threads)
    return TrainOptions(
        out=args.out, steps=args.steps, minutes=args.minutes, batch=args.batch, lr=args.lr, warmup=args.warmup,
        lr_floor=args.lr_floor, weight_decay=args.weight_decay, grad_clip=args.grad_clip, ema=args.ema,
        device=args.device, precision=args.precision, compile=args.compile, compile_mode=args.compile_mode,
        log_every=args.log_every, ckpt_every=args.ckpt_every,
        val_every=args.val_every, seed=args.seed, resume=args.resume, progress=not args.no_progress,
        data=str(args.data) if args.data is not None else None,
    )


def load_data(args: argparse.Namespace, scale: int) -> tuple[PhotoBank, ValidationSet | None]:
    """Decode the training photos once onto the device, and the held-out crops beside them.

    Writes ``OUT/split.json`` with the names on each side of the fixed 10% hold-out.
    """
    if args.data is None:
        raise SystemExit("--data is required for training")
    paths = list_images(args.data)
    train_paths, val_paths = split_holdout(paths)
    if not train_paths:
        raise SystemExit(f"no training photos in {args.data}")
    args.out.mkdir(parents=True, exist_ok=True)
    split = {"train": [p.name for p in train_paths], "validation": [p.name for p in val_paths]}
    (args.out / "split.json").write_text(json.dumps(split, indent=1))
    device = pick_device(args.device)
    bank = PhotoBank([load_photo(p, args.max_side) for p in train_paths], args.patch, scale, device)
    print(f"{len(bank.photos)} training photos ({bank.nbytes / 1e6:.0f} MB on {device}), {len(val_paths)} held out",
          file=sys.stderr)
    if not val_paths:
        return bank, None
    lr, hr = centre_crops([load_photo(p, args.max_side) for p in val_paths], VALIDATION_CROP, scale)
    lr, hr = lr.to(device), hr.to(device)
    return bank, ValidationSet(lr=lr, hr=hr, bicubic_psnr=bicubic_score(lr, hr, scale))
