"""Training throughput of every method's network: the old loop, then the shared trainer's levers one by one, in one process.

    python bench/train_throughput.py [--data ../shared/data/train] [--device auto] [--batch 16] [--patch 96]
        [--stages encoder,srdiff-unet,dtls,dossr,diffsr,lddpm] [--loops old,fp32,bf16-autocast,bf16,bf16+compile]
        [--size shipped|tiny] [--iters 5] [--peak-tflops N] [--profile N]

Stages: SRDiff's encoder and its U-Net (encoder frozen), DTLS, DoSSR, the
Diff-SR prior and LDDPM's first stage, each built by its own trainer exactly
as ``sr-desk train`` builds it (``--size shipped``: from the shipped weights,
the architecture users get; ``tiny``: the tests' presets). Loops, each alone:

* ``old``: the loop before the shared trainer: per-patch numpy crops degraded
  on the host (``OldPatchSampler``), Adam, a Python loop for the EMA, autocast
  on CUDA and float32 on the CPU;
* ``fp32``, ``bf16-autocast``, ``bf16``: the shared trainer
  (``TrainingRun.train_step``, data from ``PhotoBank`` on the device) in float32,
  in bf16 autocast, and with the bf16 weights cast once (float32 masters);
* ``...+compile``: the same with the loss compiled (forward and backward).

Columns: patches per second of making a batch (data), of one optimiser step
on a batch already on the device (step), and of both (loop); the data's share
of a loop iteration; the model's training FLOP/s (forward FLOPs per sample by
torch's counter, times 3) and its share of the device's dense bf16 peak: the
data-sheet figure for known GPUs (``--peak-tflops`` otherwise), and on a CPU
the rate this process measures for a large bf16 matrix product. Compiled loops
are timed after their compilation (printed as "compile s"). Without ``--data``
the photos are synthetic. ``--profile N`` then runs N iterations of the last
loop under torch's profiler and prints the operators that take the most
device time.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sr_desk.training.data import degrade, list_images, load_photo, split_holdout
from sr_desk.training.loop import TrainingRun, TrainingTask, TrainOptions, pick_device
from sr_desk.training.photos import PhotoBank
from sr_desk.training.step import PRECISIONS, autocast_for

#: Dense bf16 tensor-core peaks (TFLOP/s) from the vendors' data sheets (SXM parts).
KNOWN_PEAKS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "RTX 4090": 165.0}
WEIGHTS = Path(__file__).resolve().parents[1] / "resources" / "weights"


@dataclass(frozen=True)
class Stage:
    """How a trainer builds one stage: its plugin, its own arguments, the shipped weights and the tiny preset."""

    trainer: str
    arguments: tuple[str, ...]
    shipped: str
    tiny: str


STAGES = {
    "encoder": Stage("srdiff", ("--stage", "encoder"), "srdiff-x4.safetensors", "tiny-4x"),
    "srdiff-unet": Stage("srdiff", ("--stage", "diffusion"), "srdiff-x4.safetensors", "tiny-4x"),
    "dtls": Stage("dtls", (), "dtls-x4.safetensors", "tiny"),
    "dossr": Stage("dossr", (), "dossr-x4.safetensors", "tiny"),
    "diffsr": Stage("diffsr", (), "diffsr-prior.safetensors", "tiny"),
    "lddpm": Stage("lddpm", ("--stage", "denoise"), "lddpm-x4.safetensors", "tiny"),
}
LOOPS = ("old", "fp32", "bf16-autocast", "bf16", "bf16+compile")


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


def make_task(name: str, size: str, patch: int, work: Path) -> TrainingTask:
    """The stage's task as its trainer builds it for ``sr-desk train``, on the CPU, with seed 0."""
    stage = STAGES[name]
    trainer = importlib.import_module(f"sr_desk_plugins.{stage.trainer}.train")
    (work / name).mkdir(parents=True, exist_ok=True)
    argv = [*stage.arguments, "--out", str(work / name), "--patch", str(patch)]
    if size == "shipped":
        argv += ["--init", str(WEIGHTS / stage.shipped)]
    else:
        argv += ["--preset", stage.tiny]
        if name == "srdiff-unet":
            argv += ["--init", str(_tiny_encoder(trainer, stage.tiny, work))]
    args = trainer.build_parser().parse_args(argv)
    torch.manual_seed(0)
    return trainer.build_task(args)


