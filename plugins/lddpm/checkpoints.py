"""Reading and writing LDDPM weights: sr-desk safetensors with the config in the header (no official release)."""

from __future__ import annotations

from sr_desk.diffusion.model_file import ModelFile
from sr_desk.diffusion.weights_file import CheckpointError
from sr_desk_plugins.lddpm.network import LDDPMConfig, LDDPMNet

__all__ = ["ARCHITECTURE", "MODEL_FILE", "CheckpointError", "load_model", "save_safetensors"]

ARCHITECTURE = "lddpm"
MODEL_FILE = ModelFile(ARCHITECTURE, "LDDPM", "lddpm", LDDPMConfig.from_json, LDDPMNet, "LDDPM network", "an")

#: A ready network (float32, eval mode) from an sr-desk LDDPM file, its config and header; strict on keys and shapes.
load_model = MODEL_FILE.load
#: Write the network's weights with the config in the header, atomically; refuses a mismatched set.
save_safetensors = MODEL_FILE.save
