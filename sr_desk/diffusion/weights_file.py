"""Reading weights files safely and loudly, for every method plugin.

A weights file comes from anywhere: a pickle is only ever opened with
``torch.load(weights_only=True)``, so a checkpoint downloaded from the
internet cannot run code, and every refusal is one line that says why and
what to do. ``.safetensors`` files are recognised by their header, not their
name. A file that does not fit the network exactly is an error
(:func:`check_keys`), never a silent partial load with random weights.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sr_desk.core.errors import SrDeskError
from sr_desk.core.special_files import check_openable_file

__all__ = [
    "CheckpointError",
    "WeightsFile",
    "bounded_int",
    "check_keys",
    "key_problems",
    "looks_like_safetensors",
    "one_line",
    "read_metadata",
    "read_safetensors",
    "read_torch",
    "read_weights_file",
    "write_safetensors",
]

_FIRST_KEYS = 3


class CheckpointError(SrDeskError):
    """A weights file that cannot be used; the one-line message says why and what to do."""


def bounded_int(name: str, value: object, low: int, high: int) -> int:
    """``value`` if it is a whole number in ``[low, high]``, else ValueError.

    Configurations come from a file's header, which anyone can write: a
    ``timesteps`` of 4e9 would try to allocate many gigabytes, and a float
    or a string would fail somewhere deep inside the model instead of here.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")
    return value


