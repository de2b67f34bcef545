"""Diffusion maths shared by every diffusion method plugin: noise schedules and samplers.

Index convention: step indices are 0-based, ``i = 0..T-1``; index ``i`` is the
paper's step ``t = i + 1`` (schedule entry ``i`` holds the paper's value at
t = i + 1), and the network's time embedding receives ``i``, not ``t``. A
sampler run from ``start`` expects x at noise level ``start`` (``T - 1`` for
pure noise; ``t_bar - 1`` for content fusion or latent interpolation at the
paper's ``t_bar``) and returns the clean sample, "index -1".
"""

from sr_desk.diffusion.samplers import (
    SAMPLER_NAMES,
    AncestralSampler,
    DDIMSampler,
    DPMSolverPlusPlus2MSampler,
    NoisePredictor,
    Sampler,
    StepCallback,
    make_sampler,
)
from sr_desk.diffusion.schedule import NoiseSchedule, cosine_schedule, from_betas, linear_schedule

__all__ = [
    "SAMPLER_NAMES",
    "AncestralSampler",
    "DDIMSampler",
    "DPMSolverPlusPlus2MSampler",
    "NoisePredictor",
    "NoiseSchedule",
    "Sampler",
    "StepCallback",
    "cosine_schedule",
    "from_betas",
    "linear_schedule",
    "make_sampler",
]
