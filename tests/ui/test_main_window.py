"""The main window: opening, tabs, actions, history, status bar, saving, closing, recovery."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QLabel, QMessageBox

from sr_desk.core.imageio import ImageData, load_image
from sr_desk.core.recovery import list_recoveries
from sr_desk.core.selection import Selection
from sr_desk.core.settings import Settings
from sr_desk.ui import file_dialogs
from sr_desk.ui.app import create_main_window, install_exception_hooks
from sr_desk.ui.document_view import MODIFIED_MARK, DocumentView
from sr_desk.ui.file_dialogs import SaveChoice
from sr_desk.ui.main_window import MAX_RECENT, MainWindow

from .conftest import answer_message_boxes, write_png

Yes, No = QMessageBox.StandardButton.Yes, QMessageBox.StandardButton.No
Save, Discard, Cancel = QMessageBox.StandardButton.Save, QMessageBox.StandardButton.Discard, QMessageBox.StandardButton.Cancel


def paint(document, value=0.25, label="Paint"):
    """An edit that changes every pixel."""
    rgb = np.full((document.image.height, document.image.width, 3), value, dtype=np.float32)
    document.replace_image(document.image.with_pixels(rgb, document.image.alpha), label)


def drop_mime(paths) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    return mime


# --------------------------------------------------------------------------- #
# Opening
# --------------------------------------------------------------------------- #


def test_dropping_image_files_opens_them_in_tabs(window, make_png, tmp_path, qtbot):
    first, second = make_png("a.png"), make_png("b.png", size=(20, 10))
    note = tmp_path / "notes.txt"
    note.write_text("not an image")
    mime = drop_mime([first, second, note])

    enter = QDragEnterEvent(QPoint(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPoint(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, drop)
    qtbot.waitUntil(lambda: window.tabs.count() == 2)
    assert [window.tabs.tabText(i) for i in range(2)] == ["a.png", "b.png"]
    assert window.current_document_view().document.path == second
    assert window.tabs.isMovable() and window.tabs.tabsClosable()


def test_a_drag_without_images_is_refused(window, tmp_path):
    note = tmp_path / "notes.txt"
    note.write_text("x")
    mime = drop_mime([note])  # kept referenced: the event does not own it
    enter = QDragEnterEvent(QPoint(5, 5), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    assert not enter.isAccepted()


def test_a_bad_file_is_reported_without_a_dialog(window, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    assert window.open_paths([broken, tmp_path / "missing.jpg"]) == []
    assert window.tabs.count() == 0
    assert "missing.jpg" in window.banner.text() and window.banner.level == "error"
    assert "missing.jpg" in window.statusBar().currentMessage()
    window.banner.close_button.click()
    assert window.banner.text() == ""


def test_opening_a_file_twice_switches_to_its_tab(window, make_png):
    path = make_png("a.png")
    other = make_png("b.png")
    (view,) = window.open_paths([path])
    window.open_paths([other])
    assert window.open_paths([path]) == [view]
    assert window.tabs.count() == 2 and window.current_document_view() is view


def test_recent_files_are_remembered_newest_first_up_to_ten(window, make_png):
    paths = [make_png(f"r{i}.png", size=(4, 4)) for i in range(MAX_RECENT + 2)]
    window.open_paths(paths)
    recent = window.recent_files()
    assert len(recent) == MAX_RECENT and recent[0] == str(paths[-1])
    assert Settings.load().extra["recent_files"] == recent  # persisted
    window._fill_recent_menu()
    texts = [a.text() for a in window.recent_menu.actions() if a.text()]
    assert texts[0].endswith(paths[-1].name) and texts[-1] == "Clear Recent"


def test_create_main_window_opens_paths(qtbot, make_png, tmp_path):
    win = create_main_window([str(make_png("a.png"))], Settings(), recovery_dir=tmp_path / "r",
                             check_recovery_at_start=False)
    qtbot.addWidget(win)
    assert win.tabs.count() == 1 and win.current_document().display_name == "a.png"


def test_current_document_signal_and_side_docks(window, make_png, qtbot):
    with qtbot.waitSignal(window.current_document_changed) as blocker:
        window.open_paths([make_png("a.png")])
    assert isinstance(blocker.args[0], DocumentView)
    dock = window.add_side_dock(QLabel("method panel"), "Method")
    assert window.dockWidgetArea(dock) == Qt.DockWidgetArea.RightDockWidgetArea
    assert dock.toggleViewAction() in window.panels_menu.actions()
    with qtbot.waitSignal(window.current_document_changed) as blocker:
        window.close_document()
    assert blocker.args == [None]
    assert window.current_document_view() is None


# --------------------------------------------------------------------------- #
# Editing through the actions
# --------------------------------------------------------------------------- #


def test_selection_actions_undo_redo_and_history(window, make_png, qtbot):
    (view,) = window.open_paths([make_png("a.png", size=(40, 30))])
    document, actions = view.document, window.actions
    assert not actions["undo"].isEnabled()
    actions["select_all"].trigger()
    assert document.selection.area == 40 * 30
    actions["deselect"].trigger()
    assert document.selection.is_empty
    actions["invert"].trigger()
    assert document.selection.area == 40 * 30
    assert view.title() == "a.png" and window.tabs.tabText(0) == "a.png"  # a selection is not saved: no mark

    history = window.history_panel
    assert history.labels() == ["Open", "Select All", "Deselect", "Invert Selection"]
    assert history.current_row() == 3
    assert actions["undo"].text() == "&Undo Invert Selection"
    actions["undo"].trigger()
    assert document.selection.is_empty and history.current_row() == 2
    assert actions["redo"].isEnabled() and actions["redo"].text() == "&Redo Invert Selection"
    actions["redo"].trigger()
    assert not document.selection.is_empty

    # Clicking a history row goes back (and forward) to it.
    rect = history.list.visualItemRect(history.list.item(1))
    qtbot.mouseClick(history.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert document.history.index == 1 and document.selection.area == 40 * 30
    history.go_to(3)
    assert document.history.index == 3
    history.go_to(0)
    assert not document.modified and view.title() == "a.png"


def test_feather_asks_for_a_radius(window, make_png, monkeypatch):
    (view,) = window.open_paths([make_png("a.png", size=(40, 30))])
    view.document.set_selection(Selection.rect((40, 30), (10, 10, 20, 10)), "Rect")
    monkeypatch.setattr(file_dialogs, "ask_feather_radius", lambda parent, radius: 3.0)
    window.actions["feather"].trigger()
    assert view.document.history.labels[-1] == "Feather Selection (3 px)"
    assert 0 < view.document.selection.mask[10, 15] < 1


def test_tools_from_the_toolbar_apply_to_every_document(window, make_png):
    window.open_paths([make_png("a.png"), make_png("b.png")])
    window.actions["tool_ellipse"].trigger()
    assert [v.tool_name for v in window.document_views()] == ["ellipse", "ellipse"]
    window.actions["tool_move"].trigger()
    assert window.tool_name == "move" and window.current_document_view().tool_name == "move"


def test_view_actions_and_status_bar(window, make_png, qtbot):
    (view,) = window.open_paths([make_png("a.png", size=(40, 30))])
    canvas = view.canvas
    assert window.size_label.text() == "40 \u00d7 30 px"
    window.actions["actual_size"].trigger()
    assert canvas.zoom == 1.0 and window.zoom_label.text() == "100%"
    window.actions["zoom_in"].trigger()
    assert window.zoom_label.text() == "150%"
    window.actions["zoom_out"].trigger()
    window.actions["zoom_out"].trigger()
    assert window.zoom_label.text() == "67%"
    window.actions["fit"].trigger()
    assert canvas.fitting
    qtbot.mouseMove(canvas, canvas.map_from_image(QPointF(12.5, 7.5)).toPoint())
    assert window.cursor_label.text() == "x 12, y 7"
    view.document.set_selection(Selection.rect((40, 30), (1, 2, 5, 6)), "Rect")
    assert window.selection_label.text() == "Selection 5 \u00d7 6"
    window.set_device_text("CUDA: Test GPU")
    assert window.device_label.text() == "CUDA: Test GPU"
    window.actions["pixel_grid"].trigger()
    assert not canvas.pixel_grid


# --------------------------------------------------------------------------- #
# Saving
# --------------------------------------------------------------------------- #


def test_save_as_png_writes_the_file(window, make_png, tmp_path, monkeypatch):
    (view,) = window.open_paths([make_png("a.png", size=(12, 8))])
    paint(view.document, 0.5)
    target = tmp_path / "out" / "result.png"
    target.parent.mkdir()
    asked = []

    def ask(parent, suggested, quality):
        asked.append(Path(suggested))
        return SaveChoice(target, "PNG", quality)

    monkeypatch.setattr(file_dialogs, "ask_save_path", ask)
    window.actions["save_as"].trigger()
    assert asked == [tmp_path / "a.png"]
    assert target.is_file() and load_image(target).size == (12, 8)
    assert np.allclose(load_image(target).rgb, 0.5, atol=1 / 255)
    assert not view.document.modified and view.title() == "result.png"
    assert window.recent_files()[0] == str(target)


def test_save_as_jpeg_uses_the_chosen_quality(window, make_png, tmp_path, monkeypatch):
    (view,) = window.open_paths([make_png("a.png", size=(12, 8))])
    target = tmp_path / "small.jpg"
    monkeypatch.setattr(file_dialogs, "ask_save_path", lambda parent, suggested, quality: SaveChoice(target, "JPEG", 40))
    assert window.save_document_as()
    assert Image.open(target).format == "JPEG"
    assert view.save_quality == 40


def test_resolve_save_path_adds_the_filters_extension():
    jpeg = file_dialogs.EXPORT_FORMATS[1]
    assert file_dialogs.resolve_save_path("/x/photo", jpeg.filter) == (Path("/x/photo.jpg"), jpeg)
    path, fmt = file_dialogs.resolve_save_path("/x/photo.webp", jpeg.filter)
    assert path == Path("/x/photo.webp") and fmt.name == "WEBP"


def test_quality_dialog(qtbot):
    dialog = file_dialogs.QualityDialog(None, "JPEG image", 80)
    qtbot.addWidget(dialog)
    dialog.slider.setValue(55)
    assert dialog.quality() == 55


def test_save_over_the_original_asks_first(window, make_png, monkeypatch):
    path = make_png("a.png", size=(12, 8), color=(255, 0, 0))
    (view,) = window.open_paths([path])
    paint(view.document, 0.0)
    shown = answer_message_boxes(monkeypatch, No, Yes)
    window.actions["save"].trigger()
    assert load_image(path).rgb[0, 0, 0] == 1.0  # untouched
    assert view.document.modified and "Overwrite the original?" in shown[0]
    window.actions["save"].trigger()
    assert load_image(path).rgb[0, 0, 0] == 0.0
    assert not view.document.modified and len(shown) == 2
    paint(view.document, 1.0)
    assert window.save_document()  # confirmed once for this document: no second question
    assert len(shown) == 2


def test_a_failed_save_is_reported(window, make_png, tmp_path, monkeypatch):
    (view,) = window.open_paths([make_png("a.png")])
    target = tmp_path / "no-such-folder" / "x.png"
    monkeypatch.setattr(file_dialogs, "ask_save_path", lambda parent, suggested, quality: SaveChoice(target, "PNG"))
    assert not window.save_document_as()
    assert window.banner.level == "error" and window.banner.text()
    assert view.document.path != target


# --------------------------------------------------------------------------- #
# Closing
# --------------------------------------------------------------------------- #


def test_closing_a_modified_document_asks(window, make_png, monkeypatch):
    (view,) = window.open_paths([make_png("a.png")])
    paint(view.document)
    shown = answer_message_boxes(monkeypatch, Cancel, Discard)
    window.actions["close"].trigger()
    assert window.tabs.count() == 1 and "Save the changes to 'a.png'" in shown[0]
    window.tabs.tabCloseRequested.emit(0)
    assert window.tabs.count() == 0 and window.current_document_view() is None


def test_closing_with_save_writes_first(window, make_png, monkeypatch):
    path = make_png("a.png", size=(6, 4), color=(255, 0, 0))
    (view,) = window.open_paths([path])
    paint(view.document, 0.0)
    answer_message_boxes(monkeypatch, Save, Yes)  # save? yes; overwrite the original? yes
    assert window.close_document(view)
    assert load_image(path).rgb.max() == 0.0


def test_an_unmodified_document_closes_without_a_question(window, make_png):
    window.open_paths([make_png("a.png")])
    assert window.close_document()


def test_quitting_asks_for_every_modified_document(window, make_png, monkeypatch):
    views = window.open_paths([make_png("a.png"), make_png("b.png"), make_png("c.png")])
    for view in views[:2]:
        paint(view.document)
    shown = answer_message_boxes(monkeypatch, Discard, Cancel)
    assert not window.close()
    assert len(shown) == 2 and window.tabs.count() == 3
    shown = answer_message_boxes(monkeypatch, Discard, Discard)
    assert window.close()
    assert len(shown) == 2 and window.tabs.count() == 0


# --------------------------------------------------------------------------- #
# Crash recovery and errors
# --------------------------------------------------------------------------- #


def test_autosave_restores_after_a_crash(window, make_png, tmp_path, qtbot):
    (view,) = window.open_paths([make_png("a.png", size=(10, 6))])
    paint(view.document, 0.375)
    view.document.set_selection(Selection.rect((10, 6), (2, 2, 3, 3)), "Rect")
    window.autosave_timer.setInterval(10)  # let the timer do it, on its thread
    qtbot.waitUntil(lambda: len(list_recoveries(tmp_path / "recovery")) == 1)
    window.wait_for_autosave()
    window.autosave_timer.stop()

    # A new window, as after a crash (the old one never closed).
    asked = []
    second = MainWindow(Settings(), recovery_dir=tmp_path / "recovery", check_recovery_at_start=False,
                        recovery_prompt=lambda entries: asked.append(entries) or "restore")
    qtbot.addWidget(second)
    (restored,) = second.check_recovery()
    assert [e.name for e in asked[0]] == ["a.png"]
    document = restored.document
    assert np.array_equal(document.image.rgb, np.full((6, 10, 3), 0.375, dtype=np.float32))
    assert document.selection.bbox == (2, 2, 3, 3)
    assert document.modified and document.path is None
    assert restored.title() == "a.png" + MODIFIED_MARK
    second._ask_save_changes = lambda view: "discard"
    second.close()
    assert list_recoveries(tmp_path / "recovery") == []  # closed cleanly: gone


def test_saving_removes_the_recovery_entry_and_discard_deletes_entries(window, make_png, tmp_path, monkeypatch, qtbot):
    (view,) = window.open_paths([make_png("a.png", size=(10, 6))])
    paint(view.document)
    assert window.autosave_now(blocking=True) == 1
    assert window.autosave_now(blocking=True) == 0  # nothing changed since
    assert len(list_recoveries(tmp_path / "recovery")) == 1
    monkeypatch.setattr(file_dialogs, "ask_save_path",
                        lambda parent, suggested, quality: SaveChoice(tmp_path / "saved.png", "PNG"))
    assert window.save_document_as()
    assert list_recoveries(tmp_path / "recovery") == []

    paint(view.document, 0.9)
    window.autosave_now(blocking=True)
    third = MainWindow(Settings(), recovery_dir=tmp_path / "recovery", check_recovery_at_start=False,
                       recovery_prompt=lambda entries: "discard")
    qtbot.addWidget(third)
    assert third.check_recovery() == [] and third.tabs.count() == 0
    assert list_recoveries(tmp_path / "recovery") == []


def test_recovery_prompt_runs_at_start(qtbot, tmp_path, make_png, monkeypatch):
    first = MainWindow(Settings(), recovery_dir=tmp_path / "rec", check_recovery_at_start=False)
    qtbot.addWidget(first)
    (view,) = first.open_paths([make_png("a.png")])
    paint(view.document)
    first.autosave_now(blocking=True)
    shown = answer_message_boxes(monkeypatch, Yes)  # the real dialog: "Restore"
    second = MainWindow(Settings(), recovery_dir=tmp_path / "rec")
    qtbot.addWidget(second)
    qtbot.waitUntil(lambda: second.tabs.count() == 1)
    assert "Restore" in shown[0] or "restore" in shown[0].lower()
    for win in (first, second):
        win._ask_save_changes = lambda view: "discard"
        win.close()


def test_uncaught_exceptions_become_messages(window, qtbot):
    previous = sys.excepthook, threading.excepthook
    uninstall = install_exception_hooks(window.show_message)
    try:
        try:
            raise RuntimeError("boom in a slot")
        except RuntimeError:
            sys.excepthook(*sys.exc_info())
        assert "boom in a slot" in window.banner.text() and window.banner.level == "error"

        def fail():
            raise ValueError("boom in a thread")

        thread = threading.Thread(target=fail)
        thread.start()
        thread.join()
        qtbot.waitUntil(lambda: "boom in a thread" in window.banner.text())
    finally:
        uninstall()
    assert (sys.excepthook, threading.excepthook) == previous


def test_replace_image_repaints_and_keeps_the_view(window, make_png, qtbot):
    (view,) = window.open_paths([make_png("a.png", size=(20, 10))])
    canvas = view.canvas
    canvas.set_zoom(2.0)
    centre = canvas.map_to_image(QPointF(canvas.width() / 2, canvas.height() / 2))
    big = np.zeros((40, 80, 3), dtype=np.float32)
    view.document.replace_image(ImageData(rgb=big), "Upscale 4x")
    assert window.size_label.text() == "80 \u00d7 40 px"
    assert canvas.zoom == pytest.approx(0.5)  # the same content stays the same size on screen
    after = canvas.map_to_image(QPointF(canvas.width() / 2, canvas.height() / 2))
    assert after.x() == pytest.approx(centre.x() * 4) and after.y() == pytest.approx(centre.y() * 4)


def test_png_helper_makes_transparent_files(tmp_path):
    path = write_png(tmp_path / "t.png", (4, 4), alpha=0)
    assert load_image(path).alpha is not None


def test_a_dismissed_message_leaves_the_status_bar_too(window):
    """Issue 28: warnings stayed in the status bar after the banner was dismissed or its cause resolved."""
    window.show_message("the weights are missing", "warning")
    assert window.statusBar().currentMessage() == "the weights are missing"
    window.banner.close_button.click()
    assert window.statusBar().currentMessage() == ""
    window.show_message("first", "error")
    window.statusBar().showMessage("something newer")
    window.banner.dismiss()
    assert window.statusBar().currentMessage() == "something newer"  # only its own text goes
