"""Selection tools driven by the canvas' mouse events, and the selection commands.

A drag with the rectangle, ellipse or lasso tool builds a new
:class:`~sr_desk.core.selection.Selection` and combines it with the current
one according to the modifiers held when the drag *started*, as in every
photo editor: none = replace, Shift = add, Alt = subtract, Shift+Alt =
intersect. A click without a drag deselects. The move tool drags the
selection outline, and its eight handles resize it.

Every change goes through ``document.set_selection(new, label)``, so it is
one undo step.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QCursor, QMouseEvent, QPainter, QPainterPath, QPen, QPolygonF, QTransform

from sr_desk.core.masks import resize_mask
from sr_desk.core.selection import CombineOp, Selection

if TYPE_CHECKING:
    from sr_desk.core.document import Document
    from sr_desk.ui.canvas import Canvas

__all__ = [
    "TOOL_CLASSES",
    "EllipseSelectTool",
    "LassoTool",
    "MoveSelectionTool",
    "RectSelectTool",
    "Tool",
    "combine_op",
    "deselect",
    "drag_cursor",
    "feather_selection",
    "invert_selection",
    "paint_frame_and_handles",
    "select_all",
]

CLICK_DISTANCE = 3.0  # screen px: a press and release closer than this is a click, not a drag
HANDLE_SIZE = 8.0  # screen px
_OP_LABELS = {"replace": "", "add": " (Add)", "subtract": " (Subtract)", "intersect": " (Intersect)"}


def combine_op(modifiers: Qt.KeyboardModifier) -> CombineOp:
    """The selection operation the held modifiers ask for."""
    shift = bool(modifiers & Qt.KeyboardModifier.ShiftModifier)
    alt = bool(modifiers & Qt.KeyboardModifier.AltModifier)
    if shift and alt:
        return "intersect"
    if shift:
        return "add"
    if alt:
        return "subtract"
    return "replace"


def commit_selection(document: Document, selection: Selection, label: str) -> bool:
    """``document.set_selection`` unless nothing would change; True if it did."""
    if selection == document.selection:
        return False
    document.set_selection(selection, label)
    return True


# --------------------------------------------------------------------------- #
# Selection commands (Edit menu)
# --------------------------------------------------------------------------- #


def select_all(document: Document) -> bool:
    return commit_selection(document, Selection.all(document.image.size), "Select All")


def deselect(document: Document) -> bool:
    return commit_selection(document, Selection.none(document.image.size), "Deselect")


def invert_selection(document: Document) -> bool:
    return commit_selection(document, document.selection.invert(), "Invert Selection")


def feather_selection(document: Document, radius: float) -> bool:
    if document.selection.is_empty or radius <= 0:
        return False
    return commit_selection(document, document.selection.feathered(radius), f"Feather Selection ({radius:g} px)")


# --------------------------------------------------------------------------- #
# Tools
# --------------------------------------------------------------------------- #


def _ants_pens() -> tuple[QPen, QPen]:
    under = QPen(QColor(0, 0, 0))
    under.setCosmetic(True)
    under.setWidth(1)
    over = QPen(QColor(255, 255, 255))
    over.setCosmetic(True)
    over.setWidth(1)
    over.setDashPattern([4, 4])
    return under, over


class Tool:
    """Base tool: does nothing. Subclasses override what they need."""

    name = "tool"
    label = "Tool"
    icon = "mdi6.cursor-default"
    shortcut = ""
    tip = ""

    def press(self, canvas: Canvas, event: QMouseEvent) -> None:
        pass

    def move(self, canvas: Canvas, event: QMouseEvent) -> None:
        pass

    def release(self, canvas: Canvas, event: QMouseEvent) -> None:
        pass

    def hover(self, canvas: Canvas, event: QMouseEvent) -> None:
        pass

    def cancel(self, canvas: Canvas) -> None:
        pass

    def paint(self, canvas: Canvas, painter: QPainter) -> None:
        pass

    def cursor(self, canvas: Canvas) -> QCursor:
        return QCursor(Qt.CursorShape.CrossCursor)


class _DragSelectTool(Tool):
    """Press, drag, release: a shape from the drag, combined with the selection."""

    def __init__(self) -> None:
        self._start: QPointF | None = None  # image coordinates
        self._end: QPointF | None = None
        self._start_screen: QPointF | None = None
        self._travel = 0.0  # farthest the pointer got from the press, in screen px
        self._op: CombineOp = "replace"

    @property
    def dragging(self) -> bool:
        return self._start is not None

    def press(self, canvas: Canvas, event: QMouseEvent) -> None:
        self._start = self._end = canvas.map_to_image(event.position())
        self._start_screen = event.position()
        self._travel = 0.0
        self._op = combine_op(event.modifiers())
        self._begin(self._start)
        canvas.update()

    def _track(self, event: QMouseEvent) -> None:
        if self._start_screen is not None:
            delta = event.position() - self._start_screen
            self._travel = max(self._travel, math.hypot(delta.x(), delta.y()))

    def move(self, canvas: Canvas, event: QMouseEvent) -> None:
        if self._start is None:
            return
        self._track(event)
        self._end = canvas.map_to_image(event.position())
        self._extend(self._end)
        canvas.update()

    def release(self, canvas: Canvas, event: QMouseEvent) -> None:
        if self._start is None or self._start_screen is None:
            return
        self._end = canvas.map_to_image(event.position())
        self._extend(self._end)
        self._track(event)
        is_click = self._travel < CLICK_DISTANCE
        document = canvas.document
        op = self._op
        shape = None if is_click or document is None else self._build(document.image.size)
        self.cancel(canvas)
        if document is None:
            return
        if shape is None:
            if is_click and op == "replace":
                deselect(document)
            return
        commit_selection(document, document.selection.combine(shape, op), self.label + _OP_LABELS[op])

    def cancel(self, canvas: Canvas) -> None:
        self._start = self._end = self._start_screen = None
        canvas.update()

    def paint(self, canvas: Canvas, painter: QPainter) -> None:
        if self._start is None or self._end is None:
            return
        path = canvas.image_transform().map(self._shape_path())
        under, over = _ants_pens()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(under)
        painter.drawPath(path)
        painter.setPen(over)
        painter.drawPath(path)

    def _begin(self, point: QPointF) -> None:
        pass

    def _extend(self, point: QPointF) -> None:
        pass

    def _box(self) -> tuple[int, int, int, int]:
        """The drag's rectangle snapped to the pixel grid, (x, y, w, h)."""
        assert self._start is not None and self._end is not None
        x0, x1 = sorted((self._start.x(), self._end.x()))
        y0, y1 = sorted((self._start.y(), self._end.y()))
        left, top, right, bottom = round(x0), round(y0), round(x1), round(y1)
        return left, top, right - left, bottom - top

    def _shape_path(self) -> QPainterPath:
        raise NotImplementedError

    def _build(self, size: tuple[int, int]) -> Selection | None:
        raise NotImplementedError


