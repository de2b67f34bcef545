"""A training objective that keeps a generator's latents in play: seeking modes in the detail band.

A conditional generator trained with pixel and adversarial losses tends to
learn to ignore its random input (mode collapse): the same picture comes back
for every seed, and a noise temperature (the usual Detail means) has nothing
to move. The mode-seeking term of MSGAN (Mao et al., CVPR 2019) and DSGAN
(Yang et al., ICLR 2019) asks for outputs that differ in proportion to the
latents that made them. Here the outputs' difference is measured only in the
detail band, what a 4x shrink removes (the LR consistency at inference takes
any difference below it back out), and the reward is bounded at ``ceiling``,
as DSGAN bounds it, so that it cannot grow into noise. Weighted by the
trainer's ``--diversity``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["DIVERSITY_CEILING", "detail_band", "mode_seeking_loss"]

#: Output difference (``[-1, 1]`` units, mean absolute, detail band) per unit of mean absolute latent
#: difference beyond which more diversity earns nothing. Two standard normal latents differ by about 1.13
#: on average, so the ceiling is reached at about 0.023, three grey levels of detail.
DIVERSITY_CEILING = 0.02


def detail_band(image: torch.Tensor, factor: int = 4) -> torch.Tensor:
    """``image`` less its ``factor``-times shrunk and enlarged self: the detail an LR of that factor lacks."""
    height, width = image.shape[-2:]
    if height < factor or width < factor:
        return image - image.mean((-2, -1), keepdim=True)
    coarse = F.avg_pool2d(image, factor, ceil_mode=True)
    return image - F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)


def mode_seeking_loss(out_a: torch.Tensor, out_b: torch.Tensor, latents_a: list[torch.Tensor],
                      latents_b: list[torch.Tensor], ceiling: float = DIVERSITY_CEILING) -> torch.Tensor:
    """``-min(|band(a) - band(b)| / |z_a - z_b|, ceiling)``, means over every element; lower is more diverse.

    ``out_a`` and ``out_b`` are the generator's outputs for the same inputs and the latents
    ``latents_a`` and ``latents_b`` (each list's tensors flattened together).
    """
    gap = (detail_band(out_a.float()) - detail_band(out_b.float())).abs().mean()
    latent_gap = torch.cat([(a - b).abs().flatten() for a, b in zip(latents_a, latents_b, strict=True)]).mean()
    return -torch.clamp(gap / latent_gap.clamp_min(1e-6), max=ceiling)
