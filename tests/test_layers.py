"""The layer rules, checked: core <- api <- engine (<- ui), plugins never touch the UI."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("lint-imports") is None, reason="import-linter is not installed")
def test_import_contracts_hold():
    result = subprocess.run(["lint-imports"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_engine_draws_no_widgets():
    for path in (ROOT / "sr_desk" / "engine").rglob("*.py"):
        widgets = {m for m in imported_modules(path) if m.startswith(("PySide6.QtWidgets", "PySide6.QtGui"))}
        assert not widgets, f"{path.name} imports {widgets}"


def test_discovery_and_listing_do_not_import_torch():
    code = (
        "import sys, sr_desk.cli, sr_desk.engine.plugins as p; h = p.PluginHost(); h.discover(); "
        "assert h.methods(); print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
