"""ModelFile: one method's weights file, read and written the same way for every method."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from sr_desk.diffusion.json_config import JsonConfig
from sr_desk.diffusion.model_file import ModelFile
from sr_desk.diffusion.weights_file import CheckpointError


@dataclass(frozen=True)
class LineConfig(JsonConfig):
    METHOD = "Line"

    width: int = 3


def line(config: LineConfig) -> nn.Module:
    return nn.Linear(config.width, 2)


LINE = ModelFile("line", "Line", "line", LineConfig.from_json, line, "line network")
ELSE = ModelFile("else", "Else", "else", LineConfig.from_json, line, "else network")


def test_a_file_round_trips_with_its_config_and_header(tmp_path):
    torch.manual_seed(0)
    net = line(LineConfig(width=4))
    LINE.save(net, LineConfig(width=4), tmp_path / "w.safetensors", metadata={"steps": "7"}, dtype=torch.float16)
    loaded, config, metadata = LINE.load(tmp_path / "w.safetensors")
    assert config == LineConfig(width=4) and metadata["steps"] == "7" and metadata["architecture"] == "line"
    assert not loaded.training and loaded.weight.dtype == torch.float32
    assert torch.allclose(loaded.weight, net.weight.half().float())


def test_what_does_not_fit_is_refused_in_one_line(tmp_path):
    with pytest.raises(ValueError, match="do not match the config"):
        LINE.save({"weight": torch.zeros(2, 3)}, LineConfig(), tmp_path / "half.safetensors")  # no bias
    ELSE.save(line(LineConfig()), LineConfig(), tmp_path / "else.safetensors")
    with pytest.raises(CheckpointError, match="holds a 'else' model, not Line"):
        LINE.load(tmp_path / "else.safetensors")
    torch.save({"weight": torch.zeros(2, 3)}, tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match="is not a Line safetensors file; train one with `sr-desk train line`"):
        LINE.load(tmp_path / "w.pt")
