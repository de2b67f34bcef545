"""Shared fixtures: a private sr-desk home, and plugins "installed" into a temporary folder."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

# GUI tests run without a screen, here and in CI.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def private_home(tmp_path_factory, monkeypatch):
    """Every test gets its own settings, models and plugin folders; never the user's."""
    home = tmp_path_factory.mktemp("sr-desk-home")
    monkeypatch.setenv("SR_DESK_HOME", str(home))
    monkeypatch.delenv("SR_DESK_SAFE_MODE", raising=False)
    return home


@pytest.fixture(autouse=True)
def forget_fake_plugins():
    """Fake plugin modules share names across tests; drop them so each test imports its own."""
    yield
    for name in [n for n in sys.modules if n.startswith("fake_plugin_")]:
        del sys.modules[name]


@pytest.fixture
def site_dir(tmp_path, monkeypatch):
    """A folder on sys.path (restored afterwards) where ``install_fake_plugin`` puts plugins."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.setattr(sys, "path", [str(folder), *sys.path])
    return folder


def install_fake_plugin(site: Path, entry_name: str, source: str, *, version: str = "0.1.0") -> None:
    """Write a one-module distribution with an ``sr_desk.plugins`` entry point, as pip would."""
    module = f"fake_plugin_{entry_name}"
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    dist = site / f"{module}-{version}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: {version}\nAuthor: Test Author\n"
    )
    (dist / "entry_points.txt").write_text(f"[sr_desk.plugins]\n{entry_name} = {module}\n")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="module")
def host():
    """The plugins installed with sr-desk, discovered once per test module."""
    from sr_desk.engine.plugins import PluginHost

    h = PluginHost()
    h.discover()
    return h


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """The weights a user gets: the shipped files (no download folder of anyone's), for a worker's weights store."""
    from sr_desk.engine.downloads import default_weights

    return default_weights(tmp_path_factory.mktemp("models"))


def write_smooth_photos(folder: Path, rng, count: int) -> Path:
    """``count`` 96x72 PNG photos of smooth 12 px colour blocks in ``folder`` (made), for a trainer's --data."""
    from PIL import Image

    folder.mkdir()
    for i in range(count):
        smooth = np.kron(rng.random((6, 8, 3)), np.ones((12, 12, 1)))
        Image.fromarray((smooth * 255).astype(np.uint8)).save(folder / f"photo_{i:02d}.png")
    return folder


def random_image(rng, height: int, width: int) -> np.ndarray:
    return rng.random((height, width, 3), dtype=np.float32)


def run_method(image, method, events: list | None = None, *, weights_store=None, precision="auto", **spec_fields):
    """Run ``method`` on an ``ImageData`` as the app does (prepare, a worker, run_job); the result, or SrDeskError.

    ``weights_store``: where the worker finds weights (none by default). ``precision``: the worker's, "auto"
    as the app (bf16 on CPUs with native bf16, float32 elsewhere), or fixed where a test compares exact numbers.
    """
    from sr_desk.core.errors import SrDeskError
    from sr_desk.engine.pipeline import JobSpec, prepare, run_job
    from sr_desk.engine.worker import JobState, Worker

    spec = prepare(method, JobSpec(method_id=method.id, **spec_fields))
    with Worker(device="cpu", on_event=(events.append if events is not None else None),
                weights=weights_store, precision=precision) as worker:
        job = worker.submit(lambda ctx: run_job(image, method, spec, ctx))
        assert job.wait(120)
    if job.state is JobState.FAILED:
        raise SrDeskError(job.error)
    return job.result


def run_plugin(host, method_id: str, image, weights_file, events: list | None = None, **fields):
    """``run_method`` for the plugin method ``method_id`` of ``host``, with the weights in ``weights_file``."""
    return run_method(image, host.method(method_id), events, weights=str(weights_file), **fields)
