"""Reading and writing DTLS weights: sr-desk's safetensors files and the official releases.

Official checkpoints (spec 6.1) are zip ``torch.save`` dicts ``{step, model,
ema}`` whose keys carry a ``denoise_fn.`` prefix; they are opened with
``weights_only=True`` only, the EMA copy is used (as the official evaluation
does), the configuration is read from the key shapes, and the load is strict
(the official loader's ``strict=False`` hides a wrong configuration).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from sr_desk.diffusion.model_file import ModelFile
from sr_desk.diffusion.weights_file import CheckpointError, read_weights_file
from sr_desk_plugins.dtls.config import DTLSConfig
from sr_desk_plugins.dtls.network import DTLSUNet

__all__ = ["MODEL_FILE", "CheckpointError", "convert_official", "infer_official_config", "load_model", "save_safetensors"]

ARCHITECTURE = "dtls"
MODEL_FILE = ModelFile(ARCHITECTURE, "DTLS", "dtls", DTLSConfig.from_json, DTLSUNet, "DTLS U-Net")
OFFICIAL_PREFIX = "denoise_fn."
#: The official attention width (4 heads of 32); the checkpoint stores only their product.
OFFICIAL_DIM_HEAD = 32




def infer_official_config(state: Mapping[str, torch.Tensor]) -> DTLSConfig:
    """The official U-Net's configuration, from the shapes of its (unprefixed) keys (spec 6.1).

    The HR size, and with it the deepest level, is not stored: the 4-level
    network is the 16 -> 128 release (x8, level 28), the others the 32 -> 512
    one (x16, level 30).
    """
    try:
        dim = int(state["time_mlp.3.weight"].shape[0])
        count = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("downs."))
        widths = [int(state[f"downs.{k}.1.net.3.weight"].shape[0]) for k in range(count)]
        hidden = int(state["downs.0.2.fn.fn.to_qkv.weight"].shape[0]) // 3
    except (KeyError, ValueError, IndexError):
        raise CheckpointError("not a DTLS U-Net: its keys do not match the official layout (spec 6.1)") from None
    if any(w % dim for w in widths) or hidden % OFFICIAL_DIM_HEAD:
        raise CheckpointError(f"not a DTLS U-Net: widths {widths} are not multiples of {dim}")
    return DTLSConfig(
        dim=dim,
        dim_mults=tuple(w // dim for w in widths),
        attn_heads=hidden // OFFICIAL_DIM_HEAD,
        attn_dim_head=OFFICIAL_DIM_HEAD,
        residual=False,
        max_level=28 if count == 4 else 30,
        downscale="bilinear",
    )


def _official_state(obj: Any, name: str) -> dict[str, torch.Tensor]:
    """The EMA weights of an official checkpoint (or the model's where no EMA was saved), unprefixed."""
    if not isinstance(obj, dict):
        raise CheckpointError(f"{name} is not a DTLS checkpoint (expected a dict with 'ema' or 'model')")
    state = obj.get("ema", obj.get("model", obj))
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"{name} holds no model weights; is it a DTLS checkpoint?")
    if any(not isinstance(k, str) or not torch.is_tensor(v) for k, v in state.items()):
        raise CheckpointError(f"{name} is not a state dict of tensors; is it a DTLS checkpoint?")
    return {k.removeprefix(OFFICIAL_PREFIX): v.float() for k, v in state.items()}


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], DTLSConfig, dict[str, str]]:
    """The U-Net weights in ``path``, their configuration and metadata; nothing is built yet."""
    name = Path(path).name
    file = read_weights_file(path)
    if file.safetensors:
        config = MODEL_FILE.config_of(name, file.metadata)
        return {k: v.float() for k, v in file.content.items()}, config, dict(file.metadata)
    state = _official_state(file.content, name)
    return state, infer_official_config(state), {"format": "official-dtls"}


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[DTLSUNet, DTLSConfig, dict[str, str]]:
    """A ready U-Net (float32, eval mode) from an sr-desk or official file; strict on keys and shapes."""
    state, config, metadata = read_weights(path)
    return MODEL_FILE.build(state, config, Path(path).name, device), config, metadata


#: Write the U-Net's weights with the config in the header, atomically; refuses a mismatched set.
save_safetensors = MODEL_FILE.save


def convert_official(checkpoint: str | Path, out: str | Path) -> DTLSConfig:
    """An official ``{step, model, ema}`` file as sr-desk safetensors (EMA weights, float32)."""
    unet, config, _ = load_model(checkpoint)
    save_safetensors(unet, config, out, metadata={"converted_from": Path(checkpoint).name, "trained_by": "DTLS authors"})
    return config
