"""SRDiff hyper-parameters, and how to recover them from a checkpoint's keys.

The architecture of a checkpoint is read from its tensor names and shapes
(spec 6.1), never from a yaml that travels next to it: the official DF2K
release is known to disagree with its own config (spec 8.8). This module is
torch-free on purpose, so it can describe a model without importing torch;
``state_dict`` arguments only need ``.shape`` on their values.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sr_desk.diffusion.weights_file import bounded_int

__all__ = [
    "SRDiffConfig",
    "infer_config",
    "infer_encoder_config",
    "official_4x",
    "official_8x",
]


class _HasShape(Protocol):
    @property
    def shape(self) -> Any: ...


#: Fields that change tensor shapes or names; the schedule fields do not.
_ENCODER_FIELDS = ("scale", "rrdb_nf", "rrdb_nb", "rrdb_gc")
_ARCH_FIELDS = (*_ENCODER_FIELDS, "unet_dim", "dim_mults")


#: What the U-Net's residual can be measured from (see ``SRDiffConfig.residual_base``).
RESIDUAL_BASES = ("bicubic", "encoder")


#: Sane bounds for the integer fields: a header may say anything (the released models use 4 or 8,
#: nf 32, nb 8, gc 16, width 64, T = 100).
_INT_BOUNDS = (
    ("scale", 2, 16),
    ("rrdb_nf", 1, 1024),
    ("rrdb_nb", 1, 64),
    ("rrdb_gc", 1, 1024),
    ("unet_dim", 1, 1024),
    ("timesteps", 1, 10_000),
)


def _whole(value: Any, name: str) -> int:
    """A whole number from JSON (``4`` or ``4.0``); ``4.5``, ``inf``, ``true`` or text are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    return int(value)


def _is_power_of_two(n: int) -> bool:
    return n >= 2 and (n & (n - 1)) == 0


