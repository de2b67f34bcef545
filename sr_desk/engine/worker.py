"""One background thread that owns the compute device and runs jobs in order.

Callers never touch the thread: they ``submit`` a function, keep the ``Job``
handle to cancel it, and receive ``JobEvent`` messages through a callback.
The callback runs on the worker thread; the Qt bridge re-emits events as
signals (queued to the GUI thread) and the CLI just prints them.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from sr_desk.api import Cancelled, WeightsStore
from sr_desk.core.allocator import release_free_memory, reuse_freed_memory
from sr_desk.core.errors import SrDeskError
from sr_desk.core.selection import Box
from sr_desk.engine.devices import Device, resolve_device

log = logging.getLogger(__name__)


class EventKind(str, Enum):
    STARTED = "started"
    PROGRESS = "progress"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class JobEvent:
    """A message from the worker about one job.

    ``preview_box`` is ``(x, y, w, h)`` in output pixels: where ``preview``
    belongs in the final image (a tile, or the selected region). A progress
    event's ``step``/``total`` is the whole job's progress in thousandths;
    ``method_step`` is what the method itself reported (its step and total,
    ``None`` for the pipeline's own "tile done" reports) and ``part`` which
    tile of how many it was in (``None`` for a job in one piece).
    """

    kind: EventKind
    job_id: int
    step: int = 0
    total: int = 0
    preview: np.ndarray | None = None
    preview_box: tuple[int, int, int, int] | None = None
    message: str = ""
    result: Any = None
    elapsed: float = 0.0
    method_step: tuple[int, int] | None = None
    part: tuple[int, int] | None = None

    @property
    def terminal(self) -> bool:
        return self.kind in (EventKind.FINISHED, EventKind.FAILED, EventKind.CANCELLED)


EventCallback = Callable[[JobEvent], None]


class JobState(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(eq=False)
class Job:
    """A handle on submitted work. ``cancel()`` is safe from any thread."""

    id: int
    label: str
    fn: Callable[[JobContext], Any]
    on_event: EventCallback | None = None
    state: JobState = JobState.QUEUED
    result: Any = None
    error: str | None = None
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    _done: threading.Event = field(default_factory=threading.Event, repr=False)

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends; True if it did within ``timeout``."""
        return self._done.wait(timeout)

    def wait_or_cancel(self, poll: float = 0.2) -> None:
        """Block until the job ends, in short waits so that the user's Ctrl-C reaches the caller.

        A ``KeyboardInterrupt`` cancels the job before it propagates; the
        caller decides whether to wait for the job to stop.
        """
        try:
            while not self._done.wait(poll):
                pass
        except KeyboardInterrupt:
            self.cancel()
            raise


class JobContext:
    """The ``Context`` a method sees (see ``sr_desk.api.Context``).

    ``report`` raises ``Cancelled`` once cancel was asked, which bounds the
    time to stop by one model step. ``span`` maps a sub-task's progress into
    a slice of the job's (tiles of an image, say).
    """

    def __init__(self, job: Job, device: Device, weights: WeightsStore, emit: Callable[[JobEvent], None],
                 previews: PreviewGate | None = None):
        self._job = job
        self.device = device.kind
        self.dtype = device.dtype
        self.device_name = device.name
        self.weights = weights
        self._emit = emit
        self._previews = previews or PreviewGate()
        #: Longest side of the previews the host shows (None: any size; 0: it shows none).
        self.preview_side = self._previews.side
        self._started = time.monotonic()
        self._offset = 0.0
        self._width = 1.0
        self._box: tuple[int, int, int, int] | None = None
        self._part: tuple[int, int] | None = None  # (tile number from 1, tiles) of a span, for the events
        self._level = 0  # spans below the job's own context
        self._split = [False]  # shared by the job's contexts: a span of several parts was made

    @property
    def cancelled(self) -> bool:
        return self._job.cancel_requested

    def check_cancelled(self) -> None:
        if self._job.cancel_requested:
            raise Cancelled()

    def wants_preview(self) -> bool:
        """True when a preview sent now would be shown (the host may take only a few a second).

        A method asks before it makes one, so that a step whose preview would
        be dropped costs no copy from the device.
        """
        return self._previews.open()

    def report(
        self,
        step: int,
        total: int,
        preview: np.ndarray | None = None,
        message: str = "",
        box: tuple[int, int, int, int] | None = None,
    ) -> None:
        self.check_cancelled()
        fraction = self._offset + self._width * (step / total if total else 1.0)
        if preview is not None:
            preview = self._previews.admit(preview, final=step >= total)
        box = _within(self._box, box)  # a part of a tile: offset by the tile's origin
        pipeline_tile_done = self._level == 0 and self._split[0]
        self._emit(
            JobEvent(
                EventKind.PROGRESS,
                self._job.id,
                step=round(fraction * 1000),
                total=1000,
                preview=preview,
                preview_box=box if preview is not None else None,
                message=message,
                elapsed=time.monotonic() - self._started,
                method_step=None if pipeline_tile_done else (step, total),
                part=(step, total) if pipeline_tile_done else self._part,
            )
        )

    def span(self, index: int, count: int, box: tuple[int, int, int, int] | None = None) -> JobContext:
        """A context whose 0..total progress fills part ``index`` of ``count`` of this one.

        ``box`` is the part's place in this context's output: inside a box of
        its own (a tile of a selection's window) it is offset by that box's origin.
        """
        child = JobContext.__new__(JobContext)
        child.__dict__.update(self.__dict__)
        child._width = self._width / count
        child._offset = self._offset + index * child._width
        child._box = _within(self._box, box)
        child._level = self._level + 1
        if count > 1:
            self._split[0] = True
            child._part = (index + 1, count)
        return child


def _within(outer: Box | None, inner: Box | None) -> Box | None:
    """``inner``, a box in ``outer``'s own pixels, in the pixels ``outer`` is given in."""
    if inner is None or outer is None:
        return outer if inner is None else inner
    return outer[0] + inner[0], outer[1] + inner[1], inner[2], inner[3]


class PreviewGate:
    """What previews reach the host: at most ``rate`` a second and at most ``side`` pixels on the longer side.

    ``side`` None passes any size, 0 drops every preview (the command line
    shows none); ``rate`` None passes every one. Larger previews are shrunk by block averaging; a method that
    uses :func:`sr_desk.diffusion.runtime.preview_of` shrinks them on its
    device first, so only the small image is copied. The last step of a run
    always passes, so the final preview is never lost.
    """

    def __init__(self, side: int | None = None, rate: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.side, self.rate, self._clock = side, rate, clock
        self._last: float | None = None

    def open(self) -> bool:
        if self.side == 0:
            return False
        return self.rate is None or self._last is None or self._clock() - self._last >= 1.0 / self.rate

    def admit(self, preview: np.ndarray, *, final: bool = False) -> np.ndarray | None:
        """``preview`` as the host may show it now (shrunk when too large), or None to drop it."""
        if self.side == 0 or not (final or self.open()):
            return None
        self._last = self._clock()
        return shrink_preview(preview, self.side) if self.side else preview


def shrink_preview(preview: np.ndarray, side: int) -> np.ndarray:
    """``preview`` (H x W x C) averaged over k x k blocks so that its longer side is at most ``side``."""
    height, width = preview.shape[:2]
    factor = -(-max(height, width) // side)
    if factor <= 1:
        return preview
    h, w = height // factor * factor, width // factor * factor
    if h == 0 or w == 0:  # a thin strip: keep every factor-th pixel
        return np.ascontiguousarray(preview[::factor, ::factor])
    blocks = preview[:h, :w].reshape(h // factor, factor, w // factor, factor, -1)
    return blocks.mean(axis=(1, 3), dtype=np.float32).astype(preview.dtype, copy=False)


class _EmptyWeights:
    def path(self, name: str):  # type: ignore[no-untyped-def]
        raise FileNotFoundError(f"no weights store is configured (looking for {name!r})")


class Worker:
    """Runs submitted jobs one at a time on a daemon thread that owns the device.

    ``device`` is a preference ("auto", "cuda", "mps", "cpu") resolved on the
    worker thread itself, so a GPU context is created where it is used.
    An exception in a job becomes a FAILED event carrying its one-line
    message; the worker then takes the next job.
    """

    def __init__(
        self,
        device: str = "auto",
        weights: WeightsStore | None = None,
        on_event: EventCallback | None = None,
        precision: str = "auto",
        preview_side: int | None = None,
        preview_rate: float | None = None,
    ):
        self._preference = device
        self._preview_side, self._preview_rate = preview_side, preview_rate
        self._precision = precision
        self._weights = weights or _EmptyWeights()
        self._on_event = on_event
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._device: Device | None = None
        self._current: Job | None = None
        self._lock = threading.Lock()

    # lifecycle -------------------------------------------------------------

    def start(self) -> Worker:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                reuse_freed_memory()
                self._thread = threading.Thread(target=self._serve, name="sr-desk-worker", daemon=True)
                self._thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        """Cancel what runs, drop what waits, and end the thread."""
        self.cancel_all()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> Worker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def device(self) -> Device | None:
        """The device in use, once the first job has resolved it."""
        return self._device

    # jobs ------------------------------------------------------------------

    def submit(self, fn: Callable[[JobContext], Any], label: str = "", on_event: EventCallback | None = None) -> Job:
        job = Job(next(self._ids), label or getattr(fn, "__name__", "job"), fn, on_event)
        self.start()
        self._queue.put(job)
        return job

    def cancel_all(self) -> None:
        with self._lock:
            current = self._current
        if current is not None:
            current.cancel()
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                self._queue.put(None)
                break
            job.cancel()
            self._finish(job, JobEvent(EventKind.CANCELLED, job.id, message="cancelled before it started"))

    def _emit(self, job: Job, event: JobEvent) -> None:
        for callback in (job.on_event, self._on_event):
            if callback is None:
                continue
            try:
                callback(event)
            except Exception:  # a broken listener must not kill the worker
                log.exception("event callback failed for job %s", job.id)

    def _finish(self, job: Job, event: JobEvent) -> None:
        job.state = {
            EventKind.FINISHED: JobState.FINISHED,
            EventKind.FAILED: JobState.FAILED,
            EventKind.CANCELLED: JobState.CANCELLED,
        }[event.kind]
        job.result = event.result
        job.error = event.message if event.kind is EventKind.FAILED else None
        self._emit(job, event)
        job._done.set()

    def _serve(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            if job.cancel_requested:
                self._finish(job, JobEvent(EventKind.CANCELLED, job.id, message="cancelled before it started"))
                continue
            with self._lock:
                self._current = job
            try:
                self._run(job)
            finally:
                with self._lock:
                    self._current = None
                release_free_memory()

    def _run(self, job: Job) -> None:
        started = time.monotonic()
        job.state = JobState.RUNNING
        try:
            if self._device is None:
                self._device = resolve_device(self._preference, self._precision)
            context = JobContext(job, self._device, self._weights, lambda e: self._emit(job, e),
                                 PreviewGate(self._preview_side, self._preview_rate))
            self._emit(job, JobEvent(EventKind.STARTED, job.id, message=self._device.name))
            result = job.fn(context)
        except Cancelled:
            self._finish(job, JobEvent(EventKind.CANCELLED, job.id, elapsed=time.monotonic() - started))
        except BaseException as exc:  # noqa: BLE001 - report everything, keep serving
            # Even KeyboardInterrupt and SystemExit: on this thread they can only come from a method's own
            # code (Ctrl-C reaches the main thread), and re-raising them would kill the worker for good.
            log.debug("job %s failed:\n%s", job.id, traceback.format_exc())
            self._finish(
                job,
                JobEvent(EventKind.FAILED, job.id, message=describe_error(exc), elapsed=time.monotonic() - started),
            )
        else:
            if job.cancel_requested:
                # Finished in the same instant the user cancelled: honour the cancel.
                self._finish(job, JobEvent(EventKind.CANCELLED, job.id, elapsed=time.monotonic() - started))
            else:
                self._finish(
                    job,
                    JobEvent(EventKind.FINISHED, job.id, result=result, elapsed=time.monotonic() - started),
                )


def describe_error(exc: BaseException) -> str:
    """A one-line message for people: ours verbatim, others with their type."""
    text = " ".join(str(exc).split())
    if isinstance(exc, SrDeskError):
        return text
    if isinstance(exc, MemoryError) or "out of memory" in text.lower():
        return f"out of memory ({text or 'MemoryError'}); try a smaller tile size or the CPU"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
