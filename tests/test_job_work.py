"""One job's work on the worker (sr_desk/engine/job_work.py), as the editor, the CLI and the bench run it."""

from __future__ import annotations

import numpy as np
from PIL import Image

from sr_desk.core.imageio import ImageData
from sr_desk.engine import pipeline
from sr_desk.engine.job_work import SavedResult, file_work, job_work, streams_to_file
from sr_desk.engine.pipeline import JobSpec, prepare
from sr_desk.engine.plugins import PluginHost
from sr_desk.engine.worker import JobState, Worker


def run(work):
    with Worker(device="cpu") as worker:
        job = worker.submit(work)
        assert job.wait(60)
    assert job.state is JobState.FINISHED, job.error
    return job.result


def test_whole_and_streamed_give_the_same_pixels(tmp_path, rng):
    host = PluginHost()
    host.discover()
    method = host.method("bicubic")
    spec = prepare(method, JobSpec(method_id="bicubic", scale=3))
    image = ImageData(rgb=rng.random((10, 14, 3), dtype=np.float32))
    whole = run(job_work(image, method, spec))
    assert isinstance(whole, ImageData) and whole.size == (42, 30)
    target = tmp_path / "new folder" / "out.png"
    saved = run(job_work(image, method, spec, (target, 95)))
    assert saved == SavedResult(target, (42, 30))
    with Image.open(target) as written:
        assert np.array_equal(np.asarray(written), np.round(np.clip(whole.rgb, 0, 1) * 255).astype(np.uint8))


def test_file_work_writes_the_same_file_whole_or_streamed(tmp_path, monkeypatch):
    """A batch's one image: computed whole and saved, or streamed past STREAM_MIN_PIXELS; the same pixels."""
    host = PluginHost()
    host.discover()
    method = host.method("bicubic")
    image = ImageData(rgb=np.random.default_rng(0).random((24, 32, 3), dtype=np.float32))
    spec = prepare(method, JobSpec(method_id="bicubic", scale=4, tile_size=8, tile_overlap=2))
    assert not streams_to_file(image, method, spec)
    whole = run(file_work(image, method, spec, tmp_path / "a" / "whole.png", 95))
    monkeypatch.setattr(pipeline, "STREAM_MIN_PIXELS", 100)
    assert streams_to_file(image, method, spec)
    streamed = run(file_work(image, method, spec, tmp_path / "b" / "streamed.png", 95))
    assert whole.size == streamed.size == (128, 96)
    np.testing.assert_array_equal(np.asarray(Image.open(whole.path)), np.asarray(Image.open(streamed.path)))
