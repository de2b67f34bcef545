"""Running methods from the GUI: one worker, Qt signals, throttled previews.

:class:`JobController` owns the editor's only ``Worker`` (the thread that
owns the compute device) and a ``WorkerBridge`` that carries its events to
the GUI thread. It speaks in editor terms: ``start(image, method, spec)``,
``cancel()``, and signals for progress text, previews, the result and
failures. It never raises into Qt: bad parameters, a missing weights file
or an exception inside a plugin all arrive as ``failed(message)``.

Previews are throttled: a diffusion method may report a preview every few
milliseconds, the screen needs ~15 a second. Only the newest preview is
kept between deliveries (one array, however fast the method), and the last
one is always delivered before ``finished``.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer, Signal

from sr_desk.api import Method, ParamError
from sr_desk.core.errors import SrDeskError
from sr_desk.core.imageio import ImageData
from sr_desk.core.settings import Settings
from sr_desk.engine.job_work import job_work
from sr_desk.engine.pipeline import JobSpec, prepare
from sr_desk.engine.qt_bridge import WorkerBridge
from sr_desk.engine.worker import EventKind, Job, JobEvent, Worker, describe_error
from sr_desk.ui.qimage import rgb_to_qimage

__all__ = ["DEFAULT_PREVIEW_RATE", "JobController", "format_duration", "progress_text"]

DEFAULT_PREVIEW_RATE = 15.0


def format_duration(seconds: float) -> str:
    """``"4 s"``, ``"2 min 05 s"``, ``"1 h 03 min"``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def progress_text(
    fraction: float,
    elapsed: float,
    step: tuple[int, int] | None = None,
    part: tuple[int, int] | None = None,
    message: str = "",
) -> str:
    """The progress bar's text: ``"tile 2/6 · step 12/20 · 3 s left"``.

    Time left is extrapolated from the elapsed time and the fraction done,
    once there is enough of both to say something useful.
    """
    words = []
    if message:
        words.append(message)
    if part is not None and part[1] > 1:
        words.append(f"tile {part[0]}/{part[1]}")
    if step is not None and step[1] > 0:
        words.append(f"step {step[0]}/{step[1]}")
    if 0.02 <= fraction < 1.0 and elapsed >= 0.5:
        words.append(f"{format_duration(elapsed * (1.0 - fraction) / fraction)} left")
    elif fraction >= 1.0:
        words.append("finishing")
    return " · ".join(words) if words else f"{fraction * 100:.0f}%"


#: Previews a second the canvas is sent at most (what the eye follows; more only costs copies).
PREVIEW_RATE = 15.0
#: Previews are never sent larger than this on their longer side, nor than the largest screen.
PREVIEW_SIDE_FLOOR = 2048


def preview_side() -> int:
    """Longest side of the previews worth sending: the largest screen in device pixels (at least 2048).

    A preview fills the job's box on the canvas, which is never wider than
    the screen at fit zoom; the floor keeps some sharpness when zoomed in.
    """
    from PySide6.QtGui import QGuiApplication

    sides = [round(max(s.size().width(), s.size().height()) * s.devicePixelRatio())
             for s in QGuiApplication.screens()]
    return max([PREVIEW_SIDE_FLOOR, *sides])


@dataclass
class _Running:
    job: Job
    method: Method
    spec: JobSpec


