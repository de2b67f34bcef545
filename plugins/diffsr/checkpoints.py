"""Reading and writing Diff-SR priors: sr-desk safetensors with the config and the injection table in the header.

The paper released no code or weights (spec 1); a user's own prior in the
diffusers format is read by :mod:`sr_desk_plugins.diffsr.diffusers_prior`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from sr_desk.diffusion.model_file import ModelFile
from sr_desk.diffusion.weights_file import CheckpointError
from sr_desk_plugins.diffsr.config import DiffSRConfig
from sr_desk_plugins.diffsr.injection import InjectionTable
from sr_desk_plugins.diffsr.network import DiffSRUNet

__all__ = ["ARCHITECTURE", "INJECTION_KEY", "MODEL_FILE", "CheckpointError", "load_model", "save_safetensors"]

ARCHITECTURE = "diffsr-prior"
#: Metadata key of the calibrated noise-level table (spec 2.6), JSON.
INJECTION_KEY = "injection_table"
MODEL_FILE = ModelFile(ARCHITECTURE, "Diff-SR", "diffsr", DiffSRConfig.from_json, DiffSRUNet, "Diff-SR prior")


def load_model(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[DiffSRUNet, DiffSRConfig, InjectionTable | None]:
    """A ready prior (float32, eval mode) and its calibrated table (None before calibration); strict on keys."""
    state, config, metadata = MODEL_FILE.read(path)
    table = None
    if INJECTION_KEY in metadata:
        try:
            table = InjectionTable.from_json(metadata[INJECTION_KEY])
        except (ValueError, TypeError) as exc:
            raise CheckpointError(f"{Path(path).name}: its injection table is unreadable ({exc})") from None
    return MODEL_FILE.build(state, config, Path(path).name, device), config, table


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
    extra = dict(metadata or {})
    if table is not None:
        extra[INJECTION_KEY] = table.to_json()
    MODEL_FILE.save(model_or_state, config, path, metadata=extra, dtype=dtype)
