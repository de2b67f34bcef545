"""Reading and writing SRDiff weights, safely and loudly.

Two kinds of file come in:

* the official releases: legacy (non-zip) ``torch.save`` pickles holding
  ``{"global_step", "optimizer_states", "state_dict": {"model": ...}}`` with
  12 noise-schedule buffers next to the ``rrdb.*`` / ``denoise_fn.*`` weights
  (spec 6.1);
* this project's safetensors files, whose header metadata carries the config.

Pickles are only ever opened with ``torch.load(weights_only=True)``: a
checkpoint downloaded from the internet must not be able to run code. And a
file that does not fit the network exactly is an error, never a silent
partial load: the official runner's habit of continuing with random weights
produced pure noise for users (spec 8.10).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

import sr_desk
from sr_desk.core.atomic import atomic_write_bytes
from sr_desk.diffusion.schedule import OFFICIAL_BUFFER_NAMES, cosine_schedule
from sr_desk.diffusion.weights_file import CheckpointError, read_metadata, read_weights_file
from sr_desk.diffusion.weights_file import check_keys as _check_keys
from sr_desk.diffusion.weights_file import key_problems as _key_problems

from .config import SRDiffConfig, infer_config, infer_encoder_config
from .network import RRDBNet, SRDiffModel

__all__ = [
    "SCHEDULE_BUFFERS",
    "CheckpointError",
    "convert_official",
    "load_encoder",
    "load_model",
    "load_state_dict_file",
    "read_metadata",
    "save_safetensors",
]

#: The official ``GaussianDiffusion`` buffers; recomputed from the config, so dropped on load.
SCHEDULE_BUFFERS = OFFICIAL_BUFFER_NAMES

FORMAT = "sr-desk"
ARCH_FULL = "srdiff"
ARCH_ENCODER = "srdiff-encoder"

#: Stored buffers compared with ours: the schedule itself and the bounded quantities derived from it
#: (the log and reciprocal ones are implied by these and would need relative tolerances).
_CHECKED_BUFFERS = (
    "betas",
    "alphas_cumprod",
    "alphas_cumprod_prev",
    "posterior_variance",
    "posterior_mean_coef1",
    "posterior_mean_coef2",
)
#: How far a stored schedule may be from ours (float32 storage of float64 math is ~1e-7 off).
_SCHEDULE_ATOL = 1e-6


# ---------------------------------------------------------------------------
# Schedule (spec 3.2): stored buffers are validated, then dropped
# ---------------------------------------------------------------------------


def _check_schedule(state: Mapping[str, torch.Tensor], name: str, beta_s: float) -> int | None:
    """Compare stored schedule buffers with the cosine schedule; return T, or None when none stored."""
    if "betas" not in state:
        return None
    betas = state["betas"]
    if betas.ndim != 1 or betas.numel() < 1:
        raise CheckpointError(
            f"{name} has a malformed 'betas' buffer of shape {tuple(betas.shape)}; it is not an SRDiff checkpoint"
        )
    timesteps = betas.numel()
    ours = cosine_schedule(timesteps, beta_s)
    for key in _CHECKED_BUFFERS:
        if key not in state:
            continue
        expected = getattr(ours, key)
        stored = state[key].detach().to("cpu", torch.float64).reshape(-1)
        if stored.shape != expected.shape:
            raise CheckpointError(
                f"{name}: schedule buffer {key!r} has {stored.numel()} entries but 'betas' has {timesteps}; "
                "the file is damaged"
            )
        diff = float((stored - expected).abs().max())
        if not diff <= _SCHEDULE_ATOL:  # also catches NaN
            raise CheckpointError(
                f"refusing to load {name}: it was trained with another noise schedule ({key} differs from the "
                f"cosine schedule T={timesteps}, s={beta_s} by up to {diff:.2e}); sampling it with SRDiff's "
                "schedule would produce garbage"
            )
    return timesteps


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class _Loaded:
    state: dict[str, torch.Tensor]  # weights only, schedule buffers removed
    metadata: dict[str, str]
    timesteps: int | None  # from stored schedule buffers, when there were some


def _extract_state(obj: Any, name: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The model state dict of an official checkpoint (``state_dict.model``) or of a bare state dict."""
    metadata: dict[str, str] = {}
    state: Any = obj
    if isinstance(obj, dict) and "state_dict" in obj:
        state = obj["state_dict"]
        if isinstance(state, dict) and isinstance(state.get("model"), dict):
            state = state["model"]
        metadata["format"] = "official-srdiff"
        if isinstance(obj.get("global_step"), int):
            metadata["global_step"] = str(obj["global_step"])
    if not isinstance(state, dict) or not state:
        raise CheckpointError(
            f"{name} holds no model weights (expected a state dict of tensors); is it an SRDiff checkpoint?"
        )
    bad = [k for k, v in state.items() if not isinstance(k, str) or not torch.is_tensor(v)]
    if bad:
        raise CheckpointError(
            f"{name} is not a state dict of tensors ({len(bad)} other entries, e.g. {bad[0]!r}); "
            "is it an SRDiff checkpoint?"
        )
    return dict(state), metadata