class _BoxSelectTool(_DragSelectTool):
    """A drag tool whose shape is drawn in the dragged box: subclasses say which shape."""

    def _shape_path(self) -> QPainterPath:
        path = QPainterPath()
        x, y, w, h = self._box()
        self._add_shape(path, QRectF(x, y, w, h))
        return path

    def _build(self, size: tuple[int, int]) -> Selection | None:
        x, y, w, h = self._box()
        if w < 1 or h < 1:
            return None
        return self._selection(size, (x, y, w, h))

    @staticmethod
    def _add_shape(path: QPainterPath, box: QRectF) -> None:
        raise NotImplementedError

    @staticmethod
    def _selection(size: tuple[int, int], box: tuple[int, int, int, int]) -> Selection:
        raise NotImplementedError


class RectSelectTool(_BoxSelectTool):
    name = "rect"
    label = "Rectangle Select"
    icon = "mdi6.selection-drag"
    shortcut = "M"
    tip = "Drag to select a rectangle. Shift adds, Alt subtracts, Shift+Alt intersects; a click deselects."

    @staticmethod
    def _add_shape(path: QPainterPath, box: QRectF) -> None:
        path.addRect(box)

    @staticmethod
    def _selection(size: tuple[int, int], box: tuple[int, int, int, int]) -> Selection:
        return Selection.rect(size, box)


