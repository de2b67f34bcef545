"""How much noise to inject for a given scale: the calibrated Perceptual Recoverable Field (spec 2.5-2.6).

The paper's rule picks, per scale, the noise level NL = t/T that minimises
the recovery error inside the band where the result is still better than the
input. Its thresholds are never given, so in practice the rule is a table
NL(scale) calibrated offline on held-out photos
(:mod:`sr_desk_plugins.diffsr.calibrate`) and stored with the weights;
between calibrated scales the level is interpolated linearly, beyond them it
is held. Before a prior is calibrated, the paper's two points (20 % at x2,
40 % at x4) give ``NL = 0.1 * scale`` (spec 9; our interpolation, not a
paper rule).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

__all__ = ["LEVEL_RANGE", "InjectionTable", "fallback_level", "injection_step"]

#: Automatic levels are clamped to this range (spec 2.6: above 0.6 every metric is worse than the input).
LEVEL_RANGE = (0.0, 0.6)


def fallback_level(scale: float) -> float:
    """The paper's two reported points joined by a line: 0.2 at x2, 0.4 at x4, clamped to [0.1, 0.6]."""
    return min(0.6, max(0.1, 0.1 * scale))


def injection_step(level: float, timesteps: int) -> int:
    """The 0-based step index of noise level ``level`` = t/T (spec 2.2: t = round(NL T)); -1 means no noise."""
    if not 0.0 <= level <= 1.0 or not math.isfinite(level):
        raise ValueError(f"the noise level must lie in [0, 1], got {level!r}")
    return min(timesteps, round(level * timesteps)) - 1


@dataclass(frozen=True)
class InjectionTable:
    """Calibrated noise levels: ``levels[k]`` is NL at ``scales[k]`` (ascending); ``gains`` in dB over bicubic.

    A calibrated level of 0 means that no noise level kept the result at
    least as faithful as the unprocessed input at that scale: the scale has
    no recoverable field (the paper's 8x), which the method tells the user.
    """

    scales: tuple[float, ...]
    levels: tuple[float, ...]
    gains: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        scales = tuple(float(s) for s in self.scales)
        levels = tuple(float(v) for v in self.levels)
        gains = tuple(float(g) for g in self.gains)
        if not scales or len(scales) != len(levels) or (gains and len(gains) != len(scales)):
            raise ValueError("an injection table needs one level (and gain) per scale")
        if any(not math.isfinite(v) for v in (*scales, *levels, *gains)):
            raise ValueError("an injection table holds finite numbers only")
        if any(b <= a for a, b in zip(scales, scales[1:], strict=False)) or scales[0] < 1:
            raise ValueError(f"scales must ascend from 1 or more, got {scales}")
        if any(not LEVEL_RANGE[0] <= v <= LEVEL_RANGE[1] for v in levels):
            raise ValueError(f"levels must lie in {LEVEL_RANGE}, got {levels}")
        object.__setattr__(self, "scales", scales)
        object.__setattr__(self, "levels", levels)
        object.__setattr__(self, "gains", gains)

    def level(self, scale: float) -> float:
        """NL for ``scale``: linear between calibrated scales, held beyond them."""
        scales, levels = self.scales, self.levels
        if scale <= scales[0]:
            return levels[0]
        for (s0, v0), (s1, v1) in zip(zip(scales, levels, strict=True), zip(scales[1:], levels[1:], strict=True),
                                      strict=False):
            if scale <= s1:
                return v0 + (v1 - v0) * (scale - s0) / (s1 - s0)
        return levels[-1]

    def recoverable(self, scale: float) -> bool:
        """False where the calibrated level is 0: no noise kept the result as faithful as the input (spec 8.9)."""
        return self.level(scale) > 0

    def to_json(self) -> str:
        return json.dumps({"scales": list(self.scales), "levels": list(self.levels), "gains": list(self.gains)})

    @classmethod
    def from_json(cls, text: str) -> InjectionTable:
        data = json.loads(text)
        if not isinstance(data, dict) or set(data) - {"scales", "levels", "gains"}:
            raise ValueError("an injection table is a JSON object with scales, levels and gains")
        return cls(tuple(data.get("scales", ())), tuple(data.get("levels", ())), tuple(data.get("gains", ())))
