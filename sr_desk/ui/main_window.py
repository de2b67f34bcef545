"""The editor's main window: documents in tabs, menus, tools, status bar, autosave.

The job side (method panel, job list) is docked by the caller through
:meth:`MainWindow.add_side_dock`, and follows the current document through
:meth:`MainWindow.current_document_view` and the
``current_document_changed`` signal.
"""

from __future__ import annotations

import base64
import concurrent.futures
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import qtawesome as qta
from PySide6.QtCore import QByteArray, QEvent, QObject, QSize, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QCloseEvent,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QGuiApplication,
    QIcon,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QDockWidget,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QTabWidget,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from sr_desk.core.document import Document, OverwriteRefusedError
from sr_desk.core.errors import SrDeskError
from sr_desk.core.imageio import IMAGE_EXTENSIONS
from sr_desk.core.paths import app_paths
from sr_desk.core.recovery import (
    RecoveryEntry,
    default_recovery_dir,
    discard_document,
    discard_recovery,
    list_recoveries,
    load_recovery,
    write_recovery,
)
from sr_desk.core.settings import Settings
from sr_desk.ui import file_dialogs
from sr_desk.ui.document_view import DocumentView
from sr_desk.ui.history_panel import HistoryPanel
from sr_desk.ui.tools import TOOL_CLASSES, Tool, deselect, feather_selection, invert_selection, select_all

__all__ = ["AUTOSAVE_INTERVAL_MS", "MAX_RECENT", "MainWindow", "MessageBanner", "ask_recovery"]

log = logging.getLogger(__name__)

AUTOSAVE_INTERVAL_MS = 2 * 60 * 1000
MAX_RECENT = 10
RECENT_KEY = "recent_files"
_MIB = 1024 * 1024
_LEVEL_COLOURS = {
    "info": ("#1f3a5a", "#d6e9ff", "mdi6.information-outline"),
    "warning": ("#5a4a1f", "#fff1c9", "mdi6.alert-outline"),
    "error": ("#5a1f24", "#ffd9dc", "mdi6.alert-circle-outline"),
}
_INFO_TIMEOUT_MS = 8000

RecoveryPrompt = Callable[[list[RecoveryEntry]], str]


def _icon(name: str) -> QIcon:
    """A qtawesome icon, or an empty one if the font lacks the name (never fail over an icon)."""
    try:
        return qta.icon(name)
    except Exception:  # noqa: BLE001 - qtawesome raises several types for unknown names
        log.debug("no icon %s", name)
        return QIcon()


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
    answer = QMessageBox.StandardButton(box.exec())
    if answer == QMessageBox.StandardButton.Yes:
        return "restore"
    if answer == QMessageBox.StandardButton.Discard:
        return "discard"
    return "later"


