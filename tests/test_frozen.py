"""The frozen app's argument dispatch (sr_desk/frozen.py) and its PyInstaller spec, without building anything."""

import runpy
import sys
from pathlib import Path

import pytest

from sr_desk import frozen

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "packaging" / "frozen" / "sr-desk.spec"


class _Calls(list):
    """The recorded calls; ``outcome["exit"]`` is the SystemExit code pip raises ("return": none)."""

    def __init__(self) -> None:
        super().__init__()
        self.outcome = {"exit": None}


@pytest.fixture
def pip_calls(monkeypatch):
    """Stand-in for ``runpy.run_module``: records each call with the sys.argv pip would see."""
    calls = _Calls()
    outcome = calls.outcome

    def fake_run_module(name, run_name=None, alter_sys=False):
        calls.append((name, run_name, alter_sys, list(sys.argv)))
        if outcome["exit"] != "return":
            raise SystemExit(outcome["exit"])

    monkeypatch.setattr(runpy, "run_module", fake_run_module)
    return calls


def test_dash_m_pip_runs_pip_in_process_with_its_arguments(pip_calls):
    argv_before = list(sys.argv)
    argv = ["/opt/sr-desk/sr-desk", "-m", "pip", "install", "--no-deps", "--target", "/p", "x.whl"]
    assert frozen.run_frozen(argv) == 0
    pip_argv = ["/opt/sr-desk/sr-desk", "install", "--no-deps", "--target", "/p", "x.whl"]
    assert pip_calls == [("pip", "__main__", True, pip_argv)]
    assert sys.argv == argv_before  # restored for whoever runs next


@pytest.mark.parametrize(("code", "status"), [(None, 0), (0, 0), (1, 1), (23, 23), ("bad requirement", 1)])
def test_pips_exit_code_becomes_the_status(pip_calls, code, status, capsys):
    pip_calls.outcome["exit"] = code
    assert frozen.run_frozen(["sr-desk", "-m", "pip", "--version"]) == status
    if isinstance(code, str):
        assert code in capsys.readouterr().err


def test_pip_returning_without_sys_exit_is_success(pip_calls):
    pip_calls.outcome["exit"] = "return"
    assert frozen.run_frozen(["sr-desk", "-m", "pip", "list"]) == 0


@pytest.mark.parametrize(
    "argv",
    [
        ["sr-desk"],
        ["sr-desk", "methods"],
        ["sr-desk", "upscale", "a.png", "-o", "b.png", "-m", "pip"],  # -m is upscale's --method here
        ["sr-desk", "-m"],
    ],
)
def test_everything_else_goes_to_the_cli(monkeypatch, pip_calls, argv):
    import sr_desk.cli

    seen = []
    monkeypatch.setattr(sr_desk.cli, "main", lambda args: seen.append(args) or 7)
    assert frozen.run_frozen(argv) == 7
    assert seen == [argv[1:]]
    assert pip_calls == []


def test_the_entry_script_only_hands_argv_to_run_frozen():
    text = (ROOT / "packaging" / "frozen" / "entry.py").read_text()
    assert "from sr_desk.frozen import run_frozen" in text and "run_frozen(sys.argv)" in text


def test_the_spec_bundles_what_discovery_and_plugin_installs_need():
    text = SPEC.read_text()
    for needed in ('copy_metadata("sr-desk")', 'collect_submodules("sr_desk_plugins")', 'collect_submodules("sr_desk")',
                   'collect_data_files("sr_desk_resources")', 'collect_all("pip")', "entry.py"):  # fmt: skip
        assert needed in text, f"sr-desk.spec lacks {needed}"
    compile(text, str(SPEC), "exec")
