"""tools/fuzz-mutants.py breaks real guards by text: each edit must still find its text, or the table rots.

Fast (no fuzz runs): it only checks that every mutant's ``old`` text occurs
exactly once in today's file and that the broken file still compiles, so a
mutant cannot silently stop mutating anything (and count as caught because
the copy does not import).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _mutants_tool():
    spec = importlib.util.spec_from_file_location("fuzz_mutants", ROOT / "tools" / "fuzz-mutants.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


TOOL = _mutants_tool()


def test_there_are_a_dozen_mutants_with_distinct_names():
    names = [m.name for m in TOOL.MUTANTS]
    assert len(names) == len(set(names)) >= 12


@pytest.mark.parametrize("mutant", TOOL.MUTANTS, ids=lambda m: m.name)
def test_each_mutation_still_applies_to_todays_code(mutant):
    source = ROOT / mutant.path
    text = source.read_text()
    assert text.count(mutant.old) == 1, f"{mutant.name}: its text is not found exactly once in {mutant.path}"
    broken = TOOL.apply(mutant, text)
    assert broken != text
    compile(broken, str(source), "exec")


def test_a_mutation_whose_text_moved_is_refused():
    mutant = TOOL.MUTANTS[0]
    with pytest.raises(ValueError, match="occurs 0 times"):
        TOOL.apply(mutant, "nothing to break here")
