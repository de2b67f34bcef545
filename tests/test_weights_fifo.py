"""Issue 30 item 4: a FIFO given as --weights hung every model method forever.

Each case runs in a subprocess with a generous time limit, so a regression
fails the test instead of stalling the suite: a thread would not do, as
safetensors opens its file holding the GIL, and a FIFO there froze the
whole interpreter.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")

#: Far beyond what a refusal takes; only a hang reaches it.
RUN_LIMIT_S = 120

MODEL_METHODS = ["srdiff-encoder", "srdiff", "dtls", "dossr", "diffsr", "lddpm"]

_CLI = "import sys; from sr_desk.cli import main; sys.exit(main(sys.argv[1:]))"

#: A call in a fresh process whose exception, if any, is its one line on stderr.
_CALL = """
import sys
from pathlib import Path
{imports}
try:
    {call}
except Exception as exc:
    sys.exit(f"{{type(exc).__name__}}: {{exc}}")
"""


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "in.png"
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(path)
    return path


def _python(script: str, *args: str) -> tuple[int, list[str]] | None:
    """Exit code and stderr lines of ``python -c script args``, or None when it ran past RUN_LIMIT_S (killed)."""
    try:
        done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True,
                              timeout=RUN_LIMIT_S)
    except subprocess.TimeoutExpired:
        return None
    return done.returncode, done.stderr.splitlines()


@pytest.mark.parametrize("method_id", MODEL_METHODS)
def test_a_fifo_as_weights_is_refused_at_once_in_one_line(method_id, photo, tmp_path):
    fifo = tmp_path / "weights.safetensors"
    os.mkfifo(fifo)
    out = tmp_path / "out.png"
    run = _python(_CLI, "upscale", str(photo), "-o", str(out), "-m", method_id, "--weights", str(fifo))
    assert run is not None, f"{method_id} hung on a FIFO given as --weights"
    code, err = run
    assert code != 0 and not out.exists()
    assert len(err) == 1 and err[0].endswith("'weights.safetensors': it is a pipe (FIFO), not a file"), err


def test_a_fifo_inside_a_diffusers_folder_is_refused_at_once(photo, tmp_path):
    """Diff-SR takes a folder as --weights; diffusers opens the files inside it by itself."""
    folder = tmp_path / "prior"
    folder.mkdir()
    (folder / "config.json").write_text('{"_class_name": "UNet2DModel"}')
    fifo = folder / "diffusion_pytorch_model.safetensors"
    os.mkfifo(fifo)
    out = tmp_path / "out.png"
    run = _python(_CLI, "upscale", str(photo), "-o", str(out), "-m", "diffsr", "--weights", str(folder))
    assert run is not None, "diffsr hung on a FIFO inside its --weights folder"
    code, err = run
    assert code != 0 and not out.exists()
    assert len(err) == 1, err
    assert err[0].endswith("'diffusion_pytorch_model.safetensors': it is a pipe (FIFO), not a file")


def test_a_fifo_passed_to_the_weights_readers_is_refused(tmp_path):
    """Plugins and their tools (calibrate, convert) read weights by these functions, not only through --weights."""
    fifo = tmp_path / "weights.ckpt"
    os.mkfifo(fifo)
    for reader in ("read_weights_file", "read_metadata"):
        script = _CALL.format(imports=f"from sr_desk.diffusion.weights_file import {reader}",
                              call=f"{reader}(sys.argv[1])")
        run = _python(script, str(fifo))
        assert run is not None, f"{reader} hung on a FIFO"
        assert run[1] == ["CheckpointError: cannot open weights file 'weights.ckpt': it is a pipe (FIFO), not a file"]


def test_a_fifo_where_a_download_collects_is_refused(tmp_path):
    """A ``.part`` that is a FIFO would block the download's open() for writing forever."""
    target = tmp_path / "w.safetensors"
    os.mkfifo(tmp_path / "w.safetensors.part")
    script = _CALL.format(imports="from sr_desk.engine.downloads import download",
                          call="download('http://127.0.0.1:9/w.safetensors', Path(sys.argv[1]), timeout=5)")
    run = _python(script, str(target))
    assert run is not None, "download hung on a FIFO .part"
    assert run[1][-1].startswith("DownloadError: cannot download w.safetensors: ")
    assert run[1][-1].endswith("w.safetensors.part is a pipe (FIFO), not a file")
