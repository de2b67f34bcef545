"""Choosing the compute device: CUDA when present, then Apple MPS, then the CPU."""

from __future__ import annotations

from dataclasses import dataclass

from sr_desk.core.errors import SrDeskError

DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")


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


def resolve_device(preference: str = "auto") -> Device:
    """Pick the device for ``preference`` ("auto", "cuda", "mps" or "cpu").

    A forced device that is missing is an error, not a silent fallback: a
    user who asked for the GPU should not wait an hour on the CPU unawares.
    """
    if preference not in DEVICE_CHOICES:
        raise DeviceError(f"unknown device {preference!r} (choose from {', '.join(DEVICE_CHOICES)})")
    import torch  # deferred: discovery and the CLI's listings need no torch

    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if preference == "cuda" and not cuda:
        raise DeviceError("the CUDA device was asked for, but this torch build sees no CUDA GPU")
    if preference == "mps" and not mps:
        raise DeviceError("the Apple MPS device was asked for, but it is not available here")
    if preference == "cuda" or (preference == "auto" and cuda):
        return Device("cuda", f"CUDA: {torch.cuda.get_device_name(0)}", "bfloat16")
    if preference == "mps" or (preference == "auto" and mps):
        return Device("mps", "Apple MPS", "float32")
    return Device("cpu", f"CPU ({torch.get_num_threads()} threads)", "float32")
