"""Mish for inference on the CPU: one native pass instead of PyTorch's three transcendental functions.

``F.mish`` computes ``x * tanh(log1p(exp(x)))``, and on the CPU those three
functions cost more than the 3x3 convolution before them: most of an SRDiff
U-Net step. The same function needs one exponential and one division. With
``p = e^x``::

    tanh(softplus(x)) = ((1 + p)^2 - 1) / ((1 + p)^2 + 1) = n / (n + 2),   n = p (p + 2)

which neither overflows (``x`` is capped at 20, where the ratio is 1 in
float32) nor cancels for negative ``x``. :data:`SOURCE` computes it in
float32 in a C loop that the compiler vectorises for this CPU
(:mod:`sr_desk.diffusion.native` builds and caches it), rounded once to
bfloat16: the results equal ``F.mish``'s on every finite bfloat16, which the
library must show when it loads, else it is not used. It runs several times
faster (the README's Performance section has the figures) and loads in
milliseconds, so every size uses it.

Where there is no C compiler, the build fails, or ``SR_DESK_COMPILE=0``,
:func:`mish` is ``F.mish``, said once in the log. Training (autograd),
float64, other devices and tensors that are not dense always use ``F.mish``:
on a GPU it is one memory-bound kernel already.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = ["COMPILE_ENV", "SOURCE", "mish", "mish_add", "mish_from_sigmoid", "prepare"]

log = logging.getLogger(__name__)

#: Set to 0 to run the eager ``F.mish`` (no compiler is looked for).
COMPILE_ENV = "SR_DESK_COMPILE"

Kernel = Callable[..., torch.Tensor]
_lock = threading.Lock()
_kernel: Kernel | None = None
_given_up = False
_FAST_DTYPES = (torch.float32, torch.bfloat16)

SOURCE = r"""
#include <stdint.h>
#include <string.h>

static inline float bits_to_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t float_to_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

/* e^x for x in [-87, 88] (Cephes' expf): 2^k e^r with |r| <= ln2/2, a degree-5 polynomial for e^r. */
static inline float exp_f32(float x) {
    const float round = 12582912.0f;  /* 1.5 * 2^23: adding it rounds to an integer */
    float k = (x * 1.44269504088896341f + round) - round;
    float r = x - k * 0.693359375f;
    r = r + k * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    return p * bits_to_float((uint32_t)((int32_t)k + 127) << 23);
}

/* x tanh(softplus(x)) = x n / (n + 2), n = p (p + 2), p = e^x; p is e^(x + 40) e^-40 so that it stays
   exact down to the subnormals (x = -127), and x is capped at 20, where n / (n + 2) is 1 in float32. */
static inline float mish_f32(float x) {
    float capped = x < -127.0f ? -127.0f : (x > 20.0f ? 20.0f : x);
    float p = exp_f32(capped + 40.0f) * 4.24835425529158899e-18f;
    float n = p * (p + 2.0f);
    return x * (n / (n + 2.0f));
}

static inline float bf16_to_f32(uint16_t h) { return bits_to_float((uint32_t)h << 16); }

/* Round to nearest even. A NaN stays a NaN without a test for it: NaNs here come out of arithmetic on a
   bf16 value (quiet, with the input's payload, whose low 16 bits are zero, or the default NaN), and adding
   at most 0x8000 to those cannot carry out of the mantissa. */