class EllipseSelectTool(_BoxSelectTool):
    name = "ellipse"
    label = "Ellipse Select"
    icon = "mdi6.selection-ellipse"
    shortcut = "E"
    tip = "Drag to select an ellipse. Shift adds, Alt subtracts, Shift+Alt intersects."

    @staticmethod
    def _add_shape(path: QPainterPath, box: QRectF) -> None:
        path.addEllipse(box)

    @staticmethod
    def _selection(size: tuple[int, int], box: tuple[int, int, int, int]) -> Selection:
        return Selection.ellipse(size, box)


class LassoTool(_DragSelectTool):
    name = "lasso"
    label = "Lasso Select"
    icon = "mdi6.lasso"
    shortcut = "L"
    tip = "Drag around an area to select it freehand. Shift adds, Alt subtracts, Shift+Alt intersects."

    def __init__(self) -> None:
        super().__init__()
        self._points: list[tuple[float, float]] = []

    def _begin(self, point: QPointF) -> None:
        self._points = [(point.x(), point.y())]

    def _extend(self, point: QPointF) -> None:
        last = self._points[-1] if self._points else None
        if last is None or (point.x() - last[0]) ** 2 + (point.y() - last[1]) ** 2 >= 0.25:
            self._points.append((point.x(), point.y()))

    def cancel(self, canvas: Canvas) -> None:
        self._points = []
        super().cancel(canvas)

    def _shape_path(self) -> QPainterPath:
        path = QPainterPath()
        if self._points:
            path.addPolygon(QPolygonF([QPointF(x, y) for x, y in self._points]))
        return path

    def _build(self, size: tuple[int, int]) -> Selection | None:
        if len(self._points) < 3:
            return None
        selection = Selection.polygon(size, self._points)
        return None if selection.is_empty else selection


# --------------------------------------------------------------------------- #
# Move / resize
# --------------------------------------------------------------------------- #

# Handle ids: which edges of the box a handle moves (left, top, right, bottom).
_HANDLES: dict[str, tuple[bool, bool, bool, bool]] = {
    "nw": (True, True, False, False),
    "n": (False, True, False, False),
    "ne": (False, True, True, False),
    "e": (False, False, True, False),
    "se": (False, False, True, True),
    "s": (False, False, False, True),
    "sw": (True, False, False, True),
    "w": (True, False, False, False),
}
_HANDLE_CURSORS = {
    "nw": Qt.CursorShape.SizeFDiagCursor,
    "se": Qt.CursorShape.SizeFDiagCursor,
    "ne": Qt.CursorShape.SizeBDiagCursor,
    "sw": Qt.CursorShape.SizeBDiagCursor,
    "n": Qt.CursorShape.SizeVerCursor,
    "s": Qt.CursorShape.SizeVerCursor,
    "e": Qt.CursorShape.SizeHorCursor,
    "w": Qt.CursorShape.SizeHorCursor,
}


@dataclass
class _Drag:
    kind: str  # "move" or a handle id
    start: QPointF  # image coordinates
    box: tuple[int, int, int, int]  # the selection's bbox when the drag started
    selection: Selection


