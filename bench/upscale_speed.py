"""The whole 4x upscale, as the command line runs it, for every diffusion method: seconds, MP/s, peak memory.

    python bench/upscale_speed.py [--sizes 128,256,512] [--methods srdiff,dtls,...] [--devices cpu,cuda]
        [--precision float32|bfloat16|auto] [--baseline-sizes 128] [--markdown] [--profile]
        [--untuned-allocator] [--eager] [--process]

Each run is ``sr-desk upscale IN -o OUT.png --method M --scale 4`` called in
this process (``sr_desk.cli.main``): reading the file, tiling, the method's
whole pipeline (encoder, sampler, LR consistency), writing the PNG. The input
is a centre crop of a held-out photo of ``../shared/data/train`` (a seeded
random texture when it is missing). Each method is warmed up once on a small
image first, which loads the model and, on the CPU, builds or loads the native
Mish on the worker's thread as a user's first job does (neither is timed;
``--eager`` runs without the kernel). Ratios are to bicubic and to the
SRDiff paper's sampler (100 ancestral steps, float32) run in the same
process; that baseline runs at ``--baseline-sizes`` only and is scaled
linearly in output pixels elsewhere (marked "est."). Peak memory is the
process's peak resident set during the run (Linux VmHWM, reset through
``/proc/self/clear_refs``) and, on CUDA, torch's peak allocation.
``s/MP`` is seconds per output megapixel: flat across sizes means linear cost.

``--process`` also times what a user runs: the whole ``sr-desk upscale``
process (``python -m sr_desk``: interpreter start, imports, model load,
kernel load or build, the upscale, the PNG), *cold* in a fresh app folder
(``SR_DESK_HOME``: no built kernels, no settings) and *warm*, run again
in it. Beside them, the network of Real-ESRGAN x4plus (ESRGAN's RRDBNet, 23
blocks of 64 features, random weights of its shape) upscales the same image
in this process, its weights cast to bf16 once and channels-last as the
fastest CPU inference of it runs ("x ESRGAN": seconds over its seconds).

``--profile`` then upscales once more with the first method at the largest
size under torch's profiler and prints the top operators on the device and
on the host (and, on CUDA, the GPU's busy share of the wall time): where the
time goes. ``--untuned-allocator`` and ``--eager`` turn off the worker's
allocator setting and the native Mish, for their baselines.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "train"
SCALE = 4
METHODS = ("bicubic", "srdiff-encoder", "srdiff", "dtls", "dossr", "diffsr")
#: The SRDiff paper's sampler, the ratio's baseline.
PAPER = "srdiff:ancestral:100"


@dataclass
class Run:
    method: str
    device: str
    size: int
    seconds: float
    peak_mb: float
    gpu_peak_mb: float | None = None
    estimated: bool = False
    process_cold: float | None = None
    process_warm: float | None = None

    @property
    def output_mp(self) -> float:
        return (self.size * SCALE) ** 2 / 1e6


def test_image(size: int, folder: Path) -> Path:
    """A ``size`` px square PNG: the centre of the first held-out photo, or seeded texture without the data."""
    path = folder / f"input-{size}.png"
    if not path.exists():
        try:
            from sr_desk.training.data import list_images, load_photo, split_holdout

            photo = load_photo(split_holdout(list_images(DATA))[1][0])
            y, x = (photo.shape[0] - size) // 2, (photo.shape[1] - size) // 2
            pixels = photo[max(0, y) : max(0, y) + size, max(0, x) : max(0, x) + size]
        except (OSError, IndexError, ValueError):
            rng = np.random.default_rng(0)
            pixels = (np.kron(rng.random((size // 8, size // 8, 3)), np.ones((8, 8, 1))) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(path)
    return path


def reset_peak() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_mb() -> float:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024
    return math.nan


def split_method(spec: str) -> list[str]:
    """``srdiff:ancestral:100`` -> the CLI's ``--method srdiff --param sampler=ancestral --param steps=100``."""
    method, *rest = spec.split(":")
    args = ["--method", method]
    for name, value in zip(("sampler", "steps"), (r for r in rest if "=" not in r), strict=False):
        args += ["--param", f"{name}={value}"]
    for item in (r for r in rest if "=" in r):
        args += ["--param", item]
    return args


def upscale(spec: str, source: Path, out: Path, device: str, precision: str) -> tuple[float, float, float | None]:
    """``(seconds, peak RSS MB, CUDA peak MB)`` of one CLI upscale in this process."""
    from sr_desk.cli import main

    torch = sys.modules.get("torch")
    cuda = device == "cuda" and torch is not None and torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    reset_peak()
    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # the CLI's "wrote ..." lines; stdout is for the table
        code = main(["upscale", str(source), "-o", str(out), "--scale", str(SCALE), "--device", device,
                     "--precision", precision, "--seed", "0", "--force", *split_method(spec)])
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    if code != 0:
        raise RuntimeError(f"{spec} failed on {source.name} (exit {code})")
    return seconds, peak_mb(), (torch.cuda.max_memory_allocated() / 2**20 if cuda else None)


