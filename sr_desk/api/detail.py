"""The one "Detail" control every diffusion upscale method declares: 0 faithful ... 1 most texture.

A diffusion upscaler trades fidelity (PSNR) for texture (fine structure that
the input does not show), and each method has its own research knobs for it
(the noise it injects, its temperature, the injection level), none labelled
for what a user wants. So every such method, built in or third-party,
declares :func:`detail_param` first in its parameters and maps the value to
its own means (``sr_desk.diffusion.detail`` has the curve and the tempered
noise the built-in methods use): the editor shows the same slider at the top
of every panel and the command line takes ``--param detail=0.7``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sr_desk.api.params import FloatParam

__all__ = ["DETAIL", "detail_of", "detail_param"]

#: The parameter's name in ``Request.params`` and on the command line.
DETAIL = "detail"

_HELP = (
    "How much texture the model draws. 0 stays as faithful to the input as the method can (smooth, little "
    "or no change between seeds); 1 draws the most texture the model can (grain, fur, foliage), further from "
    "the input and different for every seed"
)


def detail_param(default: float) -> FloatParam:
    """The declaration every diffusion upscale method puts first in its parameters."""
    return FloatParam(name=DETAIL, label="Detail", default=default, minimum=0.0, maximum=1.0, step=0.05,
                      help=_HELP)


def detail_of(params: Mapping[str, Any], default: float) -> float:
    """The request's detail, or ``default`` for a request made without one (an old preset, a script)."""
    value = params.get(DETAIL)
    return float(default if value is None else value)
