"""Quality of the upscalers on held-out photos (4x, or --scale 2 or 3): PSNR, SSIM, LR-PSNR, detail, diversity and speed.

    python bench/quality.py --data ../shared/data/train [--split validation|all] [--limit N]
        [--crop 256] [--scale 4] [--weights FILE] [--methods bicubic,lanczos,srdiff-encoder,srdiff:dpm++2m:20,...]
        [--seeds 4] [--steps-sweep 5,10,20,50] [--color-lock off|on|both]
        [--device auto|cpu|cuda|mps] [--precision float32|bfloat16|auto] [--grid out.png] [--markdown]

What is measured, and how:

* Photos: by default exactly the held-out 10% of ``--data``
  (``split_holdout(list_images(data))``, by file name, the photos no trainer
  ever sees); ``--split all`` takes every photo. Each is loaded as training
  loads it (``load_photo(path, max_side=1536)``) and, for speed on a CPU, cut
  to a fixed central crop of ``--crop`` HR pixels (a multiple of 8 and of the
  scale, smaller when the photo is); ``--crop 0`` keeps the whole photo,
  trimmed to a multiple of the scale.
* Degradation: MATLAB-style bicubic 4x down, quantised to 8 bits
  (``sr_desk.training.data.degrade``), the SRDiff paper's setting.
* Every method runs through the real engine path (``PluginHost`` ->
  ``prepare`` -> ``run_job`` on a ``Worker``), so the numbers are what a user
  gets; outputs are rounded to 8 bits, as a saved PNG would be.
* PSNR and SSIM: on the Y channel of ITU-R BT.601 YCbCr
  (``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` for RGB in [0, 1], divided by
  255), with a border of 4 pixels (the scale) cropped, by
  ``sr_desk.core.metrics`` (the trainer's validation PSNR is the same
  function); SSIM through scikit-image (``data_range=1``, the Gaussian 11x11
  window, sigma 1.5, as Wang et al. and the MATLAB code SR papers use).
* LR-PSNR: the output taken back down with the same MATLAB-style bicubic, against
  the LR input, RGB, in dB: how consistent the result is with what it was given
  (``sr_desk.core.fidelity.lr_psnr``, the editor's compare view's number).
* detail: the mean gradient magnitude of the result's Y channel (central
  differences, border cropped) over that of the ground truth. PSNR rewards
  blur; this says how much of the photo's fine structure a result has:
  bicubic is about 0.5, the ground truth 1.0, above 1 is noise or invented
  texture. A diffusion model exists to restore detail, so both are shown.
* sigma (diversity, as in the SRDiff paper): for seeded methods, each image is
  upscaled with seeds 0..S-1; the per-pixel standard deviation over the S
  outputs (0-255 units), averaged over pixels and images. Their PSNR, SSIM and
  LR-PSNR are then the mean over the S seeds. Deterministic methods run once
  and have sigma 0.
* s/image: wall-clock seconds of one run (one seed) per image, after one
  untimed warm-up run of each method (model loading is not counted).

Perceptual metrics (LPIPS and the like) need pretrained network weights to be
downloaded, which this machine cannot do, so they are out of reach here.

``bench-bicubic-bp`` (a row to ask for in ``--methods``) is a reference
registered by this script, not a plugin: bicubic followed by three passes of
iterative back-projection, i.e. what LR consistency does with no model at all.

``--steps-sweep`` adds rows for the default sampler at those step counts and,
when the paper's 100-step ancestral sampler is in the run, prints the fewest
steps whose PSNR is within 0.2 dB and LR-PSNR within 1 dB of it. ``--color-lock
both`` adds a colour-locked twin of every SRDiff row. ``--grid FILE`` writes a
PNG of centre crops (LR, bicubic, encoder, DTLS, DoSSR, Diff-SR, SRDiff, ground truth) for up to
three photos.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sr_desk.api import hookimpl
from sr_desk.core import fidelity
from sr_desk.core.errors import SrDeskError
from sr_desk.core.imageio import ImageData
from sr_desk.core.matlab_resize import output_size
from sr_desk.core.metrics import detail_ratio, diversity, psnr_y, quantize8, ssim_y, to_unit
from sr_desk.training.data import centre_crops, degrade, list_images, load_photo, split_holdout
from sr_desk.diffusion.imresize import imresize

SCALE = 4
MAX_SIDE = 1536  # as training loads photos (load_photo / make-train-pack)
SRDIFF = "srdiff"
ENCODER = "srdiff-encoder"
DTLS = "dtls"
DOSSR = "dossr"
DIFFSR = "diffsr"
LDDPM = "lddpm"
#: DoSSR rows of the default run: the paper's three solver orders at 5 steps (the first is the app's default).
DOSSR_ROWS = ("dossr", "dossr:solver=dos-sde-2", "dossr:solver=dos-sde-1")
#: Diff-SR rows of the default run: LR consistency at every step (the app's default), at the end only, and
#: never (the paper's plain chain), all at the calibrated noise level.
DIFFSR_ROWS = ("diffsr", "diffsr:consistency=end", "diffsr:consistency=off")
#: LDDPM rows of the default run: four coarse steps with LR consistency (the app's default), and without.
LDDPM_ROWS = ("lddpm", "lddpm:lr_consistency=false")
PSNR_TOLERANCE_DB = 0.2  # the default-steps rule: PSNR within this of the 100-step sampler
LR_PSNR_TOLERANCE_DB = 1.0  # ... and LR-PSNR within this
GRID_ROWS = 3
GRID_CROP = 128
LPIPS_NOTE = (
    "Perceptual metrics (LPIPS) need downloaded network weights and are out of reach here; "
    "not reported."
)

#: Scales --scale accepts: the integer factors every compared method runs at.
SCALES = (2, 3, 4)

#: Positional fields of a method spec after the id: ``srdiff:SAMPLER:STEPS``.
POSITIONAL_PARAMS = ("sampler", "steps")


# -- metrics ---------------------------------------------------------------------


def downscale(image: np.ndarray, scale: int = SCALE) -> np.ndarray:
    """MATLAB-style bicubic down by ``scale`` (the degradation's own resize), clipped to [0, 1]; float32."""
    height, width = image.shape[:2]
    size = (output_size(width, 1.0 / scale), output_size(height, 1.0 / scale))
    return fidelity.downscale_to(to_unit(image).astype(np.float32), size)


def lr_psnr(sr: np.ndarray, lr: np.ndarray, scale: int = SCALE) -> float:
    """PSNR (dB, RGB) of ``sr`` taken back down to LR size against the LR input; ``inf`` when identical.

    The editor's compare view's number for the same pair (``sr_desk.core.fidelity.lr_psnr``).
    """
    down_size = (output_size(sr.shape[0], 1.0 / scale), output_size(sr.shape[1], 1.0 / scale))
    if down_size != lr.shape[:2]:
        raise ValueError(f"a {sr.shape[:2]} result shrinks by {scale} to {down_size}, not the LR's {lr.shape[:2]}")
    return fidelity.lr_psnr(to_unit(sr).astype(np.float32), to_unit(lr).astype(np.float32))


# -- method specs ----------------------------------------------------------------


@dataclass(frozen=True)
class MethodSpec:
    """One table row's method: ``id[:sampler[:steps]][:name=value...]``, optionally colour-locked.

    Values stay text here; they are typed by the method's own parameter
    declarations when the job is prepared, so any method's parameters work.
    """

    method_id: str
    params: tuple[tuple[str, str], ...] = ()
    color_lock: bool = False

    @property
    def param_dict(self) -> dict[str, str]:
        return dict(self.params)

    @property
    def label(self) -> str:
        """The spec written back canonically (positional sampler and steps, then name=value)."""
        values = self.param_dict
        parts = [self.method_id]
        positional = [name for name in POSITIONAL_PARAMS if name in values]
        if positional == list(POSITIONAL_PARAMS[: len(positional)]):
            parts += [values.pop(name) for name in positional]
        parts += [f"{name}={value}" for name, value in values.items()]
        return ":".join(parts) + (" +color-lock" if self.color_lock else "")

    def with_color_lock(self) -> MethodSpec:
        return replace(self, color_lock=True)


def parse_method_spec(text: str) -> MethodSpec:
    """Parse ``id[:sampler[:steps]][:name=value...]``.

    ``"srdiff:ddim:10:eta=0.5"`` gives method ``srdiff`` with sampler ``ddim``,
    steps ``10`` and eta ``0.5`` (as text).
    """
    parts = [p.strip() for p in text.strip().split(":")]
    method_id, fields = parts[0], parts[1:]
    if not method_id:
        raise ValueError(f"method spec {text!r} has no method id")
    params: dict[str, str] = {}
    positional = 0
    for item in fields:
        if not item:
            raise ValueError(f"method spec {text!r} has an empty field")
        name, sep, value = item.partition("=")
        if sep:
            name, value = name.strip(), value.strip()
            if not name or not value:
                raise ValueError(f"method spec {text!r}: expected NAME=VALUE, got {item!r}")
        else:
            if positional >= len(POSITIONAL_PARAMS):
                raise ValueError(
                    f"method spec {text!r}: at most {len(POSITIONAL_PARAMS)} positional fields "
                    f"({', '.join(POSITIONAL_PARAMS)}); give others as NAME=VALUE"
                )
            name, value = POSITIONAL_PARAMS[positional], item
            positional += 1
        if name in params:
            raise ValueError(f"method spec {text!r} gives {name!r} twice")
        params[name] = value
    return MethodSpec(method_id, tuple(params.items()))


def parse_method_list(text: str) -> list[MethodSpec]:
    specs = [parse_method_spec(item) for item in text.split(",") if item.strip()]
    if not specs:
        raise ValueError("no methods given")
    return specs


def default_srdiff() -> MethodSpec:
    from sr_desk_plugins.srdiff import DEFAULT_SAMPLER, DEFAULT_STEPS

    return MethodSpec(SRDIFF, (("sampler", DEFAULT_SAMPLER), ("steps", str(DEFAULT_STEPS))))


def default_methods() -> str:
    srdiff = [default_srdiff().label, "srdiff:ancestral:100"]
    return ",".join(["bicubic", "lanczos", BACK_PROJECTED_BICUBIC, ENCODER, DTLS, *DOSSR_ROWS, *DIFFSR_ROWS, *LDDPM_ROWS, *srdiff])


def expand_specs(specs: Sequence[MethodSpec], steps_sweep: Sequence[int], color_lock: str) -> list[MethodSpec]:
    """The rows to run: ``specs``, sweep rows for the default sampler, colour-locked twins; no duplicates."""
    sampler = default_srdiff().param_dict["sampler"]
    rows = list(specs) + [MethodSpec(SRDIFF, (("sampler", sampler), ("steps", str(n)))) for n in steps_sweep]
    if color_lock == "on":
        rows = [s.with_color_lock() if s.method_id == SRDIFF else s for s in rows]
    elif color_lock == "both":
        rows = [twin for s in rows for twin in ((s, s.with_color_lock()) if s.method_id == SRDIFF else (s,))]
    unique: list[MethodSpec] = []
    for spec in rows:
        if spec.label not in {u.label for u in unique}:
            unique.append(spec)
    return unique


# -- photos ----------------------------------------------------------------------


def select_images(data: Path, split: str = "validation", limit: int | None = None) -> list[Path]:
    """The photos to measure: the fixed hold-out (by file name) or all of them, in name order."""
    paths = list_images(data)
    if split == "validation":
        paths = split_holdout(paths)[1]
    elif split != "all":
        raise ValueError(f"unknown split {split!r} (validation or all)")
    if limit:
        paths = paths[:limit]
    return paths


def hr_lr_pair(photo: np.ndarray, crop: int, scale: int = SCALE) -> tuple[np.ndarray, np.ndarray]:
    """``(hr, lr)`` float32 H x W x 3 in [0, 1]: a central ``crop`` (0: the whole photo) and its degraded LR."""
    if crop:
        lr_t, hr_t = centre_crops([photo], crop, scale)
    else:
        h, w = photo.shape[:2]
        h, w = h - h % scale, w - w % scale
        if h < scale or w < scale:
            raise ValueError(f"a {photo.shape[1]}x{photo.shape[0]} photo is too small to degrade {scale}x")
        hr_t = torch.from_numpy(np.ascontiguousarray(photo[:h, :w])).permute(2, 0, 1)[None].float() / 255
        lr_t = degrade(hr_t, scale)
    to_np = lambda t: np.ascontiguousarray(t[0].permute(1, 2, 0).numpy(), dtype=np.float32)  # noqa: E731
    return to_np(hr_t), to_np(lr_t)


# -- running ---------------------------------------------------------------------


@dataclass
class RowResult:
    """Per-image numbers of one method (for seeded methods: already the mean over seeds)."""

    spec: MethodSpec
    resolved: dict[str, Any] = field(default_factory=dict)
    seeded: bool = False
    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    lr_psnr: list[float] = field(default_factory=list)
    detail: list[float] = field(default_factory=list)
    sigma: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # one entry per run (image x seed)
    error: str | None = None

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def count(self) -> int:
        return len(self.psnr)

    def mean(self, name: str) -> float:
        values = getattr(self, name)
        return float(np.mean(values)) if values else math.nan


BACK_PROJECTED_BICUBIC = "bench-bicubic-bp"


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

        return [
            Method(
                id=BACK_PROJECTED_BICUBIC,
                name="Bicubic + back-projection",
                task=Task.UPSCALE,
                run=_back_projected_bicubic,
                capabilities=Capabilities(scales=SCALES, default_scale=SCALE, tiles=False),
                description="bench reference: bicubic, then 3 passes of iterative back-projection",
            )
        ]


class Runner:
    """Runs method specs on LR images through the engine, as the app and the CLI do."""

    def __init__(self, weights: str | None = None, device: str = "auto", precision: str = "float32",
                 scale: int = SCALE, weights_dir: Path | None = None):
        from sr_desk.core.settings import Settings
        from sr_desk.engine.plugins import discover_plugins
        from sr_desk.engine.downloads import default_weights
        from sr_desk.engine.worker import Worker

        settings = Settings.load()
        self.host = discover_plugins(settings)  # as the app finds them, the user plugin folder included
        self.host.register(BenchReferences(), "bench-references")
        self.weights = str(weights) if weights else None
        self.scale = scale
        store = default_weights(settings.resolved_models_dir(), before=(weights_dir,) if weights_dir else ())
        self.worker = Worker(device=device, weights=store, precision=precision)
        self.warmed: set[str] = set()

    def close(self) -> None:
        self.worker.stop()

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def device_name(self) -> str:
        device = self.worker.device
        return f"{device.name}, {device.dtype}" if device is not None else "not started"

    def method(self, spec: MethodSpec):  # type: ignore[no-untyped-def]
        return self.host.method(spec.method_id)

    def job_spec(self, spec: MethodSpec, seed: int = 0):  # type: ignore[no-untyped-def]
        """The prepared ``JobSpec`` (parameters typed and validated by the method's declarations)."""
        from sr_desk.engine.pipeline import JobSpec, prepare

        method = self.method(spec)
        typed = method.param_set.parse_assignments([f"{k}={v}" for k, v in spec.params])
        return prepare(
            method,
            JobSpec(
                method_id=method.id,
                scale=self.scale,
                params=typed,
                seed=seed,
                color_lock=spec.color_lock,
                weights=self.weights if method.capabilities.weights else None,
            ),
        )

    def run(self, spec: MethodSpec, lr: np.ndarray, seed: int = 0, *, warm_up: bool = True) -> tuple[np.ndarray, float]:
        """``(output float32 H x W x 3 rounded to 8 bits, seconds)`` for one LR image and seed."""
        from sr_desk.engine.pipeline import run_job
        from sr_desk.engine.worker import JobState

        method = self.method(spec)
        if warm_up and spec.method_id not in self.warmed:
            self._warm_up(spec, lr)
        job_spec = self.job_spec(spec, seed)
        image = ImageData(rgb=lr)
        start = time.perf_counter()
        job = self.worker.submit(lambda ctx: run_job(image, method, job_spec, ctx), f"{spec.label} seed {seed}")
        try:
            while not job.wait(0.5):
                pass
        except KeyboardInterrupt:
            job.cancel()
            job.wait()
            raise
        seconds = time.perf_counter() - start
        if job.state is not JobState.FINISHED:
            raise SrDeskError(job.error or str(job.state.value))
        return quantize8(job.result.rgb), seconds

    def _warm_up(self, spec: MethodSpec, lr: np.ndarray) -> None:
        """One untimed run on a small corner (one step where the method has steps): loads the model."""
        self.warmed.add(spec.method_id)
        method = self.method(spec)
        params = {"steps": "1"} if method.param_set.get("steps") is not None else {}
        small = MethodSpec(spec.method_id, tuple(params.items()))
        corner = np.ascontiguousarray(lr[:16, :16])
        self.run(small, corner, seed=0, warm_up=False)


def evaluate(
    runner: Runner,
    specs: Sequence[MethodSpec],
    pairs: Sequence[tuple[str, np.ndarray, np.ndarray]],
    seeds: int,
    *,
    keep: int = 0,
    log=None,  # type: ignore[no-untyped-def]
) -> tuple[list[RowResult], dict[str, list[np.ndarray]]]:
    """Every spec on every ``(name, hr, lr)``; returns the rows and the seed-0 outputs of the first ``keep`` images.

    A method that fails is reported on its row (and skipped on the other
    images); the others go on.
    """
    rows: list[RowResult] = []
    kept: dict[str, list[np.ndarray]] = {}
    for spec in specs:
        row = RowResult(spec)
        rows.append(row)
        try:
            method = runner.method(spec)
            row.seeded = bool(method.capabilities.seeds)
            row.resolved = dict(runner.job_spec(spec).params)
        except (SrDeskError, ValueError) as exc:
            row.error = " ".join(str(exc).split())
            continue
        for index, (name, hr, lr) in enumerate(pairs):
            outputs = []
            try:
                for seed in range(seeds if row.seeded else 1):
                    out, seconds = runner.run(spec, lr, seed)
                    outputs.append(out)
                    row.seconds.append(seconds)
            except SrDeskError as exc:
                row.error = f"{name}: {' '.join(str(exc).split())}"
                break
            scale = runner.scale
            row.psnr.append(float(np.mean([psnr_y(o, hr, scale) for o in outputs])))
            row.ssim.append(float(np.mean([ssim_y(o, hr, scale) for o in outputs])))
            row.lr_psnr.append(float(np.mean([lr_psnr(o, lr, scale) for o in outputs])))
            row.detail.append(float(np.mean([detail_ratio(o, hr, scale) for o in outputs])))
            row.sigma.append(diversity(outputs))
            if index < keep:
                kept.setdefault(spec.label, []).append(outputs[0])
            if log is not None:
                log(f"{spec.label}: {name} PSNR {row.psnr[-1]:.2f} dB, {np.mean(row.seconds[-len(outputs):]):.2f} s")
        if row.error:
            row.psnr, row.ssim, row.lr_psnr, row.detail, row.sigma = [], [], [], [], []
    return rows, kept


# -- reporting -------------------------------------------------------------------

COLUMNS = ("method", "PSNR (dB)", "SSIM", "LR-PSNR (dB)", "detail", "sigma", "s/image", "images")


def _number(value: float, digits: int) -> str:
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"


def table_rows(rows: Sequence[RowResult]) -> list[list[str]]:
    out = []
    for row in rows:
        if row.error:
            out.append([row.label, "failed", "", "", "", "", "", "0"])
            continue
        out.append([
            row.label,
            _number(row.mean("psnr"), 2),
            _number(row.mean("ssim"), 4),
            _number(row.mean("lr_psnr"), 2),
            _number(row.mean("detail"), 2),
            _number(row.mean("sigma"), 2),
            _number(row.mean("seconds"), 3),
            str(row.count),
        ])
    return out


def format_table(rows: Sequence[RowResult], markdown: bool = False) -> str:
    """The results as an aligned plain-text table, or as a Markdown table for the README."""
    cells = table_rows(rows)
    if markdown:
        header = ["method", "PSNR (dB)", "SSIM", "LR-PSNR (dB)", "detail", "σ", "s/image", "images"]
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
        lines += ["| " + " | ".join([f"`{r[0]}`", *r[1:]]) + " |" for r in cells]
        return "\n".join(lines)
    widths = [max(len(line[i]) for line in [list(COLUMNS), *cells]) for i in range(len(COLUMNS))]

    def line(values: Sequence[str]) -> str:
        first = values[0].ljust(widths[0])
        rest = [v.rjust(w) for v, w in zip(values[1:], widths[1:])]
        return "  ".join([first, *rest]).rstrip()

    return "\n".join([line(COLUMNS), "  ".join("-" * w for w in widths), *(line(r) for r in cells)])


def _plain_srdiff(row: RowResult) -> bool:
    """An SRDiff row that sets only the sampler and the steps: every other parameter at its default."""
    return (
        row.spec.method_id == SRDIFF
        and not row.spec.color_lock
        and not row.error
        and set(row.spec.param_dict) <= set(POSITIONAL_PARAMS)
    )


def _is_reference(row: RowResult) -> bool:
    return _plain_srdiff(row) and row.resolved.get("sampler") == "ancestral"


def recommend_steps(rows: Sequence[RowResult]) -> str | None:
    """The default-steps rule, against the 100-step ancestral row; None when that row is not in the run."""
    reference = next((r for r in rows if _is_reference(r) and not r.error), None)
    if reference is None:
        return None
    sampler = default_srdiff().param_dict["sampler"]
    ref_psnr, ref_lr = reference.mean("psnr"), reference.mean("lr_psnr")
    candidates = sorted(
        (r for r in rows if _plain_srdiff(r) and r.resolved.get("sampler") == sampler),
        key=lambda r: int(r.resolved.get("steps", 0)),
    )
    rule = (
        f"the fewest {sampler} steps whose PSNR is within {PSNR_TOLERANCE_DB} dB and LR-PSNR within "
        f"{LR_PSNR_TOLERANCE_DB:g} dB of the 100-step ancestral sampler ({ref_psnr:.2f} dB, LR-PSNR {ref_lr:.2f} dB)"
    )
    if not candidates:
        return f"recommendation: no {sampler} rows to compare; add --steps-sweep to choose {rule}"
    for row in candidates:
        d_psnr, d_lr = row.mean("psnr") - ref_psnr, row.mean("lr_psnr") - ref_lr
        if abs(d_psnr) <= PSNR_TOLERANCE_DB and abs(d_lr) <= LR_PSNR_TOLERANCE_DB:
            return (
                f"recommendation: {sampler} with {row.resolved['steps']} steps, {rule}: "
                f"PSNR {d_psnr:+.2f} dB, LR-PSNR {d_lr:+.2f} dB against it"
            )
    tried = ", ".join(str(r.resolved["steps"]) for r in candidates)
    return f"recommendation: none of {sampler} {tried} steps meets the rule ({rule}); try more steps"


# -- grid ------------------------------------------------------------------------


def centre_box(height: int, width: int, size: int = GRID_CROP, scale: int = SCALE) -> tuple[int, int, int, int]:
    """``(y, x, h, w)`` of a central HR crop aligned to the LR grid."""
    h, w = min(size, height), min(size, width)
    h, w = h - h % scale, w - w % scale
    y = ((height - h) // 2) // scale * scale
    x = ((width - w) // 2) // scale * scale
    return y, x, h, w


def grid_columns(rows: Sequence[RowResult]) -> list[tuple[str, str]]:
    """``(title, row label)`` of the method columns: bicubic, each method's default, SRDiff's default sampler."""
    labels = {r.label for r in rows if not r.error}
    columns = []
    if "bicubic" in labels:
        columns.append(("bicubic", "bicubic"))
    if ENCODER in labels:
        columns.append(("SRDiff encoder", ENCODER))
    if DTLS in labels:
        columns.append(("DTLS", DTLS))
    if DOSSR in labels:
        columns.append(("DoSSR", DOSSR))
    if DIFFSR in labels:
        columns.append(("Diff-SR", DIFFSR))
    if LDDPM in labels:
        columns.append(("LDDPM", LDDPM))
    default = default_srdiff().label
    srdiff = [r.label for r in rows if r.spec.method_id == SRDIFF and not r.spec.color_lock and not r.error]
    if default in labels:
        columns.append((f"SRDiff {default.split(':', 1)[1]}", default))
    elif srdiff:
        columns.append((f"SRDiff {srdiff[0].partition(':')[2] or 'default'}", srdiff[0]))
    return columns


def write_grid(
    path: Path,
    pairs: Sequence[tuple[str, np.ndarray, np.ndarray]],
    kept: dict[str, list[np.ndarray]],
    rows: Sequence[RowResult],
    crop: int = GRID_CROP,
    scale: int = SCALE,
) -> None:
    """A PNG: one row per photo (at most three), columns LR (nearest), methods, ground truth; labelled."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    columns = grid_columns(rows)
    titles = [f"LR (nearest x{scale})", *(title for title, _ in columns), "ground truth"]
    shown = list(pairs[:GRID_ROWS])
    boxes = [centre_box(hr.shape[0], hr.shape[1], crop, scale) for _, hr, _ in shown]
    cell_h = max(b[2] for b in boxes)
    cell_w = max(max(b[3] for b in boxes), 120)
    label_h, pad = 16, 4
    width = pad + len(titles) * (cell_w + pad)
    height = label_h + len(shown) * (label_h + cell_h + pad) + pad
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    for c, title in enumerate(titles):
        draw.text((pad + c * (cell_w + pad), 2), title, fill="black", font=font)

    def u8(image: np.ndarray) -> Image.Image:
        return Image.fromarray(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8))

    for r, ((name, hr, lr), (y, x, h, w)) in enumerate(zip(shown, boxes)):
        top = label_h + r * (label_h + cell_h + pad)
        draw.text((pad, top + 2), f"{name} (centre {w}x{h} HR px)", fill="black", font=font)
        lr_crop = u8(lr[y // scale : (y + h) // scale, x // scale : (x + w) // scale])
        cells = [lr_crop.resize((w, h), Image.Resampling.NEAREST)]
        cells += [u8(kept[label][r][y : y + h, x : x + w]) for _, label in columns]
        cells.append(u8(hr[y : y + h, x : x + w]))
        for c, cell in enumerate(cells):
            canvas.paste(cell, (pad + c * (cell_w + pad), top + label_h))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


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
    parser.add_argument("--scale", type=int, choices=SCALES, default=SCALE,
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


def _swept(sweep, methods: str | None) -> list[str]:  # type: ignore[no-untyped-def]
    """The methods a Detail sweep runs: every one with the control, or those of them named in --methods."""
    ids = sweep.detail_methods(_upscalers())
    return [i for i in ids if i in methods.split(",")] if methods else ids


def _upscalers():  # type: ignore[no-untyped-def]
    """The installed upscale methods, as the app finds them."""
    from sr_desk.core.settings import Settings
    from sr_desk.engine.plugins import discover_plugins

    return discover_plugins(Settings.load()).methods("upscale")


def header_lines(args: argparse.Namespace, argv: Sequence[str], paths: Sequence[Path]) -> list[str]:
    crop = (
        f"a fixed central {args.crop}x{args.crop} HR crop of each photo (for speed on a CPU; smaller when the photo is)"
        if args.crop else f"whole photos, trimmed to a multiple of {args.scale}"
    )
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
    try:
        specs = (sweep.sweep_specs(_swept(sweep, args.methods), parse_method_spec, sweep.default_details(_upscalers()))
                 if sweep else
                 expand_specs(parse_method_list(args.methods or default_methods()), args.steps_sweep, args.color_lock))
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

    for line in header_lines(args, argv, paths):
        print(line)
    sys.stdout.flush()
    pairs = []
    for path in paths:
        hr, lr = hr_lr_pair(load_photo(path, max_side=MAX_SIDE), args.crop, args.scale)
        pairs.append((path.name, hr, lr))
    if sweep:  # the most textured photos first: their outputs are the ones kept for the crops
        order = sweep.most_textured(pairs, len(pairs))
        pairs = [pairs[i] for i in order]

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    with Runner(args.weights, args.device, args.precision, args.scale, args.weights_dir) as runner:
        rows, kept = evaluate(runner, specs, pairs, args.seeds, keep=GRID_ROWS if args.grid else 0, log=log)
        where = args.weights or (f"{args.weights_dir}, then installed" if args.weights_dir else "installed")
        print(f"device: {runner.device_name}; weights: {where}; "
              f"sizes: HR {' '.join(f'{hr.shape[1]}x{hr.shape[0]}' for _, hr, _ in pairs[:4])}"
              + (" ..." if len(pairs) > 4 else ""))
    print()
    print(format_table(rows, markdown=args.markdown))
    failed = [r for r in rows if r.error]
    for row in failed:
        print(f"{row.label} failed: {row.error}")
    advice = recommend_steps(rows)
    if advice:
        print()
        print(advice)
    if sweep:
        print()
        print("\n".join(sweep.summary_lines(rows)))
        if args.chart:
            sweep.write_chart(args.chart, rows)
            print(f"chart: {args.chart}")
        if args.grid:
            sweep.write_crops(args.grid, pairs, kept, _swept(sweep, args.methods))
            print(f"grid: {args.grid}")
    elif args.grid:
        write_grid(args.grid, pairs, kept, rows, scale=args.scale)
        print(f"grid: {args.grid}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
