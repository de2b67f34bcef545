"""Non-blocking messages over the top or bottom edge of a widget.

The editor shows problems here rather than in modal dialogs: a failed job,
an image that does not load, a plugin that broke. Info messages fade away
by themselves, warnings after a while, errors stay until closed. The same
message twice in a row is shown once with a count.
"""

from __future__ import annotations

import qtawesome as qta
from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget

__all__ = ["LEVELS", "Notice", "NotificationBar"]

#: level -> (icon, background, border, auto-hide in ms or None)
LEVELS: dict[str, tuple[str, str, str, int | None]] = {
    "info": ("mdi6.information-outline", "#e8f1fb", "#5b9bd5", 6000),
    "warning": ("mdi6.alert-outline", "#fff4e0", "#e0a030", 12000),
    "error": ("mdi6.alert-circle-outline", "#fde8e8", "#d9534f", None),
}
MAX_NOTICES = 5


class Notice(QFrame):
    """One message: icon, text, close button."""

    closed = Signal(object)

    def __init__(self, text: str, level: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        icon, background, border, timeout = LEVELS[level]
        self.level = level
        self.text = text
        self.count = 1
        self.setObjectName("notice")
        self.setStyleSheet(
            f"QFrame#notice {{ background: {background}; border: 1px solid {border}; border-radius: 4px; }}"
            " QLabel { color: #202020; background: transparent; border: none; }"
        )
        row = QHBoxLayout(self)
        row.setContentsMargins(8, 4, 4, 4)
        self.icon_label = QLabel(self)
        self.icon_label.setPixmap(qta.icon(icon, color=border).pixmap(18, 18))
        self.text_label = QLabel(text, self)
        self.text_label.setWordWrap(True)
        self.text_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.close_button = QToolButton(self)
        self.close_button.setIcon(qta.icon("mdi6.close", color="#404040"))
        self.close_button.setAutoRaise(True)
        self.close_button.setToolTip("Dismiss")
        row.addWidget(self.icon_label, 0, Qt.AlignmentFlag.AlignTop)
        row.addWidget(self.text_label, 1)
        row.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignTop)
        self.close_button.clicked.connect(self.dismiss)
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.timeout.connect(self.dismiss)
        self.timeout = timeout

    def start_timer(self, scale: float = 1.0) -> None:
        if self.timeout is not None:
            self.timer.start(max(1, int(self.timeout * scale)))

    def repeat(self) -> None:
        self.count += 1
        self.text_label.setText(f"{self.text} (×{self.count})")

    def dismiss(self) -> None:
        self.timer.stop()
        self.closed.emit(self)


class NotificationBar(QWidget):
    """A stack of notices floating over ``parent``'s top or bottom edge.

    ``notify(text, level)`` with level "info", "warning" or "error".
    ``timeout_scale`` shortens or lengthens every auto-hide delay (tests).
    """

    notified = Signal(str, str)

    def __init__(self, parent: QWidget, position: str = "bottom", *, timeout_scale: float = 1.0) -> None:
        super().__init__(parent)
        if position not in ("top", "bottom"):
            raise ValueError(f"position must be 'top' or 'bottom' (got {position!r})")
        self.position = position
        self.timeout_scale = timeout_scale
        self._notices: list[Notice] = []
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(8, 8, 8, 8)
        self._layout.setSpacing(4)
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, False)
        parent.installEventFilter(self)
        self.hide()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.parent() and event.type() in (QEvent.Type.Resize, QEvent.Type.Show):
            self._place()
        return False

    def notify(self, text: str, level: str = "info") -> Notice:
        """Show ``text``; returns the notice (a repeat of the newest one bumps its count)."""
        if level not in LEVELS:
            level = "info"
        text = " ".join(str(text).split())
        self.notified.emit(text, level)
        if self._notices and self._notices[-1].text == text and self._notices[-1].level == level:
            notice = self._notices[-1]
            notice.repeat()
            notice.start_timer(self.timeout_scale)
            self._place()
            return notice
        notice = Notice(text, level, self)
        notice.closed.connect(self._remove)
        self._notices.append(notice)
        self._layout.addWidget(notice)
        notice.show()  # now, not when the event loop gets to it: the bar's height counts it
        while len(self._notices) > MAX_NOTICES:
            self._remove(self._notices[0])
        notice.start_timer(self.timeout_scale)
        self._place()
        self.show()
        self.raise_()
        return notice

    def info(self, text: str) -> Notice:
        return self.notify(text, "info")

    def warning(self, text: str) -> Notice:
        return self.notify(text, "warning")

    def error(self, text: str) -> Notice:
        return self.notify(text, "error")

    def notices(self) -> list[Notice]:
        return list(self._notices)

    def messages(self) -> list[tuple[str, str]]:
        """``(text, level)`` of every notice shown now, oldest first."""
        return [(n.text, n.level) for n in self._notices]

    def clear(self) -> None:
        for notice in list(self._notices):
            self._remove(notice)

    def _remove(self, notice: Notice) -> None:
        if notice not in self._notices:
            return
        self._notices.remove(notice)
        self._layout.removeWidget(notice)
        notice.hide()
        notice.deleteLater()
        if not self._notices:
            self.hide()
        else:
            self._place()

    def _place(self) -> None:
        parent = self.parentWidget()
        if parent is None:
            return
        width = min(parent.width(), max(320, parent.width() * 2 // 3))
        layout = self._layout
        layout.invalidate()  # notices came or went while the bar may be hidden: no cached heights
        if not self._notices:
            height = 0
        elif layout.hasHeightForWidth():  # word-wrapped text: as tall as the width needs
            height = layout.totalHeightForWidth(width)
        else:
            height = layout.totalSizeHint().height()
        x = (parent.width() - width) // 2
        y = 0 if self.position == "top" else max(0, parent.height() - height)
        self.setGeometry(x, y, width, height)
        self.raise_()