def resize_selection(selection: Selection, box: tuple[int, int, int, int]) -> Selection:
    """``selection`` stretched so its bounding box becomes ``box`` (x, y, w, h).

    A plain rectangle stays an exact rectangle; any other shape has its mask
    scaled (bilinear).
    """
    old = selection.bbox
    if selection.mask is None or old is None:
        return selection
    x, y, w, h = box
    if w < 1 or h < 1:
        return Selection.none(selection.size)
    ox, oy, ow, oh = old
    crop = selection.mask[oy : oy + oh, ox : ox + ow]
    if float(crop.min()) >= 1.0:
        return Selection.rect(selection.size, box)
    scaled = resize_mask(np.ascontiguousarray(crop), (w, h))
    width, height = selection.size
    mask = np.zeros((height, width), dtype=np.float32)
    x0, y0, x1, y1 = max(0, x), max(0, y), min(width, x + w), min(height, y + h)
    if x1 <= x0 or y1 <= y0:
        return Selection.none(selection.size)
    mask[y0:y1, x0:x1] = scaled[y0 - y : y1 - y, x0 - x : x1 - x]
    return Selection.from_mask(selection.size, mask)


class MoveSelectionTool(Tool):
    name = "move"
    label = "Move Selection"
    icon = "mdi6.cursor-move"
    shortcut = "V"
    tip = "Drag inside the selection to move it; drag its handles to resize it."

    def __init__(self) -> None:
        self._drag: _Drag | None = None
        self._hover: str | None = None
        self._current: QPointF | None = None

    # geometry ------------------------------------------------------------

    @staticmethod
    def _bbox(canvas: Canvas) -> tuple[int, int, int, int] | None:
        document = canvas.document
        if document is None or document.selection.is_empty:
            return None
        return document.selection.bbox

    @staticmethod
    def handle_positions(canvas: Canvas, box: tuple[int, int, int, int]) -> dict[str, QPointF]:
        """Centres of the eight handles of ``box`` in widget coordinates."""
        x, y, w, h = box
        tl = canvas.map_from_image(QPointF(x, y))
        br = canvas.map_from_image(QPointF(x + w, y + h))
        cx, cy = (tl.x() + br.x()) / 2, (tl.y() + br.y()) / 2
        return {
            "nw": QPointF(tl.x(), tl.y()),
            "n": QPointF(cx, tl.y()),
            "ne": QPointF(br.x(), tl.y()),
            "e": QPointF(br.x(), cy),
            "se": QPointF(br.x(), br.y()),
            "s": QPointF(cx, br.y()),
            "sw": QPointF(tl.x(), br.y()),
            "w": QPointF(tl.x(), cy),
        }

    def _hit(self, canvas: Canvas, pos: QPointF) -> str | None:
        box = self._bbox(canvas)
        if box is None:
            return None
        for name, centre in self.handle_positions(canvas, box).items():
            if abs(pos.x() - centre.x()) <= HANDLE_SIZE and abs(pos.y() - centre.y()) <= HANDLE_SIZE:
                return name
        point = canvas.map_to_image(pos)
        x, y, w, h = box
        if x <= point.x() < x + w and y <= point.y() < y + h:
            return "move"
        return None

    def _new_box(self, drag: _Drag, point: QPointF) -> tuple[int, int, int, int]:
        x, y, w, h = drag.box
        dx = round(point.x() - drag.start.x())
        dy = round(point.y() - drag.start.y())
        if drag.kind == "move":
            return x + dx, y + dy, w, h
        left, top, right, bottom = x, y, x + w, y + h
        moves_left, moves_top, moves_right, moves_bottom = _HANDLES[drag.kind]
        if moves_left:
            left = min(left + dx, right - 1)
        if moves_right:
            right = max(right + dx, left + 1)
        if moves_top:
            top = min(top + dy, bottom - 1)
        if moves_bottom:
            bottom = max(bottom + dy, top + 1)
        return left, top, right - left, bottom - top

    @staticmethod
    def _box_transform(old: tuple[int, int, int, int], new: tuple[int, int, int, int]) -> QTransform:
        ox, oy, ow, oh = old
        nx, ny, nw, nh = new
        sx, sy = nw / ow, nh / oh
        return QTransform(sx, 0, 0, sy, nx - ox * sx, ny - oy * sy)

    # events --------------------------------------------------------------

    def press(self, canvas: Canvas, event: QMouseEvent) -> None:
        hit = self._hit(canvas, event.position())
        document = canvas.document
        box = self._bbox(canvas)
        if hit is None or document is None or box is None:
            self._drag = None
            return
        self._drag = _Drag(hit, canvas.map_to_image(event.position()), box, document.selection)
        self._current = self._drag.start

    def move(self, canvas: Canvas, event: QMouseEvent) -> None:
        if self._drag is None:
            return
        self._current = canvas.map_to_image(event.position())
        new = self._new_box(self._drag, self._current)
        canvas.set_outline_transform(self._box_transform(self._drag.box, new))

    def release(self, canvas: Canvas, event: QMouseEvent) -> None:
        drag = self._drag
        self.cancel(canvas)
        document = canvas.document
        if drag is None or document is None or document.selection is not drag.selection:
            return
        new = self._new_box(drag, canvas.map_to_image(event.position()))
        if new == drag.box:
            return
        if drag.kind == "move":
            moved = drag.selection.translated(new[0] - drag.box[0], new[1] - drag.box[1])
            commit_selection(document, moved, "Move Selection")
        else:
            commit_selection(document, resize_selection(drag.selection, new), "Resize Selection")

    def cancel(self, canvas: Canvas) -> None:
        self._drag = None
        self._current = None
        canvas.set_outline_transform(None)

    def hover(self, canvas: Canvas, event: QMouseEvent) -> None:
        hit = self._hit(canvas, event.position())
        if hit != self._hover:
            self._hover = hit

    def cursor(self, canvas: Canvas) -> QCursor:
        return drag_cursor(self._drag.kind if self._drag is not None else self._hover, _HANDLE_CURSORS)

    def paint(self, canvas: Canvas, painter: QPainter) -> None:
        box = self._bbox(canvas)
        if box is None:
            return
        if self._drag is not None and self._current is not None:
            box = self._new_box(self._drag, self._current)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        x, y, w, h = box
        on_screen = canvas.image_transform().mapRect(QRectF(x, y, w, h))
        paint_frame_and_handles(painter, on_screen, self.handle_positions(canvas, box).values(), Qt.PenStyle.DotLine)


