"""Coverage-guided fuzzing (atheris, libFuzzer) of the image loader and the weights-file reader.

    python tests/fuzz_atheris.py images|weights CORPUS_DIR -runs=N [-timeout=S] [-max_total_time=S]
    (environment: FUZZ_QUIET=0 to let output on the terminal pass, FUZZ_MARKER=PATH)

Hypothesis (tests/test_fuzz.py) draws structured cases; this drives the same
readers with libFuzzer's mutations, guided by which lines of sr-desk and
Pillow each input reaches. Either a reader works or it refuses with the
app's own error, and it prints nothing itself: each input runs with file
descriptor 2 captured (where libtiff and libjpeg write), and a Python
warning or another library's log record counts as output too. A weights
input must never run code: ``FUZZ_MARKER`` names the file the corpus's
hostile pickles would create. Any breach raises, and libFuzzer exits
non-zero with the input that caused it; ``-timeout`` makes a hang one.
``FUZZ_QUIET=0`` checks everything but the terminal (tests/test_fuzz.py
checks that in a test of its own).
``tests/test_fuzz.py`` runs a bounded number of inputs from a corpus it
writes itself.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import warnings

import atheris
from foreign_output import ForeignLogLines  # beside this script: it runs from tests/

with atheris.instrument_imports(include=["sr_desk", "PIL"]):
    from sr_desk.core.errors import ImageReadError
    from sr_desk.core.imageio import load_image
    from sr_desk.diffusion.weights_file import CheckpointError, read_metadata, read_weights_file

SCRATCH_DIR = tempfile.mkdtemp(prefix="sr-desk-atheris-")
SCRATCH = os.path.join(SCRATCH_DIR, "input")
MARKER = os.environ.get("FUZZ_MARKER")
QUIET = os.environ.get("FUZZ_QUIET", "1") != "0"


class Stray(ForeignLogLines):
    """Warnings and log records that would reach a user's terminal: sr-desk's own one-line warnings aside."""

    def warning(self, message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
        self.lines.append(f"{category.__name__}: {message}")


STRAY = Stray()


def quietly(read, data: bytes) -> None:  # noqa: ANN001
    """``read(path)`` on ``data`` with fd 2 captured: anything written there, or any stray line, is a crash."""
    with open(SCRATCH, "wb") as f:
        f.write(data)
    STRAY.lines.clear()
    with tempfile.TemporaryFile() as err:
        saved = os.dup(2)
        os.dup2(err.fileno(), 2)
        try:
            read(SCRATCH)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        err.seek(0)
        written = err.read()
    if QUIET and (written or STRAY.lines):
        raise AssertionError(f"output besides sr-desk's own one line: {written[:300]!r} {STRAY.lines[:3]}")


def one_image(data: bytes) -> None:
    def read(path: str) -> None:
        try:
            image = load_image(path)
        except ImageReadError as exc:
            if not str(exc).isprintable():
                raise AssertionError(f"a message that is not one printable line: {exc!r}") from None
            return
        if not (image.rgb.dtype.name == "float32" and 0 <= image.rgb.min() and image.rgb.max() <= 1):
            raise AssertionError(f"loaded pixels out of range: {image.rgb.dtype} {image.rgb.min()}..{image.rgb.max()}")

    quietly(read, data)


def one_weights_file(data: bytes) -> None:
    def read(path: str) -> None:
        for reader in (read_metadata, read_weights_file):
            try:
                reader(path)
            except CheckpointError as exc:
                if not str(exc).isprintable():
                    raise AssertionError(f"a message that is not one printable line: {exc!r}") from None
        if MARKER and os.path.exists(MARKER):
            raise AssertionError("a weights file ran code: the hostile pickle's marker exists")

    quietly(read, data)


TARGETS = {"images": one_image, "weights": one_weights_file}


def main() -> None:
    logging.getLogger().addHandler(STRAY)
    warnings.simplefilter("always")
    warnings.showwarning = STRAY.warning
    target = TARGETS[sys.argv.pop(1)]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
