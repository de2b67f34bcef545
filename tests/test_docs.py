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
def test_method_descriptions_say_when_to_pick_them_and_leave_the_figures_to_the_readme(method_id):
    """Issue 32: a figure in a description rots when the weights change (one already said "the highest of the
    built-in methods" when it no longer was). The description says what the method does and when to pick it;
    the measured quality stays in the README's table, the bench's recorded run, where each method has its default
    row (its bare id; SRDiff's is its default sampler and steps)."""
    from sr_desk.engine.plugins import PluginHost

    host = PluginHost()
    host.discover()
    description = host.method(method_id).description
    assert "Pick it" in description, description
    figure = re.search(r"\d+(\.\d+)? ?(dB|s\b|GB|MB|%)|highest|best", description)
    assert figure is None, f"{method_id}'s description quotes {figure.group(0)!r}: {description}"
    from sr_desk_plugins.srdiff import DEFAULT_SAMPLER, DEFAULT_STEPS

    label = f"srdiff:{DEFAULT_SAMPLER}:{DEFAULT_STEPS}" if method_id == "srdiff" else method_id
    readme = (ROOT / "README.md").read_text()
    assert re.search(rf"^\| `{re.escape(label)}` \| \d\d\.\d\d \|", readme, re.M), (
        f"no default row `{label}` in the README's quality table")


def test_the_readme_names_the_current_plugin_api_version():
    """Issue 28: the README said 1.1 while the API and docs/plugins.md were at 1.2."""
    from sr_desk.api import API_VERSION

    readme = (ROOT / "README.md").read_text()
    assert f"plugin API (version {API_VERSION})" in readme
