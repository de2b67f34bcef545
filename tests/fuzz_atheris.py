"""Coverage-guided fuzzing (atheris, libFuzzer) of the image loader and the weights-file reader.

    python tests/fuzz_atheris.py images|weights CORPUS_DIR -runs=N [-max_total_time=S]

Hypothesis (tests/test_fuzz.py) draws structured cases; this drives the same
readers with libFuzzer's mutations, guided by which lines of sr-desk and
Pillow each input reaches. Either a reader works or it refuses with the
app's own one-line error; any other exception is a crash, and libFuzzer
exits non-zero with the input that caused it. ``tests/test_fuzz.py`` runs a
bounded number of inputs from a corpus it writes itself.
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings

import atheris

with atheris.instrument_imports(include=["sr_desk", "PIL"]):
    from sr_desk.core.errors import ImageReadError
    from sr_desk.core.imageio import load_image
    from sr_desk.diffusion.weights_file import CheckpointError, read_metadata

SCRATCH = os.path.join(tempfile.mkdtemp(prefix="sr-desk-atheris-"), "input")


def one_image(data: bytes) -> None:
    with open(SCRATCH, "wb") as f:
        f.write(data)
    try:
        image = load_image(SCRATCH)
    except ImageReadError as exc:
        if "\n" in str(exc):
            raise AssertionError(f"a two-line message: {exc!r}") from None
        return
    if not (image.rgb.dtype.name == "float32" and 0 <= image.rgb.min() and image.rgb.max() <= 1):
        raise AssertionError(f"loaded pixels out of range: {image.rgb.dtype} {image.rgb.min()}..{image.rgb.max()}")


def one_weights_file(data: bytes) -> None:
    with open(SCRATCH, "wb") as f:
        f.write(data)
    try:
        read_metadata(SCRATCH)
    except CheckpointError as exc:
        if "\n" in str(exc):
            raise AssertionError(f"a two-line message: {exc!r}") from None


TARGETS = {"images": one_image, "weights": one_weights_file}


def main() -> None:
    warnings.simplefilter("ignore")  # Pillow warns about every damaged tag; a crash is what counts here
    target = TARGETS[sys.argv.pop(1)]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