static inline uint16_t f32_to_bf16(float f) {
    uint32_t u = float_to_bits(f);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

void sr_desk_mish_bf16(const uint16_t *in, uint16_t *out, int64_t n, int threads) {
    #pragma omp parallel for simd num_threads(threads) schedule(simd:static)
    for (int64_t i = 0; i < n; i++) out[i] = f32_to_bf16(mish_f32(bf16_to_f32(in[i])));
}

void sr_desk_mish_f32(const float *in, float *out, int64_t n, int threads) {
    #pragma omp parallel for simd num_threads(threads) schedule(simd:static)
    for (int64_t i = 0; i < n; i++) out[i] = mish_f32(in[i]);
}

/* mish(in) + add in one pass, rounded as the two ops would be: Mish to bf16, then the sum to bf16. */
void sr_desk_mish_add_bf16(const uint16_t *in, const uint16_t *add, uint16_t *out, int64_t n, int threads) {
    #pragma omp parallel for simd num_threads(threads) schedule(simd:static)
    for (int64_t i = 0; i < n; i++)
        out[i] = f32_to_bf16(bf16_to_f32(f32_to_bf16(mish_f32(bf16_to_f32(in[i])))) + bf16_to_f32(add[i]));
}

void sr_desk_mish_add_f32(const float *in, const float *add, float *out, int64_t n, int threads) {
    #pragma omp parallel for simd num_threads(threads) schedule(simd:static)
    for (int64_t i = 0; i < n; i++) out[i] = mish_f32(in[i]) + add[i];
}
"""


def mish_from_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """``x * tanh(softplus(x))`` through one sigmoid, in float32 at least, returned in ``x``'s dtype.

    The same function as :data:`SOURCE` in torch's own ops (``u = 1 - sigmoid(x)``:
    ``tanh(softplus(x)) = (1 - u^2) / (1 + u^2)``), for tests and reference.
    """
    f = x.to(torch.promote_types(x.dtype, torch.float32))
    s = torch.sigmoid(f)
    u = 1.0 - s
    return (f * s * (1.0 + u) / (1.0 + u * u)).to(x.dtype)


def _native_kernel() -> Kernel:
    """The C kernel as a function of tensors (``kernel(x)``, ``kernel(x, add)``); raises where it cannot load."""
    from sr_desk.diffusion.native import load

    library = load("mish", SOURCE)
    pointer, count = ctypes.c_void_p, [ctypes.c_int64, ctypes.c_int]
    plain = {torch.bfloat16: library.sr_desk_mish_bf16, torch.float32: library.sr_desk_mish_f32}
    added = {torch.bfloat16: library.sr_desk_mish_add_bf16, torch.float32: library.sr_desk_mish_add_f32}
    for entry in plain.values():
        entry.argtypes, entry.restype = [pointer, pointer, *count], None
    for entry in added.values():
        entry.argtypes, entry.restype = [pointer, pointer, pointer, *count], None

    def kernel(x: torch.Tensor, add: torch.Tensor | None = None) -> torch.Tensor:
        out = torch.empty_like(x)  # the same dense layout (channels-last stays channels-last)
        if not x.numel():
            return out
        if add is None:
            plain[x.dtype](x.data_ptr(), out.data_ptr(), x.numel(), torch.get_num_threads())
        else:
            added[x.dtype](x.data_ptr(), add.data_ptr(), out.data_ptr(), x.numel(), torch.get_num_threads())
        return out

    return kernel


def _compile() -> Kernel:
    return _checked(_native_kernel())


def _checked(kernel: Kernel) -> Kernel:
    """``kernel`` once it gives ``F.mish``'s numbers: every finite bfloat16 exactly, float32 to rounding;
    with an addend, what ``F.mish(x) + add`` gives."""
    every = torch.arange(-32768, 32768, dtype=torch.int32).to(torch.int16).view(torch.bfloat16)
    every = every[torch.isfinite(every)]
    if not torch.equal(kernel(every), F.mish(every)):
        raise RuntimeError("the native Mish differs from F.mish in bfloat16")
    addend = every.flip(0)
    if not torch.equal(kernel(every, addend), F.mish(every) + addend):
        raise RuntimeError("the native Mish and addition differ from F.mish(x) + add in bfloat16")
    wide = torch.linspace(-60, 60, 10_001)
    if not torch.allclose(kernel(wide), F.mish(wide), rtol=1e-5, atol=1e-7):
        raise RuntimeError("the native Mish differs from F.mish in float32")
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
                except Exception as exc:  # noqa: BLE001 - no compiler, a failed build or check: F.mish is the same
                    _give_up(f"{type(exc).__name__}: {exc}")
    return _kernel


def _dense(x: torch.Tensor) -> bool:
    return x.is_contiguous() or (x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last))


def mish(x: torch.Tensor) -> torch.Tensor:
    """``F.mish(x)``, by the native one-pass kernel for CPU inference where it could be built."""
    return _native_or_eager(x, None)


def mish_add(x: torch.Tensor, add: torch.Tensor) -> torch.Tensor:
    """``F.mish(x) + add`` (same shape, dtype and layout), in one native pass where the kernel runs.

    A network's residual connection after an activation reads and writes
    the whole activation once more; in the same pass as Mish it costs one read.
    """
    return _native_or_eager(x, add)


def _native_or_eager(x: torch.Tensor, add: torch.Tensor | None) -> torch.Tensor:
    """``F.mish(x) (+ add)``: the native kernel where it applies and loaded, torch's ops otherwise."""
    eligible = (
        x.device.type == "cpu" and x.dtype in _FAST_DTYPES and not torch.is_grad_enabled() and _dense(x)
        and (add is None or (add.dtype == x.dtype and add.shape == x.shape and add.stride() == x.stride()
                             and add.device == x.device))
    )
    kernel = _fast_kernel() if eligible else None
    if kernel is not None:
        try:
            return kernel(x) if add is None else kernel(x, add)
        except Exception as exc:  # noqa: BLE001 - never fail a job over an activation: F.mish gives the same numbers
            _give_up(f"the native Mish failed: {type(exc).__name__}: {exc}")
    return F.mish(x) if add is None else F.mish(x) + add


def prepare() -> bool:
    """Build (or load from the cache) the native kernel now; True when it is in use.

    A long-lived process (the editor's worker, before its first job) calls
    this once, so that a first build (a fraction of a second) does not fall
    inside a job.
    """
    return _fast_kernel() is not None
