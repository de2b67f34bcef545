"""Issue 34: the batch on a Ray cluster (a local Ray instance of 2 CPUs): the local batch's results, faults, resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sr_desk.cli import main
from tests.conftest import install_fake_plugin

ray = pytest.importorskip("ray", reason="the cluster extra is not installed")

#: A deterministic method that kills its worker process the first time it meets the victim image (a dark one),
#: and sleeps a little on each image when SLOW_PER_IMAGE is set, so that a run can be stopped halfway.
FLAKY = """
import os
import time

import numpy as np

from sr_desk.api import Capabilities, Method, Task, hookimpl
from sr_desk.core.resize import Filter, resize

SR_DESK_API_VERSION = "1.0"


def run(request, context):
    marker = os.environ.get("FLAKY_MARKER", "")
    if marker and float(request.image.mean()) < 0.05:
        if os.path.exists(marker + ".always") or not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)  # the worker process dies, as a killed or crashed one does
    time.sleep(float(os.environ.get("SLOW_PER_IMAGE", "0")))
    context.report(1, 1)
    return resize(request.image, request.output_size, Filter.BICUBIC)


@hookimpl
def sr_desk_methods():
    return [Method(id="flaky", name="Flaky", task=Task.UPSCALE, run=run, capabilities=Capabilities(scales=(2,)))]