def _read(path: str | Path, beta_s: float = 0.008) -> _Loaded:
    name = Path(path).name
    file = read_weights_file(path)
    state, metadata = (file.content, file.metadata) if file.safetensors else _extract_state(file.content, name)
    timesteps = _check_schedule(state, name, beta_s)
    weights = {k: v for k, v in state.items() if k not in SCHEDULE_BUFFERS}
    if not weights:
        raise CheckpointError(f"{name} holds no model weights; is it an SRDiff checkpoint?")
    return _Loaded(weights, metadata, timesteps)


def load_state_dict_file(path: str | Path, *, beta_s: float = 0.008) -> dict[str, torch.Tensor]:
    """The weights of a checkpoint file as ``{key: tensor}`` on the CPU, schedule buffers removed.

    ``.safetensors`` files are read as such (detected from the header, not the
    name); anything else goes through ``torch.load(weights_only=True)`` only.
    Official checkpoints are unwrapped (``state_dict.model``); their schedule
    buffers must match the cosine schedule (``beta_s``) or CheckpointError is
    raised, since sampling a model with the wrong schedule silently fails.
    """
    return _read(path, beta_s).state


# ---------------------------------------------------------------------------
# Building models from files
# ---------------------------------------------------------------------------


def _meta_config(metadata: Mapping[str, str], name: str) -> SRDiffConfig | None:
    if "config" not in metadata:
        return None
    try:
        return SRDiffConfig.from_json(metadata["config"])
    except ValueError as exc:
        raise CheckpointError(f"{name} has an unreadable config in its metadata ({exc}); convert it again") from None


def _check_scale(config: SRDiffConfig, expect_scale: int | None, name: str) -> None:
    if expect_scale is not None and config.scale != expect_scale:
        raise CheckpointError(
            f"{name} is a {config.scale}x model but {expect_scale}x was asked for; "
            f"pick a {expect_scale}x SRDiff checkpoint"
        )


def _encoder_only_error(name: str) -> CheckpointError:
    return CheckpointError(
        f"{name} holds only the SRDiff encoder (for the fast method); the diffusion methods need a full SRDiff model"
    )


def _check_architecture(metadata: Mapping[str, str], allowed: tuple[str, ...], name: str) -> None:
    arch = metadata.get("architecture")
    if arch is None or arch in allowed:
        return
    if arch == ARCH_ENCODER:
        raise _encoder_only_error(name)
    raise CheckpointError(f"{name} holds a {arch!r} model, not SRDiff; pick an SRDiff checkpoint")


def _shapes(module: nn.Module, prefix: str = "") -> dict[str, torch.Size]:
    return {prefix + k: v.shape for k, v in module.state_dict().items()}


def load_model(
    path: str | Path, *, expect_scale: int | None = None, device: str | torch.device = "cpu"
) -> tuple[SRDiffModel, SRDiffConfig, dict[str, str]]:
    """Build an SRDiff model from a checkpoint: ``(model in eval mode, config, metadata)``.

    The architecture is inferred from the tensor names and shapes; a config in
    the file's metadata must agree with it. Every key must be present with the
    right shape and nothing extra may be left over, else CheckpointError.
    fp16 files are loaded into the float32 model.
    """
    name = Path(path).name
    loaded = _read(path)
    _check_architecture(loaded.metadata, (ARCH_FULL,), name)
    try:
        config = infer_config(loaded.state)
    except ValueError as exc:
        if "rrdb.conv_first.weight" in loaded.state and "denoise_fn.cond_proj.weight" not in loaded.state:
            raise _encoder_only_error(name) from None
        raise CheckpointError(f"cannot use {name}: {exc}") from None
    if loaded.timesteps is not None:
        config = dataclasses.replace(config, timesteps=loaded.timesteps)
    config = _agreed_config(_meta_config(loaded.metadata, name), config, SRDiffConfig.same_architecture, name)
    _check_scale(config, expect_scale, name)
    with torch.device("meta"):
        expected = _shapes(SRDiffModel(config))
    _check_keys(expected, loaded.state, name, f"SRDiff {config.scale}x network")
    model = SRDiffModel(config)
    model.load_state_dict(loaded.state, strict=True)
    return model.to(device).eval(), config, loaded.metadata


def _agreed_config(
    meta_config: SRDiffConfig | None,
    inferred: SRDiffConfig,
    same: Callable[[SRDiffConfig, SRDiffConfig], bool],
    name: str,
) -> SRDiffConfig:
    """The metadata's config when it agrees (by ``same``) with the one the tensors fit; else fail loudly."""
    if meta_config is None:
        return inferred
    if not same(meta_config, inferred):
        raise CheckpointError(
            f"{name} is inconsistent: its metadata describes {meta_config.to_json()} but its tensors fit "
            f"{inferred.to_json()}; the file is damaged or was edited, convert it again"
        )
    return meta_config


