"""LDDPM's network at section 9's size: every mechanism of the paper, none dropped.

``forward(x_t, lr_up, t, z_gan, z_latent)`` -> (clean-image estimate, KL term):

- an SR3-style conditional U-Net on ``[x_t, up(LR)]`` (the shared compact
  blocks; the GAN latent ``z_gan`` enters through an MLP added to the time
  embedding, which drives every block's scale and shift, as DDGAN's
  adaptive norms do);
- tau(LR): three strided convolutions from ``up(LR)`` to the bottleneck grid;
- the conditional VAE on the bottleneck: at training its encoder reads
  tau(LR) and gives (mu, sigma), ``Z = mu + sigma * delta``, and the KL term
  to N(0, I) is returned; at inference ``z_latent`` is drawn from N(0, I) and
  the encoder is not run. Its decoder (two convolutions) gives F_R; two
  convolutions on the U-Net's bottleneck F_X give F_mu and F_delta; the fused
  feature is ``F_g = F_mu + F_delta * F_R`` (spec 2.3, literal reading);
- the conditional Glow (:mod:`.flow`) on F_g, its couplings seeing tau(LR);
- cross-attention in the middle: queries from the U-Net, keys and values
  from tau(LR);
- the decoder back up with the skips, and a head that starts at zero.

The head predicts the clean image as a residual on ``up(LR)`` (an untrained
network returns the enlarged input), and the noise the paper's eq. 7 scores
is derived from it: on four coarse steps the last has abar = 4e-5, where an
epsilon head's x0 divides its error by 0.007 (DDGAN's generator predicts x0
for the same reason). The model card lists this choice.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sr_desk.diffusion.compact_unet import ResBlock, timestep_embedding, way_down
from sr_desk.diffusion.json_config import JsonConfig
from sr_desk.diffusion.weights_file import bounded_int
from sr_desk_plugins.lddpm.flow import ConditionalFlow

__all__ = ["CrossAttention", "LDDPMConfig", "LDDPMNet"]


@dataclass(frozen=True)
class LDDPMConfig(JsonConfig):
    """Sizes of the lite network (spec 9): U-Net widths ``width * mults``, latents, flow steps, heads."""

    METHOD = "LDDPM"

    width: int = 32
    mults: tuple[int, ...] = (1, 2, 4)
    latent_channels: int = 8
    gan_latent: int = 32
    flow_steps: int = 2
    heads: int = 4
    dropout: float = 0.1
    #: ``[x_t, up(LR)]`` enters as ``unshuffle x unshuffle`` pixel blocks (space-to-depth): a desktop CPU's
    #: convolutions get that many squared times cheaper (spec 9 budgets about 1 s per 128 px evaluation).
    unshuffle: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.mults, (list, tuple)) or not 1 <= len(self.mults) <= 6:
            raise ValueError(f"mults must list 1 to 6 multipliers, got {self.mults!r}")
        object.__setattr__(self, "mults", tuple(bounded_int("mults", m, 1, 16) for m in self.mults))
        for name, low, high in (("width", 8, 512), ("latent_channels", 1, 64), ("gan_latent", 1, 512),
                                ("flow_steps", 0, 8), ("heads", 1, 16), ("unshuffle", 1, 4)):
            bounded_int(name, getattr(self, name), low, high)
        if self.width % 8:
            raise ValueError(f"width must be a multiple of 8 (group norm), got {self.width}")
        if not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout!r}")

    @property
    def size_multiple(self) -> int:
        return self.unshuffle * 2 ** (len(self.mults) - 1)

    @property
    def bottleneck_channels(self) -> int:
        return self.width * self.mults[-1]



class CrossAttention(nn.Module):
    """U-Net features attend to the LR encoding: Q from ``x``, K and V from ``context`` (same grid)."""

    def __init__(self, channels: int, context_channels: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(8, channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.kv = nn.Conv2d(context_channels, 2 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.q(self.norm(x)).reshape(b, self.heads, c // self.heads, h * w).transpose(-1, -2)
        k, v = self.kv(context).reshape(b, 2, self.heads, c // self.heads, -1).transpose(-1, -2).unbind(1)
        # Contiguous heads: with a strided last dimension torch falls back to its unfused attention, which
        # builds the whole tokens x tokens matrix; the fused (flash) kernel was 7.5x faster at 128 x 128 tokens.
        attended = F.scaled_dot_product_attention(q.contiguous(), k.contiguous(), v.contiguous())
        return x + self.out(attended.transpose(-1, -2).reshape(b, c, h, w))


class LDDPMNet(nn.Module):
    def __init__(self, config: LDDPMConfig):
        super().__init__()
        self.config = config
        width, widths = config.width, [config.width * m for m in config.mults]
        bottom = config.bottleneck_channels
        time_dim = 4 * width
        self.time_mlp = nn.Sequential(nn.Linear(width, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
        self.z_mlp = nn.Sequential(nn.Linear(config.gan_latent, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim),
                                   nn.SiLU(), nn.Linear(time_dim, time_dim))
        factor = config.unshuffle
        self.stem = nn.Conv2d(6 * factor * factor, width, 3, padding=1)
        self.down, self.downsample, skips = way_down(width, widths, 1, time_dim)
        # tau(LR): up(LR) strided down to the bottleneck grid
        tau = [nn.Conv2d(3 * factor * factor, width, 3, padding=1), nn.SiLU()]
        for _ in range(len(widths) - 1):
            tau += [nn.Conv2d(width, width, 3, stride=2, padding=1), nn.SiLU()]
        self.tau = nn.Sequential(*tau, nn.Conv2d(width, width, 3, padding=1))
        # the CVAE
        latent = config.latent_channels
        self.cvae_encoder = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.SiLU(),
                                          nn.Conv2d(width, 2 * latent, 3, padding=1))
        self.cvae_decoder = nn.Sequential(nn.Conv2d(latent, bottom, 3, padding=1), nn.SiLU(),
                                          nn.Conv2d(bottom, bottom, 3, padding=1))
        self.f_mu = nn.Conv2d(bottom, bottom, 3, padding=1)
        self.f_delta = nn.Conv2d(bottom, bottom, 3, padding=1)
        self.flow = ConditionalFlow(bottom, width, steps=config.flow_steps, hidden=bottom) if config.flow_steps \
            else None
        self.mid = ResBlock(bottom, bottom, time_dim)
        self.cross = CrossAttention(bottom, width, config.heads)
        self.mid2 = ResBlock(bottom, bottom, time_dim)
        self.dropout = nn.Dropout(config.dropout)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        current = bottom
        for level, c in reversed(list(enumerate(widths))):
            for _ in range(2):
                self.up.append(ResBlock(current + skips.pop(), c, time_dim))
                current = c
            if level > 0:
                self.upsample.append(nn.Conv2d(c, c, 3, padding=1))
        self.head_norm = nn.GroupNorm(8, current)
        self.head = nn.Conv2d(current, 3 * factor * factor, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def latent_shape(self, x: torch.Tensor) -> tuple[int, int, int, int]:
        """Shape of the CVAE latent for an input like ``x`` (one value per bottleneck position)."""
        m = self.config.size_multiple
        return (x.shape[0], self.config.latent_channels, x.shape[-2] // m, x.shape[-1] // m)

    def forward(self, x_t: torch.Tensor, lr_up: torch.Tensor, t: int | torch.Tensor, z_gan: torch.Tensor,
                z_latent: torch.Tensor | None = None,
                delta: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The clean image's estimate in ``[-1, 1]`` (unclamped) and the CVAE's KL term (0 at inference).

        Inference: give ``z_latent`` ~ N(0, I) (:meth:`latent_shape`); the
        CVAE encoder is not run. Training: give ``delta`` ~ N(0, I) instead;
        ``Z = mu + sigma * delta`` from the encoder of tau(LR), and the KL
        term of eq. 11 (mean over positions) comes back.
        """
        if isinstance(t, int) or (torch.is_tensor(t) and t.ndim == 0):
            t = torch.full((x_t.shape[0],), int(t), device=x_t.device)
        emb = self.time_mlp(timestep_embedding(t, self.config.width).to(x_t.dtype)) + self.z_mlp(z_gan.to(x_t.dtype))
        factor = self.config.unshuffle
        h = self.stem(F.pixel_unshuffle(torch.cat([x_t, lr_up], dim=1), factor))
        skips = [h]
        for level, block in enumerate(self.down):
            h = block(h, emb)
            skips.append(h)
            if level < len(self.downsample):
                h = self.downsample[level](h)
                skips.append(h)
        tau = self.tau(F.pixel_unshuffle(lr_up, factor))
        kl = torch.zeros((), device=x_t.device)
        if z_latent is None:
            if delta is None:
                raise ValueError("give z_latent (inference) or delta (training)")
            mu, log_sigma = self.cvae_encoder(tau).chunk(2, dim=1)
            z_latent = mu + log_sigma.exp() * delta
            kl = 0.5 * (mu.pow(2) + (2 * log_sigma).exp() - 2 * log_sigma - 1).sum(1).mean()
        fused = self.f_mu(h) + self.f_delta(h) * self.cvae_decoder(z_latent)
        if self.flow is not None:
            fused, _ = self.flow(fused, tau)
        h = self.mid2(self.dropout(self.cross(self.mid(fused, emb), tau)), emb)
        blocks = iter(self.up)
        for k, level in enumerate(reversed(range(len(self.config.mults)))):
            for _ in range(2):
                h = next(blocks)(torch.cat([h, skips.pop()], dim=1), emb)
            if level > 0:
                h = self.upsample[k](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return lr_up + F.pixel_shuffle(self.head(F.silu(self.head_norm(h))), factor), kl
