"""The one-line message strip that tells the user something without a modal dialog.

The main window floats it over the canvas; the plugins dialog puts it in its layout.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import qtawesome as qta
from PySide6.QtCore import QEvent, QObject, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QWidget

__all__ = ["INFO_TIMEOUT_MS", "MessageBanner", "named_icon"]

log = logging.getLogger(__name__)

INFO_TIMEOUT_MS = 8000  # how long an "info" message stays up, in the banner and the status bar
_LEVEL_COLOURS = {
    "info": ("#1f3a5a", "#d6e9ff", "mdi6.information-outline"),
    "warning": ("#5a4a1f", "#fff1c9", "mdi6.alert-outline"),
    "error": ("#5a1f24", "#ffd9dc", "mdi6.alert-circle-outline"),
}


def named_icon(name: str) -> QIcon:
    """A qtawesome icon, or an empty one if the font lacks the name (never fail over an icon)."""
    try:
        return qta.icon(name)
    except Exception:  # noqa: BLE001 - qtawesome raises several types for unknown names
        log.debug("no icon %s", name)
        return QIcon()


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
        self.close_button.setIcon(named_icon("mdi6.close"))
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
        self._top: Callable[[], int] = lambda: 0
        self.hide()

    def show_message(self, text: str, level: str = "info") -> None:
        """Show ``text``; "info" hides by itself, "warning" and "error" stay until dismissed."""
        level = level if level in _LEVEL_COLOURS else "info"
        background, foreground, icon = _LEVEL_COLOURS[level]
        self.level = level
        self.setStyleSheet(
            f"#message_banner {{ background: {background}; border-radius: 4px; }}"
            f"#message_banner QLabel {{ color: {foreground}; }}"
        )
        self.icon.setPixmap(named_icon(icon).pixmap(QSize(16, 16)))
        self.label.setText(text)
        self.show()
        self.shown.emit()
        if level == "info":
            self._timer.start(INFO_TIMEOUT_MS)
        else:
            self._timer.stop()  # warnings and errors stay until dismissed

    def text(self) -> str:
        """The message on show, or "" when none is."""
        return self.label.text() if self.isVisibleTo(self.parentWidget()) else ""

    def dismiss(self) -> None:
        self._timer.stop()
        was_shown = not self.isHidden()
        self.hide()
        if was_shown:
            self.dismissed.emit(self.label.text())

    # floating over a widget ---------------------------------------------

    def float_over(self, widget: QWidget, top: Callable[[], int]) -> None:
        """Lie over the top of ``widget``, ``top()`` pixels down, instead of taking a layout row.

        A message must not make the image below it jump, so the banner is
        not in the layout: it follows ``widget``'s size and is placed again
        whenever it is shown.
        """
        self.setParent(widget)
        self._top = top
        widget.installEventFilter(self)
        self.shown.connect(self.place)

    def place(self) -> None:
        """Put the floating banner at the top of its widget, as wide as the widget allows."""
        widget = self.parentWidget()
        if widget is None:
            return
        margin = 8
        width = max(100, widget.width() - 2 * margin)
        height = self.heightForWidth(width) if self.hasHeightForWidth() else -1
        height = max(height, self.sizeHint().height())
        self.setGeometry(margin, self._top() + margin, width, height)
        self.raise_()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if watched is self.parentWidget() and event.type() == QEvent.Type.Resize:
            self.place()
        return super().eventFilter(watched, event)