"""


@pytest.fixture(scope="module")
def plugins(tmp_path_factory):
    """The fake plugin, installed for this process (the driver) too."""
    site = tmp_path_factory.mktemp("cluster-site")
    install_fake_plugin(site, "flaky", FLAKY)
    sys.path.insert(0, str(site))
    yield site
    sys.path.remove(str(site))


@pytest.fixture(scope="module")
def cluster(plugins, tmp_path_factory):
    """A local Ray instance of 2 CPUs for the module; its workers find the fake plugin and a private home."""
    home = tmp_path_factory.mktemp("cluster-home")
    marker = tmp_path_factory.mktemp("cluster-marks") / "killed-once"
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(plugins), *sys.path]),
                                       "SR_DESK_HOME": str(home), "FLAKY_MARKER": str(marker)}})
    for number, handler in handlers.items():  # Ray's SIGTERM handler would outlive it and steer other tests
        signal.signal(number, handler)
    yield marker
    ray.shutdown()


def photos(folder: Path, count: int = 17, bad: int = 3, victim: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    for i in range(count):
        pixels = (rng.random((12, 16, 3)) * 200 + 40).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"photo{i:02d}.png")
    for i in range(bad):
        (folder / f"broken{i}.png").write_bytes(b"not a picture" * (i + 1))
    if victim:
        Image.fromarray(np.full((12, 16, 3), 3, np.uint8)).save(folder / "victim.png")
    return folder


def outputs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_the_cluster_batch_writes_what_the_local_batch_writes_and_says_the_same(cluster, tmp_path, capsys):
    source = photos(tmp_path / "in")
    assert main(["upscale", str(source), "-o", str(tmp_path / "local"), "-m", "bicubic"]) == 1
    local_err = capsys.readouterr().err
    assert main(["upscale", str(source), "-o", str(tmp_path / "cluster"), "-m", "bicubic", "--cluster", "local"]) == 1
    cluster_err = capsys.readouterr().err
    assert outputs(tmp_path / "cluster") == outputs(tmp_path / "local")  # the same bytes, and nothing else
    assert len(outputs(tmp_path / "local")) == 17

    def summary(err: str, folder: str) -> list[str]:
        return sorted(line.replace(folder, "OUT") for line in err.splitlines()
                      if line.startswith(("sr-desk: skipped", "sr-desk: wrote", "sr-desk: 3 of")))

    assert summary(cluster_err, str(tmp_path / "cluster")) == summary(local_err, str(tmp_path / "local"))
    assert "sr-desk: wrote 17 of 20 image(s)" in cluster_err and "sr-desk: 3 of 20 image(s) failed" in cluster_err
    assert "sr-desk: 20/20 (" in cluster_err  # progress on the driver


def test_a_worker_killed_mid_run_loses_nothing(cluster, tmp_path, capsys):
    source = photos(tmp_path / "in", count=8, bad=0, victim=True)
    out = tmp_path / "out"
    assert main(["upscale", str(source), "-o", str(out), "-m", "flaky", "--cluster", "local"]) == 0
    assert cluster.exists()  # the victim did kill a worker
    assert sorted(outputs(out)) == sorted([f"photo{i:02d}.png" for i in range(8)] + ["victim.png"])
    assert "sr-desk: wrote 9 of 9 image(s)" in capsys.readouterr().err


def test_an_image_that_kills_every_worker_fails_alone(cluster, tmp_path, capsys):
    always = cluster.with_name(cluster.name + ".always")
    always.touch()
    try:
        source = photos(tmp_path / "in", count=3, bad=0, victim=True)
        out = tmp_path / "out"
        assert main(["upscale", str(source), "-o", str(out), "-m", "flaky", "--cluster", "local"]) == 1
    finally:
        always.unlink()
    err = capsys.readouterr().err
    assert sorted(outputs(out)) == ["photo00.png", "photo01.png", "photo02.png"]  # no partial file, no count left
    assert "sr-desk: skipped victim.png: its worker died each" in err and "1 of 4 image(s) failed" in err


def test_a_rerun_after_the_driver_is_killed_writes_only_what_was_missing(plugins, tmp_path):
    source = photos(tmp_path / "in", count=12, bad=0)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugins), *sys.path]), "SLOW_PER_IMAGE": "0.4",
           "SR_DESK_HOME": str(tmp_path / "home")}
    command = [sys.executable, "-m", "sr_desk", "upscale", str(source), "-o", str(out), "-m", "flaky",
               "--cluster", "local", "--workers", "1"]
    driver = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(out.glob("photo*.png"))) < 3:
        time.sleep(0.1)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray instance it started
    driver.wait()

    def written() -> dict[str, int]:
        return {p.name: p.stat().st_mtime_ns for p in out.glob("photo*.png")}

    first, settled = {}, time.monotonic() + 30
    while time.monotonic() < settled and (not first or written() != first):  # a worker may finish its image
        first = written()
        time.sleep(1.5)
    assert 3 <= len(first) < 12
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"skipped {len(first)} image(s) already written" in rerun.stderr
    assert f"wrote {12 - len(first)} of 12 image(s)" in rerun.stderr
    assert sorted(p.name for p in out.iterdir()) == [f"photo{i:02d}.png" for i in range(12)]
    assert all(out.joinpath(name).stat().st_mtime_ns == mtime for name, mtime in first.items())  # not redone


def test_without_ray_the_cluster_option_says_how_to_get_it(tmp_path, capsys, monkeypatch):
    from sr_desk.engine import cluster as cluster_module

    monkeypatch.setattr(cluster_module, "ray_available", lambda: False)
    source = photos(tmp_path / "in", count=1, bad=0)
    assert main(["upscale", str(source), "-o", str(tmp_path / "out"), "--cluster", "local"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ['sr-desk: error: the cluster batch needs Ray: pip install "sr-desk[cluster]"']


def test_the_pool_has_one_worker_per_gpu_else_one_per_two_cpus_unless_told():
    from sr_desk.core.errors import SrDeskError
    from sr_desk.engine.cluster import pool_size

    assert pool_size(None, 1.0, {"CPU": 32, "GPU": 4}) == 4
    assert pool_size(None, 0.0, {"CPU": 16}) == 8
    assert pool_size(None, 0.0, {"CPU": 1}) == 1
    assert pool_size(3, 0.0, {"CPU": 16}) == 3
    with pytest.raises(SrDeskError, match="--workers must be at least 1"):
        pool_size(0, 0.0, {"CPU": 16})


def test_folders_given_by_uri_go_through_the_object_store_layer(cluster, tmp_path, capsys):
    """s3:// and gs:// go through PyArrow's filesystems as file:// does here: listed, fetched, uploaded, resumed."""
    source = photos(tmp_path / "in", count=5, bad=1)
    assert main(["upscale", str(source), "-o", str(tmp_path / "local"), "-m", "bicubic"]) == 1
    out_uri = (tmp_path / "remote").as_uri()
    command = ["upscale", source.as_uri(), "-o", out_uri, "-m", "bicubic", "--cluster", "local"]
    assert main(command) == 1
    assert outputs(tmp_path / "remote") == outputs(tmp_path / "local")
    capsys.readouterr()
    assert main(command) == 1  # the broken one fails again; the others are there
    err = capsys.readouterr().err
    assert "skipped 5 image(s) already written" in err and "skipped broken0.png:" in err
    assert main(["upscale", source.as_uri(), "-o", out_uri, "-m", "bicubic"]) == 2  # URIs are for the cluster
    assert "add --cluster" in capsys.readouterr().err
