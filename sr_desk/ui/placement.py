"""Placing a second image over the document: drag to move it, drag a corner to scale it.

A method that declares ``ImageParam(placeable=True)`` (SRDiff content
fusion's donor) gets this for free: once an image is chosen in its panel,
the editor lays it over the canvas, half transparent, covering the
selection; the "Place Image" tool moves and scales it, and the box travels to
the method as ``ImageInput.placement``.

:class:`ImagePlacement` is the one shared state (the image and its box in
document pixels); every document's :class:`PlaceImageTool` draws and edits
it, so the placement follows the user across tabs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QCursor, QImage, QMouseEvent, QPainter

from sr_desk.ui.tools import HANDLE_SIZE, Tool, drag_cursor, paint_frame_and_handles

if TYPE_CHECKING:
    from sr_desk.ui.canvas import Canvas

__all__ = ["MIN_PLACEMENT_SIDE", "OVERLAY_OPACITY", "ImagePlacement", "PlaceImageTool"]

OVERLAY_OPACITY = 0.6  # enough to see the image, and the face under it to line it up with
MIN_PLACEMENT_SIDE = 4.0  # document pixels: a smaller image could not be grabbed again

_CORNERS = ("nw", "ne", "se", "sw")
_CORNER_CURSORS = {
    "nw": Qt.CursorShape.SizeFDiagCursor,
    "se": Qt.CursorShape.SizeFDiagCursor,
    "ne": Qt.CursorShape.SizeBDiagCursor,
    "sw": Qt.CursorShape.SizeBDiagCursor,
}


class ImagePlacement(QObject):
    """An image laid over the document and its box ``(x, y, width, height)`` in document pixels.

    ``changed`` fires on every change (image, box or clearing), so canvases
    repaint; ``moved`` only when the user moved or scaled the image.
    """

    changed = Signal()
    moved = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._image: QImage | None = None
        self._box: QRectF | None = None
        self.param_name = ""

    @property
    def image(self) -> QImage | None:
        return self._image

    @property
    def box(self) -> QRectF | None:
        return QRectF(self._box) if self._box is not None else None

    @property
    def active(self) -> bool:
        return self._image is not None and self._box is not None

    def show(self, param_name: str, image: QImage, box: QRectF) -> None:
        """Lay ``image`` over the document at ``box`` for the parameter ``param_name``."""
        self.param_name = param_name
        self._image = image
        self._box = QRectF(box)
        self.changed.emit()

    def set_box(self, box: QRectF) -> None:
        """The user moved or scaled the image to ``box``."""
        if self._image is None or (self._box is not None and box == self._box):
            return
        self._box = QRectF(box)
        self.changed.emit()
        self.moved.emit()

    def clear(self) -> None:
        if self._image is None and self._box is None:
            return
        self._image, self._box, self.param_name = None, None, ""
        self.changed.emit()

    def as_tuple(self) -> tuple[float, float, float, float] | None:
        """The box as ``ImageInput.placement`` wants it."""
        box = self._box
        return None if box is None else (box.x(), box.y(), box.width(), box.height())


@dataclass
class _Drag:
    kind: str  # "move" or a corner
    start: QPointF  # document coordinates
    box: QRectF  # the box when the drag started


def scaled_from_corner(box: QRectF, corner: str, point: QPointF) -> QRectF:
    """``box`` scaled, aspect kept, so that ``corner`` follows ``point`` while the opposite corner stays put."""
    anchor = {
        "nw": box.bottomRight(),
        "ne": box.bottomLeft(),
        "se": box.topLeft(),
        "sw": box.topRight(),
    }[corner]
    # The larger of the two proportional changes wins, as in every editor's corner drag.
    factor = max(abs(point.x() - anchor.x()) / box.width(), abs(point.y() - anchor.y()) / box.height())
    factor = max(factor, MIN_PLACEMENT_SIDE / min(box.width(), box.height()))
    width, height = box.width() * factor, box.height() * factor
    left = anchor.x() - width if corner in ("nw", "sw") else anchor.x()
    top = anchor.y() - height if corner in ("nw", "ne") else anchor.y()
    return QRectF(left, top, width, height)


class PlaceImageTool(Tool):
    """Moves and scales the shared :class:`ImagePlacement`; does nothing while none is shown."""

    name = "place"
    label = "Place Image"
    icon = "mdi6.image-move"
    shortcut = "P"
    tip = "Drag the placed image to move it; drag a corner to scale it (aspect kept). Esc cancels a drag."

    def __init__(self, placement: ImagePlacement) -> None:
        self.placement = placement
        self._drag: _Drag | None = None
        self._current: QRectF | None = None
        self._hover: str | None = None

    def _shown_box(self) -> QRectF | None:
        return self._current if self._current is not None else self.placement.box

    def _corners(self, canvas: Canvas, box: QRectF) -> dict[str, QPointF]:
        points = {"nw": box.topLeft(), "ne": box.topRight(), "se": box.bottomRight(), "sw": box.bottomLeft()}
        return {name: canvas.map_from_image(point) for name, point in points.items()}

    def _hit(self, canvas: Canvas, pos: QPointF) -> str | None:
        box = self.placement.box
        if box is None:
            return None
        for name, centre in self._corners(canvas, box).items():
            if abs(pos.x() - centre.x()) <= HANDLE_SIZE and abs(pos.y() - centre.y()) <= HANDLE_SIZE:
                return name
        return "move" if box.contains(canvas.map_to_image(pos)) else None

    def _dragged(self, drag: _Drag, point: QPointF) -> QRectF:
        if drag.kind == "move":
            return drag.box.translated(point - drag.start)
        return scaled_from_corner(drag.box, drag.kind, point)

    def press(self, canvas: Canvas, event: QMouseEvent) -> None:
        hit = self._hit(canvas, event.position())
        box = self.placement.box
        if hit is None or box is None:
            self._drag = None
            return
        self._drag = _Drag(hit, canvas.map_to_image(event.position()), box)

    def move(self, canvas: Canvas, event: QMouseEvent) -> None:
        if self._drag is None:
            return
        self._current = self._dragged(self._drag, canvas.map_to_image(event.position()))
        canvas.update()

    def release(self, canvas: Canvas, event: QMouseEvent) -> None:
        drag = self._drag
        self.cancel(canvas)
        if drag is not None:
            self.placement.set_box(self._dragged(drag, canvas.map_to_image(event.position())))

    def cancel(self, canvas: Canvas) -> None:
        self._drag = None
        self._current = None
        canvas.update()

    def hover(self, canvas: Canvas, event: QMouseEvent) -> None:
        self._hover = self._hit(canvas, event.position())

    def cursor(self, canvas: Canvas) -> QCursor:
        return drag_cursor(self._drag.kind if self._drag is not None else self._hover, _CORNER_CURSORS)

    def paint(self, canvas: Canvas, painter: QPainter) -> None:
        image, box = self.placement.image, self._shown_box()
        if image is None or box is None:
            return
        if not canvas.has_preview:  # a running method's preview must not hide under the donor
            painter.save()
            painter.setTransform(canvas.image_transform())
            painter.setOpacity(OVERLAY_OPACITY)
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            painter.drawImage(box, image, QRectF(image.rect()))
            painter.restore()
        on_screen = canvas.image_transform().mapRect(box)
        paint_frame_and_handles(painter, on_screen, self._corners(canvas, box).values(), Qt.PenStyle.DashLine)
