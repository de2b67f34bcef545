"""Choosing the compute device: CUDA when present, then Apple MPS, then the CPU."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sr_desk.core.errors import SrDeskError

DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")
PRECISION_CHOICES = ("auto", "float32", "bfloat16")


class DeviceError(SrDeskError):
    """The device asked for cannot be used on this machine."""


@dataclass(frozen=True)
class Device:
    """The device a worker owns: ``kind`` is a torch device string, ``name`` is for people."""

    kind: str
    name: str
    dtype: str = "float32"

    def __str__(self) -> str:
        return self.name


#: Where torch.compile keeps the kernels it builds (inductor's own setting), for plugins that compile.
KERNEL_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"


def keep_compiled_kernels_in(folder: Path) -> None:
    """Keep the CPU kernels sr-desk builds (Mish) and torch.compile's in ``folder`` unless the user chose a place.

    The default is a folder in /tmp, which a reboot empties; then the first
    SRDiff job after it builds its kernel again.
    """
    from sr_desk.diffusion.native import KERNEL_DIR_ENV

    os.environ.setdefault(KERNEL_DIR_ENV, str(folder))
    os.environ.setdefault(KERNEL_CACHE_ENV, str(folder / "torch"))


def warm_compiled_kernels(context: Any) -> None:
    """A worker's job that builds or loads the CPU's native kernels (Mish) before the first real job.

    The editor runs it once as it opens, so that a first build on a new
    machine happens while the user opens a photo, not inside a job.
    """
    if context.device != "cpu":
        return
    from sr_desk.diffusion.mish import prepare

    prepare()


def cpu_has_native_bf16() -> bool:
    """True on CPUs with bf16 dot-product instructions (``sr_desk.diffusion.native``'s check, imported late:
    the diffusion package brings torch, which this module leaves to the worker)."""
    from sr_desk.diffusion.native import cpu_has_native_bf16 as check

    return check()


def resolve_device(preference: str = "auto", precision: str = "auto") -> Device:
    """Pick the device for ``preference`` ("auto", "cuda", "mps" or "cpu") and its compute dtype.

    A forced device that is missing is an error, not a silent fallback: a
    user who asked for the GPU should not wait an hour on the CPU unawares.
    ``precision`` "auto" means bfloat16 on CUDA and on CPUs with native bf16
    instructions (AVX512-BF16 or AMX), float32 elsewhere (MPS, and CPUs that
    would emulate bf16 slowly). On the development CPU bf16 made the whole
    upscale 1.1-1.9x faster and moved no built-in method's held-out PSNR by
    more than 0.01 dB (README, Performance).
    """
    if preference not in DEVICE_CHOICES:
        raise DeviceError(f"unknown device {preference!r} (choose from {', '.join(DEVICE_CHOICES)})")
    if precision not in PRECISION_CHOICES:
        raise DeviceError(f"unknown precision {precision!r} (choose from {', '.join(PRECISION_CHOICES)})")
    import torch  # deferred: discovery and the CLI's listings need no torch

    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if preference == "cuda" and not cuda:
        raise DeviceError("the CUDA device was asked for, but this torch build sees no CUDA GPU")
    if preference == "mps" and not mps:
        raise DeviceError("the Apple MPS device was asked for, but it is not available here")
    if preference == "cuda" or (preference == "auto" and cuda):
        dtype = "float32" if precision == "float32" else "bfloat16"
        return Device("cuda", f"CUDA: {torch.cuda.get_device_name(0)}", dtype)
    if preference == "mps" or (preference == "auto" and mps):
        return Device("mps", "Apple MPS", "float32")
    native = precision == "auto" and cpu_has_native_bf16()
    dtype = "bfloat16" if precision == "bfloat16" or native else "float32"
    name = f"CPU ({torch.get_num_threads()} threads{', bf16' if dtype == 'bfloat16' else ''})"
    return Device("cpu", name, dtype)