class MessageBanner(QFrame):
    """A one-line, dismissable message strip at the top of the window (never modal)."""

    shown = Signal()
    dismissed = Signal(str)  # the text that went away

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("message_banner")
        self.icon = QLabel(self)
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.close_button = QToolButton(self)
        self.close_button.setIcon(_icon("mdi6.close"))
        self.close_button.setAutoRaise(True)
        self.close_button.setToolTip("Dismiss")
        self.close_button.clicked.connect(self.dismiss)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 4, 4)
        layout.addWidget(self.icon)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.close_button)
        self.level = "info"
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.dismiss)
        self.hide()

    def show_message(self, text: str, level: str = "info") -> None:
        level = level if level in _LEVEL_COLOURS else "info"
        background, foreground, icon = _LEVEL_COLOURS[level]
        self.level = level
        self.setStyleSheet(
            f"#message_banner {{ background: {background}; border-radius: 4px; }}"
            f"#message_banner QLabel {{ color: {foreground}; }}"
        )
        self.icon.setPixmap(_icon(icon).pixmap(QSize(16, 16)))
        self.label.setText(text)
        self.show()
        self.shown.emit()
        if level == "info":
            self._timer.start(_INFO_TIMEOUT_MS)
        else:
            self._timer.stop()  # warnings and errors stay until dismissed

    def text(self) -> str:
        return self.label.text() if self.isVisibleTo(self.parentWidget()) else ""

    def dismiss(self) -> None:
        self._timer.stop()
        was_shown = not self.isHidden()
        self.hide()
        if was_shown:
            self.dismissed.emit(self.label.text())


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
    _autosave_done = Signal(object, object)  # (document, error or None), from the autosave thread

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
        self.recovery_dir = Path(recovery_dir) if recovery_dir is not None else default_recovery_dir()
        self._recovery_prompt: RecoveryPrompt = recovery_prompt or (lambda entries: ask_recovery(self, entries))
        self._recovery_checked = False
        self._current: DocumentView | None = None
        self._tool_name = TOOL_CLASSES[0].name
        self._extra_tools: list[tuple[str, Callable[[], Tool]]] = []
        self._feather_radius = 8.0
        self._side_docks: list[QDockWidget] = []
        self._autosaved: dict[str, tuple[int, int, int, int]] = {}  # recovery id -> state written
        self._autosave_pending: set[str] = set()
        self._closed_ids: set[str] = set()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._shutting_down = False

        self._build_central()
        self._build_docks()
        self._build_actions()
        self._build_menus()
        self._build_toolbar()
        self._build_status_bar()
        self._restore_geometry()
        self._update_actions()

        self._autosave_done.connect(self._on_autosave_done)
        self.autosave_timer = QTimer(self)
        self.autosave_timer.setInterval(max(1, int(autosave_interval_ms)))
        self.autosave_timer.timeout.connect(self.autosave_now)
        self.autosave_timer.start()
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
        # The banner floats over the top of the canvas instead of taking a
        # layout row: a message must not make the image jump.
        self.banner.setParent(central)
        central.installEventFilter(self)
        self.banner.shown.connect(self._place_banner)
        self.banner.dismissed.connect(self._clear_status_of)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if watched is self.centralWidget() and event.type() == QEvent.Type.Resize:
            self._place_banner()
        return super().eventFilter(watched, event)

    def _clear_status_of(self, text: str) -> None:
        """A message dismissed (or gone by itself) leaves the status bar too, where it would have stayed stale."""
        if self.statusBar().currentMessage() == text:
            self.statusBar().clearMessage()

    def _place_banner(self) -> None:
        central = self.centralWidget()
        if central is None:
            return
        top = self.tabs.tabBar().height() if self._stack.currentWidget() is self.tabs else 0
        margin = 8
        width = max(100, central.width() - 2 * margin)
        height = self.banner.heightForWidth(width) if self.banner.hasHeightForWidth() else -1
        height = max(height, self.banner.sizeHint().height())
        self.banner.setGeometry(margin, top + margin, width, height)
        self.banner.raise_()

    def _build_docks(self) -> None:
        self.history_panel = HistoryPanel(self)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.history_panel)

    def _action(
        self,
        name: str,
        text: str,
        slot: Callable[..., Any],
        shortcuts: Sequence[QKeySequence | str | QKeySequence.StandardKey] = (),
        icon: str | None = None,
        tip: str = "",
        checkable: bool = False,
    ) -> QAction:
        action = QAction(text, self)
        action.setObjectName(f"action_{name}")
        if shortcuts:
            action.setShortcuts([QKeySequence(s) for s in shortcuts])
        if icon:
            action.setIcon(_icon(icon))
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(tip)
        action.setCheckable(checkable)
        if checkable:
            action.toggled.connect(slot)
        else:
            action.triggered.connect(lambda _checked=False: slot())
        self.addAction(action)  # shortcuts work with the menu bar hidden, too
        self.actions[name] = action
        return action

    def _build_actions(self) -> None:
        self.actions: dict[str, QAction] = {}
        a = self._action
        a("open", "&Open\u2026", self.open_dialog, [QKeySequence.StandardKey.Open], "mdi6.folder-open-outline",
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
        action = QAction(_icon(cls.icon), cls.label, self)
        action.setObjectName(f"action_tool_{cls.name}")
        action.setCheckable(True)
        action.setShortcut(QKeySequence(cls.shortcut))
        action.setToolTip(f"{cls.label} ({cls.shortcut})\n{cls.tip}")
        action.setStatusTip(cls.tip)
        action.setData(cls.name)
        action.triggered.connect(lambda _checked=False, name=cls.name: self.set_tool(name))
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
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction(self.actions["open"])
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self._fill_recent_menu()
        file_menu.addSeparator()
        file_menu.addAction(self.actions["save"])
        file_menu.addAction(self.actions["save_as"])
        file_menu.addSeparator()
        file_menu.addAction(self.actions["close"])
        file_menu.addAction(self.actions["quit"])

        edit = bar.addMenu("&Edit")
        edit.addAction(self.actions["undo"])
        edit.addAction(self.actions["redo"])
        edit.addSeparator()
        for name in ("select_all", "deselect", "invert", "feather"):
            edit.addAction(self.actions[name])

        view = bar.addMenu("&View")
        for name in ("zoom_in", "zoom_out", "fit", "actual_size"):
            view.addAction(self.actions[name])
        view.addSeparator()
        view.addAction(self.actions["pixel_grid"])
        view.addSeparator()
        self.panels_menu = view.addMenu("&Panels")
        self.panels_menu.addAction(self.history_panel.toggleViewAction())

        tools = bar.addMenu("&Tools")
        for action in self.tool_group.actions():
            tools.addAction(action)
        self.menus = {"file": file_menu, "edit": edit, "view": view, "tools": tools}

    def _build_toolbar(self) -> None:
        self.toolbar = QToolBar("Tools", self)
        self.toolbar.setObjectName("tools_toolbar")
        self.toolbar.setIconSize(QSize(20, 20))
        self.toolbar.setMovable(False)
        for name in ("open", "save"):
            self.toolbar.addAction(self.actions[name])
        self.toolbar.addSeparator()
        for name in ("undo", "redo"):
            self.toolbar.addAction(self.actions[name])
        self.toolbar.addSeparator()
        for action in self.tool_group.actions():
            self.toolbar.addAction(action)
        self._toolbar_tools_end = self.toolbar.addSeparator()
        for name in ("zoom_out", "zoom_in", "fit", "actual_size", "pixel_grid"):
            self.toolbar.addAction(self.actions[name])
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, self.toolbar)

    def _build_status_bar(self) -> None:
        status = self.statusBar()
        self.size_label = QLabel(self)
        self.selection_label = QLabel(self)
        self.zoom_label = QLabel(self)
        self.cursor_label = QLabel(self)
        self.device_label = QLabel("Device: \u2014", self)
        self.cursor_label.setMinimumWidth(100)
        self.zoom_label.setMinimumWidth(48)
        self.size_label.setToolTip("Image size")
        self.zoom_label.setToolTip("Zoom (100% = one image pixel per screen pixel)")
        self.cursor_label.setToolTip("Pixel under the cursor")
        self.selection_label.setToolTip("Size of the selection's bounding box")
        labels = (self.cursor_label, self.selection_label, self.size_label, self.zoom_label, self.device_label)
        for number, widget in enumerate(labels):
            widget.setContentsMargins(6, 0, 6, 0)
            if number:
                line = QFrame(self)
                line.setFrameShape(QFrame.Shape.VLine)
                line.setFrameShadow(QFrame.Shadow.Sunken)
                status.addPermanentWidget(line)
                if widget is self.selection_label:
                    self._selection_separator = line
            status.addPermanentWidget(widget)

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
        self.statusBar().showMessage(text, _INFO_TIMEOUT_MS if level == "info" else 0)
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
        self.device_label.setText(text)
        self.device_label.setToolTip(text)

    # ------------------------------------------------------------------ #
    # Opening
    # ------------------------------------------------------------------ #

    def open_dialog(self) -> list[DocumentView]:
        start = ""
        current = self.current_document()
        if current is not None and (current.path or current.original_path):
            start = str((current.path or current.original_path).parent)  # type: ignore[union-attr]
        elif self.recent_files():
            start = str(Path(self.recent_files()[0]).parent)
        return self.open_paths(file_dialogs.ask_open_paths(self, start))

    def open_paths(self, paths: Iterable[str | os.PathLike[str]]) -> list[DocumentView]:
        """Open each file in a tab (or switch to it when already open); errors become messages."""
        opened: list[DocumentView] = []
        for raw in paths:
            path = Path(raw)
            existing = self._view_for_path(path)
            if existing is not None:
                self.set_current_document_view(existing)
                opened.append(existing)
                continue
            QGuiApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
            try:
                document = Document.open(
                    path,
                    history_limit_bytes=max(0, int(self.settings.undo_memory_mb)) * _MIB,
                    spill_dir=app_paths().cache_dir / "undo",
                )
            except SrDeskError as exc:
                self.show_message(str(exc), "error")
                continue
            except (OSError, MemoryError, ValueError) as exc:
                self.show_message(f"cannot open '{path.name}': {exc}", "error")
                continue
            finally:
                QGuiApplication.restoreOverrideCursor()
            opened.append(self.add_document(document))
            self._remember_recent(path)
        return opened

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

    def _view_for_path(self, path: Path) -> DocumentView | None:
        for view in self.document_views():
            current = view.document.path
            if current is None:
                continue
            try:
                if os.path.samefile(current, path):
                    return view
            except OSError:
                continue
        return None

    # recent files ------------------------------------------------------

    def recent_files(self) -> list[str]:
        value = self.settings.extra.get(RECENT_KEY, [])
        return [str(p) for p in value if isinstance(p, str)] if isinstance(value, list) else []

    def _remember_recent(self, path: Path) -> None:
        text = str(Path(path).absolute())
        recent = [p for p in self.recent_files() if p != text]
        self.settings.extra[RECENT_KEY] = [text, *recent][:MAX_RECENT]
        self._save_settings()

    def clear_recent(self) -> None:
        self.settings.extra[RECENT_KEY] = []
        self._save_settings()
        self._fill_recent_menu()

    def _fill_recent_menu(self) -> None:
        menu = self.recent_menu
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

    def _save_settings(self) -> None:
        try:
            self.settings.save()
        except OSError as exc:
            log.warning("cannot save settings: %s", exc)

    # drag and drop -----------------------------------------------------

    @staticmethod
    def dropped_image_paths(urls: Iterable[QUrl]) -> list[str]:
        """Local files among ``urls`` whose extension sr-desk reads."""
        paths = []
        for url in urls:
            if not url.isLocalFile():
                continue
            path = url.toLocalFile()
            if Path(path).suffix.lower() in IMAGE_EXTENSIONS:
                paths.append(path)
        return paths

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt API
        if event.mimeData().hasUrls() and self.dropped_image_paths(event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:  # noqa: N802 - Qt API
        if event.mimeData().hasUrls() and self.dropped_image_paths(event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt API
        paths = self.dropped_image_paths(event.mimeData().urls()) if event.mimeData().hasUrls() else []
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        # Open after the drop returns, so the drag source is not kept waiting on decoding.
        QTimer.singleShot(0, self, lambda: self.open_paths(paths))

    # ------------------------------------------------------------------ #
    # Saving and closing
    # ------------------------------------------------------------------ #

    def save_document(self, view: DocumentView | None = None) -> bool:
        """Save to the document's file (asking before replacing the original); True if saved."""
        view = view or self._current
        if view is None:
            return False
        document = view.document
        if document.path is None or file_dialogs.format_for(document.path) is None:
            return self.save_document_as(view)
        return self._write(view, document.path, None, view.save_quality)

    def save_document_as(self, view: DocumentView | None = None) -> bool:
        """Save As / Export: pick a file and format (and quality); True if saved."""
        view = view or self._current
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
        choice = file_dialogs.ask_save_path(self, suggested, view.save_quality)
        if choice is None:
            return False
        if self._write(view, choice.path, choice.format, choice.quality):
            view.save_quality = choice.quality
            self._remember_recent(choice.path)
            return True
        return False

    def _write(self, view: DocumentView, path: Path, fmt: str | None, quality: int) -> bool:
        document = view.document
        QGuiApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            try:
                document.save(path, format=fmt, quality=quality, overwrite_original=view.overwrite_confirmed)
            except OverwriteRefusedError:
                QGuiApplication.restoreOverrideCursor()
                try:
                    confirmed = self._confirm_overwrite(path)
                finally:
                    QGuiApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
                if not confirmed:
                    self.show_message(f"Not saved: '{path.name}' was left as it was.", "info")
                    return False
                view.overwrite_confirmed = True
                document.save(path, format=fmt, quality=quality, overwrite_original=True)
        except SrDeskError as exc:
            self.show_message(str(exc), "error")
            return False
        except (OSError, ValueError) as exc:
            self.show_message(f"cannot save '{path.name}': {exc}", "error")
            return False
        finally:
            QGuiApplication.restoreOverrideCursor()
        self._forget_recovery(document)
        self.statusBar().showMessage(f"Saved {path}", _INFO_TIMEOUT_MS)
        return True

    def _confirm_overwrite(self, path: Path) -> bool:
        box = QMessageBox(self)
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

    def _ask_save_changes(self, view: DocumentView) -> str:
        """"save", "discard" or "cancel" for a modified document about to close."""
        self.set_current_document_view(view)
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle("Unsaved Changes")
        box.setText(f"Save the changes to '{view.document.display_name}' before closing?")
        box.setInformativeText("Your changes will be lost if you don't save them.")
        box.setStandardButtons(
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel
        )
        box.setDefaultButton(QMessageBox.StandardButton.Save)
        box.setEscapeButton(QMessageBox.StandardButton.Cancel)
        answer = QMessageBox.StandardButton(box.exec())
        if answer == QMessageBox.StandardButton.Save:
            return "save"
        if answer == QMessageBox.StandardButton.Discard:
            return "discard"
        return "cancel"

    def _settle_unsaved(self, view: DocumentView) -> bool:
        """Ask about unsaved changes; True when the document may close."""
        if not view.document.modified:
            return True
        answer = self._ask_save_changes(view)
        if answer == "save":
            return self.save_document(view)
        return answer == "discard"

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

    def _remove_view(self, view: DocumentView) -> None:
        index = self.tabs.indexOf(view)
        document = view.document
        self._forget_recovery(document)
        self._closed_ids.add(document.recovery_id)
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
        self._shutting_down = True
        self.closing.emit()
        self.autosave_timer.stop()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        for view in list(self.document_views()):
            self._remove_view(view)
        self.settings.extra["window_geometry"] = base64.b64encode(bytes(self.saveGeometry().data())).decode("ascii")
        self._save_settings()
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

    # ------------------------------------------------------------------ #
    # Crash recovery
    # ------------------------------------------------------------------ #

    @staticmethod
    def _autosave_state(document: Document) -> tuple[int, int, int, int]:
        history = document.history
        return (history.index, len(history), id(document.image), id(document.selection))

    def autosave_now(self, blocking: bool = False) -> int:
        """Write recovery entries for modified documents that changed since the last write.

        Runs on a background thread unless ``blocking``; returns how many
        documents were (or are being) written.
        """
        if self._shutting_down:
            return 0
        count = 0
        for view in self.document_views():
            document = view.document
            rid = document.recovery_id
            if not document.modified:
                if rid in self._autosaved:
                    self._forget_recovery(document)
                continue
            state = self._autosave_state(document)
            if self._autosaved.get(rid) == state or rid in self._autosave_pending:
                continue
            self._autosaved[rid] = state
            count += 1
            if blocking:
                try:
                    write_recovery(document, self.recovery_dir)
                    error = None
                except OSError as exc:
                    error = exc
                self._on_autosave_done(document, error)
            else:
                if self._executor is None:
                    self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sr-desk-autosave")
                self._autosave_pending.add(rid)
                self._executor.submit(self._autosave_job, document)
        return count

    def _autosave_job(self, document: Document) -> None:
        try:
            write_recovery(document, self.recovery_dir)
            error: Exception | None = None
        except Exception as exc:  # noqa: BLE001 - reported on the GUI thread
            error = exc
        self._autosave_done.emit(document, error)

    def wait_for_autosave(self) -> None:
        """Block until background autosaves finish (tests, quitting)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def _on_autosave_done(self, document: Document, error: Exception | None) -> None:
        self._autosave_pending.discard(document.recovery_id)
        if error is not None:
            self._autosaved.pop(document.recovery_id, None)
            self.show_message(f"Autosave of '{document.display_name}' failed: {error}", "warning")
            return
        still_open = any(v.document is document for v in self.document_views())
        if not still_open or not document.modified:
            # Saved or closed while the entry was being written: it must not outlive that.
            self._forget_recovery(document)

    def _forget_recovery(self, document: Document) -> None:
        self._autosaved.pop(document.recovery_id, None)
        try:
            discard_document(document, self.recovery_dir)
        except OSError as exc:
            log.warning("cannot remove the recovery entry of %s: %s", document.display_name, exc)

    def check_recovery(self) -> list[DocumentView]:
        """Offer unsaved work from a previous session (once); returns the restored views."""
        if self._recovery_checked:
            return []
        self._recovery_checked = True
        open_ids = {v.document.recovery_id for v in self.document_views()}
        entries = [e for e in list_recoveries(self.recovery_dir) if e.id not in open_ids]
        if not entries:
            return []
        answer = self._recovery_prompt(entries)
        restored: list[DocumentView] = []
        if answer == "restore":
            for entry in entries:
                try:
                    document = load_recovery(
                        entry,
                        history_limit_bytes=max(0, int(self.settings.undo_memory_mb)) * _MIB,
                        spill_dir=app_paths().cache_dir / "undo",
                    )
                except SrDeskError as exc:
                    self.show_message(f"Could not restore '{entry.name}': {exc}", "error")
                    continue
                restored.append(self.add_document(document))
            if restored:
                self.show_message(
                    f"Restored {len(restored)} unsaved image{'s' if len(restored) != 1 else ''}. Save to keep them.",
                    "info",
                )
        elif answer == "discard":
            for entry in entries:
                try:
                    discard_recovery(entry)
                except OSError as exc:
                    log.warning("cannot discard recovery entry %s: %s", entry.id, exc)
        return restored

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
        if view is not self._current:
            return
        if view is None:
            for label in (self.size_label, self.selection_label, self.zoom_label, self.cursor_label):
                label.clear()
            self.selection_label.hide()
            self._selection_separator.hide()
            return
        w, h = view.document.image.size
        self.size_label.setText(f"{w} \u00d7 {h} px")
        bbox = view.document.selection.bbox
        self.selection_label.setText(f"Selection {bbox[2]} \u00d7 {bbox[3]}" if bbox else "")
        self.selection_label.setVisible(bbox is not None)
        self._selection_separator.setVisible(bbox is not None)
        zoom = view.canvas.zoom * 100
        self.zoom_label.setText(f"{zoom:.0f}%" if zoom >= 10 else f"{zoom:.1f}%")

    def _on_cursor(self, view: DocumentView, x: int | None, y: int | None) -> None:
        if view is not self._current:
            return
        size = view.document.image.size
        if x is None or y is None or not (0 <= x < size[0] and 0 <= y < size[1]):
            self.cursor_label.setText("")
            return
        self.cursor_label.setText(f"x {x}, y {y}")
