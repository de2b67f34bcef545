"""Reading and writing LDDPM weights: sr-desk safetensors with the config in the header (no official release)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from sr_desk.diffusion.weights_file import CheckpointError, check_keys, read_weights_file, write_safetensors
from sr_desk_plugins.lddpm.network import LDDPMConfig, LDDPMNet

__all__ = ["ARCHITECTURE", "CheckpointError", "load_model", "save_safetensors"]

ARCHITECTURE = "lddpm"


def _shapes(config: LDDPMConfig) -> dict[str, torch.Size]:
    with torch.device("meta"):
        return {k: v.shape for k, v in LDDPMNet(config).state_dict().items()}


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[LDDPMNet, LDDPMConfig, dict[str, str]]:
    """A ready network (float32, eval mode) from an sr-desk LDDPM file; strict on keys and shapes."""
    name = Path(path).name
    file = read_weights_file(path)
    if not file.safetensors:
        raise CheckpointError(f"{name} is not an LDDPM safetensors file; train one with `sr-desk train lddpm`")
    metadata = file.metadata
    if metadata.get("architecture") != ARCHITECTURE:
        raise CheckpointError(f"{name} holds a {metadata.get('architecture', 'unknown')!r} model, not LDDPM")
    try:
        config = LDDPMConfig.from_json(metadata["config"])
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{name} has no readable LDDPM config in its metadata ({exc})") from None
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in file.content.items()}
    check_keys(_shapes(config), state, name, "LDDPM network")
    net = LDDPMNet(config)
    net.load_state_dict(state)
    return net.to(device).eval(), config, metadata


def save_safetensors(model_or_state: nn.Module | Mapping[str, torch.Tensor], config: LDDPMConfig, path: str | Path,
                     *, metadata: Mapping[str, str] | None = None, dtype: torch.dtype = torch.float32) -> None:
    """Write the network's weights with the config in the header, atomically; refuses a mismatched set."""
    state = dict(model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else model_or_state)
    write_safetensors(state, path, architecture=ARCHITECTURE, config_json=config.to_json(),
                      expected=_shapes(config), metadata=metadata, dtype=dtype)
