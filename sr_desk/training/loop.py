"""The one training loop every method plugin uses.

A plugin supplies a :class:`TrainingTask` (the module to train, its loss, how
to predict an HR image for validation); the loop owns everything else, in the
manner of nanoGPT's ``train.py``: bf16 weights cast once with float32 master
weights, the loss compiled where that pays (:mod:`sr_desk.training.step`), a fused (or foreach) AdamW,
an EMA of the weights updated with foreach ops, linear warm-up and cosine
decay, gradient clipping, validation on held-out photos on the device,
atomic checkpoints that ``--resume`` continues bit for bit, a time budget,
a progress bar, ``log.csv`` and ``loss.png``. Data comes from a
:class:`~sr_desk.training.photos.PhotoBank` on the same device.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from sr_desk.core.allocator import reuse_freed_memory
from sr_desk.diffusion.imresize import imresize
from sr_desk.diffusion.native import cpu_has_native_bf16
from sr_desk.training.log import TrainingLog, plot_log
from sr_desk.training.ema import EMA
from sr_desk.training.metrics import psnr_y
from sr_desk.training.photos import PhotoBank
from sr_desk.training.schedule import learning_rate, time_paced_rate
from sr_desk.training.step import TrainStep

__all__ = ["TrainOptions", "TrainingRun", "TrainingTask", "ValidationSet", "default_compile", "default_precision",
           "fit", "pick_device"]


class TrainingTask(Protocol):
    """What a method plugin gives the loop for one stage of its training."""

    #: Stage name: the checkpoint is ``OUT/<stage>.pt`` and log rows carry it.
    stage: str
    #: The module whose parameters are trained (and averaged into the EMA).
    module: nn.Module
    #: Upscale factor of the data the stage trains on.
    scale: int

    def config_json(self) -> str:
        """The architecture, so that a resume with another configuration is refused."""
        ...

    def loss(self, module: nn.Module, lr: torch.Tensor, hr: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Scalar loss for a batch in ``[0, 1]``; draw any noise from ``generator`` (it makes resumes exact).

        Call ``module``, not ``self.module``: in bf16 it is the working copy whose weights are cast once.
        """
        ...

    def predict(self, module: nn.Module, lr: torch.Tensor) -> torch.Tensor:
        """The HR image in ``[0, 1]`` that ``module`` (the EMA copy) makes of ``lr``, for validation."""
        ...

    def flops_per_sample(self, patch: int) -> float | None:
        """Forward FLOPs of one training sample (for the throughput log), or None."""
        ...

    # Optional: ``extra_state() -> dict`` and ``load_extra_state(dict)`` for state the task keeps
    # itself (a discriminator and its optimiser); it goes into the checkpoint and comes back on --resume.


@dataclass
class ValidationSet:
    """Held-out LR/HR crops on the device, and the bicubic score to beat."""

    lr: torch.Tensor
    hr: torch.Tensor
    bicubic_psnr: float
    chunk: int = 8

    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for i in range(0, self.lr.shape[0], self.chunk):
            yield self.lr[i : i + self.chunk], self.hr[i : i + self.chunk]


@dataclass
class TrainOptions:
    """How one stage trains. ``steps=0`` with ``minutes`` paces the cosine by the time budget instead of a step count."""

    out: Path
    steps: int = 1000
    minutes: float | None = None
    batch: int = 16
    lr: float = 2e-4
    warmup: int = 100
    lr_floor: float = 0.1
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema: float = 0.999
    device: str = "auto"
    #: fp32, bf16 (weights cast once, float32 master weights) or bf16-autocast; None: the device's default.
    precision: str | None = None
    #: torch.compile the loss (forward and backward); None: the device's default.
    compile: bool | None = None
    compile_mode: str | None = None
    log_every: int = 50
    ckpt_every: int = 500
    val_every: int = 1000
    seed: int = 0
    resume: bool = False
    progress: bool = True
    #: The photo folder trained on, as given (``--data``): recorded in the checkpoint for the exported file.
    data: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(name)


def make_optimizer(params: list[nn.Parameter], options: TrainOptions, device: torch.device) -> torch.optim.Optimizer:
    """AdamW, fused where this torch build has a fused kernel for the device, else foreach."""
    kwargs: dict[str, Any] = dict(lr=options.lr, betas=(0.9, 0.99), weight_decay=options.weight_decay)
    try:
        return torch.optim.AdamW(params, fused=True, **kwargs)
    except (RuntimeError, ValueError):
        return torch.optim.AdamW(params, foreach=True, **kwargs)


def default_precision(device: torch.device) -> str:
    """bf16 (cast once) where the device computes in it natively: CUDA, and CPUs with AVX-512 BF16 or AMX."""
    if device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16()):
        return "bf16"
    return "fp32"


def default_compile(device: torch.device) -> bool:
    """Compile the step on CUDA; on the CPU compiling pays for some networks only, after a minute or two of
    compiling (bench/train_throughput.py, docs/training.md), so it is asked for with ``--compile``."""
    return device.type == "cuda"


