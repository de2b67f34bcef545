"""DoSSR's architecture and process settings, stored as JSON in every weights file."""

from __future__ import annotations

from dataclasses import dataclass

from sr_desk.diffusion.json_config import JsonConfig
from sr_desk.diffusion.weights_file import bounded_int


@dataclass(frozen=True)
class DoSSRConfig(JsonConfig):
    """The compact pixel-space network of spec section 9 and the domain-shift process it was trained on.

    ``width`` and ``mults``: channels of the U-Net's levels; ``blocks``:
    residual blocks per level on the way down (one more on the way up);
    ``attention``: self-attention at the lowest level; ``unshuffle``: the
    ``[x_t, x_hat]`` pair enters as ``unshuffle x unshuffle`` pixel blocks
    (space-to-depth), which makes every convolution that many squared times
    cheaper at a small cost in fine detail. ``timesteps`` and ``t1``: the
    process (spec 2.1); the network's time embedding takes indices ``0..timesteps-1``.
    """

    METHOD = "DoSSR"

    width: int = 32
    mults: tuple[int, ...] = (1, 2, 4)
    blocks: int = 1
    attention: bool = True
    unshuffle: int = 2
    timesteps: int = 1000
    t1: int = 500

    def __post_init__(self) -> None:
        # The config comes from a file's header: every number is checked against sane bounds first.
        if not isinstance(self.mults, (list, tuple)) or not 1 <= len(self.mults) <= 8:
            raise ValueError(f"mults must list 1 to 8 multipliers, got {self.mults!r}")
        object.__setattr__(self, "mults", tuple(bounded_int("mults", m, 1, 32) for m in self.mults))
        for name, low, high in (("width", 8, 1024), ("blocks", 1, 8), ("unshuffle", 1, 8),
                                ("timesteps", 2, 10000), ("t1", 2, 10000)):
            bounded_int(name, getattr(self, name), low, high)
        if self.width % 8:
            raise ValueError(f"width must be a multiple of 8 (group norm), got {self.width}")
        if not isinstance(self.attention, bool):
            raise ValueError(f"attention must be true or false, got {self.attention!r}")
        if self.t1 > self.timesteps:
            raise ValueError(f"t1 ({self.t1}) must not exceed timesteps ({self.timesteps})")

    @property
    def size_multiple(self) -> int:
        """Image sides must be multiples of this (the unshuffle, then one halving per level but the last)."""
        return self.unshuffle * 2 ** (len(self.mults) - 1)

