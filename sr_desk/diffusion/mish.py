"""Mish for inference on the CPU: one compiled pass instead of PyTorch's three transcendental functions.

``F.mish`` computes ``x * tanh(log1p(exp(x)))``, and on the CPU those three
functions cost as much as the 3x3 convolution before them: 44% of an SRDiff
U-Net step at 1024 px. The same function needs only a sigmoid. With
``u = sigmoid(-x) = 1 / (1 + e^x)`` and ``s = 1 - u``::

    tanh(softplus(x)) = ((1 + e^x)^2 - 1) / ((1 + e^x)^2 + 1)
                      = (1 - u^2) / (1 + u^2)
                      = s (1 + u) / (1 + u^2)

which never overflows and does not cancel for negative ``x`` (``s`` is then
small and exact). Compiled by ``torch.compile`` into one loop, in float32
and rounded once, it gives bfloat16 results identical to ``F.mish``'s (tested
on every finite bfloat16; from -89 down, where F.mish gives under 1e-36, it
gives 0) several times faster, in the CPU's vector instructions (the README's
Performance section has the figures). It needs a C++ compiler at run time; where there is none, or the
compile fails, or ``SR_DESK_COMPILE=0``, :func:`mish` is ``F.mish``, said
once in the log. Training (autograd) and other devices always use
``F.mish``: on a GPU it is one memory-bound kernel already. The compile waits
for a tensor large enough to repay it (:data:`COMPILE_FROM_ELEMENTS`).
"""

from __future__ import annotations

import logging
import os
import platform
import threading
from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = ["COMPILE_ENV", "COMPILE_FROM_ELEMENTS", "mish", "mish_from_sigmoid"]

log = logging.getLogger(__name__)

#: Set to 0 to run the eager ``F.mish`` (no compiler is looked for).
COMPILE_ENV = "SR_DESK_COMPILE"

Kernel = Callable[[torch.Tensor], torch.Tensor]
_lock = threading.Lock()
_kernel: Kernel | None = None
_given_up = False
#: float64 stays on F.mish: the kernel computes in float32.
_FAST_DTYPES = (torch.float32, torch.bfloat16)


def mish_from_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """``x * tanh(softplus(x))`` through one sigmoid, in float32 at least, returned in ``x``'s dtype."""
    f = x.to(torch.promote_types(x.dtype, torch.float32))
    s = torch.sigmoid(f)
    u = 1.0 - s
    return (f * s * (1.0 + u) / (1.0 + u * u)).to(x.dtype)


def _compile() -> Kernel:
    import torch._inductor.config as inductor_config

    # One small kernel: compile it in this process rather than start a pool of workers (which a
    # frozen app may not be able to spawn).
    inductor_config.compile_threads = 1
    if inductor_config.cpp.vec_isa_ok is None and _cpu_has_vector_isa():
        # Inductor proves a vector ISA by loading a test library in a child process; where that child
        # crashes on its way out (it does with the CPU wheel here), every ISA counts as unusable and the
        # kernel is built as scalar code, no faster than F.mish. The CPU's own flags are proof enough;
        # a compiler that cannot build for them fails the compile, and :func:`_checked` catches a wrong kernel.
        inductor_config.cpp.vec_isa_ok = True
    return _checked(torch.compile(mish_from_sigmoid, dynamic=True))  # type: ignore[arg-type]


def _cpu_has_vector_isa() -> bool:
    """True where inductor has a vector ISA for this CPU (AVX2, AVX-512, NEON, ...) by its flags alone."""
    from torch._inductor import cpu_vec_isa

    return bool(cpu_vec_isa.x86_isa_checker()) if platform.machine() in ("x86_64", "AMD64") else False


def _checked(kernel: Kernel) -> Kernel:
    """``kernel`` once it gives ``F.mish``'s bfloat16 numbers on values across its range (else an error).

    The values come as the networks give them (N x C x H x W, channels-last), so this compile is the one they use.
    """
    x = torch.linspace(-30, 30, 32 * 8 * 16).reshape(1, 32, 8, 16).to(torch.bfloat16)
    x = x.contiguous(memory_format=torch.channels_last)
    if not torch.equal(kernel(x), F.mish(x)):
        raise RuntimeError("the compiled Mish differs from F.mish")
    return kernel


def _give_up(reason: object) -> None:
    global _given_up, _kernel
    _given_up, _kernel = True, None
    log.info("Mish runs eagerly (%s)", reason)


def _fast_kernel() -> Kernel | None:
    global _kernel
    if _given_up:
        return None
    with _lock:
        if _kernel is None and not _given_up:
            if os.environ.get(COMPILE_ENV, "1").strip() in ("0", "false", "no", "off"):
                _give_up(f"{COMPILE_ENV}=0")
            else:
                try:
                    _kernel = _compile()
                except Exception as exc:  # noqa: BLE001 - a frozen app without torch's compiler, say
                    _give_up(f"torch.compile is not available: {type(exc).__name__}: {exc}")
    return _kernel


#: The compile is put off until a tensor this large comes (32 channels of half a megapixel): loading the
#: kernel costs seconds in each new process even from torch's cache (importing the compiler), which a
#: job of smaller tensors (a command-line 4x of a 256 px image, whose U-Net windows hold 9.8 M) does not
#: win back. The README's Performance section has the measurements.
COMPILE_FROM_ELEMENTS = 1 << 24


def mish(x: torch.Tensor) -> torch.Tensor:
    """``F.mish(x)``, by the compiled one-pass kernel for CPU inference where torch can compile it."""
    if x.device.type != "cpu" or x.dtype not in _FAST_DTYPES or torch.is_grad_enabled():
        return F.mish(x)
    if _kernel is None and x.numel() < COMPILE_FROM_ELEMENTS:
        return F.mish(x)
    kernel = _fast_kernel()
    if kernel is None:
        return F.mish(x)
    try:
        return kernel(x)
    except Exception as exc:  # noqa: BLE001 - no compiler, a failed build: the eager kernel gives the same numbers
        _give_up(f"torch.compile failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        return F.mish(x)