@dataclass(frozen=True)
class SRDiffConfig:
    """Everything needed to build an SRDiff model (RRDB encoder + conditional U-Net).

    Defaults are the released configuration shared by both official tasks
    (nf 32, nb 8, gc 16, U-Net width 64, cosine schedule s = 0.008, T = 100)
    with the DF2K 4x widths; see :meth:`official_4x` / :meth:`official_8x`.
    """

    scale: int = 4
    rrdb_nf: int = 32
    rrdb_nb: int = 8
    rrdb_gc: int = 16
    unet_dim: int = 64
    dim_mults: tuple[int, ...] = (1, 2, 3, 4)
    timesteps: int = 100
    beta_s: float = 0.008
    #: sr-desk's own weights: the encoder predicts a residual over the bicubic enlargement
    #: (a global skip). Official checkpoints predict the image itself.
    encoder_skip: bool = False
    #: What the diffusion residual is measured from: ``bicubic`` (the paper) or ``encoder``, the
    #: encoder's own upscale ("predict, then refine": the U-Net only learns the detail it missed).
    residual_base: str = "bicubic"

    def __post_init__(self) -> None:
        # Accept lists (e.g. straight from JSON) but store a hashable tuple.
        if not isinstance(self.dim_mults, (list, tuple)) or not 2 <= len(self.dim_mults) <= 8:
            raise ValueError(f"dim_mults must list 2 to 8 multipliers, got {self.dim_mults!r}")
        object.__setattr__(self, "dim_mults", tuple(bounded_int("dim_mults", m, 1, 64) for m in self.dim_mults))
        for name, low, high in _INT_BOUNDS:
            bounded_int(name, getattr(self, name), low, high)
        if not _is_power_of_two(self.scale):
            raise ValueError(f"scale must be a power of two >= 2, got {self.scale}")
        if self.rrdb_nf < 1 or self.rrdb_gc < 1:
            raise ValueError(f"rrdb_nf and rrdb_gc must be positive, got {self.rrdb_nf}, {self.rrdb_gc}")
        if self.rrdb_nb < 2:
            # Fewer than 2 blocks leaves no feature at index 2: an empty condition.
            raise ValueError(f"rrdb_nb must be at least 2 (the condition starts at feature 2), got {self.rrdb_nb}")
        if self.unet_dim < 4 or self.unet_dim % 2:
            raise ValueError(f"unet_dim must be even and >= 4 (sinusoidal embedding), got {self.unet_dim}")
        if len(self.dim_mults) < 2 or any(m < 1 for m in self.dim_mults):
            raise ValueError(f"dim_mults needs at least two positive entries, got {self.dim_mults}")
        if self.timesteps < 1:
            raise ValueError(f"timesteps must be positive, got {self.timesteps}")
        if not 0.0 <= self.beta_s < 1.0:
            raise ValueError(f"beta_s must lie in [0, 1), got {self.beta_s}")
        if not isinstance(self.encoder_skip, bool):
            raise ValueError(f"encoder_skip must be true or false, got {self.encoder_skip!r}")
        if self.residual_base not in RESIDUAL_BASES:
            raise ValueError(f"residual_base must be one of {', '.join(RESIDUAL_BASES)}, got {self.residual_base!r}")

    # ----------------------------------------------------------------- derived
    @property
    def cond_indices(self) -> tuple[int, ...]:
        """Entries of the encoder's ``nb + 1`` feature list that form the condition: 2, 5, 8, ..."""
        return tuple(range(2, self.rrdb_nb + 1, 3))

    @property
    def cond_channels(self) -> int:
        """Channels of the concatenated condition (96 for the released nf 32, nb 8)."""
        return self.rrdb_nf * ((self.rrdb_nb + 1) // 3)

    @property
    def unet_widths(self) -> tuple[int, ...]:
        """Output channels of the U-Net levels, ``unet_dim * m`` for each multiplier."""
        return tuple(self.unet_dim * m for m in self.dim_mults)

    @property
    def size_multiple(self) -> int:
        """HR sides must be divisible by this: one stride-2 stage per level but the last (8 for 4 levels)."""
        return 2 ** (len(self.dim_mults) - 1)

    @property
    def min_side(self) -> int:
        """Smallest HR side the U-Net takes: the deepest level's reflection padding needs 2 pixels."""
        return 2 * self.size_multiple

    @property
    def num_upconvs(self) -> int:
        """Nearest-x2 + conv stages of the encoder's HR tail (log2 of the scale)."""
        return self.scale.bit_length() - 1

    # -------------------------------------------------------------- comparison
    def same_architecture(self, other: SRDiffConfig) -> bool:
        """Equal in every field that shapes the weights (ignores the schedule fields)."""
        return all(getattr(self, f) == getattr(other, f) for f in _ARCH_FIELDS)

    def same_encoder(self, other: SRDiffConfig) -> bool:
        """Equal in every field that shapes the RRDB encoder's weights."""
        return all(getattr(self, f) == getattr(other, f) for f in _ENCODER_FIELDS)

    # -------------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["dim_mults"] = list(self.dim_mults)
        return d

    def to_json(self) -> str:
        """Compact, key-sorted JSON (stable, so two equal configs give equal strings)."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, data: str | Mapping[str, Any]) -> SRDiffConfig:
        """Parse :meth:`to_json` output (a string) or an already-decoded dict.

        Unknown keys are an error: a file written by a newer version with an
        extra architecture knob must not silently build the wrong network.
        """
        if isinstance(data, (str, bytes)):
            try:
                data = json.loads(data)
            except json.JSONDecodeError as exc:
                raise ValueError(f"SRDiff config is not valid JSON: {exc}") from None
        if not isinstance(data, Mapping):
            raise ValueError(f"SRDiff config must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown SRDiff config keys: {', '.join(unknown)}")
        kwargs: dict[str, Any] = dict(data)
        try:
            for key in ("scale", "rrdb_nf", "rrdb_nb", "rrdb_gc", "unet_dim", "timesteps"):
                if key in kwargs:
                    kwargs[key] = _whole(kwargs[key], key)
            if "beta_s" in kwargs:
                kwargs["beta_s"] = float(kwargs["beta_s"])
            if "residual_base" in kwargs:
                kwargs["residual_base"] = str(kwargs["residual_base"])
            if "dim_mults" in kwargs:
                kwargs["dim_mults"] = tuple(_whole(m, "dim_mults") for m in kwargs["dim_mults"])
        except (TypeError, ValueError, OverflowError) as exc:
            raise ValueError(f"bad SRDiff config value: {exc}") from None
        return cls(**kwargs)

    # ----------------------------------------------------------------- presets
    @classmethod
    def official_4x(cls) -> SRDiffConfig:
        """The released DF2K 4x configuration (``diffsr_df2k4x``): widths 1, 2, 3, 4."""
        return cls(scale=4, dim_mults=(1, 2, 3, 4))

    @classmethod
    def official_8x(cls) -> SRDiffConfig:
        """The released CelebA 8x configuration (``diffsr_celeb``): widths 1, 2, 2, 4."""
        return cls(scale=8, dim_mults=(1, 2, 2, 4))


official_4x = SRDiffConfig.official_4x
official_8x = SRDiffConfig.official_8x


# ---------------------------------------------------------------------------
# Inference of the configuration from a state dict (spec 6.1)
# ---------------------------------------------------------------------------

_TRUNK_RE = re.compile(r"RRDB_trunk\.(\d+)\.")


def _require(state: Mapping[str, _HasShape], key: str) -> tuple[int, ...]:
    if key not in state:
        raise ValueError(f"not an SRDiff state dict: missing {key}")
    return tuple(int(d) for d in state[key].shape)


def _encoder_fields(state: Mapping[str, _HasShape], prefix: str) -> dict[str, Any]:
    """nf, nb, gc and the tail's scale of an RRDB encoder stored under ``prefix``."""
    nf = _require(state, f"{prefix}conv_first.weight")[0]
    blocks = set()
    for key in state:
        if key.startswith(prefix):
            m = _TRUNK_RE.match(key, len(prefix))
            if m:
                blocks.add(int(m.group(1)))
    nb = len(blocks)
    if nb == 0:
        raise ValueError(f"not an SRDiff state dict: no {prefix}RRDB_trunk.<k> blocks")
    if blocks != set(range(nb)):
        raise ValueError(f"not an SRDiff state dict: {prefix}RRDB_trunk blocks are not numbered 0..{nb - 1}")
    gc = _require(state, f"{prefix}RRDB_trunk.0.RDB1.conv1.weight")[0]
    upconvs = 0
    while f"{prefix}upconv{upconvs + 1}.weight" in state:
        upconvs += 1
    if upconvs == 0:
        raise ValueError(f"not an SRDiff state dict: missing {prefix}upconv1.weight")
    return {"rrdb_nf": nf, "rrdb_nb": nb, "rrdb_gc": gc, "scale": 2**upconvs}


def infer_encoder_config(
    state_dict: Mapping[str, _HasShape], prefix_rrdb: str = "rrdb.", *, base: SRDiffConfig | None = None
) -> SRDiffConfig:
    """The encoder part of a config from an RRDB-only state dict (keys ``rrdb.*``).

    Scale comes from the number of ``upconv<k>`` layers in the HR tail (two for
    4x, three for 8x). The U-Net and schedule fields are copied from ``base``
    (default: the released values), since an encoder-only file cannot say.
    """
    fields = _encoder_fields(state_dict, prefix_rrdb)
    try:
        return dataclasses.replace(base or SRDiffConfig(), **fields)
    except ValueError as exc:
        raise ValueError(f"not a usable SRDiff encoder: {exc}") from None


def infer_config(
    state_dict: Mapping[str, _HasShape], prefix_rrdb: str = "rrdb.", prefix_unet: str = "denoise_fn."
) -> SRDiffConfig:
    """The full config of an SRDiff state dict, from its keys and shapes only (spec 6.1).

    * nf = ``conv_first.weight.shape[0]``, nb = number of ``RRDB_trunk.<k>``,
      gc = ``RRDB_trunk.0.RDB1.conv1.weight.shape[0]``;
    * scale = half the ``cond_proj`` kernel, cross-checked with the encoder tail;
    * U-Net widths = ``downs.<k>.1.block1.block.1.weight.shape[0]`` per level;
    * ``cond_proj`` input channels must equal ``nf * ((nb + 1) // 3)``;
    * timesteps = length of ``betas`` when the schedule buffers are present.

    Raises ValueError naming the first key that does not fit.
    """
    enc = _encoder_fields(state_dict, prefix_rrdb)
    cin, dim, kh, kw = _require(state_dict, f"{prefix_unet}cond_proj.weight")
    if kh != kw or kh % 2:
        raise ValueError(f"not an SRDiff state dict: {prefix_unet}cond_proj kernel is {kh}x{kw}, expected 2s x 2s")
    scale = kh // 2
    if scale != enc["scale"]:
        raise ValueError(
            f"inconsistent SRDiff state dict: cond_proj says {scale}x but the encoder tail has "
            f"{enc['scale'].bit_length() - 1} upconv layers ({enc['scale']}x)"
        )
    cond_channels = enc["rrdb_nf"] * ((enc["rrdb_nb"] + 1) // 3)
    if cin != cond_channels:
        raise ValueError(
            f"inconsistent SRDiff state dict: cond_proj takes {cin} channels but nf {enc['rrdb_nf']}, "
            f"nb {enc['rrdb_nb']} give {cond_channels}"
        )
    widths: list[int] = []
    while f"{prefix_unet}downs.{len(widths)}.1.block1.block.1.weight" in state_dict:
        widths.append(_require(state_dict, f"{prefix_unet}downs.{len(widths)}.1.block1.block.1.weight")[0])
    if len(widths) < 2:
        raise ValueError(f"not an SRDiff state dict: missing {prefix_unet}downs.{len(widths)}.1.block1.block.1.weight")
    if any(w % dim for w in widths):
        raise ValueError(f"inconsistent SRDiff state dict: U-Net widths {widths} are not multiples of {dim}")
    timesteps = SRDiffConfig.timesteps
    if "betas" in state_dict:
        timesteps = _require(state_dict, "betas")[0]
    try:
        return SRDiffConfig(
            **enc, unet_dim=dim, dim_mults=tuple(w // dim for w in widths), timesteps=timesteps
        )
    except ValueError as exc:
        raise ValueError(f"not a usable SRDiff state dict: {exc}") from None
