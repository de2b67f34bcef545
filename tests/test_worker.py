"""The worker: order, progress, cancel within one step, errors that leave it serving."""

import threading
import time

import numpy as np
import pytest

from sr_desk.api import Cancelled
from sr_desk.core.errors import SrDeskError
from sr_desk.engine.worker import EventKind, JobState, Worker, describe_error


class Recorder:
    def __init__(self):
        self.events = []
        self.lock = threading.Lock()

    def __call__(self, event):
        with self.lock:
            self.events.append(event)

    def kinds(self, job_id):
        return [e.kind for e in self.events if e.job_id == job_id]


@pytest.fixture
def worker():
    recorder = Recorder()
    w = Worker(device="cpu", on_event=recorder)
    w.recorder = recorder
    yield w
    w.stop()


def test_job_runs_on_the_worker_thread_and_reports_progress(worker):
    seen_threads = []

    def job(ctx):
        seen_threads.append(threading.current_thread().name)
        for step in range(1, 4):
            ctx.report(step, 3, preview=np.full((2, 2, 3), step / 3, np.float32))
        return "done"

    handle = worker.submit(job, "three steps")
    assert handle.wait(30)
    assert handle.state is JobState.FINISHED and handle.result == "done"
    assert seen_threads == ["sr-desk-worker"]
    kinds = worker.recorder.kinds(handle.id)
    assert kinds == [EventKind.STARTED] + [EventKind.PROGRESS] * 3 + [EventKind.FINISHED]
    progress = [e for e in worker.recorder.events if e.kind is EventKind.PROGRESS]
    assert [e.step for e in progress] == [333, 667, 1000]
    assert all(e.preview is not None for e in progress)
    assert worker.device.kind == "cpu"
    assert worker.recorder.events[0].message.startswith("CPU")


def test_ctrl_c_while_waiting_cancels_the_job_and_reaches_the_caller(worker):
    started, release = threading.Event(), threading.Event()

    def until_cancelled(ctx):
        started.set()
        while not release.wait(0.01):
            ctx.report(0, 1)  # raises Cancelled once the job is cancelled

    handle = worker.submit(until_cancelled)
    assert started.wait(10)
    waits = iter([False, KeyboardInterrupt()])

    class CtrlCOnSecondWait:
        """The job's done-event, whose second wait is interrupted by Ctrl-C (the worker still sets the real one)."""

        def __init__(self, real):
            self.real = real

        def wait(self, timeout):
            outcome = next(waits)
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome

        def __getattr__(self, name):
            return getattr(self.real, name)

    handle._done = CtrlCOnSecondWait(handle._done)
    with pytest.raises(KeyboardInterrupt):
        handle.wait_or_cancel(poll=0.01)
    handle._done = handle._done.real
    assert handle.cancel_requested
    assert handle.wait(10) and handle.state is JobState.CANCELLED


def test_cancel_stops_within_one_step(worker):
    steps_done = []
    first_step = threading.Event()

    def slow(ctx):
        for step in range(1, 1000):
            time.sleep(0.01)  # one "model step"
            steps_done.append(step)
            ctx.report(step, 1000)
            first_step.set()
        return "never"

    handle = worker.submit(slow)
    assert first_step.wait(30)
    handle.cancel()
    cancel_seen_at = len(steps_done)
    assert handle.wait(30)
    assert handle.state is JobState.CANCELLED
    assert len(steps_done) - cancel_seen_at <= 1
    assert worker.recorder.kinds(handle.id)[-1] is EventKind.CANCELLED


def test_an_exception_comes_back_as_an_error_and_the_worker_keeps_serving(worker):
    def broken(ctx):
        raise ZeroDivisionError("division by zero in the model")

    bad = worker.submit(broken)
    good = worker.submit(lambda ctx: 42)
    assert good.wait(30) and bad.wait(0)
    assert bad.state is JobState.FAILED
    assert bad.error == "ZeroDivisionError: division by zero in the model"
    failed = [e for e in worker.recorder.events if e.kind is EventKind.FAILED]
    assert failed[0].message == bad.error
    assert good.state is JobState.FINISHED and good.result == 42


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit])
def test_a_method_raising_keyboard_interrupt_fails_its_job_and_the_worker_keeps_serving(worker, exc):
    """Issue 18: KeyboardInterrupt from a plugin's run() killed the worker thread and the CLI waited forever."""

    def rude(ctx):
        raise exc()

    job = worker.submit(rude)
    assert job.wait(10) and job.state is JobState.FAILED and exc.__name__ in job.error
    after = worker.submit(lambda ctx: 42)
    assert after.wait(10) and after.result == 42


