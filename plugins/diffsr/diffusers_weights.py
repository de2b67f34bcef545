"""A diffusers model folder's weights, read by sr-desk itself: safetensors only, every weight and no other.

diffusers' own loader fills a weight missing from the files with random
numbers (the model runs, badly, with exit 0) and follows a shard index to
pickled ``.bin`` files. So sr-desk reads the files itself with
``safetensors``: it compares the names, shapes and dtypes in the files'
headers with the network's before reading any tensor data, and a shard
index may name only ``.safetensors`` files inside the model folder. No
file of the folder is ever unpickled.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from sr_desk.core.errors import SrDeskError
from sr_desk.core.special_files import file_problem
from sr_desk.diffusion.weights_file import check_keys, one_line
from sr_desk_plugins.diffsr.diffusers_config import read_json_object

__all__ = ["INDEX", "WEIGHTS", "read_strict_weights", "weight_files"]

WEIGHTS = "diffusion_pytorch_model.safetensors"
INDEX = WEIGHTS + ".index.json"
#: The header dtypes (safetensors' names) of floating-point tensors, the only kind a UNet2DModel holds.
FLOAT_DTYPES = frozenset({"F16", "BF16", "F32", "F64"})

#: Each weights file and the weight names its index places in it (None: whatever the file holds).
WeightFiles = dict[Path, frozenset[str] | None]


def weight_files(model_dir: Path) -> WeightFiles:
    """The safetensors files that hold the model: the single file, the shards its index names, or the only one."""
    if (model_dir / WEIGHTS).exists():  # exists(), not is_file(): a pipe in their place is refused, not passed over
        return {model_dir / WEIGHTS: None}
    if (model_dir / INDEX).exists():
        return _shards(model_dir / INDEX)
    found = sorted(model_dir.glob("*.safetensors"))
    if not found:
        raise SrDeskError(f"{model_dir} has no .safetensors weights; sr-desk never loads pickled .bin files "
                          "(convert them with diffusers' save_pretrained(safe_serialization=True))")
    if len(found) > 1:
        raise SrDeskError(f"{model_dir} holds {len(found)} .safetensors files and neither {WEIGHTS} nor {INDEX}; "
                          "which one is the model is unclear")
    return {found[0]: None}


def _is_plain_safetensors_name(name: str) -> bool:
    """A file name of the folder itself: no folder part, no way up or out, and the safetensors format."""
    return name.endswith(".safetensors") and not any(c in name for c in "/\\:\0") and not name.startswith(".")


def _shards(index: Path) -> WeightFiles:
    weight_map = read_json_object(index, "diffusers shard index").get("weight_map")
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise SrDeskError(f"{index} has no weight_map from weight names to file names")
    shards: dict[str, set[str]] = {}
    for key, name in weight_map.items():
        shards.setdefault(name, set()).add(key)
    for name in shards:
        if not _is_plain_safetensors_name(name):
            raise SrDeskError(f"{index} names {repr(name)[:80]}: sr-desk reads only .safetensors files inside the "
                              "model folder and never loads pickled .bin files")
        if not (index.parent / name).exists():
            raise SrDeskError(f"{index} names {name}, which is not in {index.parent}")
    return {index.parent / name: frozenset(keys) for name, keys in shards.items()}


def _headers(files: WeightFiles) -> dict[str, tuple[Path, str, torch.Tensor]]:
    """Each weight's file, header dtype and shape (as an empty meta tensor), from the headers alone."""
    from safetensors import safe_open

    found: dict[str, tuple[Path, str, torch.Tensor]] = {}
    for path, listed in files.items():
        problem = file_problem(path)  # opening a pipe would wait for a writer for ever
        if problem is not None:
            raise SrDeskError(f"{path} is not a plain file ({problem}); weights are read from files")
        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                slices = {key: f.get_slice(key) for key in f.keys()}
                held = {key: (s.get_dtype(), s.get_shape()) for key, s in slices.items()}
        except Exception as exc:  # SafetensorError, OSError: a damaged header
            raise SrDeskError(f"cannot read {path}: damaged safetensors file ({one_line(exc)})") from None
        if listed is not None and set(held) != listed:
            key = sorted(set(held) ^ listed)[0]
            raise SrDeskError(f"{path.parent / INDEX} does not match {path.name}: {key!r} is "
                              f"{'in the file but not' if key in held else 'listed but not'} in the index for it")
        for key, (dtype, shape) in held.items():
            if key in found:
                raise SrDeskError(f"{path} and {found[key][0].name} both hold the weight {key!r}")
            found[key] = (path, dtype, torch.empty(shape, device="meta"))
    return found


def read_strict_weights(files: WeightFiles, expected: Mapping[str, torch.Size], what: str) -> dict[str, torch.Tensor]:
    """Exactly the ``expected`` weights (names and shapes) from ``files``, as float32; SrDeskError otherwise.

    Everything is checked from the headers before any tensor is read, so a
    refused folder costs no memory.
    """
    headers = _headers(files)
    first = next(iter(files))
    check_keys(expected, {key: shape for key, (_, _, shape) in headers.items()}, str(first.parent), what)
    for key, (path, dtype, _) in headers.items():
        if dtype not in FLOAT_DTYPES:
            raise SrDeskError(f"{path}: the weight {key!r} is {dtype}, not a floating-point tensor")
    from safetensors import safe_open

    state: dict[str, torch.Tensor] = {}
    for path in files:
        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                for key in f.keys():
                    state[key] = f.get_tensor(key).to(torch.float32)
        except Exception as exc:  # SafetensorError, OSError: damaged data after a sound header
            raise SrDeskError(f"cannot read {path}: damaged safetensors file ({one_line(exc)})") from None
    return state
