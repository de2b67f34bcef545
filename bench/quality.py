"""Quality of the upscalers on held-out photos (4x, or --scale 2 or 3): PSNR, SSIM, LR-PSNR, detail, diversity and speed.

    python bench/quality.py --data ../shared/data/train [--methods bicubic,srdiff:dpm++2m:20,...] [--markdown] ...
    python bench/quality.py --data ../shared/data/train --sweep detail [--chart chart.png] [--grid crops.png]

What is measured, and how, is :mod:`sr_desk.engine.evaluation`; the table and the grid are
:mod:`sr_desk.engine.evaluation_report`. This script holds the bench's choices: the default rows, the reference
``bench-bicubic-bp`` (registered here, not a plugin: bicubic followed by three passes of iterative back-projection,
i.e. what LR consistency does with no model at all), the default-steps rule of ``--steps-sweep`` (the fewest steps
of the default sampler within 0.2 dB PSNR and 1 dB LR-PSNR of the paper's 100-step ancestral sampler) and the
columns of ``--grid``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from sr_desk.api import hookimpl
from sr_desk.diffusion.imresize import imresize
from sr_desk.engine.evaluation import (DEFAULT_SCALE, MAX_SIDE, POSITIONAL_PARAMS, MethodSpec, RowResult, Runner,
                                       evaluate, installed_upscalers, load_pairs, parse_method_list, parse_method_spec,
                                       select_images)
from sr_desk.engine.evaluation_report import GRID_ROWS, format_table, write_grid

SRDIFF = "srdiff"
ENCODER = "srdiff-encoder"
#: DoSSR rows of the default run: the paper's three solver orders at 5 steps (the first is the app's default).
DOSSR_ROWS = ("dossr", "dossr:solver=dos-sde-2", "dossr:solver=dos-sde-1")
#: Diff-SR rows of the default run: LR consistency at every step (the app's default), at the end only, and
#: never (the paper's plain chain), all at the calibrated noise level.
DIFFSR_ROWS = ("diffsr", "diffsr:consistency=end", "diffsr:consistency=off")
#: LDDPM rows of the default run: four coarse steps with LR consistency (the app's default), and without.
LDDPM_ROWS = ("lddpm", "lddpm:lr_consistency=false")
#: The grid's method columns, in order, each a method's default row under its title; then SRDiff's (grid_columns).
GRID_TITLES = {"bicubic": "bicubic", ENCODER: "SRDiff encoder", "dtls": "DTLS", "dossr": "DoSSR", "diffsr": "Diff-SR",
               "lddpm": "LDDPM"}
PSNR_TOLERANCE_DB = 0.2  # the default-steps rule: PSNR within this of the 100-step sampler
LR_PSNR_TOLERANCE_DB = 1.0  # ... and LR-PSNR within this
LPIPS_NOTE = "Perceptual metrics (LPIPS) need downloaded network weights and are out of reach here; not reported."
BACK_PROJECTED_BICUBIC = "bench-bicubic-bp"
#: Scales --scale accepts: the integer factors every compared method runs at.
SCALES = (2, 3, 4)


# -- the rows --------------------------------------------------------------------
def default_srdiff() -> MethodSpec:
    from sr_desk_plugins.srdiff import DEFAULT_SAMPLER, DEFAULT_STEPS

    return MethodSpec(SRDIFF, (("sampler", DEFAULT_SAMPLER), ("steps", str(DEFAULT_STEPS))))


def default_methods() -> str:
    srdiff = [default_srdiff().label, "srdiff:ancestral:100"]
    return ",".join(["bicubic", "lanczos", BACK_PROJECTED_BICUBIC, ENCODER, "dtls", *DOSSR_ROWS, *DIFFSR_ROWS,
                     *LDDPM_ROWS, *srdiff])


def expand_specs(specs: Sequence[MethodSpec], steps_sweep: Sequence[int], color_lock: str) -> list[MethodSpec]:
    """The rows to run: ``specs``, sweep rows for the default sampler, colour-locked twins; no duplicates."""
    sampler = default_srdiff().param_dict["sampler"]
    rows = list(specs) + [MethodSpec(SRDIFF, (("sampler", sampler), ("steps", str(n)))) for n in steps_sweep]
    if color_lock == "on":
        rows = [s.with_color_lock() if s.method_id == SRDIFF else s for s in rows]
    elif color_lock == "both":
        rows = [twin for s in rows for twin in ((s, s.with_color_lock()) if s.method_id == SRDIFF else (s,))]
    return [spec for i, spec in enumerate(rows) if spec.label not in {r.label for r in rows[:i]}]


def _back_projected_bicubic(request, context):  # type: ignore[no-untyped-def]
    """MATLAB bicubic then three back-projection passes: what LR consistency alone gives, with no model."""
    from sr_desk.diffusion.consistency import back_project

    scale = int(request.scale)
    lr = torch.from_numpy(np.ascontiguousarray(request.image)).permute(2, 0, 1)[None]
    out = back_project(imresize(lr, scale=float(scale)), lr, scale, iterations=3)
    context.report(1, 1)
    return np.ascontiguousarray(out[0].permute(1, 2, 0).numpy(), dtype=np.float32)


class BenchReferences:
    """Reference rows that are not plugins, registered in-process so they run through the same engine path."""

    SR_DESK_API_VERSION = "1.1"

    @staticmethod
    @hookimpl
    def sr_desk_methods():  # type: ignore[no-untyped-def]
        from sr_desk.api import Capabilities, Method, Task

        capabilities = Capabilities(scales=SCALES, default_scale=DEFAULT_SCALE, tiles=False)
        return [Method(id=BACK_PROJECTED_BICUBIC, name="Bicubic + back-projection", task=Task.UPSCALE,
                       run=_back_projected_bicubic, capabilities=capabilities,
                       description="bench reference: bicubic, then 3 passes of iterative back-projection")]


def _plain_srdiff(row: RowResult) -> bool:
    """An SRDiff row that sets only the sampler and the steps: every other parameter at its default."""
    spec = row.spec
    return (spec.method_id == SRDIFF and not spec.color_lock and not row.error
            and set(spec.param_dict) <= set(POSITIONAL_PARAMS))


def recommend_steps(rows: Sequence[RowResult]) -> str | None:
    """The default-steps rule, against the 100-step ancestral row; None when that row is not in the run."""
    reference = next((r for r in rows if _plain_srdiff(r) and r.resolved.get("sampler") == "ancestral"), None)
    if reference is None:
        return None
    sampler = default_srdiff().param_dict["sampler"]
    ref_psnr, ref_lr = reference.mean("psnr"), reference.mean("lr_psnr")
    candidates = sorted((r for r in rows if _plain_srdiff(r) and r.resolved.get("sampler") == sampler),
                        key=lambda r: int(r.resolved.get("steps", 0)))
    rule = (f"the fewest {sampler} steps whose PSNR is within {PSNR_TOLERANCE_DB} dB and LR-PSNR within "
            f"{LR_PSNR_TOLERANCE_DB:g} dB of the 100-step ancestral sampler ({ref_psnr:.2f} dB, LR-PSNR {ref_lr:.2f} dB)")
    if not candidates:
        return f"recommendation: no {sampler} rows to compare; add --steps-sweep to choose {rule}"
    for row in candidates:
        d_psnr, d_lr = row.mean("psnr") - ref_psnr, row.mean("lr_psnr") - ref_lr
        if abs(d_psnr) <= PSNR_TOLERANCE_DB and abs(d_lr) <= LR_PSNR_TOLERANCE_DB:
            return (f"recommendation: {sampler} with {row.resolved['steps']} steps, {rule}: "
                    f"PSNR {d_psnr:+.2f} dB, LR-PSNR {d_lr:+.2f} dB against it")
    tried = ", ".join(str(r.resolved["steps"]) for r in candidates)
    return f"recommendation: none of {sampler} {tried} steps meets the rule ({rule}); try more steps"


def grid_columns(rows: Sequence[RowResult]) -> list[tuple[str, str]]:
    """``(title, row label)`` of the method columns: bicubic, each method's default, SRDiff's default sampler."""
    labels = {r.label for r in rows if not r.error}
    columns = [(title, method_id) for method_id, title in GRID_TITLES.items() if method_id in labels]
    default = default_srdiff().label
    srdiff = [r.label for r in rows if r.spec.method_id == SRDIFF and not r.spec.color_lock and not r.error]
    if default in labels:
        columns.append((f"SRDiff {default.split(':', 1)[1]}", default))
    elif srdiff:
        columns.append((f"SRDiff {srdiff[0].partition(':')[2] or 'default'}", srdiff[0]))
    return columns


# -- command line ----------------------------------------------------------------
def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"step counts must be positive, got {text!r}")
    return values


def _crop(text: str) -> int:
    value = int(text)
    multiple = 8  # at --scale 3 the crop is further rounded down to a multiple of 24 (centre_crops)
    if value < 0 or value % multiple:
        raise argparse.ArgumentTypeError(f"--crop must be 0 or a positive multiple of {multiple}, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/quality.py",
        description="PSNR, SSIM, LR-PSNR, diversity and speed of the upscalers on held-out photos.",
        epilog=LPIPS_NOTE,
    )
    parser.add_argument("--data", type=Path, required=True, help="folder of HR photos (e.g. ../shared/data/train)")
    parser.add_argument("--split", choices=("validation", "all"), default="validation",
                        help="validation: the fixed 10%% hold-out by file name (default); all: every photo")
    parser.add_argument("--limit", type=int, default=None, help="at most N photos (in name order)")
    parser.add_argument("--crop", type=_crop, default=256,
                        help="central HR crop side per photo, a multiple of 8 (default 256); 0: the whole photo")
    parser.add_argument("--scale", type=int, choices=SCALES, default=DEFAULT_SCALE,
                        help="the upscale factor (default 4, the SRDiff paper's; the LR is the HR shrunk by it)")
    parser.add_argument("--weights", type=Path, default=None, help="SRDiff weights file (default: the installed ones)")
    parser.add_argument("--weights-dir", type=Path, default=None,
                        help="a folder of weights files under the shipped names (srdiff-x4.safetensors, ...) "
                        "that every method takes before the shipped ones: newly trained candidates")
    parser.add_argument("--methods", default=None,
                        help=f"comma-separated METHOD[:SAMPLER[:STEPS]][:NAME=VALUE...] (default {default_methods()})")
    parser.add_argument("--seeds", type=int, default=4, help="seeds 0..S-1 for seeded methods (default 4)")
    parser.add_argument("--steps-sweep", type=_int_list, default=[],
                        help="add SRDiff rows for the default sampler at these step counts, e.g. 5,10,20,50")
    parser.add_argument("--color-lock", choices=("off", "on", "both"), default="off",
                        help="colour lock on SRDiff rows: off (default), on, or both (a locked twin of each)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    parser.add_argument("--precision", choices=("float32", "bfloat16", "auto"), default="float32",
                        help="compute precision of the worker (default float32)")
    parser.add_argument("--grid", type=Path, default=None, help="write a PNG grid of centre crops here")
    parser.add_argument("--sweep", choices=("detail",), default=None,
                        help="detail: every method with the Detail control at Detail 0, 0.25, 0.5, 0.75 and 1, with "
                        "bicubic, the no-model reference and the methods without it (--methods: only those named); --grid "
                        "then shows the three most textured photos at Detail 0, 0.5 and 1")
    parser.add_argument("--chart", type=Path, default=None,
                        help="with --sweep detail: write the perception-distortion chart (PSNR vs detail) here")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown for the README")
    return parser


def _detail_sweep():  # type: ignore[no-untyped-def]
    """``bench/detail_sweep.py``, loaded beside this script however this script was loaded."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("sr_desk_bench_detail_sweep", Path(__file__).with_name("detail_sweep.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def header_lines(args: argparse.Namespace, argv: Sequence[str], paths: Sequence[Path]) -> list[str]:
    crop = (f"a fixed central {args.crop}x{args.crop} HR crop of each photo (for speed on a CPU; smaller when the photo is)"
            if args.crop else f"whole photos, trimmed to a multiple of {args.scale}")
    return [
        "command: python bench/quality.py " + shlex.join(argv),
        f"photos: {len(paths)} from {args.data} (split {args.split}"
        + (": the fixed 10% hold-out by file name" if args.split == "validation" else "")
        + f"), loaded with load_photo(max_side={MAX_SIDE}); {crop}",
        "images: " + ", ".join(p.name for p in paths),
        f"degradation: MATLAB-style bicubic {args.scale}x down, quantised to 8 bits; outputs rounded to 8 bits",
        f"PSNR/SSIM: Y of BT.601 YCbCr, {args.scale}-px border cropped (sr_desk.core.metrics, data_range 1; "
        "SSIM by scikit-image, Gaussian sigma 1.5); LR-PSNR: output bicubic-downscaled (MATLAB-style) vs LR input, "
        "RGB, as the editor's compare",
        f"seeded methods: seeds 0..{args.seeds - 1}; their PSNR/SSIM/LR-PSNR are the mean over the seeds; "
        f"sigma = per-pixel std over the seeds (0-255), averaged (0 for deterministic methods)",
        "detail: mean gradient magnitude of the output's Y over the ground truth's (border cropped; 1 = as detailed)",
        "s/image: seconds per run (one seed) through the engine, after an untimed warm-up",
        LPIPS_NOTE,
    ]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.seeds < 1:
        raise SystemExit("bench/quality.py: --seeds must be at least 1")
    sweep = _detail_sweep() if args.sweep == "detail" else None
    swept: list[str] = []
    try:
        if sweep:
            upscalers = installed_upscalers()  # discovered once: the rows, the defaults and the crops need them
            named = args.methods.split(",") if args.methods else None  # --methods: only these are swept
            swept = [i for i in sweep.detail_methods(upscalers) if named is None or i in named]
            specs = sweep.sweep_specs(swept, parse_method_spec, sweep.default_details(upscalers))
        else:
            specs = expand_specs(parse_method_list(args.methods or default_methods()), args.steps_sweep,
                                 args.color_lock)
    except ValueError as exc:
        raise SystemExit(f"bench/quality.py: {exc}") from None
    if not args.data.is_dir():
        raise SystemExit(f"bench/quality.py: no folder {args.data}")
    paths = select_images(args.data, args.split, args.limit)
    if not paths:
        raise SystemExit(f"bench/quality.py: no photos in {args.data} for split {args.split}")
    if args.weights is not None and not args.weights.is_file():
        raise SystemExit(f"bench/quality.py: weights file {args.weights} does not exist")
    if args.weights_dir is not None and not args.weights_dir.is_dir():
        raise SystemExit(f"bench/quality.py: no folder {args.weights_dir}")

    print("\n".join(header_lines(args, argv, paths)), flush=True)
    pairs = load_pairs(paths, args.crop, args.scale)
    if sweep:  # the most textured photos first: their outputs are the ones kept for the crops
        pairs = [pairs[i] for i in sweep.most_textured(pairs, len(pairs))]
    references = [(BenchReferences(), "bench-references")]
    with Runner(args.weights, args.device, args.precision, args.scale, args.weights_dir, references) as runner:
        rows, kept = evaluate(runner, specs, pairs, args.seeds, keep=GRID_ROWS if args.grid else 0,
                              log=lambda message: print(message, file=sys.stderr, flush=True))
        where = args.weights or (f"{args.weights_dir}, then installed" if args.weights_dir else "installed")
        print(f"device: {runner.device_name}; weights: {where}; "
              f"sizes: HR {' '.join(f'{hr.shape[1]}x{hr.shape[0]}' for _, hr, _ in pairs[:4])}"
              + (" ..." if len(pairs) > 4 else ""))
    print("\n" + format_table(rows, markdown=args.markdown))
    failed = [r for r in rows if r.error]
    for row in failed:
        print(f"{row.label} failed: {row.error}")
    advice = recommend_steps(rows)
    if advice:
        print("\n" + advice)
    if sweep:
        print("\n" + "\n".join(sweep.summary_lines(rows)))
        if args.chart:
            sweep.write_chart(args.chart, rows)
            print(f"chart: {args.chart}")
        if args.grid:
            sweep.write_crops(args.grid, pairs, kept, swept)
            print(f"grid: {args.grid}")
    elif args.grid:
        write_grid(args.grid, pairs, kept, grid_columns(rows), scale=args.scale)
        print(f"grid: {args.grid}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
