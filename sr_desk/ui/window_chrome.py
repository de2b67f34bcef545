"""The main window's menus, toolbar and status-bar labels, built from its actions.

Only construction and display live here; which command an action runs,
and when it is enabled, is the window's business.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtCore import QSize
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFrame, QLabel, QMenu, QMenuBar, QStatusBar, QToolBar, QWidget

from sr_desk.ui.banner import named_icon
from sr_desk.ui.document_view import DocumentView
from sr_desk.ui.tools import Tool

__all__ = ["StatusLabels", "build_menus", "build_toolbar", "make_action", "make_tool_action"]


def make_action(
    parent: QWidget,
    name: str,
    text: str,
    slot: Callable[..., Any],
    shortcuts: Sequence[QKeySequence | str | QKeySequence.StandardKey] = (),
    icon: str | None = None,
    tip: str = "",
    checkable: bool = False,
) -> QAction:
    """An action named ``action_<name>``; a checkable one passes its state to ``slot``, others call it bare."""
    action = QAction(text, parent)
    action.setObjectName(f"action_{name}")
    if shortcuts:
        action.setShortcuts([QKeySequence(s) for s in shortcuts])
    if icon:
        action.setIcon(named_icon(icon))
    if tip:
        action.setStatusTip(tip)
        action.setToolTip(tip)
    action.setCheckable(checkable)
    if checkable:
        action.toggled.connect(slot)
    else:
        action.triggered.connect(lambda _checked=False: slot())
    return action


def make_tool_action(parent: QWidget, cls: type[Tool], choose: Callable[[str], None]) -> QAction:
    """The checkable action that makes ``cls`` the canvas tool, through ``choose(cls.name)``."""
    action = QAction(named_icon(cls.icon), cls.label, parent)
    action.setObjectName(f"action_tool_{cls.name}")
    action.setCheckable(True)
    action.setShortcut(QKeySequence(cls.shortcut))
    action.setToolTip(f"{cls.label} ({cls.shortcut})\n{cls.tip}")
    action.setStatusTip(cls.tip)
    action.setData(cls.name)
    action.triggered.connect(lambda _checked=False, name=cls.name: choose(name))
    return action


def build_menus(bar: QMenuBar, actions: dict[str, QAction], tool_actions: Sequence[QAction]) -> dict[str, QMenu]:
    """File, Edit, View and Tools; the result also holds the empty "recent" and "panels" submenus to fill."""
    file_menu = bar.addMenu("&File")
    file_menu.addAction(actions["open"])
    recent = file_menu.addMenu("Open &Recent")
    file_menu.addSeparator()
    file_menu.addAction(actions["save"])
    file_menu.addAction(actions["save_as"])
    file_menu.addSeparator()
    file_menu.addAction(actions["close"])
    file_menu.addAction(actions["quit"])

    edit = bar.addMenu("&Edit")
    edit.addAction(actions["undo"])
    edit.addAction(actions["redo"])
    edit.addSeparator()
    for name in ("select_all", "deselect", "invert", "feather"):
        edit.addAction(actions[name])

    view = bar.addMenu("&View")
    for name in ("zoom_in", "zoom_out", "fit", "actual_size"):
        view.addAction(actions[name])
    view.addSeparator()
    view.addAction(actions["pixel_grid"])
    view.addSeparator()
    panels = view.addMenu("&Panels")

    tools = bar.addMenu("&Tools")
    for action in tool_actions:
        tools.addAction(action)
    return {"file": file_menu, "recent": recent, "edit": edit, "view": view, "panels": panels, "tools": tools}


def build_toolbar(
    parent: QWidget, actions: dict[str, QAction], tool_actions: Sequence[QAction]
) -> tuple[QToolBar, QAction]:
    """The toolbar, and the separator after its tools, before which later tools go."""
    toolbar = QToolBar("Tools", parent)
    toolbar.setObjectName("tools_toolbar")
    toolbar.setIconSize(QSize(20, 20))
    toolbar.setMovable(False)
    for name in ("open", "save"):
        toolbar.addAction(actions[name])
    toolbar.addSeparator()
    for name in ("undo", "redo"):
        toolbar.addAction(actions[name])
    toolbar.addSeparator()
    for action in tool_actions:
        toolbar.addAction(action)
    tools_end = toolbar.addSeparator()
    for name in ("zoom_out", "zoom_in", "fit", "actual_size", "pixel_grid"):
        toolbar.addAction(actions[name])
    return toolbar, tools_end


class StatusLabels:
    """The permanent labels at the right of the status bar: cursor, selection, size, zoom, device."""

    def __init__(self, status: QStatusBar) -> None:
        self.cursor = QLabel(status)
        self.selection = QLabel(status)
        self.size = QLabel(status)
        self.zoom = QLabel(status)
        self.device = QLabel("Device: \u2014", status)
        self.cursor.setMinimumWidth(100)
        self.zoom.setMinimumWidth(48)
        self.size.setToolTip("Image size")
        self.zoom.setToolTip("Zoom (100% = one image pixel per screen pixel)")
        self.cursor.setToolTip("Pixel under the cursor")
        self.selection.setToolTip("Size of the selection's bounding box")
        for number, widget in enumerate((self.cursor, self.selection, self.size, self.zoom, self.device)):
            widget.setContentsMargins(6, 0, 6, 0)
            if number:
                line = QFrame(status)
                line.setFrameShape(QFrame.Shape.VLine)
                line.setFrameShadow(QFrame.Shadow.Sunken)
                status.addPermanentWidget(line)
                if widget is self.selection:
                    self._selection_separator = line
            status.addPermanentWidget(widget)

    def show_view(self, view: DocumentView | None) -> None:
        """Size, selection and zoom of ``view``'s document; all blank for None."""
        if view is None:
            for label in (self.size, self.selection, self.zoom, self.cursor):
                label.clear()
            self.selection.hide()
            self._selection_separator.hide()
            return
        w, h = view.document.image.size
        self.size.setText(f"{w} \u00d7 {h} px")
        bbox = view.document.selection.bbox
        self.selection.setText(f"Selection {bbox[2]} \u00d7 {bbox[3]}" if bbox else "")
        self.selection.setVisible(bbox is not None)
        self._selection_separator.setVisible(bbox is not None)
        zoom = view.canvas.zoom * 100
        self.zoom.setText(f"{zoom:.0f}%" if zoom >= 10 else f"{zoom:.1f}%")

    def show_cursor(self, view: DocumentView, x: int | None, y: int | None) -> None:
        """The image pixel under the cursor, blank when it is off the image."""
        size = view.document.image.size
        if x is None or y is None or not (0 <= x < size[0] and 0 <= y < size[1]):
            self.cursor.setText("")
            return
        self.cursor.setText(f"x {x}, y {y}")

    def set_device_text(self, text: str) -> None:
        self.device.setText(text)
        self.device.setToolTip(text)
