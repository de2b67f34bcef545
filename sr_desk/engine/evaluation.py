"""Upscalers measured on held-out photos through the real engine path: the library of ``bench/quality.py``.

What is measured, and how:

* Photos: by default exactly the held-out 10% of a folder
  (``split_holdout(list_images(data))``, by file name, the photos no trainer
  ever sees); the split ``all`` takes every photo. Each is loaded as training
  loads it (``load_photo(path, max_side=MAX_SIDE)``) and, for speed on a CPU,
  cut to a fixed central crop of ``crop`` HR pixels (a multiple of 8 and of
  the scale, smaller when the photo is); a crop of 0 keeps the whole photo,
  trimmed to a multiple of the scale.
* Degradation: MATLAB-style bicubic down by the scale, quantised to 8 bits
  (``sr_desk.training.data.degrade``), the SRDiff paper's setting.
* Every method runs through the real engine path (``PluginHost`` ->
  ``prepare`` -> ``job_work`` on a ``Worker``, as the editor and the CLI), so the numbers are what a user
  gets; outputs are rounded to 8 bits, as a saved PNG would be.
* PSNR and SSIM: on the Y channel of ITU-R BT.601 YCbCr
  (``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` for RGB in [0, 1], divided by
  255), with a border of the scale's width cropped, by
  ``sr_desk.core.metrics`` (the trainer's validation PSNR is the same
  function); SSIM through scikit-image (``data_range=1``, the Gaussian 11x11
  window, sigma 1.5, as Wang et al. and the MATLAB code SR papers use).
* LR-PSNR: the output taken back down with the same MATLAB-style bicubic,
  against the LR input, RGB, in dB: how consistent the result is with what it
  was given (``sr_desk.core.fidelity.lr_psnr``, the editor's compare view's
  number).
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

The table and the crop grid are :mod:`sr_desk.engine.evaluation_report`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sr_desk.api import Method
from sr_desk.core import fidelity
from sr_desk.core.errors import SrDeskError
from sr_desk.core.imageio import ImageData
from sr_desk.core.matlab_resize import output_size
from sr_desk.core.metrics import detail_ratio, diversity, psnr_y, quantize8, ssim_y, to_unit
from sr_desk.core.settings import Settings
from sr_desk.engine.downloads import default_weights
from sr_desk.engine.job_work import job_work
from sr_desk.engine.pipeline import JobSpec, prepare
from sr_desk.engine.plugins import discover_plugins
from sr_desk.engine.worker import JobState, Worker
from sr_desk.training.data import centre_crops, degrade, list_images, load_photo, split_holdout

__all__ = ["DEFAULT_SCALE", "MAX_SIDE", "POSITIONAL_PARAMS", "MethodSpec", "Pair", "RowResult", "Runner", "evaluate",
           "hr_lr_pair", "installed_upscalers", "load_pairs", "lr_psnr", "parse_method_list", "parse_method_spec",
           "select_images"]

DEFAULT_SCALE = 4  # the SRDiff paper's
MAX_SIDE = 1536  # as training loads photos (load_photo / make-train-pack)

#: Positional fields of a method spec after the id: ``srdiff:SAMPLER:STEPS``.
POSITIONAL_PARAMS = ("sampler", "steps")

#: ``(name, hr, lr)``: a photo's name, its HR crop and the LR the methods are given (float32 H x W x 3 in [0, 1]).
Pair = tuple[str, np.ndarray, np.ndarray]


def lr_psnr(sr: np.ndarray, lr: np.ndarray, scale: int = DEFAULT_SCALE) -> float:
    """PSNR (dB, RGB) of ``sr`` taken back down to LR size against the LR input; ``inf`` when identical.

    The editor's compare view's number for the same pair (``sr_desk.core.fidelity.lr_psnr``), which shrinks to
    whatever size the input has: here a result that is not ``scale`` times the LR is an error, not a number.
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
    """Comma-separated method specs; empty items are skipped, but there must be one."""
    specs = [parse_method_spec(item) for item in text.split(",") if item.strip()]
    if not specs:
        raise ValueError("no methods given")
    return specs


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


def hr_lr_pair(photo: np.ndarray, crop: int, scale: int = DEFAULT_SCALE) -> tuple[np.ndarray, np.ndarray]:
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


def load_pairs(paths: Sequence[Path], crop: int, scale: int = DEFAULT_SCALE) -> list[Pair]:
    """Each photo loaded as training loads it, as ``(file name, hr, lr)``."""
    return [(path.name, *hr_lr_pair(load_photo(path, max_side=MAX_SIDE), crop, scale)) for path in paths]


# -- running ---------------------------------------------------------------------


def installed_upscalers() -> list[Method]:
    """The installed upscale methods, as the app finds them (the user plugin folder included)."""
    return discover_plugins(Settings.load()).methods("upscale")


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
        """The mean of one measure over the images; NaN when there are none."""
        values = getattr(self, name)
        return float(np.mean(values)) if values else math.nan


class Runner:
    """Runs method specs on LR images through the engine, as the app and the CLI do.

    ``plugins``: ``(plugin object, name)`` pairs registered beside the
    discovered plugins, for reference methods a script defines itself, so that
    they run through the same engine path.
    """

    def __init__(self, weights: str | Path | None = None, device: str = "auto", precision: str = "float32",
                 scale: int = DEFAULT_SCALE, weights_dir: Path | None = None,
                 plugins: Sequence[tuple[object, str]] = ()) -> None:
        settings = Settings.load()
        self.host = discover_plugins(settings)  # as the app finds them, the user plugin folder included
        for plugin, name in plugins:
            self.host.register(plugin, name)
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

    def method(self, spec: MethodSpec) -> Method:
        return self.host.method(spec.method_id)

    def job_spec(self, spec: MethodSpec, seed: int = 0) -> JobSpec:
        """The prepared ``JobSpec`` (parameters typed and validated by the method's declarations)."""
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
        method = self.method(spec)
        if warm_up and spec.method_id not in self.warmed:
            self._warm_up(spec, lr)
        job_spec = self.job_spec(spec, seed)
        image = ImageData(rgb=lr)
        start = time.perf_counter()
        job = self.worker.submit(job_work(image, method, job_spec), f"{spec.label} seed {seed}")
        try:
            job.wait_or_cancel()
        except KeyboardInterrupt:
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
    pairs: Sequence[Pair],
    seeds: int,
    *,
    keep: int = 0,
    log: Callable[[str], None] | None = None,
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
