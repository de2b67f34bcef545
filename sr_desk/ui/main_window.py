"""The editor's main window: documents in tabs, menus, tools, status bar.

The window keeps the documents, their tabs and the commands on them. Opening
and saving are in :mod:`sr_desk.ui.file_actions`, autosave and crash
recovery in :mod:`sr_desk.ui.autosave` (the window owns one of each and
delegates), the message strip in :mod:`sr_desk.ui.banner`, and the building
of menus, toolbar and status labels in :mod:`sr_desk.ui.window_chrome`.

The job side (method panel, job list) is docked by the caller through
:meth:`MainWindow.add_side_dock`, and follows the current document through
:meth:`MainWindow.current_document_view` and the
``current_document_changed`` signal.
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QCloseEvent,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QDockWidget,
    QLabel,
    QMainWindow,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from sr_desk.core.document import Document
from sr_desk.core.paths import app_paths
from sr_desk.core.settings import Settings
from sr_desk.ui import file_dialogs
from sr_desk.ui.autosave import AUTOSAVE_INTERVAL_MS, Autosaver, RecoveryPrompt
from sr_desk.ui.banner import INFO_TIMEOUT_MS, MessageBanner
from sr_desk.ui.document_view import DocumentView
from sr_desk.ui.file_actions import MAX_RECENT, FileActions, ask_save_changes, dropped_image_paths
from sr_desk.ui.history_panel import HistoryPanel
from sr_desk.ui.tools import TOOL_CLASSES, Tool, deselect, feather_selection, invert_selection, select_all
from sr_desk.ui.window_chrome import StatusLabels, build_menus, build_toolbar, make_action, make_tool_action

# MAX_RECENT is file_actions', named here too because the tests take it from the window's module.
__all__ = ["MAX_RECENT", "MainWindow"]

log = logging.getLogger(__name__)

_MIB = 1024 * 1024


class MainWindow(QMainWindow):
    """The sr-desk editor window.

    Parameters
    ----------
    settings
        Loaded from the user's settings file when None.
    recovery_dir
        Where autosaves go (default ``app_paths().data_dir / "recovery"``).
    recovery_prompt
        ``prompt(entries) -> "restore" | "discard" | "later"``, asked at start when
        unsaved work from a crash exists (default: a message box).
    autosave_interval_ms
        How often modified documents are written for crash recovery.
    check_recovery_at_start
        Look for unsaved work once the event loop runs.

    Signals
    -------
    current_document_changed(DocumentView | None)
    document_opened(DocumentView)
    document_closed(DocumentView)
    """

    current_document_changed = Signal(object)
    document_opened = Signal(object)
    document_closed = Signal(object)
    closing = Signal()  # the window accepted a close: stop background work

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        recovery_dir: Path | None = None,
        recovery_prompt: RecoveryPrompt | None = None,
        autosave_interval_ms: int = AUTOSAVE_INTERVAL_MS,
        check_recovery_at_start: bool = True,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("sr_desk_main_window")
        self.setWindowTitle("sr-desk")
        self.setAcceptDrops(True)
        self.setDockOptions(
            QMainWindow.DockOption.AnimatedDocks
            | QMainWindow.DockOption.AllowTabbedDocks
            | QMainWindow.DockOption.AllowNestedDocks
        )
        self.settings = settings if settings is not None else Settings.load()
        self.files = FileActions(self)
        self.autosaver = Autosaver(self, recovery_dir, recovery_prompt, autosave_interval_ms)
        self.autosave_timer = self.autosaver.timer
        self._current: DocumentView | None = None
        self._tool_name = TOOL_CLASSES[0].name
        self._extra_tools: list[tuple[str, Callable[[], Tool]]] = []
        self._feather_radius = 8.0
        self._side_docks: list[QDockWidget] = []

        self._build_central()
        self._build_docks()
        self._build_actions()
        self._build_menus()
        self._build_toolbar()
        self._build_status_bar()
        self._restore_geometry()
        self._update_actions()

        if check_recovery_at_start:
            QTimer.singleShot(0, self, self.check_recovery)

    # ------------------------------------------------------------------ #
    # Construction
    # ------------------------------------------------------------------ #

    def _build_central(self) -> None:
        self.banner = MessageBanner(self)
        self._message_cause: str | None = None
        self._message_widget: Any = self.banner

        self.tabs = QTabWidget(self)
        self.tabs.setObjectName("document_tabs")
        self.tabs.setDocumentMode(True)
        self.tabs.setTabsClosable(True)
        self.tabs.setMovable(True)
        self.tabs.setElideMode(Qt.TextElideMode.ElideMiddle)
        self.tabs.tabCloseRequested.connect(lambda index: self.close_document(self._view_at(index)))
        self.tabs.currentChanged.connect(self._on_current_changed)

        self.placeholder = QLabel(
            "<p style='font-size:15px'>Drop images here</p>"
            "<p>or use <b>File \u25b8 Open\u2026</b> (Ctrl+O)</p>",
            self,
        )
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)

        self._stack = QStackedWidget(self)
        self._stack.addWidget(self.placeholder)
        self._stack.addWidget(self.tabs)

        central = QWidget(self)
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self._stack, 1)
        self.setCentralWidget(central)
        self.banner.float_over(
            central, top=lambda: self.tabs.tabBar().height() if self._stack.currentWidget() is self.tabs else 0
        )
        self.banner.dismissed.connect(self._clear_status_of)

    def _clear_status_of(self, text: str) -> None:
        """A message dismissed (or gone by itself) leaves the status bar too, where it would have stayed stale."""
        if self.statusBar().currentMessage() == text:
            self.statusBar().clearMessage()

    def _build_docks(self) -> None:
        self.history_panel = HistoryPanel(self)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.history_panel)

    def _action(self, name: str, text: str, slot: Callable[..., Any], *args: Any, **kwargs: Any) -> QAction:
        """An action in ``self.actions`` (arguments as :func:`make_action`)."""
        action = make_action(self, name, text, slot, *args, **kwargs)
        self.addAction(action)  # shortcuts work with the menu bar hidden, too
        self.actions[name] = action
        return action

    def _build_actions(self) -> None:
        self.actions: dict[str, QAction] = {}
        a = self._action
        a("open", "&Open\u2026", self.files.open_dialog, [QKeySequence.StandardKey.Open], "mdi6.folder-open-outline",
          "Open images")
        a("save", "&Save", self.save_document, [QKeySequence.StandardKey.Save], "mdi6.content-save-outline",
          "Save the image to its file")
        a("save_as", "Save &As / Export\u2026", self.save_document_as, ["Ctrl+Shift+S"], "mdi6.content-save-edit-outline",
          "Save the image as PNG, JPEG, WebP or TIFF")
        a("close", "&Close", self.close_document, [QKeySequence.StandardKey.Close], None, "Close the image")
        a("quit", "&Quit", self.close, [QKeySequence.StandardKey.Quit], None, "Quit sr-desk")
        self.actions["quit"].setMenuRole(QAction.MenuRole.QuitRole)

        a("undo", "&Undo", self.undo, [QKeySequence.StandardKey.Undo], "mdi6.undo")
        a("redo", "&Redo", self.redo, ["Ctrl+Shift+Z", "Ctrl+Y"], "mdi6.redo")
        a("select_all", "Select &All", self.select_all, ["Ctrl+A"], "mdi6.select-all")
        a("deselect", "&Deselect", self.deselect, ["Ctrl+D"], "mdi6.select-off")
        a("invert", "&Invert Selection", self.invert_selection, ["Ctrl+I"], "mdi6.select-inverse")
        a("feather", "&Feather Selection\u2026", self.feather_selection, ["Shift+F6"], "mdi6.blur",
          "Soften the selection's edge")

        a("zoom_in", "Zoom &In", self.zoom_in, ["Ctrl+=", "Ctrl++"], "mdi6.magnify-plus-outline")
        a("zoom_out", "Zoom &Out", self.zoom_out, ["Ctrl+-"], "mdi6.magnify-minus-outline")
        a("fit", "&Fit on Screen", self.fit, ["Ctrl+0"], "mdi6.fit-to-screen-outline")
        a("actual_size", "&100%", self.actual_size, ["Ctrl+1"], "mdi6.numeric-1-box-outline",
          "One image pixel per screen pixel")
        grid = a("pixel_grid", "Pixel &Grid", self.set_pixel_grid, [], "mdi6.grid", "Show the pixel grid at 800% and above",
                 checkable=True)
        grid.blockSignals(True)
        grid.setChecked(bool(self.settings.extra.get("pixel_grid", True)))
        grid.blockSignals(False)

        self.tool_group = QActionGroup(self)
        self.tool_group.setExclusive(True)
        for cls in TOOL_CLASSES:
            self._tool_action(cls)
        self.actions[f"tool_{self._tool_name}"].setChecked(True)

    def _tool_action(self, cls: type[Tool]) -> QAction:
        action = make_tool_action(self, cls, self.set_tool)
        self.tool_group.addAction(action)
        self.addAction(action)
        self.actions[f"tool_{cls.name}"] = action
        return action

    def add_tool(self, cls: type[Tool], make: Callable[[], Tool]) -> QAction:
        """Add a canvas tool beyond the selection tools (placing a fusion donor, say).

        ``make`` builds one instance per document, for the open ones and for
        every document opened later. The returned action is in the Tools menu
        and the toolbar; the caller enables and disables it.
        """
        action = self._tool_action(cls)
        self._extra_tools.append((cls.name, make))
        self.menus["tools"].addAction(action)
        self.toolbar.insertAction(self._toolbar_tools_end, action)
        for view in self.document_views():
            view.add_tool(cls.name, make())
        return action

    def _build_menus(self) -> None:
        self.menus = build_menus(self.menuBar(), self.actions, self.tool_group.actions())
        self.recent_menu = self.menus["recent"]
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self._fill_recent_menu()
        self.panels_menu = self.menus["panels"]
        self.panels_menu.addAction(self.history_panel.toggleViewAction())

    def _build_toolbar(self) -> None:
        self.toolbar, self._toolbar_tools_end = build_toolbar(self, self.actions, self.tool_group.actions())
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, self.toolbar)

    def _build_status_bar(self) -> None:
        self.status_labels = labels = StatusLabels(self.statusBar())
        self.cursor_label, self.selection_label, self.size_label = labels.cursor, labels.selection, labels.size
        self.zoom_label, self.device_label = labels.zoom, labels.device

    # ------------------------------------------------------------------ #
    # Public API for the rest of the UI
    # ------------------------------------------------------------------ #

    def current_document_view(self) -> DocumentView | None:
        return self._current

    def current_document(self) -> Document | None:
        return self._current.document if self._current is not None else None

    def document_views(self) -> list[DocumentView]:
        """Open documents in tab order."""
        return [self._view_at(i) for i in range(self.tabs.count())]  # type: ignore[misc]

    def set_current_document_view(self, view: DocumentView) -> None:
        self.tabs.setCurrentWidget(view)

    def add_side_dock(self, widget: QWidget, title: str, area: Qt.DockWidgetArea = Qt.DockWidgetArea.RightDockWidgetArea) -> QDockWidget:
        """Dock ``widget`` (the method panel, the job list) at the side; returns its dock.

        The first side dock goes above the History panel; later ones are
        stacked below it. The dock's toggle action is added to View > Panels.
        """
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{title.lower().replace(' ', '_')}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        if not self._side_docks and area == Qt.DockWidgetArea.RightDockWidgetArea and not self.history_panel.isFloating():
            self.splitDockWidget(dock, self.history_panel, Qt.Orientation.Vertical)
        self._side_docks.append(dock)
        self.panels_menu.addAction(dock.toggleViewAction())
        return dock

    def show_message(self, text: str, level: str = "info", *, until: str | None = None) -> None:
        """Tell the user something without blocking: status bar plus a dismissable banner.

        ``level`` is "info" (hides by itself), "warning" or "error" (stay until dismissed).
        ``until`` names the condition the message is about ("document", "placement");
        :meth:`resolve_message` with that name takes it away once the cause is gone.
        """
        text = " ".join(str(text).split())
        getattr(log, {"info": "info", "warning": "warning"}.get(level, "error"))("%s", text)
        self.statusBar().showMessage(text, INFO_TIMEOUT_MS if level == "info" else 0)
        self._message_widget.show_message(text, level)
        self._message_cause = until

    def resolve_message(self, cause: str) -> None:
        """The condition ``cause`` no longer holds: hide the message shown for it, if it is still up."""
        if self._message_cause == cause:
            self._message_cause = None
            self.statusBar().clearMessage()
            if self._message_widget is self.banner:
                self.banner.dismiss()

    def set_message_widget(self, widget: Any) -> None:
        """Route :meth:`show_message` to another widget with ``show_message(text, level)``."""
        if widget is self._message_widget:
            return
        if self._message_widget is self.banner:
            self.banner.dismiss()
        self._message_widget = widget

    def set_device_text(self, text: str) -> None:
        """What the status bar says about the compute device (e.g. "CUDA: RTX 4090")."""
        self.status_labels.set_device_text(text)

    # ------------------------------------------------------------------ #
    # Documents and tabs
    # ------------------------------------------------------------------ #

    def add_document(self, document: Document) -> DocumentView:
        """Show ``document`` in a new tab and make it current."""
        view = DocumentView(document, self.tabs)
        for name, make in self._extra_tools:
            view.add_tool(name, make())
        view.set_tool(self._tool_name)
        view.canvas.set_pixel_grid(self.actions["pixel_grid"].isChecked())
        view.title_changed.connect(lambda _title, v=view: self._on_title_changed(v))
        view.document_changed.connect(lambda kind, v=view: self._on_document_changed(v, kind))
        view.canvas.cursor_moved.connect(lambda x, y, v=view: self._on_cursor(v, x, y))
        view.canvas.cursor_left.connect(lambda v=view: self._on_cursor(v, None, None))
        view.canvas.zoom_changed.connect(lambda _z, v=view: self._update_status(v))
        index = self.tabs.addTab(view, view.title())
        self.tabs.setTabToolTip(index, self._tab_tip(view))
        self._stack.setCurrentWidget(self.tabs)
        self.tabs.setCurrentIndex(index)
        view.canvas.setFocus()
        self.resolve_message("document")  # "open an image first" no longer applies
        self.document_opened.emit(view)
        return view

    def history_options(self) -> dict[str, Any]:
        """How a document opened here keeps its undo history: the memory the settings allow, the rest on disk."""
        return {
            "history_limit_bytes": max(0, int(self.settings.undo_memory_mb)) * _MIB,
            "spill_dir": app_paths().cache_dir / "undo",
        }

    def close_document(self, view: DocumentView | None = None) -> bool:
        """Close a tab, asking Save / Discard / Cancel when it has unsaved changes; True if closed."""
        view = view or self._current
        if view is None:
            return False
        if not self._settle_unsaved(view):
            return False
        self._remove_view(view)
        return True

    def close_all_documents(self) -> bool:
        for view in list(self.document_views()):
            if not self.close_document(view):
                return False
        return True

    def _ask_save_changes(self, view: DocumentView) -> str:
        """"save", "discard" or "cancel" for ``view`` about to close; tests answer it on the instance."""
        self.set_current_document_view(view)
        return ask_save_changes(self, view.document.display_name)

    def _settle_unsaved(self, view: DocumentView) -> bool:
        """Ask about unsaved changes; True when the document may close."""
        if not view.document.modified:
            return True
        answer = self._ask_save_changes(view)
        if answer == "save":
            return self.save_document(view)
        return answer == "discard"

    def _remove_view(self, view: DocumentView) -> None:
        index = self.tabs.indexOf(view)
        document = view.document
        self.autosaver.forget(document)
        if self.history_panel.document is document:
            self.history_panel.set_document(None)
        if index >= 0:
            self.tabs.removeTab(index)
        view.close_document()
        self.document_closed.emit(view)
        view.deleteLater()
        if self.tabs.count() == 0:
            self._stack.setCurrentWidget(self.placeholder)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt API
        """Quit: ask about every modified document first; Cancel keeps the window open."""
        for view in self.document_views():
            if not self._settle_unsaved(view):
                event.ignore()
                return
        self.autosaver.stop()
        self.closing.emit()
        for view in list(self.document_views()):
            self._remove_view(view)
        self.settings.extra["window_geometry"] = base64.b64encode(bytes(self.saveGeometry().data())).decode("ascii")
        self.save_settings()
        event.accept()

    def _restore_geometry(self) -> None:
        value = self.settings.extra.get("window_geometry")
        restored = False
        if isinstance(value, str):
            try:
                restored = self.restoreGeometry(QByteArray(base64.b64decode(value)))
            except ValueError:
                restored = False
        if not restored:
            self.resize(1280, 820)

    def save_settings(self) -> None:
        """Write the settings file; a failure is logged, since losing the recent list must not stop work."""
        try:
            self.settings.save()
        except OSError as exc:
            log.warning("cannot save settings: %s", exc)

    # ------------------------------------------------------------------ #
    # Files and crash recovery: see FileActions and Autosaver
    # ------------------------------------------------------------------ #

    def open_paths(self, paths: Iterable[str | os.PathLike[str]]) -> list[DocumentView]:
        """Open each file in a tab (or switch to it when already open); errors become messages."""
        return self.files.open_paths(paths)

    def save_document(self, view: DocumentView | None = None) -> bool:
        """Save to the document's file (asking before replacing the original); True if saved."""
        return self.files.save(view)

    def save_document_as(self, view: DocumentView | None = None) -> bool:
        """Save As / Export: pick a file and format (and quality); True if saved."""
        return self.files.save_as(view)

    def recent_files(self) -> list[str]:
        """Recently opened or saved files, newest first."""
        return self.files.recent_files()

    def _fill_recent_menu(self) -> None:
        self.files.fill_recent_menu(self.recent_menu)

    def autosave_now(self, blocking: bool = False) -> int:
        """Write recovery entries for documents changed since the last write; how many (see Autosaver.save_now)."""
        return self.autosaver.save_now(blocking)

    def wait_for_autosave(self) -> None:
        """Block until background autosaves finish (tests, quitting)."""
        self.autosaver.wait()

    def check_recovery(self) -> list[DocumentView]:
        """Offer unsaved work from a previous session (once); returns the restored views."""
        return self.autosaver.check_recovery()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt API
        self.dragMoveEvent(event)

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:  # noqa: N802 - Qt API
        if dropped_image_paths(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt API
        paths = dropped_image_paths(event.mimeData())
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        # Open after the drop returns, so the drag source is not kept waiting on decoding.
        QTimer.singleShot(0, self, lambda: self.open_paths(paths))

    # ------------------------------------------------------------------ #
    # Edit and view commands
    # ------------------------------------------------------------------ #

    def undo(self) -> None:
        self._history_step("Undo")

    def redo(self) -> None:
        self._history_step("Redo")

    def _history_step(self, verb: str) -> None:
        """Undo or redo on the current document, saying which step in the status bar."""
        document = self.current_document()
        if document is None:
            return
        label = document.undo() if verb == "Undo" else document.redo()
        if label:
            self.statusBar().showMessage(f"{verb} {label}", 3000)

    def select_all(self) -> None:
        if (document := self.current_document()) is not None:
            select_all(document)

    def deselect(self) -> None:
        if (document := self.current_document()) is not None:
            deselect(document)

    def invert_selection(self) -> None:
        if (document := self.current_document()) is not None:
            invert_selection(document)

    def feather_selection(self) -> None:
        document = self.current_document()
        if document is None:
            return
        if document.selection.is_empty:
            self.show_message("Nothing is selected to feather.", "info")
            return
        radius = file_dialogs.ask_feather_radius(self, self._feather_radius)
        if radius is None:
            return
        self._feather_radius = radius
        feather_selection(document, radius)

    def _canvas_call(self, method: str) -> None:
        if self._current is not None:
            getattr(self._current.canvas, method)()

    def zoom_in(self) -> None:
        self._canvas_call("zoom_in")

    def zoom_out(self) -> None:
        self._canvas_call("zoom_out")

    def fit(self) -> None:
        self._canvas_call("fit")

    def actual_size(self) -> None:
        self._canvas_call("actual_size")

    def set_pixel_grid(self, on: bool) -> None:
        for view in self.document_views():
            view.canvas.set_pixel_grid(on)
        self.settings.extra["pixel_grid"] = bool(on)

    def set_tool(self, name: str) -> None:
        """Make ``name`` ("rect", "ellipse", "lasso", "move", or one from ``add_tool``) the tool of every document."""
        self._tool_name = name
        action = self.actions.get(f"tool_{name}")
        if action is not None and not action.isChecked():
            action.setChecked(True)
        for view in self.document_views():
            view.set_tool(name)

    @property
    def tool_name(self) -> str:
        return self._tool_name

    # ------------------------------------------------------------------ #
    # Keeping the chrome in step
    # ------------------------------------------------------------------ #

    def _view_at(self, index: int) -> DocumentView | None:
        widget = self.tabs.widget(index)
        return widget if isinstance(widget, DocumentView) else None

    def _on_current_changed(self, index: int) -> None:
        view = self._view_at(index) if index >= 0 else None
        if view is self._current:
            return
        self._current = view
        self.history_panel.set_document(view.document if view is not None else None)
        self._update_actions()
        self._update_status(view)
        self._update_window_title()
        if view is not None:
            view.canvas.setFocus()
        self.current_document_changed.emit(view)

    def _on_title_changed(self, view: DocumentView) -> None:
        index = self.tabs.indexOf(view)
        if index >= 0:
            self.tabs.setTabText(index, view.title())
            self.tabs.setTabToolTip(index, self._tab_tip(view))
        if view is self._current:
            self._update_window_title()

    @staticmethod
    def _tab_tip(view: DocumentView) -> str:
        document = view.document
        where = document.path or document.original_path
        return str(where) if where is not None else document.display_name

    def _on_document_changed(self, view: DocumentView, kind: str) -> None:
        if view is not self._current:
            return
        if kind in ("history", "path"):
            self._update_actions()
        if kind in ("image", "selection"):
            self._update_status(view)

    def _update_window_title(self) -> None:
        view = self._current
        self.setWindowTitle(f"{view.title()} \u2014 sr-desk" if view is not None else "sr-desk")

    def _update_actions(self) -> None:
        document = self.current_document()
        has_doc = document is not None
        for name in ("save", "save_as", "close", "select_all", "deselect", "invert", "feather", "zoom_in", "zoom_out",
                     "fit", "actual_size"):
            self.actions[name].setEnabled(has_doc)
        undo, redo = self.actions["undo"], self.actions["redo"]
        if document is None:
            undo.setEnabled(False)
            redo.setEnabled(False)
            undo.setText("&Undo")
            redo.setText("&Redo")
            return
        history = document.history
        labels = history.labels
        undo.setEnabled(history.can_undo)
        redo.setEnabled(history.can_redo)
        undo.setText(f"&Undo {labels[history.index - 1]}" if history.can_undo else "&Undo")
        redo.setText(f"&Redo {labels[history.index]}" if history.can_redo else "&Redo")

    def _update_status(self, view: DocumentView | None) -> None:
        if view is self._current:
            self.status_labels.show_view(view)

    def _on_cursor(self, view: DocumentView, x: int | None, y: int | None) -> None:
        if view is self._current:
            self.status_labels.show_cursor(view, x, y)
