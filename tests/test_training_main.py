"""``python -m sr_desk.training NAME``: trainers found through the plugin hook, installed or from a checkout."""

from __future__ import annotations

from sr_desk.training import __main__ as training_main
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