def _tiny_encoder(trainer, preset: str, work: Path) -> Path:
    """A random tiny SRDiff encoder file: the U-Net stage needs a frozen encoder to train against."""
    from sr_desk_plugins.srdiff.checkpoints import save_safetensors
    from sr_desk_plugins.srdiff.config import SRDiffConfig
    from sr_desk_plugins.srdiff.network import RRDBNet

    path = work / "tiny-encoder.safetensors"
    if not path.exists():
        torch.manual_seed(0)
        config = SRDiffConfig(scale=4, **trainer.PRESETS[preset], encoder_skip=True)
        save_safetensors(RRDBNet(config), config, path, architecture="srdiff-encoder")
    return path


class OldStep:
    """The old loop's optimiser step: Adam, and an EMA that walks the parameters in Python."""

    def __init__(self, task: TrainingTask, device: torch.device):
        self.task, self.module = task, task.module.to(device)
        self.optimizer = torch.optim.Adam(self.module.parameters(), lr=2e-4, foreach=False)
        self.shadow = copy.deepcopy(self.module).requires_grad_(False)
        self.autocast = autocast_for(device, "bf16-autocast" if device.type == "cuda" else "fp32")
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

    def __init__(self, task: TrainingTask, device: torch.device, loop: str):
        precision, _, compiled = loop.partition("+")
        if precision not in PRECISIONS or compiled not in ("", "compile"):
            raise SystemExit(f"unknown loop {loop!r}: old, or one of {', '.join(PRECISIONS)} with an optional +compile")
        options = TrainOptions(out=Path("."), precision=precision, compile=bool(compiled))
        self.run = TrainingRun(task, options, device)

    @property
    def compiled(self) -> bool:
        return self.run.stepper.compiled

    def __call__(self, lr: torch.Tensor, hr: torch.Tensor) -> None:
        self.run.train_step(lr, hr)


def measure_stage(name: str, photos: list[np.ndarray], args: argparse.Namespace, device: torch.device,
                  work: Path) -> list[dict[str, object]]:
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
    flops = make_task(name, args.size, patch, work).flops_per_sample(patch) or float("nan")
    t_new_data = timed(new_data, args.iters, device)
    rows = []
    for loop in args.loops:
        task = make_task(name, args.size, patch, work)
        step: Callable[[torch.Tensor, torch.Tensor], None]
        step = OldStep(task, device) if loop == "old" else NewStep(task, device, loop)
        data = old_data if loop == "old" else new_data
        t_data = timed(data, args.iters, device) if loop == "old" else t_new_data
        started = time.perf_counter()
        for _ in range(3 if "compile" in loop else 0):  # compile for each shape the loss draws (LDDPM: three scales)
            step(*data())
        synchronize(device)
        compile_s = time.perf_counter() - started
        if "compile" in loop and not step.compiled:
            loop += " (fell back to eager)"
        t_step = timed(lambda: step(*fixed), args.iters, device)
        t_loop = timed(lambda: step(*data()), args.iters, device)
        rows.append(dict(stage=name, loop=loop, data=batch / t_data, step=batch / t_step, whole=batch / t_loop,
                         share=t_data / (t_data + t_step), tflops=3 * flops * batch / t_loop / 1e12,
                         compile_s=compile_s))
    return rows


def profile_loop(name: str, loop: str, photos: list[np.ndarray], args: argparse.Namespace, device: torch.device,
                 work: Path, top: int = 10) -> str:
    """The profiler's table of the operators with the most self time on the device, for one loop."""
    from torch.profiler import ProfilerActivity, profile

    bank = PhotoBank(photos, args.patch, 4, device)
    generator = torch.Generator(device=device).manual_seed(0)
    step = NewStep(make_task(name, args.size, args.patch, work), device, loop)
    for _ in range(3):
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


