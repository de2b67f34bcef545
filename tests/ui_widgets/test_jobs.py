"""JobController on the real worker: progress, throttled previews, results, failures, cancels."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from sr_desk.api import Capabilities, Method, Task
from sr_desk.core.imageio import ImageData
from sr_desk.core.settings import Settings
from sr_desk.engine.pipeline import JobSpec
from sr_desk.engine.weights import LocalWeights
from sr_desk.engine.worker import JobState
from sr_desk.ui.jobs import JobController, format_duration, progress_text
from tests.ui_widgets import fake_upscaler, tiny_image


@pytest.fixture
def controller(qtbot):
    ctrl = JobController(Settings(device="cpu"), weights=LocalWeights([]))
    yield ctrl
    ctrl.shutdown()


def spec_for(method, **fields) -> JobSpec:
    return JobSpec(method_id=method.id, scale=2, **fields)


def test_progress_previews_and_result(controller, qtbot):
    method = fake_upscaler(steps=40, delay=0.005)
    progress, previews, started = [], [], []
    controller.progress.connect(lambda f, t: progress.append((f, t)))
    controller.preview.connect(lambda rgb, box: previews.append((time.monotonic(), rgb, box)))
    controller.started.connect(lambda job_id, device: started.append((job_id, device)))
    begin = time.monotonic()
    with qtbot.waitSignal(controller.finished, timeout=20000) as blocker:
        job_id = controller.start(tiny_image(), method, spec_for(method, seed=5, params={"steps": 30}))
    duration = time.monotonic() - begin
    result, spec = blocker.args
    assert isinstance(result, ImageData) and result.size == (12, 8)
    assert spec.seed == 5 and spec.params["steps"] == 30 and spec.params["sampler"] == "ddim"  # prepared
    assert started and started[0][0] == job_id and "CPU" in started[0][1]
    assert len(progress) == 40
    assert progress[-1][0] == pytest.approx(1.0)
    assert progress[11][1].startswith("step 12/40")
    # Throttled: at most ~15 a second reach the GUI, and the last one is always delivered.
    assert 1 <= len(previews) <= duration * 15 + 2
    last = previews[-1][1]  # a QImage, converted on the worker thread
    assert last.pixelColor(0, 0).red() == 255 and last.pixelColor(last.width() - 1, last.height() - 1).blue() == 255
    gaps = np.diff([t for t, _, _ in previews[:-1]])
    assert np.all(gaps >= 1 / 15 - 0.01)
    assert not controller.is_running()


def test_cancel_stops_within_one_step(controller, qtbot):
    reported = []
    gate = threading.Event()

    def slow(request, context):
        for step in range(1, 200):
            time.sleep(0.02)
            reported.append(step)
            gate.set()
            context.report(step, 200)
        return np.zeros((request.output_size[1], request.output_size[0], 3), np.float32)

    method = Method(id="slow", name="Slow", task=Task.UPSCALE, run=slow, capabilities=Capabilities(scales=(2,)))
    finished = []
    controller.finished.connect(lambda *a: finished.append(a))
    controller.start(tiny_image(), method, spec_for(method))
    assert gate.wait(10)
    with qtbot.waitSignal(controller.cancelled, timeout=5000):
        count_at_cancel = len(reported)
        controller.cancel()
    assert len(reported) <= count_at_cancel + 1
    assert finished == [] and not controller.is_running()


def test_a_failing_method_gives_one_line_with_its_name(controller, qtbot):
    method = fake_upscaler(steps=3, fail_at=2)
    with qtbot.waitSignal(controller.failed, timeout=10000) as blocker:
        controller.start(tiny_image(), method, spec_for(method))
    assert blocker.args == ["Fake upscaler: RuntimeError: exploded at step 2"]


def test_bad_parameters_fail_through_the_signal_not_an_exception(controller, qtbot):
    method = fake_upscaler()
    with qtbot.waitSignal(controller.failed, timeout=2000) as blocker:
        job_id = controller.start(tiny_image(), method, spec_for(method, params={"steps": 1000}))
    assert job_id == -1
    message = blocker.args[0]
    assert message.startswith("Fake upscaler: ") and "between 1 and 100" in message and "\n" not in message


def test_a_second_start_cancels_the_first(controller, qtbot):
    gate = threading.Event()
    jobs = []

    def slow(request, context):
        for step in range(1, 500):
            gate.set()
            time.sleep(0.01)
            context.report(step, 500)
        return np.zeros((request.output_size[1], request.output_size[0], 3), np.float32)

    slow_method = Method(id="slow", name="Slow", task=Task.UPSCALE, run=slow, capabilities=Capabilities(scales=(2,)))
    fast = fake_upscaler(steps=2)
    cancelled, finished = [], []
    controller.cancelled.connect(lambda: cancelled.append(True))
    controller.finished.connect(lambda result, spec: finished.append(spec))
    first = controller.start(tiny_image(), slow_method, spec_for(slow_method))
    jobs.append(controller._current.job)
    assert gate.wait(10)
    with qtbot.waitSignal(controller.finished, timeout=10000):
        second = controller.start(tiny_image(), fast, spec_for(fast, seed=3))
    assert second != first
    assert jobs[0].wait(5) and jobs[0].state is JobState.CANCELLED
    assert [spec.method_id for spec in finished] == ["fake-up"]
    assert cancelled == []  # the superseded job goes quietly


def test_shutdown_stops_the_worker(qtbot):
    controller = JobController(Settings(device="cpu"), weights=LocalWeights([]))
    method = fake_upscaler(steps=2)
    with qtbot.waitSignal(controller.finished, timeout=10000):
        controller.start(tiny_image(), method, spec_for(method))
    thread = controller.worker._thread
    controller.shutdown()
    assert thread is not None and not thread.is_alive()
    with qtbot.waitSignal(controller.failed, timeout=2000):
        assert controller.start(tiny_image(), method, spec_for(method)) == -1


def test_progress_text():
    assert progress_text(0.6, 4.5, step=(12, 20)) == "step 12/20 · 3 s left"
    assert progress_text(0.5, 10.0, step=(3, 8), part=(2, 6)) == "tile 2/6 · step 3/8 · 10 s left"
    assert progress_text(0.0, 0.0) == "0%"
    assert format_duration(125) == "2 min 05 s" and format_duration(3 * 3600 + 60) == "3 h 01 min"


def test_tiled_jobs_say_which_tile(qtbot):
    controller = JobController(Settings(device="cpu", tile_size=32, tile_overlap=8), weights=LocalWeights([]))
    method = fake_upscaler(steps=2)
    texts = []
    controller.progress.connect(lambda f, t: texts.append(t))
    try:
        with qtbot.waitSignal(controller.finished, timeout=10000) as blocker:
            controller.start(tiny_image(80, 40), method, spec_for(method))
    finally:
        controller.shutdown()
    assert blocker.args[0].size == (160, 80)
    assert blocker.args[1].tile_size == 32  # the preference, not the spec's default
    assert any(t.startswith("tile 2/") and "step 1/2" in t for t in texts), texts