def process_seconds(spec: str, source: Path, out: Path, device: str, precision: str, home: Path) -> float:
    """Wall seconds of one whole ``sr-desk upscale`` process with its app folder (settings, caches) in ``home``."""
    env = {k: v for k, v in os.environ.items() if k not in ("TORCHINDUCTOR_CACHE_DIR", "SR_DESK_KERNEL_DIR")}
    env["SR_DESK_HOME"] = str(home)
    command = [sys.executable, "-m", "sr_desk", "upscale", str(source), "-o", str(out), "--scale", str(SCALE),
               "--device", device, "--precision", precision, "--seed", "0", "--force", *split_method(spec)]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"sr-desk upscale with {spec} failed (exit {done.returncode}): {done.stderr[-500:]}")
    return seconds


def cold_and_warm(spec: str, source: Path, out: Path, device: str, precision: str) -> tuple[float, float]:
    """The whole process in a fresh app folder (nothing built or cached yet), then again in the same one."""
    with tempfile.TemporaryDirectory(prefix="sr-desk-home-") as home:
        cold = process_seconds(spec, source, out, device, precision, Path(home))
        warm = process_seconds(spec, source, out, device, precision, Path(home))
    return cold, warm


#: The reference network: Real-ESRGAN x4plus is ESRGAN's RRDBNet with these sizes (16.7 M parameters).
ESRGAN = "real-esrgan-x4plus network"


def esrgan_seconds(source: Path, device: str) -> float:
    """Real-ESRGAN x4plus's network on ``source``, random weights of its shape, bf16 cast once, channels-last."""
    import torch

    from sr_desk_plugins.srdiff.config import SRDiffConfig
    from sr_desk_plugins.srdiff.network import RRDBNet

    dtype = torch.bfloat16 if device == "cuda" or _cpu_bf16() else torch.float32
    network = RRDBNet(SRDiffConfig(scale=SCALE, rrdb_nf=64, rrdb_nb=23, rrdb_gc=32)).eval().requires_grad_(False)
    network = network.to(device, dtype).to(memory_format=torch.channels_last)
    pixels = torch.from_numpy(np.asarray(Image.open(source).convert("RGB"), np.float32) / 255)
    lr = pixels.permute(2, 0, 1)[None].to(device, dtype).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        network.upscale(lr[..., :32, :32] * 2 - 1)  # warm-up: oneDNN's kernels for these shapes
        start = time.perf_counter()
        out = network.upscale(lr * 2 - 1).float().cpu()
    seconds = time.perf_counter() - start
    assert out.shape[-1] == lr.shape[-1] * SCALE
    return seconds


def _cpu_bf16() -> bool:
    from sr_desk.engine.devices import cpu_has_native_bf16

    return cpu_has_native_bf16()


def measure(methods: Sequence[str], sizes: Sequence[int], device: str, precision: str, baseline_sizes: Sequence[int],
            folder: Path, whole_process: bool = False) -> list[Run]:
    runs: list[Run] = []
    if whole_process:
        for size in sizes:
            runs.append(Run(ESRGAN, device, size, esrgan_seconds(test_image(size, folder), device), math.nan))
    warm = test_image(32, folder)  # its upscale loads the model and, on the worker's thread, the native Mish
    for spec in [*methods, *([PAPER] if baseline_sizes else [])]:
        upscale(split_steps(spec), warm, folder / "warm.png", device, precision)  # loads the model
        for size in sizes:
            if spec == PAPER and size not in baseline_sizes:
                continue
            seconds, peak, gpu = upscale(spec, test_image(size, folder), folder / "out.png", device, precision)
            run = Run(spec, device, size, seconds, peak, gpu)
            if whole_process and spec != PAPER:
                run.process_cold, run.process_warm = cold_and_warm(
                    spec, test_image(size, folder), folder / "out.png", device, precision)
            runs.append(run)
            print(f"{spec} {device} {size}: {seconds:.2f} s, peak {peak:.0f} MB"
                  + (f"; process {run.process_cold:.1f} s cold, {run.process_warm:.1f} s warm" if run.process_cold else ""),
                  file=sys.stderr, flush=True)
    measured = {r.size: r for r in runs if r.method == PAPER}
    if measured:
        base = max(measured.values(), key=lambda r: r.size)
        for size in sizes:
            if size not in measured:
                runs.append(Run(PAPER, device, size, base.seconds * (size / base.size) ** 2, math.nan, estimated=True))
    return runs


