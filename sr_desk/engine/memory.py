"""How much memory a job may still take on its device, so that tiles are sized before they run.

Running out of memory is not always an exception one can catch: on Linux a
process that overcommits is swapped to a crawl or killed by the kernel, and
the retry in smaller tiles never runs. So before a method that declares its
working memory (``Capabilities.memory_per_output_pixel``) runs, its tiles
are made small enough to fit in a share of what the device has free.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

__all__ = ["free_memory", "mem_available"]


def mem_available(meminfo: str) -> int | None:
    """Bytes of ``MemAvailable`` in the text of Linux's ``/proc/meminfo``, or None when absent."""
    for line in meminfo.splitlines():
        name, _, value = line.partition(":")
        if name == "MemAvailable":
            number, _, unit = value.strip().partition(" ")
            if number.isdigit():
                return int(number) * (1024 if unit.lower() == "kb" else 1)
    return None


def free_memory(device: str) -> int | None:
    """Bytes a job can still allocate on ``device`` ("cpu", "cuda", "cuda:1", "mps"), or None if unknown.

    CUDA: what the driver reports free plus what torch holds cached but
    unused. CPU: the system's available memory (Linux ``MemAvailable``,
    Windows ``ullAvailPhys``, elsewhere free pages). Apple's unified memory
    is not reported: None.
    """
    if device.startswith("cuda"):
        return _cuda_free(device)
    if device == "cpu":
        return _system_available()
    return None


def _cuda_free(device: str) -> int | None:
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    try:
        free, _total = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    except (RuntimeError, AssertionError, ValueError):
        return None
    return int(free + max(0, cached))


def _system_available() -> int | None:
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        try:
            return mem_available(meminfo.read_text())
        except OSError:
            return None
    if sys.platform == "win32":
        return _windows_available()
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


class _MemoryStatusEx(ctypes.Structure):
    _fields_ = [  # noqa: RUF012 - the ctypes layout of MEMORYSTATUSEX
        ("dwLength", ctypes.c_ulong),
        ("dwMemoryLoad", ctypes.c_ulong),
        ("ullTotalPhys", ctypes.c_ulonglong),
        ("ullAvailPhys", ctypes.c_ulonglong),
        ("ullTotalPageFile", ctypes.c_ulonglong),
        ("ullAvailPageFile", ctypes.c_ulonglong),
        ("ullTotalVirtual", ctypes.c_ulonglong),
        ("ullAvailVirtual", ctypes.c_ulonglong),
        ("ullAvailExtendedVirtual", ctypes.c_ulonglong),
    ]


def _windows_available() -> int | None:  # pragma: no cover - Windows only
    status = _MemoryStatusEx()
    status.dwLength = ctypes.sizeof(_MemoryStatusEx)
    try:
        ok = ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status))  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        return None
    return int(status.ullAvailPhys) if ok else None
