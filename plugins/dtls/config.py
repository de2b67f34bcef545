"""DTLS's architecture and process settings, stored as JSON in every weights file."""

from __future__ import annotations

from dataclasses import dataclass

from sr_desk.diffusion.json_config import JsonConfig
from sr_desk.diffusion.resolution import DOWNSCALE_KERNELS
from sr_desk.diffusion.weights_file import bounded_int


@dataclass(frozen=True)
class DTLSConfig(JsonConfig):
    """One DTLS model: its U-Net (spec 2) and the levels of its degradation (spec 3).

    ``levels``: level ``t`` shrinks to ``1 - t / levels`` of the output size
    (32 for both official releases); ``max_level``: the deepest level trained
    (30 reaches x16). ``residual``: the U-Net adds its input to its output (the
    official code has the switch, off in its releases; sr-desk's compact model
    turns it on, so training starts from the enlarged input, not from zero).
    """

    METHOD = "DTLS"

    dim: int = 64
    dim_mults: tuple[int, ...] = (1, 2, 4, 8)
    attn_heads: int = 4
    attn_dim_head: int = 32
    residual: bool = False
    levels: int = 32
    max_level: int = 30
    downscale: str = "bilinear"

    def __post_init__(self) -> None:
        # The config comes from a file's header: every number is checked against sane bounds first.
        if not isinstance(self.dim_mults, (list, tuple)) or not 1 <= len(self.dim_mults) <= 10:
            raise ValueError(f"dim_mults must list 1 to 10 multipliers, got {self.dim_mults!r}")
        object.__setattr__(self, "dim_mults", tuple(bounded_int("dim_mults", m, 1, 64) for m in self.dim_mults))
        for name, low, high in (("dim", 4, 1024), ("attn_heads", 1, 64), ("attn_dim_head", 1, 512),
                                ("levels", 2, 1024), ("max_level", 1, 1023)):
            bounded_int(name, getattr(self, name), low, high)
        if not isinstance(self.residual, bool):
            raise ValueError(f"residual must be true or false, got {self.residual!r}")
        if self.dim < 4 or self.dim % 2:
            raise ValueError(f"dim must be an even number >= 4, got {self.dim}")
        if not self.dim_mults or any(m < 1 for m in self.dim_mults):
            raise ValueError(f"dim_mults must be positive, got {self.dim_mults}")
        if not 1 <= self.max_level < self.levels:
            raise ValueError(f"max_level must be in 1..{self.levels - 1}, got {self.max_level}")
        if self.downscale not in DOWNSCALE_KERNELS:
            raise ValueError(f"downscale must be one of {DOWNSCALE_KERNELS}, got {self.downscale!r}")

    @property
    def size_multiple(self) -> int:
        """Image sides must be multiples of this (one halving per level but the last)."""
        return 2 ** (len(self.dim_mults) - 1)

    @property
    def max_scale(self) -> float:
        return self.levels / (self.levels - self.max_level)



#: The official releases (spec 2.1, 6.2): the U-Net is chosen from the HR size alone.
OFFICIAL_16_128 = DTLSConfig(dim=64, dim_mults=(1, 2, 4, 8), max_level=28)
OFFICIAL_32_512 = DTLSConfig(dim=32, dim_mults=(1, 2, 4, 4, 8, 8, 16), max_level=30)
