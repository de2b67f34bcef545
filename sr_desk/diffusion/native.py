"""Small C kernels for the CPU, built once with the system's C compiler and loaded with ctypes.

Why not ``torch.compile``: loading the compiler costs seconds in every new
process even when its kernel is cached (importing dynamo and inductor), which
a command-line upscale of a small photo never wins back; and its check of
the CPU's vector instructions (a child process loading a test library) can
fail on a working CPU, leaving scalar code. A plain C loop that the
compiler vectorises for this CPU (``-march=native``) builds in a fraction of
a second, loads in milliseconds from the cache, and needs nothing from torch
but the tensors' memory.

The library is cached per source, compiler, flags and CPU in
:func:`kernel_folder` (the app's cache folder; ``SR_DESK_KERNEL_DIR`` moves
it), written atomically so that two processes building at once both end with
a whole file. No compiler (Windows without one, a frozen app on a bare
machine), a failed build or a library that fails its check: :func:`load`
raises :class:`KernelUnavailable`, and the caller keeps torch's own op.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["KERNEL_DIR_ENV", "KernelUnavailable", "cpu_has_native_bf16", "kernel_folder", "load"]

#: Where built kernels are kept (the app sets it to its cache folder).
KERNEL_DIR_ENV = "SR_DESK_KERNEL_DIR"

#: Tried in order: each compiler with the CPU's own vector instructions and OpenMP, then without
#: either (clang on macOS has no OpenMP by default; some compilers refuse -march=native).
_FLAG_SETS = (
    ["-O3", "-march=native", "-fopenmp"],
    ["-O3", "-march=native"],
    ["-O3", "-fopenmp"],
    ["-O3"],
)
#: IEEE semantics kept (no -ffast-math: in a shared library it can switch the whole process to
#: flush denormals to zero); only errno and traps are given up, which lets loops vectorise.
_COMMON_FLAGS = ["-fPIC", "-shared", "-fno-math-errno", "-fno-trapping-math"]
_BUILD_SECONDS = 120


class KernelUnavailable(RuntimeError):
    """No C compiler, a failed build, or a library that cannot be loaded."""


def kernel_folder() -> Path:
    """The cache of built kernels: ``SR_DESK_KERNEL_DIR``, else a folder of this user's in the temp folder."""
    chosen = os.environ.get(KERNEL_DIR_ENV)
    if chosen:
        return Path(chosen)
    user = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    return Path(tempfile.gettempdir()) / f"sr-desk-kernels-{user}"


def _compilers() -> list[str]:
    names = [os.environ["CC"]] if os.environ.get("CC") else []
    names += ["cc", "gcc", "clang"]
    found = []
    for name in names:
        path = shutil.which(name)
        if path and os.path.realpath(path) not in {os.path.realpath(p) for p in found}:
            found.append(path)
    return found


def cpu_has_native_bf16() -> bool:
    """True on CPUs with bf16 dot-product instructions (AVX512-BF16 or AMX), where bf16 is fast."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _cpu_signature() -> str:
    """What ``-march=native`` builds for: the CPU's model and flags where the system says them."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            lines = [line for line in f if line.startswith(("model name", "flags", "Features"))]
        return "".join(sorted(set(lines)))
    except OSError:
        return platform.processor() or platform.machine()


def _library_name(name: str, source: str, compiler: str, flags: list[str]) -> str:
    key = "\0".join([source, os.path.realpath(compiler), *flags, platform.machine(), _cpu_signature()])
    suffix = ".dll" if os.name == "nt" else ".dylib" if platform.system() == "Darwin" else ".so"
    return f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:20]}{suffix}"


def _build(source: str, compiler: str, flags: list[str], target: Path) -> None:
    """Compile ``source`` into ``target`` atomically (a whole file or none)."""
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as work:
        c_file = Path(work) / "kernel.c"
        c_file.write_text(source, encoding="ascii")
        out = Path(work) / target.name
        done = subprocess.run([compiler, *flags, *_COMMON_FLAGS, str(c_file), "-o", str(out)],
                              capture_output=True, text=True, timeout=_BUILD_SECONDS, check=False)
        if done.returncode != 0 or not out.is_file():
            raise KernelUnavailable(f"{Path(compiler).name} failed: {(done.stderr or done.stdout).strip()[-300:]}")
        os.replace(out, target)


def load(name: str, source: str) -> ctypes.CDLL:
    """The library built from C ``source`` for this CPU: from the cache, else compiled now.

    Raises :class:`KernelUnavailable` when no compiler can build it (the
    message says why); the caller checks what the library computes.
    """
    folder = kernel_folder()
    errors = []
    for compiler in _compilers():
        for flags in _FLAG_SETS:
            target = folder / _library_name(name, source, compiler, flags)
            try:
                if not target.is_file():
                    _build(source, compiler, flags, target)
                return ctypes.CDLL(str(target))
            except (KernelUnavailable, OSError, subprocess.SubprocessError) as exc:
                errors.append(f"{Path(compiler).name} {' '.join(flags)}: {exc}")
    if not errors:
        raise KernelUnavailable("no C compiler (cc, gcc or clang) was found")
    raise KernelUnavailable("; ".join(errors)[-600:])
