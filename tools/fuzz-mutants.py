#!/usr/bin/env python3
"""Does the fuzzer fail where it matters? Run tests/test_fuzz.py against a dozen deliberately broken copies.

    nice -n 15 python tools/fuzz-mutants.py [--only NAME ...] [--keep] [--list]

Each mutant is one textual edit of a guard in a real source file, a break a
user would feel: a FIFO that hangs the app, a decompression bomb decoded, a
two-line error, a temporary file left behind, a target written in place, a
pickle that runs code, and so on. The script copies ``sr_desk/`` and
``plugins/`` (as ``sr_desk_plugins``, the name the editable install gives
it) and the fuzz tests into a temporary folder, checks that Python there
imports the copy and not the editable install, runs the tests once on the
unbroken copy, then once per mutant, and prints a table: a mutant is
caught when a test that passes on the unbroken copy fails on it. Tests that
already fail on the unbroken copy are left out of the mutant runs (listed
first), so a known bug does not count as a catch. The working tree itself is
never edited. About a minute per mutant on two cores, more for one that
survives (the whole file runs).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ("tests/__init__.py", "tests/conftest.py", "tests/test_fuzz.py", "tests/fuzz_atheris.py",
         "tests/foreign_output.py")
#: A mutant run longer than this stalled the suite: the time limits did not work, so it is not caught.
RUN_LIMIT_S = 900


@dataclass(frozen=True)
class Mutant:
    """``old`` replaced by ``new`` in ``path`` (relative to the repository): a guard broken, as a slip would."""

    name: str
    path: str
    old: str
    new: str
    #: What a user would meet.
    harm: str


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "fifo-input",
        "sr_desk/core/imageio.py",
        "    check_openable_file(path, error=ImageReadError)",
        "    pass",
        "a FIFO (or /dev/zero) given as the image hangs the app",
    ),
    Mutant(
        "no-pixel-limit",
        "sr_desk/core/imageio.py",
        "        if width * height > limit:",
        "        if False:",
        "the caller's pixel limit is ignored: a bomb within Pillow's own limit is decoded",
    ),
    Mutant(
        "decode-error-escapes",
        "sr_desk/core/imageio.py",
        "    SyntaxError,\n",
        "",
        "Pillow's SyntaxError on a damaged file escapes as a crash instead of 'truncated or corrupt'",
    ),
    Mutant(
        "two-line-error",
        "sr_desk/core/errors.py",
        '        return "".join(c if c.isprintable() else "?" for c in line)',
        "        return super().__str__()",
        "an error quoting a name with a line break or an escape sequence prints it as it is",
    ),
    Mutant(
        "temp-left-behind",
        "sr_desk/core/atomic.py",
        "        with contextlib.suppress(OSError):\n            os.unlink(tmp.name)\n",
        "        pass\n",
        "a save that fails leaves a hidden .tmp file next to the user's picture",
    ),
    Mutant(
        "write-in-place",
        "sr_desk/core/atomic.py",
        "    tmp = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed explicitly below\n"
        '        dir=folder, delete=False, prefix="." + stem + ".", suffix=TEMP_SUFFIX\n'
        "    )\n",
        '    tmp = open(target, "w+b")  # noqa: SIM115\n',
        "a save that fails destroys the file it was to replace",
    ),
    Mutant(
        "pickle-runs-code",
        "sr_desk/diffusion/weights_file.py",
        'return torch.load(path, map_location="cpu", weights_only=True)',
        'return torch.load(path, map_location="cpu", weights_only=False)',
        "a downloaded .ckpt runs its code on the user's machine",
    ),
    Mutant(
        "config-unbounded",
        "sr_desk/diffusion/weights_file.py",
        "    if not low <= value <= high:",
        "    if False:",
        "a weights header of 10 million timesteps or channels is built (hours, or all the memory)",
    ),
    Mutant(
        "weights-fifo",
        "sr_desk/diffusion/weights_file.py",
        '    check_openable_file(path, "weights file", error=CheckpointError)',
        "    pass",
        "a FIFO (or /dev/zero) given as --weights hangs every model method",
    ),
    Mutant(
        "overwrite-input",
        "sr_desk/cli.py",
        "        if _same_file(source, target) and not args.force:",
        "        if False:",
        "`-o` naming the input (or a link to it) replaces the original without --force",
    ),
    Mutant(
        "plugin-print-in-json",
        "sr_desk/engine/plugins.py",
        "            with contextlib.redirect_stdout(sys.stderr):  # a plugin's print() must not corrupt `--json` "
        "output",
        "            with contextlib.nullcontext():",
        "a plugin's print() at import corrupts `sr-desk methods --json`",
    ),
    Mutant(
        "nan-saved",
        "sr_desk/engine/pipeline.py",
        "    if not finite.all():",
        "    if False:",
        "broken weights give NaN, saved as a black picture with exit status 0",
    ),
)


def apply(mutant: Mutant, text: str) -> str:
    """``text`` with the mutant's edit; ValueError unless ``old`` occurs exactly once."""
    found = text.count(mutant.old)
    if found != 1:
        raise ValueError(f"{mutant.name}: the text to break occurs {found} times in {mutant.path}, not once")
    return text.replace(mutant.old, mutant.new)