class JobController(QObject):
    """Runs methods on one background worker and reports in Qt signals.

    Signals (all on the GUI thread):

    - ``started(job_id: int, device_text: str)``
    - ``progress(fraction: float, text: str)`` -- text like ``"step 12/20 · 3 s left"``
    - ``preview(image: QImage, box: tuple | None)`` -- ready to draw, ``box`` = ``(x, y, w, h)``
      in output pixels (``None``: the whole output); at most ``preview_rate`` a second
    - ``finished(result: ImageData | SavedResult, spec: JobSpec)`` -- ``spec`` as prepared (its seed is set)
    - ``failed(message: str)`` -- one line, starting with the method's name
    - ``cancelled()``

    Only the current job reports: starting a new one cancels the running
    one, whose late events are dropped.
    """

    started = Signal(int, str)
    progress = Signal(float, str)
    preview = Signal(object, object)
    finished = Signal(object, object)
    failed = Signal(str)
    cancelled = Signal()

    def __init__(
        self,
        settings: Settings | None = None,
        parent: QObject | None = None,
        *,
        weights: Any = None,
        preview_rate: float = DEFAULT_PREVIEW_RATE,
    ) -> None:
        super().__init__(parent)
        self.settings = settings if settings is not None else Settings.load()
        self._weights_override = weights
        self._interval = 1.0 / preview_rate if preview_rate > 0 else 0.0
        self._bridge = WorkerBridge(self)
        self._bridge.started.connect(self._on_started)
        self._bridge.progress.connect(self._on_progress)
        self._bridge.finished.connect(self._on_terminal)
        self._bridge.failed.connect(self._on_terminal)
        self._bridge.cancelled.connect(self._on_terminal)
        self._worker = self._make_worker()
        self._current: _Running | None = None
        self._device_text = ""
        # The newest undelivered preview, written by the worker thread.
        self._lock = threading.Lock()
        self._pending: tuple[int, np.ndarray, Any] | None = None
        self._last_delivery = -1e9
        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._flush_timer.timeout.connect(self._deliver_pending)
        self._shut = False

    # ------------------------------------------------------------- setup

    def _make_worker(self) -> Worker:
        weights = self._weights_override
        if weights is None:
            from sr_desk.engine.downloads import default_weights

            weights = default_weights(self.settings.resolved_models_dir())
        return Worker(device=self.settings.device, weights=weights, precision=self.settings.precision,
                      preview_side=preview_side(), preview_rate=PREVIEW_RATE)

    def apply_settings(self, settings: Settings) -> None:
        """Use new settings: tile size at once; a new device or models folder from the next job."""
        old = self.settings
        self.settings = settings
        if (old.device, old.precision, old.models_dir) != (settings.device, settings.precision, settings.models_dir):
            self.cancel()
            previous = self._worker
            self._worker = self._make_worker()
            previous.stop(timeout=0)  # its thread ends after the cancelled job; events are dropped
            self._device_text = ""

    @property
    def worker(self) -> Worker:
        return self._worker

    @property
    def device_text(self) -> str:
        """The device of the last job that started ("" before the first)."""
        return self._device_text

    # --------------------------------------------------------------- jobs

    def start(
        self, image: ImageData, method: Method, spec: JobSpec, *, save_to: tuple[Path, int] | None = None
    ) -> int:
        """Queue ``method`` on ``image``; returns the job id, or -1 if the job could not be prepared.

        A running job is cancelled first (it stops within one step). Bad
        parameters are reported through ``failed``, never raised. With
        ``save_to = (path, quality)`` the result goes to that file band by
        band (``stream_job``; the job must pass ``can_stream``) and never
        whole into memory; ``finished`` then brings a :class:`~sr_desk.engine.job_work.SavedResult`.
        """
        if self._shut:
            self._fail_soon(f"{method.name}: the editor is closing")
            return -1
        try:
            prepared = prepare(method, spec)
            prepared = dataclasses.replace(
                prepared, tile_size=self.settings.tile_size, tile_overlap=self.settings.tile_overlap
            )
        except Exception as exc:  # noqa: BLE001 - never raise into Qt; say why in one line
            plain = isinstance(exc, (SrDeskError, ParamError))
            self._fail_soon(f"{method.name}: {' '.join(str(exc).split()) if plain else describe_error(exc)}")
            return -1
        self._abandon_current()
        job = self._worker.submit(job_work(image, method, prepared, save_to), label=method.id,
                                  on_event=self._from_worker)
        self._current = _Running(job, method, prepared)
        return job.id

    def cancel(self) -> None:
        """Ask the running job to stop; ``cancelled`` follows within one step."""
        if self._current is not None:
            self._current.job.cancel()

    def is_running(self) -> bool:
        return self._current is not None

    @property
    def current_job_id(self) -> int | None:
        return self._current.job.id if self._current else None

    def shutdown(self, timeout: float = 5.0) -> None:
        """Cancel everything and stop the worker thread (call from the window's ``closeEvent``)."""
        self._shut = True
        self._flush_timer.stop()
        self._current = None
        with self._lock:
            self._pending = None
        self._worker.stop(timeout=timeout)

    def _abandon_current(self) -> None:
        if self._current is not None:
            self._current.job.cancel()
            self._current = None
        self._flush_timer.stop()
        with self._lock:
            self._pending = None

    def _fail_soon(self, message: str) -> None:
        QTimer.singleShot(0, self, lambda: self.failed.emit(message))

    def _is_current(self, job_id: int) -> bool:
        return self._current is not None and self._current.job.id == job_id

    # ------------------------------------------------- worker thread side

    def _from_worker(self, event: JobEvent) -> None:
        """On the worker thread: keep only the newest preview, then pass the event to the GUI thread."""
        current = self._current
        if current is None or current.job.id != event.job_id:
            return  # a superseded job: nobody listens any more
        if event.kind is EventKind.PROGRESS:
            if event.preview is not None:
                # Converted here, on the worker thread (QImage, unlike QPixmap, may be built off
                # the GUI thread): a 2048x1536 float preview costs ~30 ms that the GUI would stall.
                display = rgb_to_qimage(event.preview)
                with self._lock:
                    self._pending = (event.job_id, display, event.preview_box)
            event = dataclasses.replace(event, preview=None, preview_box=None)
        self._bridge.post(event)

    # ---------------------------------------------------- GUI thread side

    def _on_started(self, event: JobEvent) -> None:
        if not self._is_current(event.job_id):
            return
        self._device_text = event.message
        self.started.emit(event.job_id, event.message)

    def _on_progress(self, event: JobEvent) -> None:
        if not self._is_current(event.job_id):
            return
        fraction = event.step / event.total if event.total else 0.0
        self.progress.emit(fraction, progress_text(fraction, event.elapsed, event.method_step, event.part,
                                                   event.message))
        self._schedule_preview()

    def _schedule_preview(self) -> None:
        with self._lock:
            if self._pending is None:
                return
        wait = self._last_delivery + self._interval - time.monotonic()
        if wait <= 0:
            self._deliver_pending()
        elif not self._flush_timer.isActive():
            self._flush_timer.start(max(1, int(wait * 1000) + 1))

    def _deliver_pending(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is None or not self._is_current(pending[0]):
            return
        self._last_delivery = time.monotonic()
        self.preview.emit(pending[1], pending[2])

    def _on_terminal(self, event: JobEvent) -> None:
        current = self._current
        if current is None or current.job.id != event.job_id:
            return
        self._flush_timer.stop()
        if event.kind is EventKind.FINISHED:
            self._deliver_pending()  # the last preview always reaches the screen
        else:
            with self._lock:
                self._pending = None
        self._current = None
        if event.kind is EventKind.FINISHED:
            self.finished.emit(event.result, current.spec)
        elif event.kind is EventKind.FAILED:
            self.failed.emit(f"{current.method.name}: {event.message}")
        else:
            self.cancelled.emit()
