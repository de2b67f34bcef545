"""One method's weights file: sr-desk safetensors whose header names the architecture and holds the config.

Every method reads and writes its network the same way: the architecture is
checked, the config comes from the header (and is checked by the config's
own bounds), the keys and shapes must fit the network the config describes
exactly, and the file is written atomically. A method's ``checkpoints.py``
declares one :class:`ModelFile` and adds only what is its own (an official
format to convert, a table in the header).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import torch
from torch import nn

from sr_desk.diffusion.weights_file import CheckpointError, check_keys, read_weights_file, write_safetensors

__all__ = ["ModelFile"]


class _Config(Protocol):
    def to_json(self) -> str: ...


C = TypeVar("C", bound=_Config)
N = TypeVar("N", bound=nn.Module)


@dataclass(frozen=True)
class ModelFile(Generic[C, N]):
    """The weights file of one architecture: ``network(config)`` is what it holds."""

    architecture: str
    #: The method's name in messages ("DoSSR"), and the trainer that writes such files.
    method: str
    trainer: str
    config_from_json: Callable[[str], C]
    network: Callable[[C], N]
    #: What the weights are of, in messages ("DoSSR network").
    part: str
    #: The article the method's name takes when spoken ("an LDDPM").
    article: str = "a"

    def shapes(self, config: C) -> dict[str, torch.Size]:
        """The parameter and buffer shapes of ``network(config)``, built on the meta device (no memory)."""
        with torch.device("meta"):
            return {k: v.shape for k, v in self.network(config).state_dict().items()}

    def config_of(self, name: str, metadata: Mapping[str, str]) -> C:
        """The config in a header that names this architecture; :class:`CheckpointError` otherwise."""
        if metadata.get("architecture") != self.architecture:
            raise CheckpointError(f"{name} holds a {metadata.get('architecture', 'unknown')!r} model, not {self.method}")
        try:
            return self.config_from_json(metadata["config"])
        except (KeyError, ValueError, TypeError) as exc:
            raise CheckpointError(f"{name} has no readable {self.method} config in its metadata ({exc})") from None

    def read(self, path: str | Path) -> tuple[dict[str, torch.Tensor], C, dict[str, str]]:
        """The weights (floats as float32), config and header of an sr-desk file; nothing is built yet."""
        name = Path(path).name
        file = read_weights_file(path)
        if not file.safetensors:
            raise CheckpointError(f"{name} is not {self.article} {self.method} safetensors file; "
                                  f"train one with `sr-desk train {self.trainer}`")
        config = self.config_of(name, file.metadata)
        state = {k: (v.float() if v.is_floating_point() else v) for k, v in file.content.items()}
        return state, config, dict(file.metadata)

    def build(self, state: Mapping[str, torch.Tensor], config: C, name: str,
              device: str | torch.device = "cpu") -> N:
        """``network(config)`` with exactly ``state`` in it (float32, eval mode); refuses a state that does not fit."""
        check_keys(self.shapes(config), state, name, self.part)
        net = self.network(config)
        net.load_state_dict(state)
        return net.to(device).eval()

    def load(self, path: str | Path, device: str | torch.device = "cpu") -> tuple[N, C, dict[str, str]]:
        """A ready network from an sr-desk file, its config and its header."""
        state, config, metadata = self.read(path)
        return self.build(state, config, Path(path).name, device), config, metadata

    def save(self, model_or_state: nn.Module | Mapping[str, torch.Tensor], config: C, path: str | Path, *,
             metadata: Mapping[str, str] | None = None, dtype: torch.dtype = torch.float32) -> None:
        """Write the weights with the config in the header, atomically; refuses a set that does not fit."""
        state: Mapping[str, Any] = (model_or_state.state_dict() if isinstance(model_or_state, nn.Module)
                                    else model_or_state)
        write_safetensors(dict(state), path, architecture=self.architecture, config_json=config.to_json(),
                          expected=self.shapes(config), metadata=metadata, dtype=dtype)
