"""Fuzzing what hostile input reaches: image files, weights headers and command-line values (issue 18).

Each reader must either work or refuse with the app's own one-line error;
any other exception, a hang or a huge allocation is a bug. The examples are
derandomized (the same cases in every run, so CI is reproducible) and
bounded; ``SR_DESK_FUZZ_EXAMPLES`` scales them all (e.g. 10x for a long
local run).
"""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from sr_desk.cli import main
from sr_desk.core.errors import ImageReadError, ImageWriteError
from sr_desk.core.imageio import ImageData, load_image, save_image
from sr_desk.diffusion.weights_file import CheckpointError

SCALE = float(os.environ.get("SR_DESK_FUZZ_EXAMPLES", "1"))


def fuzz(examples: int) -> settings:
    return settings(
        max_examples=max(1, int(examples * SCALE)),
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


def _tiny_png(mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (5, 3), 120).save(buffer, format="PNG")
    return buffer.getvalue()


MAGIC = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*", b"RIFF\x00\x00\x00\x00WEBP"]
SEEDS = [_tiny_png("RGB"), _tiny_png("RGBA"), _tiny_png("P"), _tiny_png("L")]


@st.composite
def image_files(draw: st.DrawFn) -> bytes:
    """A known format's magic followed by noise, or a valid small PNG with bytes flipped, cut or repeated."""
    if draw(st.booleans()):
        return draw(st.sampled_from(MAGIC)) + draw(st.binary(max_size=300))
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(1, len(data)))])


@fuzz(2000)
@given(data=image_files())
def test_any_image_file_loads_or_is_refused_in_one_line(tmp_path, data):
    path = tmp_path / "fuzz.img"
    path.write_bytes(data)
    try:
        image = load_image(path)
    except ImageReadError as exc:
        assert "\n" not in str(exc)
        return
    assert image.rgb.dtype == np.float32 and np.isfinite(image.rgb).all()
    assert image.rgb.min() >= 0 and image.rgb.max() <= 1


@fuzz(500)
@given(
    height=st.integers(1, 6),
    width=st.integers(1, 6),
    alpha=st.booleans(),
    exif=st.one_of(st.none(), st.binary(max_size=80), st.binary(max_size=80).map(lambda b: b"Exif\x00\x00II*\x00" + b)),
    dpi=st.one_of(st.none(), st.tuples(st.floats(0, 5e9), st.floats(0, 5e9))),
    suffix=st.sampled_from([".png", ".jpg", ".webp", ".tiff"]),
)
def test_any_image_data_saves_or_is_refused_in_one_line(tmp_path, height, width, alpha, exif, dpi, suffix):
    rng = np.random.default_rng(height * 7 + width)
    image = ImageData(
        rgb=rng.random((height, width, 3), dtype=np.float32),
        alpha=rng.random((height, width), dtype=np.float32) if alpha else None,
        exif=exif,
        dpi=dpi,
    )
    path = tmp_path / f"out{suffix}"
    path.unlink(missing_ok=True)  # hypothesis runs every example in the same folder
    try:
        save_image(path, image)
    except ImageWriteError as exc:
        assert "\n" not in str(exc) and not path.exists()
        return
    assert load_image(path).size == (width, height)


# -- weights headers ----------------------------------------------------------------

CONFIG_VALUES = st.one_of(
    st.integers(-10, 10**12), st.floats(allow_nan=True), st.text(max_size=8), st.booleans(), st.none(),
    st.lists(st.integers(-3, 10**10), max_size=12),
)


@pytest.fixture(scope="module")
def tiny_states():
    from sr_desk_plugins.dtls.network import DTLSUNet
    from sr_desk_plugins.dtls.train import PRESETS
    from sr_desk_plugins.srdiff.config import SRDiffConfig
    from sr_desk_plugins.srdiff.network import SRDiffModel

    srdiff = SRDiffConfig(scale=4, rrdb_nf=8, rrdb_nb=2, rrdb_gc=4, unet_dim=8, dim_mults=(1, 2, 2, 2))
    return {
        "dtls": (PRESETS["tiny"], {k: v.contiguous() for k, v in DTLSUNet(PRESETS["tiny"]).state_dict().items()}),
        "srdiff": (srdiff, {k: v.contiguous() for k, v in SRDiffModel(srdiff).state_dict().items()}),
    }


