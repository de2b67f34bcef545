"""Opening and saving images in the main window, and the list of recent files.

Errors never raise out of here: a file that cannot be opened or written
becomes a message in the window, and the call answers with what it did.
The file dialogs themselves are in :mod:`sr_desk.ui.file_dialogs`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QMimeData, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QMenu, QMessageBox, QWidget

from sr_desk.core.document import Document, OverwriteRefusedError
from sr_desk.core.errors import SrDeskError
from sr_desk.core.imageio import IMAGE_EXTENSIONS
from sr_desk.ui import file_dialogs
from sr_desk.ui.banner import INFO_TIMEOUT_MS
from sr_desk.ui.document_view import DocumentView

if TYPE_CHECKING:
    from sr_desk.ui.main_window import MainWindow

__all__ = ["MAX_RECENT", "FileActions", "ask_save_changes", "confirm_overwrite", "dropped_image_paths"]

log = logging.getLogger(__name__)

MAX_RECENT = 10
RECENT_KEY = "recent_files"  # in Settings.extra


def dropped_image_paths(mime: QMimeData) -> list[str]:
    """Local files among the dragged ``mime`` data whose extension sr-desk reads."""
    if not mime.hasUrls():
        return []
    paths = []
    for url in mime.urls():
        if not url.isLocalFile():
            continue
        path = url.toLocalFile()
        if Path(path).suffix.lower() in IMAGE_EXTENSIONS:
            paths.append(path)
    return paths


def confirm_overwrite(parent: QWidget | None, path: Path) -> bool:
    """Ask before the original image is replaced by its edit; True for Yes (No is the default)."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("Overwrite the Original?")
    box.setText(f"'{path.name}' is the original image. Overwrite the original?")
    box.setInformativeText(
        "The file you opened will be replaced by the edited image, and this cannot be undone. "
        "Choose No and use Save As to keep the original."
    )
    box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
    box.setDefaultButton(QMessageBox.StandardButton.No)
    box.setEscapeButton(QMessageBox.StandardButton.No)
    return QMessageBox.StandardButton(box.exec()) == QMessageBox.StandardButton.Yes


