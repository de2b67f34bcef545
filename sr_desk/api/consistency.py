"""The "LR consistency" switch that methods with a back-projection step declare.

A super-resolution result is consistent with its input when it downscales
back to it. Methods that can enforce this (by back-projecting the result, or
each step, onto the input) offer the same switch under the same name, so the
editor shows one control and ``--param lr_consistency=false`` means the same
for every method.
"""

from __future__ import annotations

from sr_desk.api.params import BoolParam

__all__ = ["LR_CONSISTENCY", "lr_consistency_param"]

#: The parameter's name in ``Request.params`` and on the command line.
LR_CONSISTENCY = "lr_consistency"

_HELP = "Back-project the result onto the input, so it downscales to the input"


def lr_consistency_param(help: str = _HELP, *, integer_scales_only: bool = False) -> BoolParam:
    """The switch, on by default; ``help`` says what this method's back-projection does when it differs."""
    if integer_scales_only:
        help = f"{help} (integer scales only)"
    return BoolParam(name=LR_CONSISTENCY, label="LR consistency", default=True, help=help)
