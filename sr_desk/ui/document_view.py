"""One open document in the editor: its canvas, its tools, and what the tab shows."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget

from sr_desk.core.document import Document
from sr_desk.ui.canvas import Canvas
from sr_desk.ui.tools import TOOL_CLASSES, Tool

__all__ = ["MODIFIED_MARK", "DocumentView"]

MODIFIED_MARK = " \u2022"  # "name •" in tabs and the window title


class DocumentView(QWidget):
    """A :class:`Document` on a :class:`Canvas`, kept in step with it.

    The view subscribes to the document and repaints on "image" and
    "selection" changes. Document notifications are re-emitted through a
    Qt signal, so a change made off the GUI thread still reaches the widgets
    on the GUI thread.

    Signals
    -------
    title_changed(str)
        The tab title (file name, plus ``•`` when modified) changed.
    document_changed(str)
        Any document notification ("image", "selection", "history", "path").
    """

    title_changed = Signal(str)
    document_changed = Signal(str)
    _relay = Signal(str)

    def __init__(self, document: Document, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._document = document
        self.canvas = Canvas(self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)

        self.tools: dict[str, Tool] = {cls.name: cls() for cls in TOOL_CLASSES}
        self._tool_name = ""
        self.set_tool(TOOL_CLASSES[0].name)

        #: What the user chose for this document: JPEG/WebP quality, and
        #: whether saving over the original file was confirmed once.
        self.save_quality = 95
        self.overwrite_confirmed = False
        self._title = ""

        self.canvas.set_document(document)
        self._relay.connect(self._on_document_event)
        self._unsubscribe = document.subscribe(self._relay.emit)
        self._update_title()

    # ------------------------------------------------------------------ #

    @property
    def document(self) -> Document:
        return self._document

    @property
    def tool_name(self) -> str:
        return self._tool_name

    @property
    def tool(self) -> Tool:
        return self.tools[self._tool_name]

    def add_tool(self, name: str, tool: Tool) -> None:
        """Offer ``tool`` under ``name`` besides the selection tools (see ``MainWindow.add_tool``)."""
        self.tools[name] = tool

    def set_tool(self, name: str) -> None:
        if name not in self.tools:
            raise ValueError(f"unknown tool {name!r} (known: {', '.join(self.tools)})")
        self._tool_name = name
        self.canvas.set_tool(self.tools[name])

    def title(self) -> str:
        """The document's name, with ``•`` while it has unsaved changes."""
        return self._document.display_name + (MODIFIED_MARK if self._document.modified else "")

    def close_document(self) -> None:
        """Stop listening and release the document's history (and its spill files)."""
        self._unsubscribe()
        self.canvas.set_tool(None)
        self._document.close()

    # ------------------------------------------------------------------ #

    def _on_document_event(self, kind: str) -> None:
        if kind == "image":
            self.canvas.clear_preview()
            self.canvas.refresh_image()
        elif kind == "selection":
            self.canvas.refresh_selection()
        self._update_title()
        self.document_changed.emit(kind)

    def _update_title(self) -> None:
        title = self.title()
        if title != self._title:
            self._title = title
            self.title_changed.emit(title)