def ask_save_changes(parent: QWidget | None, name: str) -> str:
    """"save", "discard" or "cancel" for the modified document ``name`` about to close."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("Unsaved Changes")
    box.setText(f"Save the changes to '{name}' before closing?")
    box.setInformativeText("Your changes will be lost if you don't save them.")
    box.setStandardButtons(
        QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel
    )
    box.setDefaultButton(QMessageBox.StandardButton.Save)
    box.setEscapeButton(QMessageBox.StandardButton.Cancel)
    answers = {QMessageBox.StandardButton.Save: "save", QMessageBox.StandardButton.Discard: "discard"}
    return answers.get(QMessageBox.StandardButton(box.exec()), "cancel")


@contextmanager
def _wait_cursor() -> Iterator[None]:
    """The busy cursor while a file is read or written."""
    QGuiApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
    try:
        yield
    finally:
        QGuiApplication.restoreOverrideCursor()


@contextmanager
def _normal_cursor() -> Iterator[None]:
    """Inside :func:`_wait_cursor`: the ordinary cursor for a question, then busy again."""
    QGuiApplication.restoreOverrideCursor()
    try:
        yield
    finally:
        QGuiApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)


class FileActions:
    """File > Open, Save, Save As and Open Recent of one :class:`MainWindow`.

    The recent files are kept in ``Settings.extra``, newest first, at most
    :data:`MAX_RECENT`.
    """

    def __init__(self, window: MainWindow) -> None:
        self.window = window

    # opening -----------------------------------------------------------

    def open_dialog(self) -> list[DocumentView]:
        """Ask for files (starting next to the current image or the last one opened) and open them."""
        start = ""
        current = self.window.current_document()
        if current is not None and (current.path or current.original_path):
            start = str((current.path or current.original_path).parent)  # type: ignore[union-attr]
        elif self.recent_files():
            start = str(Path(self.recent_files()[0]).parent)
        return self.open_paths(file_dialogs.ask_open_paths(self.window, start))

    def open_paths(self, paths: Iterable[str | os.PathLike[str]]) -> list[DocumentView]:
        """Open each file in a tab (or switch to it when already open); errors become messages."""
        opened: list[DocumentView] = []
        for raw in paths:
            path = Path(raw)
            existing = self._view_for_path(path)
            if existing is not None:
                self.window.set_current_document_view(existing)
                opened.append(existing)
                continue
            try:
                with _wait_cursor():
                    document = Document.open(path, **self.window.history_options())
            except SrDeskError as exc:
                self.window.show_message(str(exc), "error")
                continue
            except (OSError, MemoryError, ValueError) as exc:
                self.window.show_message(f"cannot open '{path.name}': {exc}", "error")
                continue
            opened.append(self.window.add_document(document))
            self.remember_recent(path)
        return opened

    def _view_for_path(self, path: Path) -> DocumentView | None:
        for view in self.window.document_views():
            current = view.document.path
            if current is None:
                continue
            try:
                if os.path.samefile(current, path):
                    return view
            except OSError:
                continue
        return None

    # saving ------------------------------------------------------------

    def save(self, view: DocumentView | None = None) -> bool:
        """Save to the document's file (asking before replacing the original); True if saved."""
        view = view or self.window.current_document_view()
        if view is None:
            return False
        document = view.document
        if document.path is None or file_dialogs.format_for(document.path) is None:
            return self.save_as(view)
        return self._write(view, document.path, None, view.save_quality)

    def save_as(self, view: DocumentView | None = None) -> bool:
        """Save As / Export: pick a file and format (and quality); True if saved."""
        view = view or self.window.current_document_view()
        if view is None:
            return False
        document = view.document
        base = document.path or document.original_path
        if base is None:
            suggested = Path(self.recent_files()[0]).parent if self.recent_files() else Path.home()
            suggested = suggested / (Path(document.display_name).stem + ".png")
        elif file_dialogs.format_for(base) is None:
            suggested = base.with_suffix(".png")
        else:
            suggested = base
        choice = file_dialogs.ask_save_path(self.window, suggested, view.save_quality)
        if choice is None:
            return False
        if self._write(view, choice.path, choice.format, choice.quality):
            view.save_quality = choice.quality
            self.remember_recent(choice.path)
            return True
        return False

    def _write(self, view: DocumentView, path: Path, fmt: str | None, quality: int) -> bool:
        document = view.document
        try:
            with _wait_cursor():
                try:
                    document.save(path, format=fmt, quality=quality, overwrite_original=view.overwrite_confirmed)
                except OverwriteRefusedError:
                    with _normal_cursor():
                        confirmed = confirm_overwrite(self.window, path)
                    if not confirmed:
                        self.window.show_message(f"Not saved: '{path.name}' was left as it was.", "info")
                        return False
                    view.overwrite_confirmed = True
                    document.save(path, format=fmt, quality=quality, overwrite_original=True)
        except SrDeskError as exc:
            self.window.show_message(str(exc), "error")
            return False
        except (OSError, ValueError) as exc:
            self.window.show_message(f"cannot save '{path.name}': {exc}", "error")
            return False
        self.window.autosaver.forget(document)
        self.window.statusBar().showMessage(f"Saved {path}", INFO_TIMEOUT_MS)
        return True

    # recent files ------------------------------------------------------

    def recent_files(self) -> list[str]:
        """Recently opened or saved files, newest first."""
        value = self.window.settings.extra.get(RECENT_KEY, [])
        return [str(p) for p in value if isinstance(p, str)] if isinstance(value, list) else []

    def remember_recent(self, path: Path) -> None:
        text = str(Path(path).absolute())
        recent = [p for p in self.recent_files() if p != text]
        self.window.settings.extra[RECENT_KEY] = [text, *recent][:MAX_RECENT]
        self.window.save_settings()

    def clear_recent(self) -> None:
        self.window.settings.extra[RECENT_KEY] = []
        self.window.save_settings()
        self.fill_recent_menu(self.window.recent_menu)

    def fill_recent_menu(self, menu: QMenu) -> None:
        """Make ``menu`` list the recent files (numbered for the keyboard), and Clear Recent."""
        menu.clear()
        recent = self.recent_files()
        for number, path in enumerate(recent, start=1):
            label = f"&{number % 10} {Path(path).name}" if number <= 10 else Path(path).name
            action = menu.addAction(label)
            action.setToolTip(path)
            action.setStatusTip(path)
            action.triggered.connect(lambda _checked=False, p=path: self.open_paths([p]))
        if recent:
            menu.addSeparator()
            menu.addAction("Clear Recent", self.clear_recent)
        else:
            menu.addAction("No recent images").setEnabled(False)
