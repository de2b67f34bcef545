"""One job's work on the worker (sr_desk/engine/job_work.py), as the editor, the CLI and the bench run it."""

from __future__ import annotations

import numpy as np
from PIL import Image

from sr_desk.core.imageio import ImageData
from sr_desk.engine.job_work import SavedResult, job_work
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
