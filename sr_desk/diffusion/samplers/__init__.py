"""Samplers: one per module, behind the :class:`~sr_desk.diffusion.samplers.base.Sampler` interface.

Importing this package registers the built-ins; :func:`make_sampler` finds them by name.
"""

from sr_desk.diffusion.samplers.ancestral import AncestralSampler
from sr_desk.diffusion.samplers.base import (
    NoisePredictor,
    Sampler,
    StepCallback,
    X0Correction,
    make_sampler,
    sampler_class,
    sampler_names,
)
from sr_desk.diffusion.samplers.ddim import DDIMSampler
from sr_desk.diffusion.samplers.dpmsolver import DPMSolverPlusPlus2MSampler

SAMPLER_NAMES: tuple[str, ...] = (AncestralSampler.name, DDIMSampler.name, DPMSolverPlusPlus2MSampler.name)
"""The built-in samplers, in the order a settings menu lists them."""

__all__ = [
    "SAMPLER_NAMES",
    "AncestralSampler",
    "DDIMSampler",
    "DPMSolverPlusPlus2MSampler",
    "NoisePredictor",
    "Sampler",
    "StepCallback",
    "X0Correction",
    "make_sampler",
    "sampler_class",
    "sampler_names",
]