@fuzz(600)
@given(architecture=st.sampled_from(["dtls", "srdiff"]), changes=st.dictionaries(st.text(max_size=12), CONFIG_VALUES,
                                                                              max_size=3), data=st.data())
def test_any_config_in_a_weights_header_loads_or_is_refused_in_one_line(
    tmp_path, tiny_states, architecture, changes, data
):
    from safetensors.torch import save_file

    config, state = tiny_states[architecture]
    fields = json.loads(config.to_json())
    # Mostly change known fields (the interesting ones), sometimes add unknown ones.
    known = {data.draw(st.sampled_from(sorted(fields))): value for value in changes.values()}
    header = json.dumps(fields | known | (changes if data.draw(st.booleans()) else {}))
    path = tmp_path / "fuzz.safetensors"
    save_file(state, str(path), metadata={"format": "sr-desk", "architecture": architecture, "config": header})
    if architecture == "dtls":
        from sr_desk_plugins.dtls.checkpoints import load_model
    else:
        from sr_desk_plugins.srdiff.checkpoints import load_model
    try:
        load_model(path)
    except CheckpointError as exc:
        assert "\n" not in str(exc)


@fuzz(500)
@given(header=st.binary(max_size=64), body=st.binary(max_size=64))
def test_any_bytes_as_a_weights_file_are_refused_in_one_line(tmp_path, header, body):
    from sr_desk_plugins.dtls.checkpoints import load_model

    path = tmp_path / "fuzz.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + body)
    with pytest.raises(CheckpointError):
        load_model(path)
    path.write_bytes(b"PK\x03\x04" + header + body)  # a zip, as torch.save writes
    with pytest.raises(CheckpointError):
        load_model(path)


# -- the command line ----------------------------------------------------------------

OPTION_VALUES = st.one_of(
    st.text(alphabet="0123456789.,x-+eEinfa ", max_size=12), st.text(max_size=6), st.sampled_from(["nan", "-1", "0", "1e9"])
)


@pytest.fixture(scope="module")
def photo_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "photo.png"
    Image.new("RGB", (6, 4), (10, 200, 30)).save(path)
    return path


@fuzz(500)
@given(option=st.sampled_from(["--scale", "--size", "--region", "--feather", "--quality", "--seed", "--param"]),
       value=OPTION_VALUES)
def test_any_option_value_works_or_fails_in_one_line(tmp_path, photo_file, capsys, option, value):
    out = tmp_path / "out.png"
    out.unlink(missing_ok=True)  # hypothesis runs every example in the same folder
    try:
        code = main(["upscale", str(photo_file), "-o", str(out), "-m", "bicubic", option, value])
    except SystemExit as exc:  # argparse: one line, status 2
        code = exc.code
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code in (0, 1, 2)
    if code:
        assert len(err) == 1 and err[0].startswith("sr-desk"), err
        assert not out.exists()



# -- coverage-guided, with atheris -------------------------------------------------------


@pytest.mark.parametrize("target, runs", [("images", 20000), ("weights", 5000)])
def test_coverage_guided_fuzzing_finds_no_crash(tmp_path, target, runs):
    """libFuzzer's mutations from a corpus the test writes, guided by the lines of sr-desk and Pillow reached."""
    pytest.importorskip("atheris")
    import subprocess
    import sys
    from pathlib import Path

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    if target == "images":
        for name, data in zip(("rgb.png", "rgba.png", "p.png", "l.png"), SEEDS):
            (corpus / name).write_bytes(data)
        for fmt in ("JPEG", "TIFF", "WEBP", "GIF", "BMP"):
            buffer = io.BytesIO()
            Image.new("RGB", (5, 3), 90).save(buffer, format=fmt)
            (corpus / f"seed.{fmt.lower()}").write_bytes(buffer.getvalue())
    else:
        header = json.dumps({"__metadata__": {"format": "sr-desk", "config": "{}"},
                             "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
        (corpus / "tiny.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + b"\0\0\0\0")
    harness = Path(__file__).with_name("fuzz_atheris.py")
    runs = max(1, int(runs * SCALE))
    done = subprocess.run([sys.executable, str(harness), target, str(corpus), f"-runs={runs}", "-max_total_time=120"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"Done {runs} runs" in done.stderr or "Done" in done.stderr