def drag_cursor(kind: str | None, handle_cursors: dict[str, Qt.CursorShape]) -> QCursor:
    """The cursor over (or dragging) ``kind``: "move", a handle of ``handle_cursors``, or nothing."""
    if kind == "move":
        return QCursor(Qt.CursorShape.SizeAllCursor)
    if kind in handle_cursors:
        return QCursor(handle_cursors[kind])
    return QCursor(Qt.CursorShape.ArrowCursor)


def paint_frame_and_handles(
    painter: QPainter, frame: QRectF, handles: Iterable[QPointF], style: Qt.PenStyle = Qt.PenStyle.DotLine
) -> None:
    """A light broken frame (widget coordinates) and square handles centred on ``handles``: reads on any image."""
    pen = QPen(QColor(255, 255, 255, 180))
    pen.setCosmetic(True)
    pen.setStyle(style)
    painter.setPen(pen)
    painter.setBrush(Qt.BrushStyle.NoBrush)
    painter.drawRect(frame)
    outline = QPen(QColor(30, 30, 30))
    outline.setCosmetic(True)
    painter.setPen(outline)
    painter.setBrush(QColor(255, 255, 255))
    half = HANDLE_SIZE / 2
    for centre in handles:
        painter.drawRect(QRectF(centre.x() - half, centre.y() - half, HANDLE_SIZE, HANDLE_SIZE))


#: Tool classes in toolbar order.
TOOL_CLASSES: tuple[type[Tool], ...] = (RectSelectTool, EllipseSelectTool, LassoTool, MoveSelectionTool)