class TrainingRun:
    """The state of one stage: module, EMA, optimiser, random stream, step; saved and restored as one."""

    def __init__(self, task: TrainingTask, options: TrainOptions, device: torch.device):
        self.task, self.options, self.device = task, options, device
        # channels-last: convolutions run NHWC (tensor cores want it; 1.07-1.13x on this CPU too).
        self.module = task.module.to(device, memory_format=torch.channels_last)
        self.params = [p for p in self.module.parameters() if p.requires_grad]
        self.ema = EMA(self.module, options.ema)
        self.optimizer = make_optimizer(self.params, options, device)
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(options.seed)
        self.precision = options.precision or default_precision(device)
        compile_step = default_compile(device) if options.compile is None else options.compile
        self.stepper = TrainStep(task.loss, self.module, self.params, self.optimizer, device=device,
                                 precision=self.precision, compile=compile_step, grad_clip=options.grad_clip,
                                 compile_mode=options.compile_mode)
        self.step = 0
        self.elapsed_before = 0.0

    @property
    def path(self) -> Path:
        return self.options.out / f"{self.task.stage}.pt"

    def train_step(self, lr: torch.Tensor, hr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimiser step on a batch (loss, backward, clipping, AdamW, EMA); returns ``(loss, grad_norm)``."""
        loss, grad_norm = self.stepper(lr, hr, self.generator)
        self.ema.update(self.module, self.step)
        self.step += 1
        return loss, grad_norm

    def state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "elapsed_s": self.elapsed_before,
            "config": self.task.config_json(),
            "model": self.module.state_dict(),
            "ema": self.ema.shadow.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "data": self.options.data,
            # A task with state of its own (a GAN's discriminator and its optimiser) saves it here.
            **({"task": self.task.extra_state()} if hasattr(self.task, "extra_state") else {}),
        }

    def save(self, elapsed: float) -> None:
        """Write the checkpoint atomically (a temporary file, then a rename): a kill never leaves half a file."""
        state = self.state()
        state["elapsed_s"] = self.elapsed_before + elapsed
        tmp = self.path.with_name(self.path.name + ".tmp")
        torch.save(state, tmp)
        tmp.replace(self.path)

    def restore(self) -> None:
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        if json.loads(state["config"]) != json.loads(self.task.config_json()):
            raise SystemExit(f"{self.path} was trained with another configuration: {state['config']}")
        self.module.load_state_dict(state["model"])
        self.ema.shadow.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.stepper.refresh_working_copy()
        if "task" in state and hasattr(self.task, "load_extra_state"):
            self.task.load_extra_state(state["task"])
        self.step = int(state["step"])
        self.elapsed_before = float(state.get("elapsed_s", 0.0))


@torch.no_grad()
def validate(task: TrainingTask, module: nn.Module, val: ValidationSet) -> float:
    """Y-PSNR of the EMA weights on the held-out crops, in float32 whatever the training precision.

    The exported weights are judged, not the rounding of a bf16 forward: a
    residual over bicubic smaller than bf16's step (an encoder early in
    training) would otherwise not show at all.
    """
    scores, sizes = [], []
    with torch.autocast(val.lr.device.type, enabled=False):
        for lr, hr in val.batches():
            scores.append(psnr_y(task.predict(module, lr).float(), hr, shave=task.scale))
            sizes.append(lr.shape[0])
    return sum(s * n for s, n in zip(scores, sizes)) / sum(sizes)


def _eta(options: TrainOptions, step: int, steps_per_s: float, elapsed: float) -> str:
    """Time left: to the last step at the current pace, or to the end of the time budget if that comes first."""
    left = (options.steps - step) / max(steps_per_s, 1e-9) if options.steps else float("inf")
    if options.minutes is not None:
        left = min(left, max(0.0, options.minutes * 60 - elapsed))
    return f"{int(left // 60)}m{int(left % 60):02d}s"


def _progress_bar(total: int, initial: int, enabled: bool) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is a dependency, but the loop must not need it
        return None
    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, disable=not enabled, file=sys.stderr)


def fit(
    task: TrainingTask,
    bank: PhotoBank,
    val: ValidationSet | None,
    options: TrainOptions,
    *,
    on_log: Callable[[dict[str, Any]], None] | None = None,
) -> nn.Module:
    """Train ``task`` until ``options.steps`` or ``options.minutes``; returns the EMA module.

    The checkpoint ``OUT/<stage>.pt`` is written every ``ckpt_every`` steps
    and at the end; with ``resume`` a run continues from it and ends with the
    same weights as a run that was never interrupted.
    """
    device = bank.device
    if device.type == "cpu":
        reuse_freed_memory()  # batch activations are over 32 MB: 10.3 -> 11.7 patches/s for SRDiff's U-Net
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed patch sizes: let cuDNN pick its fastest kernels once
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    options.out.mkdir(parents=True, exist_ok=True)
    # Counted before the module moves to the device: a task builds its probe inputs on the CPU.
    flops = task.flops_per_sample(bank.patch)
    run = TrainingRun(task, options, device)
    print(f"{task.stage}: {run.precision}{', compiled' if run.stepper.compiled else ''} on {device}", file=sys.stderr)
    if options.resume and run.path.exists():
        run.restore()
        print(f"resumed {task.stage} at step {run.step}", file=sys.stderr)
    log = TrainingLog(options.out / "log.csv")
    if not options.steps and options.minutes is None:
        raise ValueError("steps=0 (paced by time) needs a time budget in minutes")
    bar = _progress_bar(options.steps or None, run.step, options.progress and sys.stderr.isatty())
    with _StopRequests() as stop:
        _loop(run, bank, val, log, stop, bar, on_log, flops)
    if bar is not None:
        bar.close()
    plot_log(options.out / "log.csv", options.out / "loss.png")
    return run.ema.shadow


def _loop(
    run: TrainingRun,
    bank: PhotoBank,
    val: ValidationSet | None,
    log: TrainingLog,
    stop: _StopRequests,
    bar: Any,
    on_log: Callable[[dict[str, Any]], None] | None,
    flops: float | None,
) -> None:
    """Steps until the last one, the time budget or a stop request; logs, validates and checkpoints on the way."""
    task, options, device = run.task, run.options, bank.device
    started = time.monotonic()
    window_start, window_samples = started, 0
    loss_sum = torch.zeros((), device=device)
    loss_count = 0
    run.module.train()
    paced_by_time = not options.steps
    while paced_by_time or run.step < options.steps:
        if paced_by_time:
            fraction = (time.monotonic() - started) / (60 * options.minutes)
            rate = time_paced_rate(run.step, fraction, peak=options.lr, warmup=options.warmup,
                                   floor_ratio=options.lr_floor)
        else:
            rate = learning_rate(run.step, peak=options.lr, total=options.steps, warmup=options.warmup,
                                 floor_ratio=options.lr_floor)
        for group in run.optimizer.param_groups:
            group["lr"] = rate
        lr, hr = bank.batch(options.batch, run.generator)
        loss, grad_norm = run.train_step(lr, hr)
        loss_sum += loss.float()
        loss_count += 1
        window_samples += options.batch
        elapsed = time.monotonic() - started
        out_of_time = (options.minutes is not None and elapsed > options.minutes * 60) or stop.requested
        last = (not paced_by_time and run.step == options.steps) or out_of_time
        if bar is not None:
            bar.update(1)
        if run.step % options.log_every == 0 or last:
            seconds = max(1e-9, time.monotonic() - window_start)
            row: dict[str, Any] = {
                "stage": task.stage,
                "step": run.step,
                "loss": float(loss_sum) / max(1, loss_count),
                "lr": rate,
                "grad_norm": float(grad_norm),
                "samples_per_s": window_samples / seconds,
                "elapsed_s": run.elapsed_before + elapsed,
            }
            if flops:
                row["train_tflops"] = 3 * flops * window_samples / seconds / 1e12
            if val is not None and (run.step % options.val_every == 0 or last):
                row["val_psnr"] = validate(task, run.ema.shadow, val)
                row["val_psnr_bicubic"] = val.bicubic_psnr
            log.write(row)
            if on_log is not None:
                on_log(row)
            message = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())
            message += f" eta={_eta(options, run.step, row['samples_per_s'] / options.batch, elapsed)}"
            if bar is not None and not bar.disable:
                bar.set_postfix_str(f"loss {row['loss']:.4g}, {row['samples_per_s']:.0f} samples/s")
                if "val_psnr" in row:
                    bar.write(message, file=sys.stderr)
            else:
                print(message, file=sys.stderr, flush=True)
            loss_sum.zero_()
            loss_count = 0
            window_start, window_samples = time.monotonic(), 0
        if run.step % options.ckpt_every == 0 or last:
            run.save(elapsed)
        if out_of_time:
            reason = f"{stop.requested} received" if stop.requested else f"time budget of {options.minutes} min reached"
            print(f"{reason}: stopped at step {run.step}, checkpoint {run.path}", file=sys.stderr)
            break


class _StopRequests:
    """Ctrl-C or SIGTERM during a run: finish the step, write the checkpoint, stop (a second Ctrl-C kills)."""

    def __init__(self) -> None:
        self.requested: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopRequests:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:
            signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
            signal.raise_signal(signum)
            return
        self.requested = signal.Signals(signum).name

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def bicubic_score(lr: torch.Tensor, hr: torch.Tensor, scale: int) -> float:
    """Y-PSNR of MATLAB-bicubic enlargements of ``lr``: the floor every model must clear."""
    return psnr_y(imresize(lr, scale=float(scale)), hr, shave=scale)

