"""The README's benchmark tables are the benches' recorded runs, not numbers typed by hand (issue 32).

A bench run whose table the README shows is kept whole in ``bench/results/``
(its command line first). Every table row of a recorded run must appear in
the README exactly, so a rerun that changes a number fails here until the
README shows the new table too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RECORDED = sorted((ROOT / "bench" / "results").glob("*.md"))


def table_rows(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines() if line.startswith("|")]


def test_there_are_recorded_runs():
    assert RECORDED, "bench/results/ holds no recorded run"


@pytest.mark.parametrize("recorded", RECORDED, ids=lambda p: p.name)
def test_the_readme_shows_each_recorded_table_as_it_was_measured(recorded):
    run = recorded.read_text(encoding="utf-8")
    assert run.startswith("command: python bench/"), f"{recorded.name} does not start with the command that made it"
    rows = table_rows(run)
    assert rows, f"{recorded.name} has no table"
    readme = set(table_rows((ROOT / "README.md").read_text(encoding="utf-8")))
    missing = [row for row in rows if row not in readme]
    assert not missing, f"README.md lacks these rows of {recorded.name}: {missing[:3]}"
    command = run.splitlines()[0].removeprefix("command: ")
    readme_text = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert command in readme_text.replace("`", ""), f"README.md does not give the command of {recorded.name}"
