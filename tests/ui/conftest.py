"""Fixtures for the editor's GUI tests (offscreen; see tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox

from sr_desk.core.document import Document
from sr_desk.core.imageio import ImageData
from sr_desk.core.settings import Settings


@pytest.fixture(autouse=True)
def no_modal_dialogs(monkeypatch):
    """A dialog nobody answers would hang the suite: make an unexpected one fail the test instead."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"unexpected modal dialog: {args[1:] if len(args) > 1 else args}")

    monkeypatch.setattr(QMessageBox, "exec", refuse)
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", refuse)
    monkeypatch.setattr(QFileDialog, "getSaveFileName", refuse)
    monkeypatch.setattr(QInputDialog, "getDouble", refuse)


def answer_message_boxes(monkeypatch, *answers):
    """Make the next QMessageBoxes answer ``answers`` in turn; returns the list of texts they showed."""
    queue = list(answers)
    shown: list[str] = []

    def fake_exec(box):
        shown.append(box.text())
        assert queue, f"one message box too many: {box.text()!r}"
        return queue.pop(0)

    monkeypatch.setattr(QMessageBox, "exec", fake_exec)
    return shown


def write_png(path: Path, size=(48, 32), color=(200, 40, 30), alpha: int | None = None) -> Path:
    w, h = size
    if alpha is None:
        Image.new("RGB", (w, h), color).save(path)
    else:
        Image.new("RGBA", (w, h), (*color, alpha)).save(path)
    return path


@pytest.fixture
def make_png(tmp_path):
    def make(name: str = "image.png", size=(48, 32), color=(200, 40, 30), alpha: int | None = None) -> Path:
        return write_png(tmp_path / name, size, color, alpha)

    return make


def make_document(size=(48, 32), color=(0.8, 0.2, 0.1), alpha=None, name="test.png") -> Document:
    w, h = size
    rgb = np.empty((h, w, 3), dtype=np.float32)
    rgb[:] = color
    a = None if alpha is None else np.full((h, w), alpha, dtype=np.float32)
    return Document.from_image(ImageData(rgb=rgb, alpha=a), name)


def repaint(widget):
    """Paint now and return the widget's pixels as a QImage."""
    return widget.grab().toImage()


@pytest.fixture
def window(qtbot, tmp_path):
    from sr_desk.ui.main_window import MainWindow

    win = MainWindow(
        Settings(),
        recovery_dir=tmp_path / "recovery",
        recovery_prompt=lambda entries: "later",
        check_recovery_at_start=False,
    )
    # Not qtbot.addWidget: pytest-qt would close it before this fixture can
    # answer the "unsaved changes" questions.
    win.resize(900, 640)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win._ask_save_changes = lambda view: "discard"  # leave without questions
    win.close()
    win.deleteLater()