def matmul_tflops(device: torch.device, side: int = 4096, iters: int = 5) -> float:
    """TFLOP/s of a large bf16 matrix product on ``device``: the peak a CPU's table is measured against."""
    a = torch.randn(side, side, device=device, dtype=torch.bfloat16)
    b = torch.randn(side, side, device=device, dtype=torch.bfloat16)
    seconds = timed(lambda: a @ b, iters, device, warmup=2)
    return 2 * side**3 / seconds / 1e12


def peak_of(device: torch.device, given: float | None, measured: float) -> tuple[float | None, str]:
    """The dense bf16 peak for "% peak", and where it comes from."""
    if given:
        return given, "given"
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        known = next((peak for key, peak in KNOWN_PEAKS.items() if key in name), None)
        return known, "data sheet" if known else "unknown (pass --peak-tflops)"
    return measured, "measured bf16 matmul"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU, {torch.get_num_threads()} threads"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=None, help="photo folder (default: synthetic photos)")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch", type=int, default=None, help="default: 64 on CUDA, 16 on the CPU")
    p.add_argument("--patch", type=int, default=None, help="HR patch side; default: 160 on CUDA, 96 on the CPU")
    p.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated, of {', '.join(STAGES)}")
    p.add_argument("--loops", default=",".join(LOOPS), help="comma-separated: old, fp32, bf16-autocast, bf16, "
                   "each optionally +compile")
    p.add_argument("--size", choices=("shipped", "tiny"), default="shipped",
                   help="the shipped weights' architectures, or the tests' tiny presets")
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--peak-tflops", type=float, default=None, help="the device's dense bf16 peak, for '%% peak'")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="then profile N iterations of the last loop for each stage and print its top operators")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    cuda = device.type == "cuda"
    args.batch = args.batch or (64 if cuda else 16)
    args.patch = args.patch or (160 if cuda else 96)
    args.loops = args.loops.split(",")
    if cuda:
        torch.backends.cudnn.benchmark = True
    if any("compile" in loop for loop in args.loops):
        import torch._inductor.config as inductor_config

        # Compile in this process: a pool of compile workers left running would share the cores being timed.
        inductor_config.compile_threads = 1
    photos = photos_for(args)
    measured = matmul_tflops(device, side=1024 if args.size == "tiny" else 4096)
    peak, source = peak_of(device, args.peak_tflops, measured)
    print(f"device: {device_name(device)}; bf16 matmul {measured:.3g} TFLOP/s; peak for '% peak': "
          f"{f'{peak:.3g} TFLOP/s' if peak else 'n/a'} ({source}); {args.size} networks; batch {args.batch}, "
          f"{args.patch} px HR patches; {len(photos)} photos; {args.iters} timed iterations after 2 warm-up")
    header = ("stage", "loop", "data patches/s", "step patches/s", "loop patches/s", "data share", "TFLOP/s",
              "% peak", "vs old", "compile s")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|")
    with tempfile.TemporaryDirectory(prefix="sr-desk-throughput-") as work:
        for name in args.stages.split(","):
            if name not in STAGES:
                raise SystemExit(f"unknown stage {name!r}: {', '.join(STAGES)}")
            rows = measure_stage(name, photos, args, device, Path(work))
            base = next((r["whole"] for r in rows if r["loop"] == "old"), rows[0]["whole"])
            for r in rows:
                pct = f"{100 * r['tflops'] / peak:.1f}%" if peak else "n/a"
                print(f"| {r['stage']} | {r['loop']} | {r['data']:.4g} | {r['step']:.4g} | {r['whole']:.4g} | "
                      f"{100 * r['share']:.1f}% | {r['tflops']:.3g} | {pct} | {r['whole'] / base:.2f}x | "
                      f"{r['compile_s']:.0f} |", flush=True)
        for name in args.stages.split(",") if args.profile else ():
            print(f"\n{args.loops[-1]} loop, {name}: top operators by self time on {device_name(device)} "
                  f"({args.profile} iterations)\n")
            print(profile_loop(name, args.loops[-1], photos, args, device, Path(work)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