def profile_upscale(spec: str, size: int, device: str, precision: str, folder: Path, top: int = 15) -> str:
    """One more upscale under torch's profiler: the operators with the most self time on the device and on the host.

    On CUDA it also says how busy the GPU was: its kernels' total time over
    the wall time. What is left is the host (launches, syncs, copies, Python).
    """
    import torch
    from torch.profiler import ProfilerActivity, profile

    cuda = device == "cuda"
    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]
    # The method runs on the worker's thread, which torch's profiler leaves out unless told.
    config = torch._C._profiler._ExperimentalConfig(profile_all_threads=True, enable_cuda_sync_events=cuda)
    with profile(activities=activities, experimental_config=config) as prof:
        seconds, _, _ = upscale(spec, test_image(size, folder), folder / "out.png", device, precision)
    averages = prof.key_averages()
    lines = [f"profile of {spec} on {device} at {size} px: {seconds:.2f} s under the profiler"]
    if cuda:
        busy = sum(a.self_device_time_total for a in averages) / 1e6
        lines.append(f"GPU kernels: {busy:.2f} s, {busy / seconds:.0%} of the wall time")
        lines.append(averages.table(sort_by="self_device_time_total", row_limit=top, max_name_column_width=60))
    lines.append(averages.table(sort_by="self_cpu_time_total", row_limit=top, max_name_column_width=60))
    return "\n".join(lines)


def split_steps(spec: str) -> str:
    """The warm-up's spec: one step where the method has steps (loading is what it is for)."""
    method = spec.split(":")[0]
    return f"{method}:steps=1" if method in ("srdiff", "dossr", "diffsr") else method


def table(runs: Sequence[Run], markdown: bool) -> str:
    header = ["method", "device", "input", "seconds", "out MP/s", "s/MP", "peak MB", "x bicubic", "x faster than paper"]
    process = any(r.process_cold is not None for r in runs)
    if process:
        header += ["process cold s", "process warm s", "x ESRGAN cold / warm"]
    rows = []
    for run in runs:
        if run.method == PAPER and run.estimated:
            continue
        same = {r.method: r for r in runs if r.size == run.size and r.device == run.device}
        bicubic, paper, esrgan = same.get("bicubic"), same.get(PAPER), same.get(ESRGAN)
        row = [
            run.method, run.device, f"{run.size}px", f"{run.seconds:.2f}", f"{run.output_mp / run.seconds:.3f}",
            f"{run.seconds / run.output_mp:.2f}",
            (f"{run.peak_mb:.0f}" if not math.isnan(run.peak_mb) else "")
            + (f" (GPU {run.gpu_peak_mb:.0f})" if run.gpu_peak_mb is not None else ""),
            f"{run.seconds / bicubic.seconds:.0f}" if bicubic else "",
            (f"{paper.seconds / run.seconds:.1f}" + (" (est.)" if paper.estimated else "")) if paper else "",
        ]
        if process:
            timed = run.process_cold is not None and run.process_warm is not None
            row += [f"{run.process_cold:.1f}" if timed else "", f"{run.process_warm:.1f}" if timed else "",
                    f"{run.process_cold / esrgan.seconds:.1f} / {run.process_warm / esrgan.seconds:.1f}"
                    if timed and esrgan else ""]
        rows.append(row)
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in [header, *rows])


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/upscale_speed.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=_ints, default=[128, 256, 512], help="input sides in px (default 128,256,512)")
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated (default {','.join(METHODS)})")
    p.add_argument("--devices", default=None, help="comma-separated: cpu, cuda (default: cpu, and cuda when present)")
    p.add_argument("--precision", choices=("float32", "bfloat16", "auto"), default="auto")
    p.add_argument("--baseline-sizes", type=_ints, default=[128],
                   help="sizes at which the paper's 100-step sampler really runs (elsewhere: scaled, est.; "
                   "empty: no baseline)")
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--untuned-allocator", action="store_true",
                   help="leave glibc's allocator as it is (the worker reuses freed blocks otherwise): the baseline "
                   "for that setting, run in a second process since it cannot be undone in one")
    p.add_argument("--profile", action="store_true",
                   help="then profile the first method at the largest size once and print its top operators")
    p.add_argument("--eager", action="store_true", help="no native kernels (SR_DESK_COMPILE=0: eager Mish)")
    p.add_argument("--process", action="store_true",
                   help="also time the whole `sr-desk upscale` process, cold (fresh app folder) and warm, and "
                   "Real-ESRGAN x4plus's network on the same images")
    args = p.parse_args(argv)
    if args.untuned_allocator:
        from sr_desk.core import allocator

        allocator._tuned = False
    if args.eager:
        from sr_desk.diffusion.mish import COMPILE_ENV

        os.environ[COMPILE_ENV] = "0"
    import torch

    devices = args.devices.split(",") if args.devices else ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="sr-desk-speed-") as tmp:
        for device in devices:
            runs += measure([m for m in args.methods.split(",") if m], args.sizes, device, args.precision,
                            args.baseline_sizes, Path(tmp), whole_process=args.process)
    name = torch.cuda.get_device_name() if "cuda" in devices else f"CPU, {torch.get_num_threads()} threads"
    print(f"command: python bench/upscale_speed.py {' '.join(argv or sys.argv[1:])}")
    print(f"device: {name}; torch {torch.__version__}; precision {args.precision}; x{SCALE}")
    print(table(runs, args.markdown))
    if args.profile:
        with tempfile.TemporaryDirectory(prefix="sr-desk-profile-") as tmp:
            print(profile_upscale(args.methods.split(",")[0], max(args.sizes), devices[-1], args.precision, Path(tmp)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
