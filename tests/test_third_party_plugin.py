"""A real third-party package, installed with pip, is found and runs; a broken one is isolated.

The package is installed with ``pip install --target`` into the user plugin
folder under a private SR_DESK_HOME: the same place the app installs plugins
when it has no site-packages of its own to write to, and nothing leaks into
the test environment.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import install_fake_plugin

PLUGIN_SOURCE = Path(__file__).parent / "third_party_plugin"

pytestmark = pytest.mark.slow


def sr_desk(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SR_DESK_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "sr_desk", *args], capture_output=True, text=True, env=env, timeout=300
    )


@pytest.fixture(scope="module")
def installed_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("home-with-plugin")
    target = home / "data" / "plugins"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--target", str(target),
         str(PLUGIN_SOURCE)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert any(p.name.startswith("sr_desk_nearest-1.2.0") for p in target.iterdir())
    return home


def test_pip_installed_plugin_appears_in_methods(installed_home):
    listed = sr_desk("methods", "--json", home=installed_home)
    assert listed.returncode == 0, listed.stderr
    nearest = next(m for m in json.loads(listed.stdout) if m["id"] == "nearest")
    assert nearest["plugin"] == "nearest" and nearest["task"] == "upscale"
    assert nearest["capabilities"]["scales"] == [2, 3, 4]
    plugins = sr_desk("plugins", home=installed_home)
    assert "nearest 1.2.0 (sr-desk-nearest) [ok]" in plugins.stdout
    assert "by Example Author" in plugins.stdout


def test_pip_installed_plugin_runs(installed_home, tmp_path):
    src = tmp_path / "pixels.png"
    pixels = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [255, 255, 255]]], np.uint8)
    Image.fromarray(pixels).save(src)
    out = tmp_path / "big.png"
    result = sr_desk("run", "nearest", str(src), "-o", str(out), "--scale", "3", "--param", "invert=false",
                     home=installed_home)
    assert result.returncode == 0, result.stderr
    assert np.array_equal(np.asarray(Image.open(out)), np.repeat(np.repeat(pixels, 3, 0), 3, 1))


def test_a_plugin_that_raises_on_import_is_listed_as_broken_and_the_others_run(installed_home, tmp_path):
    install_fake_plugin(installed_home / "data" / "plugins", "exploding", "raise ImportError('needs libfoo 9')")
    try:
        plugins = sr_desk("plugins", home=installed_home)
        assert "exploding 0.1.0" in plugins.stdout and "[broken]" in plugins.stdout
        assert "failed to import: ImportError: needs libfoo 9" in plugins.stdout
        src = tmp_path / "in.png"
        Image.new("RGB", (8, 8), (10, 20, 30)).save(src)
        out = tmp_path / "out.png"
        result = sr_desk("upscale", str(src), "-o", str(out), "--method", "nearest", "--scale", "2", home=installed_home)
        assert result.returncode == 0, result.stderr
        assert Image.open(out).size == (16, 16)
    finally:
        for path in (installed_home / "data" / "plugins").glob("fake_plugin_exploding*"):
            if path.is_dir():
                import shutil

                shutil.rmtree(path)
            else:
                path.unlink()
