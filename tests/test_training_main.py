"""``python -m sr_desk.training NAME``: trainers found through the plugin hook, installed or from a checkout."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from torch import nn

from sr_desk.training import __main__ as training_main
from sr_desk.training.cli import starting_network
from tests.conftest import install_fake_plugin
from tests.test_plugins import TRAINER

BUILT_IN = {"srdiff", "dtls", "dossr", "diffsr", "lddpm"}


def test_a_third_party_trainer_is_found_through_its_entry_point(site_dir, capsys):
    install_fake_plugin(site_dir, "good", TRAINER)
    assert BUILT_IN | {"double"} <= set(training_main.trainers())
    assert training_main.main(["double", "--steps", "2"]) == 3
    assert "training with ['--steps', '2']" in capsys.readouterr().out


def test_a_checkout_that_is_not_installed_finds_the_built_in_trainers(monkeypatch):
    monkeypatch.setattr(training_main, "_installed_plugins", lambda: [])
    assert set(training_main.trainers()) == BUILT_IN


def test_an_unknown_trainer_lists_the_known_ones(capsys):
    assert training_main.main(["nope"]) == 2
    assert "dtls" in capsys.readouterr().err


class _Config:
    def __init__(self, width: int) -> None:
        self.width = width

    def to_json(self) -> str:
        return f'{{"width": {self.width}}}'


def _args(**given) -> argparse.Namespace:
    values = {"init": None, "resume": False, "preset": "small", "patch": 64} | given
    if values["init"] is not None:
        values["init"] = Path(values["init"])
    return argparse.Namespace(**values)


def test_a_run_starts_from_its_preset_or_from_the_init_weights_in_training_mode(capsys):
    presets = {"small": _Config(4), "large": _Config(8)}
    loaded = nn.Linear(3, 3).eval()
    load = lambda path: (loaded, _Config(6), {"source": path.name})  # noqa: E731
    fresh = lambda config: nn.Linear(config.width, config.width)  # noqa: E731

    network, config = starting_network(_args(preset="large"), load=load, presets=presets, fresh=fresh)
    assert config is presets["large"] and network.in_features == 8

    network, config = starting_network(_args(init="shipped.safetensors"), load=load, presets=presets, fresh=fresh)
    assert network is loaded and network.training and config.width == 6
    assert '--init shipped.safetensors: {"width": 6}' in capsys.readouterr().err

    # --resume: the checkpoint replaces the weights, so --init is not read
    _, config = starting_network(_args(init="shipped.safetensors", resume=True), load=load, presets=presets,
                                 fresh=fresh)
    assert config is presets["small"]

    with pytest.raises(SystemExit, match="--patch must be a multiple of 24"):
        starting_network(_args(patch=64), load=load, presets=presets, fresh=fresh,
                         patch_multiple=lambda c: c.width * 6)
    starting_network(_args(patch=72), load=load, presets=presets, fresh=fresh, patch_multiple=lambda c: c.width * 6)