def looks_like_safetensors(path: Path) -> bool:
    """Sniff the header: 8-byte little-endian JSON length, then ``{``. Extensions lie."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        return False
    if len(head) < 9 or head[8:9] != b"{":
        return False
    n = int.from_bytes(head[:8], "little")
    return 2 <= n <= 100_000_000


def read_safetensors(path: Path, name: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
        tensors = load_file(str(path), device="cpu")
    except Exception as exc:  # SafetensorError, OSError, JSON errors ...
        raise CheckpointError(
            f"cannot read {name}: damaged safetensors file ({one_line(exc)}); download or convert it again"
        ) from None
    return tensors, metadata


def _starts_like_pickle(path: Path) -> bool:
    """A pickle stream of protocol 2+ opens with the PROTO opcode (0x80)."""
    try:
        with open(path, "rb") as f:
            return f.read(1) == b"\x80"
    except OSError:
        return False


def _refused_pickle_error(path: Path, exc: Exception) -> CheckpointError:
    """The weights-only unpickler stopped: explain why in one line."""
    name = path.name
    text = str(exc)
    advice = "sr-desk loads only plain tensors and never runs code from a weights file; ask for a .safetensors file"
    m = re.search(r"GLOBAL ([\w.]+)", text)
    if m:
        return CheckpointError(
            f"refusing to load {name}: it is a pickle that would run code (GLOBAL {m.group(1)}); {advice}"
        )
    op = re.search(r"Unsupported operand (\d+)", text)
    if op and _starts_like_pickle(path):
        return CheckpointError(
            f"refusing to load {name}: it is a pickle the safe loader cannot check (opcode {op.group(1)}, "
            f"e.g. a newer pickle protocol), so it may run code; {advice}"
        )
    if op:
        return CheckpointError(f"cannot read {name}: not a PyTorch or safetensors checkpoint")
    return CheckpointError(f"refusing to load {name}: it holds objects other than tensors and may run code; {advice}")


def read_torch(path: Path, name: str) -> Any:
    try:
        with warnings.catch_warnings():
            # "Detected pickle protocol N": the refusal below is the message that matters.
            warnings.filterwarnings("ignore", message=".*pickle protocol.*", category=UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only load failed" in str(exc).lower() or "weightsunpickler" in str(exc).lower():
            raise _refused_pickle_error(path, exc) from None
        raise CheckpointError(f"cannot read {name}: not a PyTorch or safetensors checkpoint") from None
    except FileNotFoundError:
        raise CheckpointError(f"weights file not found: {path}") from None
    except (IsADirectoryError, PermissionError) as exc:
        raise CheckpointError(f"cannot open {name}: {exc.strerror}") from None
    except EOFError:
        if path.stat().st_size == 0:
            raise CheckpointError(f"cannot read {name}: the file is empty") from None
        raise CheckpointError(f"cannot read {name}: the file ends too early (incomplete download?)") from None
    except RuntimeError as exc:  # a broken zip archive, a bad storage record ...
        detail = one_line(exc).split(". This is an internal")[0]
        raise CheckpointError(f"cannot read {name}: damaged or not a PyTorch checkpoint ({detail})") from None
    except Exception:  # KeyError on a bad magic number, ValueError ...
        raise CheckpointError(f"cannot read {name}: not a PyTorch or safetensors checkpoint") from None


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def read_metadata(path: str | Path) -> dict[str, str]:
    """The safetensors header metadata (empty for files without any, e.g. official pickles)."""
    path = Path(path)
    _check_weights_path(path)
    if not looks_like_safetensors(path):
        return {}
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return dict(f.metadata() or {})
    except Exception as exc:
        raise CheckpointError(f"cannot read {path.name}: damaged safetensors file ({one_line(exc)})") from None


def _first(keys: list[str]) -> str:
    shown = ", ".join(keys[:_FIRST_KEYS])
    return shown + (", ..." if len(keys) > _FIRST_KEYS else "")


def key_problems(expected: Mapping[str, torch.Size], state: Mapping[str, torch.Tensor]) -> list[str]:
    """Missing, unexpected and wrongly shaped keys of ``state``, summarised with counts and first keys."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {tuple(state[k].shape)} vs {tuple(shape)}"
        for k, shape in expected.items()
        if k in state and tuple(state[k].shape) != tuple(shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys ({_first(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys ({_first(unexpected)})")
    if wrong:
        problems.append(f"{len(wrong)} keys with the wrong shape ({_first(wrong)})")
    return problems


def check_keys(expected: Mapping[str, torch.Size], state: Mapping[str, torch.Tensor], name: str, what: str) -> None:
    """Raise CheckpointError unless ``state`` has exactly the expected keys and shapes."""
    problems = key_problems(expected, state)
    if problems:
        raise CheckpointError(
            f"{name} does not fit the {what}: {'; '.join(problems)} — refusing to run with random weights; "
            "use a complete checkpoint made for this network"
        )


@dataclass(frozen=True)
class WeightsFile:
    """What a weights file holds, read safely; the plugin makes sense of ``content``."""

    #: The tensors of a safetensors file, or what a torch file unpickled to (tensors and plain types only).
    content: Any
    #: The safetensors header's metadata (empty for torch files).
    metadata: dict[str, str]
    safetensors: bool


def _check_weights_path(path: Path) -> None:
    """Refuse, before anything opens it, a path that is not a plain file: a FIFO would block the open forever."""
    if not os.path.lexists(path):
        raise CheckpointError(f"weights file not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; pick the weights file inside it")
    check_openable_file(path, "weights file", error=CheckpointError)


def read_weights_file(path: str | Path) -> WeightsFile:
    """Open ``path`` as safetensors (by its header or its name) or as a ``weights_only`` torch file."""
    path = Path(path)
    name = path.name
    _check_weights_path(path)
    if looks_like_safetensors(path) or path.suffix.lower() == ".safetensors":
        state, metadata = read_safetensors(path, name)
        return WeightsFile(state, metadata, safetensors=True)
    return WeightsFile(read_torch(path, name), {}, safetensors=False)


def write_safetensors(
    state: Mapping[str, torch.Tensor],
    path: str | Path,
    *,
    architecture: str,
    config_json: str,
    expected: Mapping[str, torch.Size],
    metadata: Mapping[str, str] | None = None,
    dtype: torch.dtype = torch.float32,
) -> None:
    """Write a model's weights as sr-desk safetensors, atomically, with its architecture and config in the header.

    Refuses a state that does not fit ``expected`` (key names and shapes), so
    a file that was written can always be loaded strictly again.
    """
    import sr_desk
    from sr_desk.core.atomic import atomic_write_bytes

    problems = key_problems(expected, state)
    if problems:
        raise ValueError(f"weights do not match the config: {'; '.join(problems)}")
    tensors = {k: v.detach().to("cpu", dtype).contiguous() for k, v in state.items()}
    meta = {"version": sr_desk.__version__, **(metadata or {})}
    meta.update(format="sr-desk", architecture=architecture, config=config_json,
                dtype=str(dtype).removeprefix("torch."))
    from safetensors.torch import save

    atomic_write_bytes(path, save(tensors, metadata=meta))
