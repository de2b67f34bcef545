"""Bounds on a diffusers folder's JSON: the ``UNet2DModel`` config and the scheduler config, checked before any use.

A folder comes from anywhere, and its numbers size what gets built: a
``layers_per_block`` in the thousands builds for minutes, a wide
``block_out_channels`` allocates gigabytes, a ``num_train_timesteps`` of 1e9
fills memory with betas. So every field the network or the schedule is
built from is checked for its type and range here, and the first one out of
bounds is refused by name, before diffusers sees the config. The bounds are
wide enough for every published pixel-space ``UNet2DModel`` (DDPM's CIFAR-10,
CelebA-HQ, LSUN and church models have 4 to 6 levels of at most 512
channels with 2 layers each) and far below what a CPU or one GPU can hold.
Together the fields may still describe too large a network; the weight count
of the network they build is bounded separately (``MAX_PARAMETERS``, in
:mod:`sr_desk_plugins.diffsr.diffusers_prior`), before any weight is allocated.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sr_desk.core.errors import SrDeskError
from sr_desk.core.special_files import file_problem

__all__ = ["checked_scheduler_config", "checked_unet_config", "read_json_object"]

MAX_LEVELS = 8
MAX_CHANNELS = 2048
MAX_LAYERS = 8
MAX_SAMPLE_SIZE = 16384
MAX_TIMESTEPS = 100_000
#: A config is a few kilobytes; a scheduler's trained_betas of MAX_TIMESTEPS numbers about 2 MiB.
MAX_JSON_BYTES = 4 * 2**20

DOWN_BLOCKS = ("DownBlock2D", "AttnDownBlock2D", "ResnetDownsampleBlock2D", "SkipDownBlock2D", "AttnSkipDownBlock2D")
UP_BLOCKS = ("UpBlock2D", "AttnUpBlock2D", "ResnetUpsampleBlock2D", "SkipUpBlock2D", "AttnSkipUpBlock2D")
#: diffusers' own defaults, for a config that leaves the block types out.
DEFAULT_DOWN = ("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D")
DEFAULT_UP = ("AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D")
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    """The JSON object in ``path`` (at most ``MAX_JSON_BYTES``), or one line saying why it is not one."""
    try:
        problem = file_problem(path, allow_missing=True)  # a pipe or a device would block the read, or never end
        if problem is not None:
            raise SrDeskError(f"{path} is not a plain file ({problem}): not a {what}")
        if path.stat().st_size > MAX_JSON_BYTES:
            raise SrDeskError(f"{path} is over {MAX_JSON_BYTES // 2**20} MiB: not a {what}")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise SrDeskError(f"{path} is not a readable {what} ({' '.join(str(exc).split())[:200]})") from None
    if not isinstance(data, dict):
        raise SrDeskError(f"{path} is not a {what} (a JSON object)")
    return data


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


class _Fields:
    """The fields of one config, each read against its bounds; the first one out of bounds is the error."""

    def __init__(self, config: dict[str, Any], where: Path) -> None:
        self.config, self.where = config, where

    def get(self, name: str, default: Any, ok: Callable[[Any], bool], wanted: str) -> Any:
        value = self.config.get(name, default)
        if not ok(value):
            raise SrDeskError(f"{self.where}: {name} must be {wanted}, not {repr(value)[:60]}")
        return value

    def integer(self, name: str, low: int, high: int, default: int | None, *, null: bool = False) -> int | None:
        return self.get(name, default, lambda v: (null and v is None) or (_is_int(v) and low <= v <= high),
                        f"a whole number from {low} to {high}" + (" or null" if null else ""))

    def real(self, name: str, low: float, high: float, default: float, *, from_low: bool = False) -> float:
        """A finite number in ``(low, high]`` (``[low, high)`` with ``from_low``)."""
        inside = (lambda v: low <= v < high) if from_low else (lambda v: low < v <= high)
        span = f"[{low}, {high})" if from_low else f"({low}, {high}]"
        return self.get(name, default, lambda v: _is_real(v) and inside(v), f"a number in {span}")

    def choice(self, name: str, choices: Sequence[Any], default: Any) -> Any:
        return self.get(name, default, lambda v: any(v == c and type(v) is type(c) for c in choices),
                        f"one of {', '.join(map(str, choices))}")

    def flag(self, name: str, default: bool) -> bool:
        return self.get(name, default, lambda v: isinstance(v, bool), "true or false")

    def names(self, name: str, choices: Sequence[str], count: int, default: Sequence[str]) -> list[str]:
        return self.get(name, default, lambda v: isinstance(v, list | tuple) and len(v) == count and
                        all(b in choices for b in v), f"{count} of {', '.join(choices)} (one per level)")


def _is_sample_size(value: Any) -> bool:
    sides = value if isinstance(value, list | tuple) and len(value) == 2 else [value]
    return value is None or all(_is_int(s) and 1 <= s <= MAX_SAMPLE_SIZE for s in sides)


def checked_unet_config(config: dict[str, Any], where: Path) -> dict[str, Any]:
    """The ``UNet2DModel`` arguments of ``config``, every field in bounds; SrDeskError names the first that is not.

    Only the fields checked here reach diffusers; others (``_diffusers_version``, ...) are dropped.
    """
    kind = config.get("_class_name", "UNet2DModel")
    if kind != "UNet2DModel":
        raise SrDeskError(f"{where}: _class_name {repr(kind)[:60]} is not UNet2DModel, which Diff-SR reads")
    if config.get("class_embed_type") is not None or config.get("num_class_embeds") is not None:
        raise SrDeskError(f"{where}: a class-conditional model needs a class label; Diff-SR uses unconditional ones")
    channels_in, channels_out = config.get("in_channels", 3), config.get("out_channels", 3)
    if not (_is_int(channels_in) and _is_int(channels_out) and channels_in == channels_out == 3):
        raise SrDeskError(f"{where}: Diff-SR needs an RGB pixel-space model (in_channels and out_channels 3), "
                          f"not {repr(channels_in)[:20]} -> {repr(channels_out)[:20]}")
    f = _Fields(config, where)
    widths = f.get("block_out_channels", (224, 448, 672, 896),
                   lambda v: isinstance(v, list | tuple) and 1 <= len(v) <= MAX_LEVELS and
                   all(_is_int(c) and 1 <= c <= MAX_CHANNELS for c in v),
                   f"1 to {MAX_LEVELS} whole numbers from 1 to {MAX_CHANNELS}")
    args = {
        "sample_size": f.get("sample_size", None, _is_sample_size, f"null, or a side (or two) up to {MAX_SAMPLE_SIZE}"),
        "in_channels": 3, "out_channels": 3, "block_out_channels": tuple(widths),
        "down_block_types": tuple(f.names("down_block_types", DOWN_BLOCKS, len(widths), DEFAULT_DOWN)),
        "up_block_types": tuple(f.names("up_block_types", UP_BLOCKS, len(widths), DEFAULT_UP)),
        "mid_block_type": f.choice("mid_block_type", ("UNetMidBlock2D", None), "UNetMidBlock2D"),
        "layers_per_block": f.integer("layers_per_block", 1, MAX_LAYERS, 2),
        "norm_num_groups": f.integer("norm_num_groups", 1, MAX_CHANNELS, 32),
        "attn_norm_num_groups": f.integer("attn_norm_num_groups", 1, MAX_CHANNELS, None, null=True),
        "attention_head_dim": f.integer("attention_head_dim", 1, MAX_CHANNELS, 8, null=True),
        "add_attention": f.flag("add_attention", True),
        "time_embedding_type": f.choice("time_embedding_type", ("positional", "fourier", "learned"), "positional"),
        "time_embedding_dim": f.integer("time_embedding_dim", 1, 4 * MAX_CHANNELS, None, null=True),
        "num_train_timesteps": f.integer("num_train_timesteps", 1, MAX_TIMESTEPS, None, null=True),
        "freq_shift": f.integer("freq_shift", 0, 1, 0),
        "flip_sin_to_cos": f.flag("flip_sin_to_cos", True),
        "center_input_sample": f.flag("center_input_sample", False),
        "mid_block_scale_factor": f.real("mid_block_scale_factor", 0, 100, 1),
        "downsample_padding": f.integer("downsample_padding", 0, 1, 1),
        "downsample_type": f.choice("downsample_type", ("conv", "resnet"), "conv"),
        "upsample_type": f.choice("upsample_type", ("conv", "resnet"), "conv"),
        "dropout": f.real("dropout", 0, 1, 0.0, from_low=True),
        "act_fn": f.choice("act_fn", ("silu", "swish", "mish", "gelu", "relu"), "silu"),
        "norm_eps": f.real("norm_eps", 0, 1, 1e-5),
        "resnet_time_scale_shift": f.choice("resnet_time_scale_shift", ("default", "scale_shift"), "default"),
    }
    _check_widths(args, where)
    return args


def _check_widths(args: dict[str, Any], where: Path) -> None:
    """Channel counts the layers divide: group norms into groups, attention into heads of ``attention_head_dim``."""
    widths = args["block_out_channels"]
    for field, groups, checked in (("norm_num_groups", args["norm_num_groups"], widths),
                                   ("attn_norm_num_groups", args["attn_norm_num_groups"], widths[-1:])):
        if groups is not None and any(width % groups for width in checked):
            raise SrDeskError(f"{where}: every block_out_channels must be a multiple of {field} {groups}, "
                              f"not {list(checked)}")
    head = args["attention_head_dim"]
    attended = [w for w, kind in zip(widths, args["down_block_types"]) if "Attn" in kind]
    attended += [w for w, kind in zip(reversed(widths), args["up_block_types"]) if "Attn" in kind]
    if args["mid_block_type"] and args["add_attention"]:
        attended.append(widths[-1])
    if head is not None and any(width < head for width in attended):
        raise SrDeskError(f"{where}: attention_head_dim {head} is wider than a level with attention "
                          f"({min(attended)} channels)")
    if args["time_embedding_type"] == "learned" and args["num_train_timesteps"] is None:
        raise SrDeskError(f"{where}: a learned time embedding needs num_train_timesteps")


def checked_scheduler_config(config: dict[str, Any], where: Path | str) -> dict[str, Any]:
    """``config`` if the fields the noise schedule is built from are in bounds; SrDeskError names the first not."""
    f = _Fields(config, Path(where))
    f.choice("prediction_type", PREDICTION_TYPES, "epsilon")
    f.integer("num_train_timesteps", 1, MAX_TIMESTEPS, 1000)
    if config.get("trained_betas") is not None:
        f.get("trained_betas", None, lambda v: isinstance(v, list) and 1 <= len(v) <= MAX_TIMESTEPS and
              all(_is_real(b) and 0 < b < 1 for b in v), f"a list of 1 to {MAX_TIMESTEPS} numbers in (0, 1)")
        return config
    f.choice("beta_schedule", BETA_SCHEDULES, "linear")
    for field, default in (("beta_start", 0.0001), ("beta_end", 0.02)):
        f.get(field, default, lambda v: _is_real(v) and 0 < v < 1, "a number in (0, 1)")
    return config
