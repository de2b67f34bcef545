"""``python -m sr_desk.training NAME``: trainers found through the plugin hook, installed or from a checkout."""

from __future__ import annotations

from sr_desk.training import __main__ as training_main
from tests.conftest import install_fake_plugin

BUILT_IN = {"srdiff", "dtls", "dossr", "diffsr", "lddpm"}

THIRD_PARTY = """
from sr_desk.api import Trainer, hookimpl
SR_DESK_API_VERSION = "1.2"

def main(argv):
    print("trained", *argv)
    return 7

@hookimpl
def sr_desk_trainers():
    return [Trainer(name="tinytrain", description="a third-party trainer", main=main)]
"""


def test_a_third_party_trainer_is_found_through_its_entry_point(site_dir, capsys):
    install_fake_plugin(site_dir, "tinytrain", THIRD_PARTY)
    assert BUILT_IN | {"tinytrain"} <= set(training_main.trainers())
    assert training_main.main(["tinytrain", "--steps", "2"]) == 7
    assert "trained --steps 2" in capsys.readouterr().out


def test_a_checkout_that_is_not_installed_finds_the_built_in_trainers(monkeypatch):
    monkeypatch.setattr(training_main, "_installed_plugins", lambda: [])
    assert set(training_main.trainers()) == BUILT_IN


def test_an_unknown_trainer_lists_the_known_ones(capsys):
    assert training_main.main(["nope"]) == 2
    assert "dtls" in capsys.readouterr().err
