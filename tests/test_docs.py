"""The documentation shows code that really runs, and the README's test command is CI's."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def code_blocks(markdown: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", markdown, flags=re.S)


def test_plugin_guide_shows_the_tested_plugin_verbatim():
    guide = (ROOT / "docs" / "plugins.md").read_text()
    plugin = ROOT / "tests" / "third_party_plugin"
    assert code_blocks(guide, "toml")[0] == (plugin / "pyproject.toml").read_text()
    module = plugin / "src" / "sr_desk_nearest" / "__init__.py"
    assert code_blocks(guide, "python")[0] == module.read_text()


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = [line.strip() for block in code_blocks(readme, "sh") for line in block.splitlines()]
    ci = (ROOT / ".ci" / "run").read_text()
    test_command = next(c for c in commands if "pytest" in c)
    assert test_command in ci.splitlines()


@pytest.mark.parametrize("method_id", ["srdiff", "srdiff-encoder", "dtls", "dossr", "diffsr", "lddpm"])
def test_method_descriptions_quote_the_measured_quality_table(method_id):
    """Issue 19: a description must say what the shipped weights measurably do, and stay true when they change:
    the dB it quotes is the README quality table's bold (default) row for the method."""
    import re

    from sr_desk.engine.plugins import PluginHost

    host = PluginHost()
    host.discover()
    description = host.method(method_id).description
    quoted = re.search(r"(\d\d\.\d) dB", description)
    assert quoted, description
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    row = re.search(rf"^\| \*\*`{re.escape(method_id)}`[^|]*\| \*\*(\d\d\.\d\d)\*\*", readme, re.M)
    assert row, f"no bold default row for {method_id} in the README's quality table"
    assert quoted.group(1) == f"{float(row.group(1)):.1f}"


def test_the_readme_names_the_current_plugin_api_version():
    """Issue 28: the README said 1.1 while the API and docs/plugins.md were at 1.2."""
    from sr_desk.api import API_VERSION

    readme = (ROOT / "README.md").read_text()
    assert f"plugin API (version {API_VERSION})" in readme