def make_copy(folder: Path) -> None:
    """sr_desk/, plugins/ as sr_desk_plugins/, and the fuzz tests, without caches."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "sr_desk", folder / "sr_desk", ignore=ignore)
    shutil.copytree(ROOT / "plugins", folder / "sr_desk_plugins", ignore=ignore)
    (folder / "tests").mkdir()
    for name in TESTS:
        shutil.copy2(ROOT / name, folder / name)
    # The rootdir: pytest puts the folder holding the `tests` package first on sys.path.
    (folder / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")


def environment(folder: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(folder), *filter(None, [os.environ.get("PYTHONPATH")])])
    env.pop("SR_DESK_FUZZ_EXAMPLES", None)
    return env


def check_imports(folder: Path) -> None:
    """Python in ``folder`` must import the copy: the editable install would make every mutant look caught-free."""
    probe = "import sr_desk, sr_desk_plugins; print(sr_desk.__file__); print(list(sr_desk_plugins.__path__)[0])"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=folder,
                          env=environment(folder), check=True)
    for line in done.stdout.split():
        if not Path(line).resolve().is_relative_to(folder.resolve()):
            raise SystemExit(f"the copy is shadowed: Python imports {line}")


@dataclass
class Outcome:
    failed: list[str]
    seconds: float
    stalled: bool = False
    error: str = ""


#: ``FAILED tests/test_fuzz.py::test_x[a case] - AssertionError: ...`` (parametrized ids may hold spaces).
FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+?(?:\[[^\]]*\])?)(?: - |$)", re.M)


def run_tests(folder: Path, deselect: list[str], stop_early: bool) -> Outcome:
    command = [sys.executable, "-m", "pytest", "-q", "-rfE", "tests/test_fuzz.py",
               *(["-x"] if stop_early else []), *(f"--deselect={test}" for test in deselect)]
    started = time.monotonic()
    try:
        done = subprocess.run(command, capture_output=True, text=True, errors="replace", cwd=folder,
                              env=environment(folder), timeout=RUN_LIMIT_S)
    except subprocess.TimeoutExpired:
        return Outcome([], time.monotonic() - started, stalled=True)
    failed = FAILED.findall(done.stdout)
    error = "" if done.returncode in (0, 1) else done.stdout[-1500:] + done.stderr[-1500:]
    return Outcome(failed, time.monotonic() - started, error=error)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run these mutants only")
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy (its path is printed)")
    args = parser.parse_args(argv)
    mutants = [m for m in MUTANTS if not args.only or m.name in args.only]
    if args.list or not mutants:
        for m in MUTANTS:
            print(f"{m.name:22} {m.path:34} {m.harm}")
        return 0
    for m in mutants:  # all of them still apply, before an hour of runs
        apply(m, (ROOT / m.path).read_text())

    folder = Path(tempfile.mkdtemp(prefix="sr-desk-mutants-"))
    try:
        make_copy(folder)
        check_imports(folder)
        print(f"copy in {folder}; unbroken run ...", flush=True)
        baseline = run_tests(folder, [], stop_early=False)
        if baseline.stalled or baseline.error:
            print(f"the unbroken copy did not finish its run: {baseline.error}")
            return 2
        print(f"unbroken: {len(baseline.failed)} failing test(s) in {baseline.seconds:.0f} s, "
              "left out of the mutant runs:")
        for test in baseline.failed:
            print(f"    {test}")
        rows = []
        for m in mutants:
            source = folder / m.path.replace("plugins/", "sr_desk_plugins/", 1)
            original = source.read_text()
            source.write_text(apply(m, original))
            try:
                outcome = run_tests(folder, baseline.failed, stop_early=True)
            finally:
                source.write_text(original)
            caught = bool(outcome.failed) and not outcome.stalled and not outcome.error
            by = "stalled the suite" if outcome.stalled else outcome.error[:60] or (outcome.failed[:1] or ["-"])[0]
            rows.append((m.name, caught, by.split("::")[-1], outcome.seconds))
            print(f"  {m.name}: {'caught' if caught else 'NOT caught'} ({outcome.seconds:.0f} s)", flush=True)
        print()
        print("| mutant | caught | first failing test | s |")
        print("|---|---|---|---|")
        for name, caught, by, seconds in rows:
            print(f"| {name} | {'yes' if caught else '**no**'} | {by} | {seconds:.0f} |")
        caught_count = sum(1 for _, caught, _, _ in rows if caught)
        print(f"\ncaught {caught_count} of {len(rows)}")
        return 0 if caught_count == len(rows) else 1
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