def test_jobs_run_in_order_and_queued_jobs_can_be_cancelled(worker):
    order = []
    gate = threading.Event()

    def blocker(ctx):
        gate.wait(30)
        order.append("blocker")

    first = worker.submit(blocker)
    second = worker.submit(lambda ctx: order.append("second"))
    third = worker.submit(lambda ctx: order.append("third"))
    second.cancel()
    gate.set()
    assert third.wait(30)
    assert order == ["blocker", "third"]
    assert first.state is JobState.FINISHED and second.state is JobState.CANCELLED


def test_cancel_all_drops_waiting_jobs(worker):
    gate = threading.Event()
    running = worker.submit(lambda ctx: (gate.wait(30), ctx.check_cancelled()))
    waiting = worker.submit(lambda ctx: "should not run")
    time.sleep(0.05)
    worker.cancel_all()
    gate.set()
    assert waiting.wait(30) and running.wait(30)
    assert waiting.state is JobState.CANCELLED and running.state is JobState.CANCELLED


def test_a_failing_event_listener_does_not_kill_the_worker():
    def bad_listener(event):
        raise RuntimeError("listener bug")

    with Worker(device="cpu", on_event=bad_listener) as w:
        job = w.submit(lambda ctx: "ok")
        assert job.wait(30) and job.result == "ok"


def test_forcing_a_missing_device_fails_the_job_with_a_clear_message():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with Worker(device="cuda") as w:
        job = w.submit(lambda ctx: "unreachable")
        assert job.wait(30)
    assert job.state is JobState.FAILED
    assert "CUDA" in job.error and "\n" not in job.error


def test_progress_spans_map_sub_tasks_into_the_whole(worker):
    def tiled(ctx):
        for index in range(2):
            sub = ctx.span(index, 2, box=(index * 10, 0, 10, 10))
            sub.report(1, 2, preview=np.zeros((10, 10, 3), np.float32))
            sub.report(2, 2)

    job = worker.submit(tiled)
    assert job.wait(30)
    progress = [e for e in worker.recorder.events if e.kind is EventKind.PROGRESS]
    assert [e.step for e in progress] == [250, 500, 750, 1000]
    assert progress[0].preview_box == (0, 0, 10, 10) and progress[2].preview_box == (10, 0, 10, 10)
    assert progress[1].preview_box is None  # no preview, no box


def test_progress_events_carry_the_method_s_own_step_and_its_tile(worker):
    def tiled(ctx):
        ctx.report(0, 3)  # before any tile: the method's own step, no tile
        for index in range(2):
            sub = ctx.span(index, 2)
            sub.report(1, 4)
            sub.span(0, 1).report(2, 4)  # a span of one part below a tile keeps the tile
            ctx.report(index + 1, 2)  # the pipeline's "tile done": a tile count, not a method step

    job = worker.submit(tiled)
    assert job.wait(30)
    progress = [e for e in worker.recorder.events if e.kind is EventKind.PROGRESS]
    assert [(e.method_step, e.part) for e in progress] == [
        ((0, 3), None),
        ((1, 4), (1, 2)), ((2, 4), (1, 2)), (None, (1, 2)),
        ((1, 4), (2, 2)), ((2, 4), (2, 2)), (None, (2, 2)),
    ]


def test_describe_error_is_one_line():
    assert describe_error(SrDeskError("plain message")) == "plain message"
    assert describe_error(ValueError("two\nlines")) == "ValueError: two lines"
    assert "out of memory" in describe_error(MemoryError())
    assert describe_error(Cancelled()) == "Cancelled"


def test_qt_bridge_delivers_events_on_the_gui_thread(qtbot):
    from PySide6.QtCore import QThread

    from sr_desk.engine.qt_bridge import WorkerBridge

    bridge = WorkerBridge()
    received = []
    bridge.progress.connect(lambda e: received.append((e.step, QThread.currentThread())))
    with Worker(device="cpu", on_event=bridge.post) as w:
        with qtbot.waitSignal(bridge.finished, timeout=30000) as finished:
            w.submit(lambda ctx: (ctx.report(1, 2), ctx.report(2, 2), "result")[-1])
    assert finished.args[0].result == "result"
    assert [step for step, _ in received] == [500, 1000]
    gui_thread = bridge.thread()
    assert all(thread is gui_thread for _, thread in received)
