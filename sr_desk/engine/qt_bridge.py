"""Carries worker events to the Qt GUI thread as signals.

The worker calls ``bridge.post`` on its own thread; Qt queues the signal to
the thread the bridge lives in (the GUI thread), so slots never race the
worker. QtCore only: the engine draws no widgets.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from sr_desk.engine.worker import EventKind, JobEvent


class WorkerBridge(QObject):
    """Re-emits ``JobEvent`` messages as Qt signals, one per kind plus a catch-all."""

    event = Signal(object)
    started = Signal(object)
    progress = Signal(object)
    finished = Signal(object)
    failed = Signal(object)
    cancelled = Signal(object)

    def post(self, event: JobEvent) -> None:
        """Worker-thread entry point; pass it as a worker's or job's ``on_event``."""
        self.event.emit(event)
        {
            EventKind.STARTED: self.started,
            EventKind.PROGRESS: self.progress,
            EventKind.FINISHED: self.finished,
            EventKind.FAILED: self.failed,
            EventKind.CANCELLED: self.cancelled,
        }[event.kind].emit(event)
