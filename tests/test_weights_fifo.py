"""Issue 30 item 4: a FIFO given as --weights hung every model method forever.

Each run goes in a daemon thread joined with a generous limit, so a
regression fails the test instead of stalling the suite; a thread still
stuck in ``open()`` is released by opening the FIFO's other end.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sr_desk.cli import main

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")

#: Far beyond what a refusal takes; only a hang reaches it.
JOIN_LIMIT_S = 60

MODEL_METHODS = ["srdiff-encoder", "srdiff", "dtls", "dossr", "diffsr", "lddpm"]


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "in.png"
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(path)
    return path


def _release(fifo: Path) -> None:
    """Unblock a reader stuck opening ``fifo`` (nothing to do when none is)."""
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


def _finishes(call: Callable[[], object], fifo: Path) -> list[object] | None:
    """``[call()'s result or exception]``, or None when it was still running after JOIN_LIMIT_S."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(call())
        except Exception as exc:  # noqa: BLE001 - handed to the test to inspect
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(JOIN_LIMIT_S)
    if thread.is_alive():
        _release(fifo)
        thread.join(JOIN_LIMIT_S)
        return None
    return outcome


def _run_cli(args: list[str], fifo: Path) -> int | None:
    """``main(args)``'s exit code, or None when it was still running after JOIN_LIMIT_S."""
    outcome = _finishes(lambda: main(args), fifo)
    return None if outcome is None else outcome[0]  # type: ignore[return-value]


@pytest.mark.parametrize("method_id", MODEL_METHODS)
def test_a_fifo_as_weights_is_refused_at_once_in_one_line(method_id, photo, tmp_path, capsys):
    fifo = tmp_path / "weights.safetensors"
    os.mkfifo(fifo)
    out = tmp_path / "out.png"
    code = _run_cli(["upscale", str(photo), "-o", str(out), "-m", method_id, "--weights", str(fifo)], fifo)
    assert code is not None, f"{method_id} hung on a FIFO given as --weights"
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and not out.exists()
    assert err[-1].endswith("'weights.safetensors': it is a pipe (FIFO), not a file"), err
    assert len([line for line in err if "FIFO" in line]) == 1


def test_a_fifo_inside_a_diffusers_folder_is_refused_at_once(photo, tmp_path, capsys):
    """Diff-SR takes a folder as --weights; diffusers opens the files inside it by itself."""
    folder = tmp_path / "prior"
    folder.mkdir()
    (folder / "config.json").write_text('{"_class_name": "UNet2DModel"}')
    fifo = folder / "diffusion_pytorch_model.safetensors"
    os.mkfifo(fifo)
    out = tmp_path / "out.png"
    code = _run_cli(["upscale", str(photo), "-o", str(out), "-m", "diffsr", "--weights", str(folder)], fifo)
    assert code is not None, "diffsr hung on a FIFO inside its --weights folder"
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and not out.exists()
    assert err[-1].endswith("'diffusion_pytorch_model.safetensors': it is a pipe (FIFO), not a file"), err


def test_a_fifo_passed_to_the_weights_readers_is_refused(tmp_path):
    """Plugins and their tools (calibrate, convert) read weights by these functions, not only through --weights."""
    from sr_desk.diffusion.weights_file import CheckpointError, read_metadata, read_weights_file

    fifo = tmp_path / "weights.ckpt"
    os.mkfifo(fifo)
    for read in (read_weights_file, read_metadata):
        outcome = _finishes(lambda: read(fifo), fifo)  # noqa: B023 - called before the loop moves on
        assert outcome is not None, f"{read.__name__} hung on a FIFO"
        assert isinstance(outcome[0], CheckpointError), outcome
        assert str(outcome[0]) == "cannot open weights file 'weights.ckpt': it is a pipe (FIFO), not a file"


def test_a_fifo_where_a_download_collects_is_refused(tmp_path):
    """A ``.part`` that is a FIFO would block the download's open() for writing forever."""
    from sr_desk.engine.downloads import DownloadError, download, part_path

    target = tmp_path / "w.safetensors"
    fifo = part_path(target)
    os.mkfifo(fifo)
    outcome = _finishes(lambda: download("http://127.0.0.1:9/w.safetensors", target, timeout=5), fifo)
    assert outcome is not None, "download hung on a FIFO .part"
    assert isinstance(outcome[0], DownloadError), outcome
    assert str(outcome[0]).endswith("w.safetensors.part is a pipe (FIFO), not a file")
