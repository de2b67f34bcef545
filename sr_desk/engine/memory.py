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

__all__ = ["free_memory", "mem_available", "release_free_memory", "reuse_freed_memory"]


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


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8
#: Blocks up to this size stay in the heap when freed, to be reused.
KEEP_BLOCKS_UP_TO = 1 << 30
_tuned: bool | None = None


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it (not musl)
    except (OSError, AttributeError):
        return None
    return libc


def reuse_freed_memory() -> bool:
    """Keep freed blocks of up to 1 GiB for reuse instead of handing them to the kernel (glibc only; idempotent).

    glibc maps every block over 32 MB afresh and unmaps it when freed (its
    threshold adapts up to 32 MB, no further), and a thread other than the
    main one gets an arena whose heaps hold 64 MB at most, so there larger
    blocks are mapped regardless. The kernel then zero-fills each 4 KB page
    on first touch. A U-Net step at 1024 px allocates and frees dozens of
    128 MB activations, and those page faults were 27% of its time (2.03 ->
    1.47 s; an out-of-place add of a 128 MB tensor: 44 -> 7 ms). With one
    arena for every thread and both thresholds at 1 GiB, freed activations
    are reused; :func:`release_free_memory` returns the free pages after a
    job. Call it before the threads that allocate start, as the worker does.
    Returns whether the allocator was tuned.
    """
    global _tuned
    if _tuned is None:
        libc = _glibc()
        _tuned = libc is not None and all(
            libc.mallopt(option, value) == 1
            for option, value in (
                (_M_ARENA_MAX, 1),
                (_M_MMAP_THRESHOLD, KEEP_BLOCKS_UP_TO),
                (_M_TRIM_THRESHOLD, KEEP_BLOCKS_UP_TO),
            )
        )
    return _tuned


def release_free_memory() -> None:
    """Hand the heap's free pages back to the system (``malloc_trim``), so an idle app holds only what it uses."""
    libc = _glibc() if _tuned else None
    if libc is not None:
        libc.malloc_trim(0)
