"""Diff-SR's prior: its architecture and noise schedule, stored as JSON in every weights file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sr_desk.diffusion.json_config import JsonConfig
from sr_desk.diffusion.weights_file import bounded_int

#: The noise schedules a prior may declare, by their diffusers names.
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")


@dataclass(frozen=True)
class DiffSRConfig(JsonConfig):
    """The compact unconditional epsilon-prediction prior of spec section 9.

    ``width``, ``mults``, ``blocks``, ``attention`` and ``unshuffle``: the
    shared compact U-Net (:mod:`sr_desk.diffusion.compact_unet`). The rest is
    the DDPM schedule in the keys of a diffusers ``scheduler_config.json``, so
    one code path serves this prior and a user's diffusers model.
    """

    METHOD = "Diff-SR"

    width: int = 32
    mults: tuple[int, ...] = (1, 2, 4)
    blocks: int = 1
    attention: bool = True
    unshuffle: int = 2
    num_train_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    beta_schedule: str = "linear"

    def __post_init__(self) -> None:
        # The config comes from a file's header: every number is checked against sane bounds first.
        if not isinstance(self.mults, (list, tuple)) or not 1 <= len(self.mults) <= 8:
            raise ValueError(f"mults must list 1 to 8 multipliers, got {self.mults!r}")
        object.__setattr__(self, "mults", tuple(bounded_int("mults", m, 1, 32) for m in self.mults))
        for name, low, high in (("width", 8, 1024), ("blocks", 1, 8), ("unshuffle", 1, 8),
                                ("num_train_timesteps", 2, 10000)):
            bounded_int(name, getattr(self, name), low, high)
        if self.width % 8:
            raise ValueError(f"width must be a multiple of 8 (group norm), got {self.width}")
        if not isinstance(self.attention, bool):
            raise ValueError(f"attention must be true or false, got {self.attention!r}")
        if self.beta_schedule not in BETA_SCHEDULES:
            raise ValueError(f"beta_schedule must be one of {', '.join(BETA_SCHEDULES)}, got {self.beta_schedule!r}")
        for name in ("beta_start", "beta_end"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
                raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")

    @property
    def size_multiple(self) -> int:
        """Image sides must be multiples of this (the unshuffle, then one halving per level but the last)."""
        return self.unshuffle * 2 ** (len(self.mults) - 1)

    def scheduler_config(self) -> dict[str, Any]:
        """The schedule as a diffusers scheduler config (epsilon prediction)."""
        return {"num_train_timesteps": self.num_train_timesteps, "beta_start": self.beta_start,
                "beta_end": self.beta_end, "beta_schedule": self.beta_schedule, "prediction_type": "epsilon"}

