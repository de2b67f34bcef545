"""The History dock: every step of the current document, and a click to go back to it."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtGui import QBrush, QFont, QPalette
from PySide6.QtWidgets import QAbstractItemView, QDockWidget, QListWidget, QListWidgetItem, QWidget

from sr_desk.core.document import Document

__all__ = ["HistoryPanel"]

OPEN_LABEL = "Open"


class HistoryPanel(QDockWidget):
    """Lists ``document.history.labels`` under a first "Open" row (the state before any step).

    Row ``i`` is the state after ``i`` steps; the current one is selected and
    steps that were undone (the redo tail) are greyed. Clicking a row undoes
    or redoes to it.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("History", parent)
        self.setObjectName("history_dock")
        self.list = QListWidget(self)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setUniformItemSizes(True)
        self.list.itemClicked.connect(self._on_clicked)
        self.list.itemActivated.connect(self._on_clicked)
        self.setWidget(self.list)
        self._document: Document | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._updating = False

    @property
    def document(self) -> Document | None:
        return self._document

    def set_document(self, document: Document | None) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._document = document
        if document is not None:
            self._unsubscribe = document.subscribe(self._on_event)
        self.refresh()

    def _on_event(self, kind: str) -> None:
        if kind in ("history", "path"):
            self.refresh()

    def labels(self) -> list[str]:
        """The rows as shown (the first is the opened state)."""
        return [self.list.item(i).text() for i in range(self.list.count())]

    def current_row(self) -> int:
        return self.list.currentRow()

    def refresh(self) -> None:
        self._updating = True
        try:
            self.list.clear()
            document = self._document
            if document is None:
                return
            history = document.history
            labels = [OPEN_LABEL, *history.labels]
            undone = QBrush(self.palette().color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text))
            italic = QFont(self.list.font())
            italic.setItalic(True)
            for row, label in enumerate(labels):
                item = QListWidgetItem(label)
                if row > history.index:
                    item.setForeground(undone)
                    item.setFont(italic)
                self.list.addItem(item)
            current = self.list.item(history.index)
            if current is not None:
                self.list.setCurrentItem(current)
                self.list.scrollToItem(current)
        finally:
            self._updating = False

    def go_to(self, row: int) -> None:
        """Undo or redo until ``row`` steps are applied."""
        document = self._document
        if document is None or self._updating:
            return
        row = max(0, min(row, len(document.history.labels)))
        while document.history.index > row:
            if document.undo() is None:
                break
        while document.history.index < row:
            if document.redo() is None:
                break
        self.refresh()

    def _on_clicked(self, item: QListWidgetItem) -> None:
        self.go_to(self.list.row(item))
