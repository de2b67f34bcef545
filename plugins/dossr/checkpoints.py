"""Reading and writing DoSSR weights: sr-desk safetensors with the config in the header.

There is no official checkpoint to convert: the released model is a
ControlNet on Stable Diffusion 2.1 (spec 3), a different network altogether.
"""

from __future__ import annotations

from sr_desk.diffusion.model_file import ModelFile
from sr_desk.diffusion.weights_file import CheckpointError
from sr_desk_plugins.dossr.config import DoSSRConfig
from sr_desk_plugins.dossr.network import DoSSRUNet

__all__ = ["ARCHITECTURE", "MODEL_FILE", "CheckpointError", "load_model", "save_safetensors"]

ARCHITECTURE = "dossr"
MODEL_FILE = ModelFile(ARCHITECTURE, "DoSSR", "dossr", DoSSRConfig.from_json, DoSSRUNet, "DoSSR network")

#: A ready network (float32, eval mode) from an sr-desk DoSSR file, its config and header; strict on keys and shapes.
load_model = MODEL_FILE.load
#: Write the network's weights with the config in the header, atomically; refuses a mismatched set.
save_safetensors = MODEL_FILE.save
