"""Autosave and crash recovery for the main window.

Every few minutes the documents with unsaved changes are written to the
recovery folder (:mod:`sr_desk.core.recovery`) on a background thread, so
a crash loses little. At the next start the window offers those entries
back. An entry lives only as long as its unsaved changes: saving or
closing the document removes it.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QMessageBox, QWidget

from sr_desk.core.document import Document
from sr_desk.core.errors import SrDeskError
from sr_desk.core.recovery import (
    RecoveryEntry,
    default_recovery_dir,
    discard_document,
    discard_recovery,
    list_recoveries,
    load_recovery,
    write_recovery,
)
from sr_desk.ui.document_view import DocumentView

if TYPE_CHECKING:
    from sr_desk.ui.main_window import MainWindow

__all__ = ["AUTOSAVE_INTERVAL_MS", "Autosaver", "RecoveryPrompt", "ask_recovery"]

log = logging.getLogger(__name__)

AUTOSAVE_INTERVAL_MS = 2 * 60 * 1000

RecoveryPrompt = Callable[[list[RecoveryEntry]], str]


def ask_recovery(parent: QWidget | None, entries: list[RecoveryEntry]) -> str:
    """Ask whether to restore unsaved work from last time: "restore", "discard" or "later"."""
    names = "\n".join(f"\u2022 {e.name} ({e.size[0]}\u00d7{e.size[1]})" for e in entries[:8])
    if len(entries) > 8:
        names += f"\n\u2022 and {len(entries) - 8} more"
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle("Restore Unsaved Work")
    box.setText("sr-desk did not close normally. Restore the unsaved images from last time?")
    box.setInformativeText(names)
    box.setStandardButtons(
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel
    )
    box.button(QMessageBox.StandardButton.Yes).setText("Restore")
    box.button(QMessageBox.StandardButton.Cancel).setText("Not Now")
    box.setDefaultButton(QMessageBox.StandardButton.Yes)
    answers = {QMessageBox.StandardButton.Yes: "restore", QMessageBox.StandardButton.Discard: "discard"}
    return answers.get(QMessageBox.StandardButton(box.exec()), "later")


def _autosave_state(document: Document) -> tuple[int, int, int, int]:
    """What identifies a document's contents cheaply: an unchanged state needs no new entry."""
    history = document.history
    return (history.index, len(history), id(document.image), id(document.selection))


class Autosaver(QObject):
    """The autosave timer, its writer thread and the recovery offer of one :class:`MainWindow`.

    Parameters
    ----------
    window
        Whose open documents are saved, and where messages and restored documents go.
    recovery_dir
        Where autosaves go (default ``app_paths().data_dir / "recovery"``).
    prompt
        ``prompt(entries) -> "restore" | "discard" | "later"`` (default: :func:`ask_recovery`).
    interval_ms
        How often modified documents are written.
    """

    _done = Signal(object, object)  # (document, error or None), from the writer thread

    def __init__(
        self,
        window: MainWindow,
        recovery_dir: Path | None = None,
        prompt: RecoveryPrompt | None = None,
        interval_ms: int = AUTOSAVE_INTERVAL_MS,
    ) -> None:
        super().__init__(window)
        self.window = window
        self.recovery_dir = Path(recovery_dir) if recovery_dir is not None else default_recovery_dir()
        self._prompt: RecoveryPrompt = prompt or (lambda entries: ask_recovery(window, entries))
        self._checked = False
        self._written: dict[str, tuple[int, int, int, int]] = {}  # recovery id -> state written
        self._pending: set[str] = set()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._stopped = False
        self._done.connect(self._on_done)
        self.timer = QTimer(self)
        self.timer.setInterval(max(1, int(interval_ms)))
        self.timer.timeout.connect(self.save_now)
        self.timer.start()

    def save_now(self, blocking: bool = False) -> int:
        """Write recovery entries for modified documents that changed since the last write.

        Runs on a background thread unless ``blocking``; returns how many
        documents were (or are being) written.
        """
        if self._stopped:
            return 0
        count = 0
        for view in self.window.document_views():
            document = view.document
            rid = document.recovery_id
            if not document.modified:
                if rid in self._written:
                    self.forget(document)
                continue
            state = _autosave_state(document)
            if self._written.get(rid) == state or rid in self._pending:
                continue
            self._written[rid] = state
            count += 1
            if blocking:
                try:
                    write_recovery(document, self.recovery_dir)
                    error = None
                except OSError as exc:
                    error = exc
                self._on_done(document, error)
            else:
                if self._executor is None:
                    self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sr-desk-autosave")
                self._pending.add(rid)
                self._executor.submit(self._job, document)
        return count

    def _job(self, document: Document) -> None:
        try:
            write_recovery(document, self.recovery_dir)
            error: Exception | None = None
        except Exception as exc:  # noqa: BLE001 - reported on the GUI thread
            error = exc
        self._done.emit(document, error)

    def wait(self) -> None:
        """Block until background autosaves finish (tests, quitting)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def stop(self) -> None:
        """The window is closing: write nothing more, and let what is being written finish."""
        self._stopped = True
        self.timer.stop()
        self.wait()

    def _on_done(self, document: Document, error: Exception | None) -> None:
        self._pending.discard(document.recovery_id)
        if error is not None:
            self._written.pop(document.recovery_id, None)
            self.window.show_message(f"Autosave of '{document.display_name}' failed: {error}", "warning")
            return
        still_open = any(v.document is document for v in self.window.document_views())
        if not still_open or not document.modified:
            # Saved or closed while the entry was being written: it must not outlive that.
            self.forget(document)

    def forget(self, document: Document) -> None:
        """Remove ``document``'s recovery entry: it was saved or closed."""
        self._written.pop(document.recovery_id, None)
        try:
            discard_document(document, self.recovery_dir)
        except OSError as exc:
            log.warning("cannot remove the recovery entry of %s: %s", document.display_name, exc)

    def check_recovery(self) -> list[DocumentView]:
        """Offer unsaved work from a previous session (once); returns the restored views."""
        if self._checked:
            return []
        self._checked = True
        open_ids = {v.document.recovery_id for v in self.window.document_views()}
        entries = [e for e in list_recoveries(self.recovery_dir) if e.id not in open_ids]
        if not entries:
            return []
        answer = self._prompt(entries)
        if answer == "restore":
            return self._restore(entries)
        if answer == "discard":
            for entry in entries:
                try:
                    discard_recovery(entry)
                except OSError as exc:
                    log.warning("cannot discard recovery entry %s: %s", entry.id, exc)
        return []

    def _restore(self, entries: list[RecoveryEntry]) -> list[DocumentView]:
        restored: list[DocumentView] = []
        for entry in entries:
            try:
                document = load_recovery(entry, **self.window.history_options())
            except SrDeskError as exc:
                self.window.show_message(f"Could not restore '{entry.name}': {exc}", "error")
                continue
            restored.append(self.window.add_document(document))
        if restored:
            self.window.show_message(
                f"Restored {len(restored)} unsaved image{'s' if len(restored) != 1 else ''}. Save to keep them.",
                "info",
            )
        return restored
