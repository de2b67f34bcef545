"""Diffusion maths shared by every diffusion method plugin: noise schedules and samplers.

Index convention: step indices are 0-based, ``i = 0..T-1``; index ``i`` is the
paper's step ``t = i + 1`` (schedule entry ``i`` holds the paper's value at
t = i + 1), and the network's time embedding receives ``i``, not ``t``. A
sampler run from ``start`` expects x at noise level ``start`` (``T - 1`` for
pure noise; ``t_bar - 1`` for content fusion or latent interpolation at the
paper's ``t_bar``) and returns the clean sample, "index -1".

The schedules live in :mod:`.schedule`, the samplers in :mod:`.samplers`;
this package imports none of its modules, so importing one (the Detail
curve, say) does not load torch and the samplers with it.
"""