def load_encoder(
    path: str | Path, *, expect_scale: int | None = None, device: str | torch.device = "cpu"
) -> tuple[RRDBNet, SRDiffConfig, dict[str, str]]:
    """Build the RRDB encoder alone (the fast deterministic method): ``(encoder, config, metadata)``.

    Accepts encoder-only files (``rrdb.*`` keys, architecture ``srdiff-encoder``)
    and full SRDiff files, whose ``denoise_fn.*`` part is ignored.
    """
    name = Path(path).name
    loaded = _read(path)
    _check_architecture(loaded.metadata, (ARCH_FULL, ARCH_ENCODER), name)
    state = {k: v for k, v in loaded.state.items() if not k.startswith("denoise_fn.")}
    full = len(state) != len(loaded.state)
    meta_config = _meta_config(loaded.metadata, name)
    try:
        config = infer_config(loaded.state) if full else infer_encoder_config(state, base=meta_config)
    except ValueError as exc:
        raise CheckpointError(f"cannot use {name}: {exc}") from None
    config = _agreed_config(meta_config, config, SRDiffConfig.same_encoder, name)
    _check_scale(config, expect_scale, name)
    with torch.device("meta"):
        expected = _shapes(RRDBNet(config), "rrdb.")
    _check_keys(expected, state, name, f"SRDiff {config.scale}x encoder")
    encoder = RRDBNet(config)
    encoder.load_state_dict({k.removeprefix("rrdb."): v for k, v in state.items()}, strict=True)
    return encoder.to(device).eval(), config, loaded.metadata


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------


def save_safetensors(
    model_or_state_dict: SRDiffModel | RRDBNet | Mapping[str, torch.Tensor],
    config: SRDiffConfig,
    path: str | Path,
    *,
    metadata: Mapping[str, str] | None = None,
    dtype: torch.dtype = torch.float32,
    architecture: str | None = None,
) -> None:
    """Write weights as safetensors with sr-desk metadata, atomically.

    An :class:`RRDBNet` (or a state dict with only ``rrdb.*`` keys) is written
    as an encoder-only file (architecture ``srdiff-encoder``). The keys and
    shapes are checked against ``config`` first, so no file is written that
    :func:`load_model` / :func:`load_encoder` would refuse. ``format``,
    ``architecture``, ``config``, ``scale`` and ``dtype`` in the metadata are
    always set here; ``version`` defaults to this sr-desk's. ``architecture``,
    when given, must agree with the keys (it is a check, not a switch).
    """
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"dtype must be float32, float16 or bfloat16, got {dtype}")
    if isinstance(model_or_state_dict, RRDBNet):
        state = {"rrdb." + k: v for k, v in model_or_state_dict.state_dict().items()}
    elif isinstance(model_or_state_dict, nn.Module):
        state = dict(model_or_state_dict.state_dict())
    else:
        state = dict(model_or_state_dict)
    state = {k: v for k, v in state.items() if k not in SCHEDULE_BUFFERS}
    encoder_only = not any(k.startswith("denoise_fn.") for k in state)
    arch = ARCH_ENCODER if encoder_only else ARCH_FULL
    if architecture is not None and architecture != arch:
        raise ValueError(f"architecture {architecture!r} given, but the weights are an {arch!r} set")
    with torch.device("meta"):
        expected = _shapes(RRDBNet(config), "rrdb.") if encoder_only else _shapes(SRDiffModel(config))
    problems = _key_problems(expected, state)
    if problems:
        raise ValueError(f"weights do not match the config given to save_safetensors: {'; '.join(problems)}")

    tensors = {
        k: v.detach().to("cpu", dtype=dtype if v.is_floating_point() else v.dtype).contiguous()
        for k, v in state.items()
    }
    meta: dict[str, str] = {"version": sr_desk.__version__}
    for key, value in (metadata or {}).items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"safetensors metadata must map str to str, got {key!r}: {value!r}")
        meta[key] = value
    meta.update(
        format=FORMAT,
        architecture=arch,
        config=config.to_json(),
        scale=str(config.scale),
        dtype=str(dtype).removeprefix("torch."),
    )
    from safetensors.torch import save

    atomic_write_bytes(path, save(tensors, metadata=meta))


def convert_official(
    src: str | Path, dst: str | Path, *, metadata: Mapping[str, str] | None = None
) -> SRDiffConfig:
    """Convert an official SRDiff ``.ckpt`` into an sr-desk safetensors file (float32); return its config.

    The source is read with the same safe, strict loader as any checkpoint
    (weights only, schedule checked, every key accounted for); Adam moments
    and the schedule buffers are left behind. ``metadata`` adds to or
    overrides the default ``source`` / ``training_data`` notes.
    """
    model, config, src_meta = load_model(src)
    meta = {"source": f"official SRDiff checkpoint {Path(src).name}", "training_data": "unknown"}
    if "global_step" in src_meta:
        meta["global_step"] = src_meta["global_step"]
    meta.update(metadata or {})
    save_safetensors(model, config, dst, metadata=meta, dtype=torch.float32)
    return config
