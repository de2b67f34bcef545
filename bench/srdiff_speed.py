"""SRDiff speed on this machine: per denoiser step and per whole upscale, default sampler vs the paper's.

    python bench/srdiff_speed.py [--sizes 64 128] [--full]

The model is the paper's 4x configuration (13.2 M parameters) with seeded
random weights: speed does not depend on the weights. The baseline is the
paper's sampler as the official code runs it: 100 ancestral steps, float32,
eager, the condition projection recomputed at every step. Everything is
timed in this one process, and the ratios are against that baseline.
Peak memory is the process's peak resident set during each run (Linux
VmHWM, reset before each run through /proc/self/clear_refs).

Without ``--full``, the 100-step baseline's whole-upscale time at sizes above
64 is estimated as encoder + 100 x (measured step + condition projection),
marked "est."; ``--full`` runs it (about 8 minutes at 128 on 2 cores).
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import torch

from sr_desk.diffusion.noise import SeededNoise
from sr_desk.diffusion.samplers import make_sampler
from sr_desk.diffusion.schedule import cosine_schedule
from sr_desk_plugins.srdiff import DEFAULT_SAMPLER, DEFAULT_STEPS
from sr_desk_plugins.srdiff import methods
from sr_desk_plugins.srdiff.config import SRDiffConfig
from sr_desk_plugins.srdiff.network import SRDiffModel


class BenchContext:
    device = "cpu"
    weights = None
    cancelled = False

    def __init__(self, dtype: str = "float32"):
        self.dtype = dtype

    def report(self, *args: object, **kwargs: object) -> None:
        pass

    def check_cancelled(self) -> None:
        pass


def reset_peak() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed(fn: Callable[[], object], repeats: int = 1) -> tuple[float, float]:
    """(seconds per call, peak MB) after one warm-up call."""
    fn()
    reset_peak()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats, peak_mb()


def build(channels_last: bool) -> methods.LoadedModel:
    torch.manual_seed(0)
    config = SRDiffConfig(scale=4)
    model = SRDiffModel(config).eval().requires_grad_(False)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return methods.LoadedModel(model.rrdb, model.denoise_fn, config, cosine_schedule(), False, "random")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128], help="LR sides")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="steps of the default sampler")
    parser.add_argument("--full", action="store_true", help="run the 100-step baseline at every size")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; default sampler "
          f"{DEFAULT_SAMPLER} {args.steps} steps")
    header = f"{'LR':>5} {'run':<48}{'s/step':>8}{'s/image':>10}{'x faster':>9}{'peak MB':>9}"
    print(header)
    for side in args.sizes:
        lr = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(side))
        rows = []
        base = build(channels_last=False)
        cond = methods.condition(base, lr)
        raw_cond = base.encoder.encode(lr * 2 - 1)
        x = torch.randn_like(cond.up)
        unet = base.unet

        def paper_step(x_t: torch.Tensor, index: int) -> torch.Tensor:
            # As the official code: the condition projection recomputed inside every step.
            return unet(x_t, index, unet.project_condition(raw_cond))

        def paper_upscale() -> torch.Tensor:
            c = methods.condition(base, lr)
            sampler = make_sampler("ancestral", base.schedule)
            noise = SeededNoise(0)
            return sampler.sample(paper_step, noise(c.up.shape, device="cpu", dtype=torch.float32), generator=noise)

        with torch.no_grad():
            step_base, mem_base = timed(lambda: paper_step(x, 50), repeats=3)
            encode_s, _ = timed(lambda: methods.condition(base, lr))
            if side <= 64 or args.full:
                image_base, mem_image = timed(paper_upscale)
                note = ""
            else:
                image_base, mem_image, note = encode_s + 100 * step_base, mem_base, " (est.)"
        rows.append(("ancestral x100, fp32, cond recomputed (paper)", step_base, image_base, mem_image, note))

        params = {"sampler": DEFAULT_SAMPLER, "steps": args.steps}
        # The plugin's own path: condition cached, channels-last, float32 or bf16 autocast.
        for precision in ("float32", "bfloat16"):
            loaded = build(channels_last=True)
            xin = x.contiguous(memory_format=torch.channels_last)
            c = methods.condition(loaded, lr)
            amp = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bfloat16" else contextlib.nullcontext()
            with torch.no_grad():
                with amp:
                    step_s, _ = timed(lambda: loaded.unet(xin, 50, c.projected), repeats=3)
                image_s, mem = timed(
                    lambda: methods.super_resolve(loaded, lr, params, SeededNoise(0), BenchContext(precision))
                )
            rows.append((f"{DEFAULT_SAMPLER} x{args.steps}, {precision}, channels-last, cached", step_s, image_s, mem, ""))
        for label, step_s, image_s, mem, note in rows:
            print(f"{side:>5} {label:<48}{step_s:8.3f}{image_s:10.2f}{rows[0][2] / image_s:9.1f}{mem:9.0f}{note}")


if __name__ == "__main__":
    main()
