"""Reading and writing Diff-SR priors: sr-desk safetensors with the config and the injection table in the header.

The paper released no code or weights (spec 1); a user's own prior in the
diffusers format is read by :mod:`sr_desk_plugins.diffsr.diffusers_prior`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from sr_desk.diffusion.weights_file import CheckpointError, check_keys, read_weights_file, write_safetensors
from sr_desk_plugins.diffsr.config import DiffSRConfig
from sr_desk_plugins.diffsr.injection import InjectionTable
from sr_desk_plugins.diffsr.network import DiffSRUNet

__all__ = ["ARCHITECTURE", "INJECTION_KEY", "CheckpointError", "load_model", "save_safetensors"]

ARCHITECTURE = "diffsr-prior"
#: Metadata key of the calibrated noise-level table (spec 2.6), JSON.
INJECTION_KEY = "injection_table"


def _shapes(config: DiffSRConfig) -> dict[str, torch.Size]:
    with torch.device("meta"):
        return {k: v.shape for k, v in DiffSRUNet(config).state_dict().items()}


def load_model(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[DiffSRUNet, DiffSRConfig, InjectionTable | None]:
    """A ready prior (float32, eval mode) and its calibrated table (None before calibration); strict on keys."""
    name = Path(path).name
    file = read_weights_file(path)
    if not file.safetensors:
        raise CheckpointError(f"{name} is not a Diff-SR safetensors file; train one with `sr-desk train diffsr`")
    metadata = file.metadata
    if metadata.get("architecture") != ARCHITECTURE:
        raise CheckpointError(f"{name} holds a {metadata.get('architecture', 'unknown')!r} model, not a Diff-SR prior")
    try:
        config = DiffSRConfig.from_json(metadata["config"])
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{name} has no readable Diff-SR config in its metadata ({exc})") from None
    table = None
    if INJECTION_KEY in metadata:
        try:
            table = InjectionTable.from_json(metadata[INJECTION_KEY])
        except (ValueError, TypeError) as exc:
            raise CheckpointError(f"{name}: its injection table is unreadable ({exc})") from None
    state = {k: v.float() for k, v in file.content.items()}
    check_keys(_shapes(config), state, name, "Diff-SR prior")
    net = DiffSRUNet(config)
    net.load_state_dict(state)
    return net.to(device).eval(), config, table


def save_safetensors(
    model_or_state: nn.Module | Mapping[str, torch.Tensor],
    config: DiffSRConfig,
    path: str | Path,
    *,
    table: InjectionTable | None = None,
    metadata: Mapping[str, str] | None = None,
    dtype: torch.dtype = torch.float32,
) -> None:
    """Write the prior with its config (and table) in the header, atomically; refuses a mismatched set."""
    state = dict(model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else model_or_state)
    extra = dict(metadata or {})
    if table is not None:
        extra[INJECTION_KEY] = table.to_json()
    write_safetensors(state, path, architecture=ARCHITECTURE, config_json=config.to_json(),
                      expected=_shapes(config), metadata=extra, dtype=dtype)

