"""Samplers: one per module, behind the :class:`~sr_desk.diffusion.samplers.base.Sampler` interface.

Importing this package registers the built-ins; :func:`make_sampler` finds them by name. The types a
sampler is built from (``NoisePredictor``, ``StepCallback``, ``X0Correction``) are in :mod:`.base`.
"""

from sr_desk.diffusion.samplers.ancestral import AncestralSampler
from sr_desk.diffusion.samplers.base import Sampler, make_sampler
from sr_desk.diffusion.samplers.ddim import DDIMSampler
from sr_desk.diffusion.samplers.dpmsolver import DPMSolverPlusPlus2MSampler

SAMPLER_NAMES: tuple[str, ...] = (AncestralSampler.name, DDIMSampler.name, DPMSolverPlusPlus2MSampler.name)
"""The built-in samplers, in the order a settings menu lists them."""

__all__ = [
    "SAMPLER_NAMES",
    "AncestralSampler",
    "DDIMSampler",
    "DPMSolverPlusPlus2MSampler",
    "Sampler",
    "make_sampler",
]
