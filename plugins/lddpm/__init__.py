"""LDDPM (issue 15): latent-feature diffusion SR with few adversarial steps, being built part by part.

Not registered as a plugin yet (no entry point): each mechanism lands here
with its tests first (the conditional flow: :mod:`.flow`; the network with
the LR encoder, cross-attention, CVAE and flow: :mod:`.network`; DDGAN's
real and fake pairs, discriminator and losses: :mod:`.adversarial`; the four
coarse steps: ``sr_desk.diffusion.schedule.vp_coarse_schedule``; sampling
with its three seeded noise sources: :mod:`.process`; both training stages on
the shared trainer: :mod:`.train`, run as ``python -m sr_desk.training lddpm``); the method, its
trainer and its weights follow, and only then does ``pyproject.toml`` list
it under ``sr_desk.plugins``.
"""
