"""The image canvas: zoom, pan, checkerboard, pixel grid, marching ants, previews.

One ``QWidget`` with its own ``paintEvent``. The view is an affine map:
image pixel ``(x, y)`` is drawn at widget position ``offset + (x, y) * scale``
where ``scale = zoom / devicePixelRatio``, so 100% means one image pixel per
*screen* pixel, also on high-DPI screens.

Painting never converts pixels: the document's image is turned into a
``QImage`` once per change (and into half-size copies, lazily, for smooth
drawing when zoomed out), a preview once per preview, and the selection's
outline into a ``QPainterPath`` once per selection change.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt
from PySide6.QtCore import QEvent, QPoint, QPointF, QRect, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QCursor,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QNativeGestureEvent,
    QPainter,
    QPainterPath,
    QPaintEvent,
    QPen,
    QPixmap,
    QPolygonF,
    QResizeEvent,
    QTransform,
    QWheelEvent,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from sr_desk.core.imageio import ImageData
from sr_desk.core.masks import MAX_OUTLINE_SEGMENTS, outline_polygons
from sr_desk.core.selection import Selection
from sr_desk.ui.qimage import rgb_to_qimage

if TYPE_CHECKING:
    from sr_desk.core.document import Document

__all__ = ["MAX_ZOOM", "MIN_ZOOM", "ZOOM_STEPS", "Canvas", "CanvasTool", "mask_outline"]

MIN_ZOOM = 1 / 32
MAX_ZOOM = 64.0
#: The stops ``zoom_in``/``zoom_out`` go through (the wheel zooms smoothly in between).
ZOOM_STEPS: tuple[float, ...] = (
    1 / 32, 1 / 24, 1 / 16, 1 / 12, 1 / 8, 1 / 6, 1 / 4, 1 / 3, 1 / 2, 2 / 3,
    1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 48.0, 64.0,
)  # fmt: skip
NEAREST_FROM_ZOOM = 2.0  # at and above this, pixels are drawn as crisp squares
GRID_FROM_ZOOM = 8.0
_WHEEL_NOTCH = 120
_ZOOM_PER_NOTCH = 2 ** (1 / 3)  # three notches double the zoom
_ANTS_INTERVAL_MS = 120
_ANTS_DASH = 4
_KEEP_VISIBLE = 48  # logical px of the image that panning always leaves on screen
_BACKGROUND = QColor(58, 58, 60)


class CanvasTool(Protocol):
    """What the canvas asks of a tool (see :mod:`sr_desk.ui.tools`)."""

    def press(self, canvas: Canvas, event: QMouseEvent) -> None: ...
    def move(self, canvas: Canvas, event: QMouseEvent) -> None: ...
    def release(self, canvas: Canvas, event: QMouseEvent) -> None: ...
    def hover(self, canvas: Canvas, event: QMouseEvent) -> None: ...
    def cancel(self, canvas: Canvas) -> None: ...
    def paint(self, canvas: Canvas, painter: QPainter) -> None: ...
    def cursor(self, canvas: Canvas) -> QCursor: ...


# --------------------------------------------------------------------------- #
# Selection outline
# --------------------------------------------------------------------------- #


def mask_outline(
    mask: npt.NDArray[np.floating[Any]] | None, threshold: float = 0.5, max_segments: int = MAX_OUTLINE_SEGMENTS
) -> QPainterPath:
    """The selection's outline (:func:`sr_desk.core.masks.outline_polygons`) as a path in image px."""
    path = QPainterPath()
    path.setFillRule(Qt.FillRule.OddEvenFill)
    for loop in outline_polygons(mask, threshold, max_segments):
        path.addPolygon(QPolygonF([QPointF(x, y) for x, y in loop]))
        path.closeSubpath()
    return path


def _checker_brush(cell: int = 8) -> QBrush:
    tile = QPixmap(2 * cell, 2 * cell)
    tile.fill(QColor(204, 204, 204))
    painter = QPainter(tile)
    painter.fillRect(0, 0, cell, cell, QColor(153, 153, 153))
    painter.fillRect(cell, cell, cell, cell, QColor(153, 153, 153))
    painter.end()
    return QBrush(tile)


# --------------------------------------------------------------------------- #
# The canvas
# --------------------------------------------------------------------------- #


class Canvas(QWidget):
    """Shows one image (usually a :class:`~sr_desk.core.document.Document`'s) and lets the user look around.

    Signals
    -------
    cursor_moved(x, y)
        The cursor's image pixel (integers; may lie outside the image).
    cursor_left()
        The cursor left the canvas.
    zoom_changed(zoom)
        1.0 is 100%.
    view_changed()
        Zoom or pan changed (for overlays and minimaps).
    """

    cursor_moved = Signal(int, int)
    cursor_left = Signal()
    zoom_changed = Signal(float)
    view_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setAttribute(Qt.WidgetAttribute.WA_AcceptTouchEvents, False)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

        self._document: Document | None = None
        self._image_size: tuple[int, int] | None = None
        self._levels: list[QImage] = []  # [full size, 1/2, 1/4, ...] built lazily
        self._has_alpha = False
        self._selection: Selection | None = None
        self._outline = QPainterPath()
        self._outline_transform: QTransform | None = None  # a tool's live move/resize of the outline
        self._preview: QImage | None = None
        self._preview_box: QRectF | None = None

        self._zoom = 1.0
        self._offset = QPointF(0.0, 0.0)
        self._auto_fit = True  # refit on resize until the user zooms or pans
        self._grid = True
        self._tool: CanvasTool | None = None
        self._checker = _checker_brush()

        self._space_down = False
        self._pan_from: QPointF | None = None
        self._pan_button: Qt.MouseButton | None = None
        self._tool_active = False

        self._ants_phase = 0
        self._ants_timer = QTimer(self)
        self._ants_timer.setInterval(_ANTS_INTERVAL_MS)
        self._ants_timer.timeout.connect(self._march)

    # ------------------------------------------------------------------ #
    # Content
    # ------------------------------------------------------------------ #

    @property
    def document(self) -> Document | None:
        return self._document

    def set_document(self, document: Document | None) -> None:
        """Show ``document``; call :meth:`refresh_image` / :meth:`refresh_selection` when it changes."""
        self._document = document
        self.clear_preview()
        self.set_image(document.image if document is not None else None)
        self.set_selection(document.selection if document is not None else None)

    def refresh_image(self) -> None:
        if self._document is not None:
            self.set_image(self._document.image)
            # A resized image resizes its selection: keep the ants in step.
            self.set_selection(self._document.selection)

    def refresh_selection(self) -> None:
        if self._document is not None:
            self.set_selection(self._document.selection)

    def set_image(self, image: ImageData | None) -> None:
        """Show ``image`` (converted to a QImage once, here)."""
        old_size = self._image_size
        if image is None:
            self._levels = []
            self._image_size = None
            self._has_alpha = False
            self.update()
            return
        self._levels = [rgb_to_qimage(image.rgb, image.alpha)]
        self._has_alpha = image.alpha is not None
        self._image_size = image.size
        if old_size is None or self._auto_fit:
            self._auto_fit = True
            self._fit_now()
        elif old_size != image.size:
            # Same content at a new resolution (an upscale): keep what is on screen where it is.
            factor = old_size[0] / image.size[0]
            self._set_view(self._zoom * factor, self._offset)
        self.update()

    @property
    def image_size(self) -> tuple[int, int] | None:
        """(width, height) of the shown image, or None."""
        return self._image_size

    def display_image(self) -> QImage | None:
        """The full-resolution QImage being shown."""
        return self._levels[0] if self._levels else None

    def set_selection(self, selection: Selection | None) -> None:
        """Outline ``selection`` with marching ants (its path is built here, once)."""
        if selection is self._selection and selection is not None:
            return
        self._selection = selection
        self._outline_transform = None
        if selection is None or selection.is_empty:
            self._outline = QPainterPath()
            self._ants_timer.stop()
        else:
            self._outline = mask_outline(selection.mask)
            if self.isVisible():
                self._ants_timer.start()
        self.update()

    @property
    def selection(self) -> Selection | None:
        return self._selection

    @property
    def outline_path(self) -> QPainterPath:
        """The selection outline in image pixels (empty when nothing is selected)."""
        return self._outline

    def set_outline_transform(self, transform: QTransform | None) -> None:
        """Draw the outline moved/scaled by ``transform`` (image px), for a tool's live feedback."""
        self._outline_transform = transform
        self.update()

    # ------------------------------------------------------------------ #
    # Preview overlay
    # ------------------------------------------------------------------ #

    def show_preview(
        self,
        rgb: npt.NDArray[np.generic] | QImage,
        box: Sequence[float] | None = None,
        box_space: tuple[int, int] | None = None,
    ) -> None:
        """Draw ``rgb`` (H x W x 3 float [0, 1] or uint8, or a QImage) over ``box`` = (x, y, w, h).

        ``box`` is in image px, or in the pixels of an image of size
        ``box_space`` = (width, height) covering the same picture, e.g. a
        job's output size (a worker's ``preview_box`` is in output pixels).
        It defaults to the whole image. The preview is scaled to fill the box,
        so a downscaled preview is fine. It stays until :meth:`clear_preview`
        (or the next ``show_preview``). Converting happens here, once; painting
        just draws it.
        """
        if isinstance(rgb, QImage):
            image = rgb
        else:
            array = np.asarray(rgb)
            image = rgb_to_qimage(array[..., :3], array[..., 3] if array.ndim == 3 and array.shape[2] == 4 else None)
        if box is None:
            if self._image_size is None:
                return
            box = (0, 0, *self._image_size)
        x, y, w, h = (float(v) for v in box)
        if box_space is not None and self._image_size is not None:
            sx, sy = self._image_size[0] / box_space[0], self._image_size[1] / box_space[1]
            x, y, w, h = x * sx, y * sy, w * sx, h * sy
        old = self._preview_box
        self._preview = image
        self._preview_box = QRectF(x, y, w, h)
        dirty = self._image_to_widget_rect(self._preview_box)
        if old is not None:
            dirty = dirty.united(self._image_to_widget_rect(old))
        self.update(dirty.toAlignedRect().adjusted(-2, -2, 2, 2))

    def clear_preview(self) -> None:
        if self._preview is None:
            return
        box = self._preview_box
        self._preview = None
        self._preview_box = None
        if box is not None:
            self.update(self._image_to_widget_rect(box).toAlignedRect().adjusted(-2, -2, 2, 2))

    @property
    def has_preview(self) -> bool:
        return self._preview is not None

    # ------------------------------------------------------------------ #
    # View: zoom and pan
    # ------------------------------------------------------------------ #

    @property
    def zoom(self) -> float:
        """Screen pixels per image pixel (1.0 = 100%)."""
        return self._zoom

    @property
    def offset(self) -> QPointF:
        """Where image pixel (0, 0)'s corner is, in widget coordinates."""
        return QPointF(self._offset)

    def _scale(self) -> float:
        return self._zoom / self._dpr()

    def _dpr(self) -> float:
        return max(1.0, float(self.devicePixelRatioF()))

    def set_zoom(self, zoom: float, anchor: QPointF | QPoint | None = None) -> None:
        """Zoom to ``zoom`` keeping the image point under ``anchor`` (widget px; default: the centre) still."""
        self._auto_fit = False
        self._zoom_about(zoom, anchor)

    def _zoom_about(self, zoom: float, anchor: QPointF | QPoint | None) -> None:
        zoom = min(MAX_ZOOM, max(MIN_ZOOM, float(zoom)))
        anchor = QPointF(anchor) if anchor is not None else QPointF(self.width() / 2, self.height() / 2)
        point = self.map_to_image(anchor)
        scale = zoom / self._dpr()
        self._set_view(zoom, QPointF(anchor.x() - point.x() * scale, anchor.y() - point.y() * scale))

    def zoom_in(self) -> None:
        self.set_zoom(next((z for z in ZOOM_STEPS if z > self._zoom * 1.001), MAX_ZOOM))

    def zoom_out(self) -> None:
        self.set_zoom(next((z for z in reversed(ZOOM_STEPS) if z < self._zoom / 1.001), MIN_ZOOM))

    def fit(self) -> None:
        """Show the whole image, centred (and keep fitting as the window resizes)."""
        self._auto_fit = True
        self._fit_now()

    def actual_size(self) -> None:
        """100%: one image pixel per screen pixel, about the centre of the view."""
        self.set_zoom(1.0)

    @property
    def fitting(self) -> bool:
        """True while the view follows the window size (after :meth:`fit`, until the user zooms or pans)."""
        return self._auto_fit

    def _fit_now(self) -> None:
        if self._image_size is None or self.width() < 2 or self.height() < 2:
            return
        iw, ih = self._image_size
        margin = 16
        avail_w, avail_h = max(1, self.width() - 2 * margin), max(1, self.height() - 2 * margin)
        scale = min(avail_w / iw, avail_h / ih)
        zoom = min(MAX_ZOOM, max(MIN_ZOOM, scale * self._dpr()))
        scale = zoom / self._dpr()
        offset = QPointF((self.width() - iw * scale) / 2, (self.height() - ih * scale) / 2)
        self._set_view(zoom, offset, clamp=False)

    def pan_by(self, dx: float, dy: float) -> None:
        """Move the image by (dx, dy) widget px."""
        self._auto_fit = False
        self._set_view(self._zoom, self._offset + QPointF(dx, dy))

    def center_on(self, point: QPointF) -> None:
        """Put image point ``point`` in the middle of the view."""
        scale = self._scale()
        self._auto_fit = False
        self._set_view(self._zoom, QPointF(self.width() / 2 - point.x() * scale, self.height() / 2 - point.y() * scale))

    def _set_view(self, zoom: float, offset: QPointF, clamp: bool = True) -> None:
        zoom = min(MAX_ZOOM, max(MIN_ZOOM, zoom))
        if clamp:
            offset = self._clamped(zoom, offset)
        changed_zoom = not math.isclose(zoom, self._zoom, rel_tol=1e-12)
        if not changed_zoom and offset == self._offset:
            return
        self._zoom = zoom
        self._offset = offset
        self.update()
        if changed_zoom:
            self.zoom_changed.emit(zoom)
        self.view_changed.emit()

    def _clamped(self, zoom: float, offset: QPointF) -> QPointF:
        """Keep some of the image on screen, however far the user pans."""
        if self._image_size is None:
            return offset
        scale = zoom / self._dpr()
        iw, ih = self._image_size[0] * scale, self._image_size[1] * scale
        keep_x, keep_y = min(_KEEP_VISIBLE, iw), min(_KEEP_VISIBLE, ih)
        x = min(max(offset.x(), keep_x - iw), self.width() - keep_x)
        y = min(max(offset.y(), keep_y - ih), self.height() - keep_y)
        return QPointF(x, y)

    def map_to_image(self, pos: QPointF | QPoint) -> QPointF:
        """Widget position -> image coordinates (continuous: pixel (3, 4) spans 3..4 x 4..5)."""
        scale = self._scale()
        return QPointF((pos.x() - self._offset.x()) / scale, (pos.y() - self._offset.y()) / scale)

    def map_from_image(self, point: QPointF | QPoint | tuple[float, float]) -> QPointF:
        """Image coordinates -> widget position."""
        if isinstance(point, tuple):
            point = QPointF(*point)
        scale = self._scale()
        return QPointF(self._offset.x() + point.x() * scale, self._offset.y() + point.y() * scale)

    def image_transform(self) -> QTransform:
        """The image -> widget transform."""
        scale = self._scale()
        return QTransform(scale, 0, 0, scale, self._offset.x(), self._offset.y())

    def _image_to_widget_rect(self, rect: QRectF) -> QRectF:
        return self.image_transform().mapRect(rect)

    def image_pixel_at(self, pos: QPointF | QPoint) -> tuple[int, int]:
        point = self.map_to_image(pos)
        return math.floor(point.x()), math.floor(point.y())

    # ------------------------------------------------------------------ #
    # Options
    # ------------------------------------------------------------------ #

    @property
    def pixel_grid(self) -> bool:
        """Whether the pixel grid shows (it only does at 800% and above)."""
        return self._grid

    def set_pixel_grid(self, on: bool) -> None:
        self._grid = bool(on)
        self.update()

    @property
    def tool(self) -> CanvasTool | None:
        return self._tool

    def set_tool(self, tool: CanvasTool | None) -> None:
        if self._tool is not None and self._tool_active:
            self._tool.cancel(self)
        self._tool_active = False
        self._tool = tool
        self._update_cursor()
        self.update()

    # ------------------------------------------------------------------ #
    # Painting
    # ------------------------------------------------------------------ #

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return QSize(800, 600)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt API
        painter = QPainter(self)
        painter.fillRect(event.rect(), _BACKGROUND)
        if self._image_size is None:
            painter.end()
            return
        iw, ih = self._image_size
        transform = self.image_transform()
        image_rect = QRectF(0, 0, iw, ih)
        on_screen = transform.mapRect(image_rect)
        dirty = QRectF(event.rect())

        if self._has_alpha:
            painter.setBrushOrigin(on_screen.topLeft())
            painter.fillRect(on_screen.intersected(dirty), self._checker)

        visible = self._visible_image_rect(dirty)
        smooth = self._zoom < NEAREST_FROM_ZOOM
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, smooth)
        painter.setTransform(transform)
        if visible is not None:
            level, factor = self._level_for_zoom()
            source = QRectF(visible.x() / factor, visible.y() / factor, visible.width() / factor, visible.height() / factor)
            painter.drawImage(QRectF(visible), level, source)
        if self._preview is not None and self._preview_box is not None and self._preview.width() > 0:
            # A preview may be finer than the image (an upscale): smooth it until its own pixels are big.
            preview_zoom = self._zoom * self._preview_box.width() / self._preview.width()
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, preview_zoom < NEAREST_FROM_ZOOM)
            painter.drawImage(self._preview_box, self._preview, QRectF(self._preview.rect()))
        painter.resetTransform()
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)

        if self._grid and self._zoom >= GRID_FROM_ZOOM and visible is not None:
            self._paint_grid(painter, visible)
        self._paint_outline(painter)
        if self._tool is not None:
            self._tool.paint(self, painter)
        painter.end()

    def _visible_image_rect(self, widget_rect: QRectF) -> QRect | None:
        """The whole image pixels covering ``widget_rect``."""
        if self._image_size is None:
            return None
        iw, ih = self._image_size
        top_left = self.map_to_image(widget_rect.topLeft())
        bottom_right = self.map_to_image(widget_rect.bottomRight())
        x0 = max(0, math.floor(top_left.x()))
        y0 = max(0, math.floor(top_left.y()))
        x1 = min(iw, math.ceil(bottom_right.x()) + 1)
        y1 = min(ih, math.ceil(bottom_right.y()) + 1)
        if x1 <= x0 or y1 <= y0:
            return None
        return QRect(x0, y0, x1 - x0, y1 - y0)

    def _level_for_zoom(self) -> tuple[QImage, int]:
        """The full image, or a half/quarter/... copy when zoomed out (smooth, and fast to draw)."""
        scale = self._zoom
        level = 0
        while scale * (2 ** (level + 1)) <= 1.0 and (self._levels[0].width() >> (level + 1)) >= 8:
            level += 1
        while len(self._levels) <= level:
            previous = self._levels[-1]
            self._levels.append(
                previous.scaled(
                    max(1, previous.width() // 2),
                    max(1, previous.height() // 2),
                    Qt.AspectRatioMode.IgnoreAspectRatio,
                    Qt.TransformationMode.SmoothTransformation,
                )
            )
        image = self._levels[level]
        # Exact factor per axis can differ by rounding; use width.
        factor = self._levels[0].width() / image.width()
        return image, factor  # type: ignore[return-value]

    def _paint_grid(self, painter: QPainter, visible: QRect) -> None:
        pen = QPen(QColor(128, 128, 128, 110))
        pen.setWidth(0)
        pen.setCosmetic(True)
        painter.setPen(pen)
        scale = self._scale()
        ox, oy = self._offset.x(), self._offset.y()
        top = oy + visible.top() * scale
        bottom = oy + (visible.bottom() + 1) * scale
        left = ox + visible.left() * scale
        right = ox + (visible.right() + 1) * scale
        lines = []
        for x in range(visible.left(), visible.right() + 2):
            sx = round(ox + x * scale) + 0.5
            lines.append((QPointF(sx, top), QPointF(sx, bottom)))
        for y in range(visible.top(), visible.bottom() + 2):
            sy = round(oy + y * scale) + 0.5
            lines.append((QPointF(left, sy), QPointF(right, sy)))
        for a, b in lines:
            painter.drawLine(a, b)

    def _paint_outline(self, painter: QPainter) -> None:
        if self._outline.isEmpty():
            return
        transform = self.image_transform()
        if self._outline_transform is not None:
            transform = self._outline_transform * transform
        path = transform.map(self._outline)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        under = QPen(QColor(0, 0, 0))
        under.setCosmetic(True)
        under.setWidth(1)
        painter.setPen(under)
        painter.drawPath(path)
        over = QPen(QColor(255, 255, 255))
        over.setCosmetic(True)
        over.setWidth(1)
        over.setDashPattern([_ANTS_DASH, _ANTS_DASH])
        over.setDashOffset(self._ants_phase)
        painter.setPen(over)
        painter.drawPath(path)

    def _march(self) -> None:
        self._ants_phase = (self._ants_phase + 1) % (2 * _ANTS_DASH)
        if self._outline.isEmpty():
            self._ants_timer.stop()
            return
        transform = self.image_transform()
        if self._outline_transform is not None:
            transform = self._outline_transform * transform
        self.update(transform.mapRect(self._outline.boundingRect()).toAlignedRect().adjusted(-2, -2, 2, 2))

    @property
    def ants_running(self) -> bool:
        return self._ants_timer.isActive()

    # ------------------------------------------------------------------ #
    # Events
    # ------------------------------------------------------------------ #

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        super().showEvent(event)
        if not self._outline.isEmpty():
            self._ants_timer.start()

    def hideEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        super().hideEvent(event)
        self._ants_timer.stop()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        if self._auto_fit:
            self._fit_now()
        else:
            self._set_view(self._zoom, self._offset)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt API
        pixel = event.pixelDelta()
        angle = event.angleDelta()
        ctrl = bool(event.modifiers() & Qt.KeyboardModifier.ControlModifier)
        if not pixel.isNull() and not ctrl and event.phase() != Qt.ScrollPhase.NoScrollPhase:
            # A trackpad's two-finger scroll pans; pinching (a native gesture) zooms.
            self.pan_by(pixel.x(), pixel.y())
            event.accept()
            return
        delta = angle.y() if angle.y() else 0
        if delta == 0:
            if angle.x():
                self.pan_by(angle.x() / _WHEEL_NOTCH * 40, 0)
            event.accept()
            return
        factor = _ZOOM_PER_NOTCH ** (delta / _WHEEL_NOTCH)
        self.set_zoom(self._zoom * factor, event.position())
        event.accept()

    def event(self, event: QEvent) -> bool:  # noqa: D401 - Qt API
        if event.type() == QEvent.Type.NativeGesture and isinstance(event, QNativeGestureEvent):
            kind = event.gestureType()
            if kind == Qt.NativeGestureType.ZoomNativeGesture:
                self.set_zoom(self._zoom * (1.0 + event.value()), event.position())
                event.accept()
                return True
            if kind == Qt.NativeGestureType.SmartZoomNativeGesture:
                if self._auto_fit:
                    self.set_zoom(1.0, event.position())
                else:
                    self.fit()
                event.accept()
                return True
        return super().event(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt API
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_down = True
            self._update_cursor()
            event.accept()
            return
        if event.key() == Qt.Key.Key_Space:
            event.accept()
            return
        if event.key() == Qt.Key.Key_Escape and self._tool is not None and self._tool_active:
            self._tool.cancel(self)
            self._tool_active = False
            self.update()
            event.accept()
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt API
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_down = False
            self._update_cursor()
            event.accept()
            return
        super().keyReleaseEvent(event)

    def focusOutEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        self._space_down = False
        self._update_cursor()
        super().focusOutEvent(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        button = event.button()
        if button == Qt.MouseButton.MiddleButton or (button == Qt.MouseButton.LeftButton and self._space_down):
            self._pan_from = event.position()
            self._pan_button = button
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
            event.accept()
            return
        if button == Qt.MouseButton.LeftButton and self._tool is not None and self._image_size is not None:
            self._tool_active = True
            self._tool.press(self, event)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        x, y = self.image_pixel_at(event.position())
        self.cursor_moved.emit(x, y)
        if self._pan_from is not None:
            delta = event.position() - self._pan_from
            self._pan_from = event.position()
            self.pan_by(delta.x(), delta.y())
            event.accept()
            return
        if self._tool is not None:
            if self._tool_active:
                self._tool.move(self, event)
            else:
                self._tool.hover(self, event)
                self._update_cursor()
        event.accept()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        if self._pan_from is not None and event.button() == self._pan_button:
            self._pan_from = None
            self._pan_button = None
            self._update_cursor()
            event.accept()
            return
        if event.button() == Qt.MouseButton.LeftButton and self._tool is not None and self._tool_active:
            self._tool_active = False
            self._tool.release(self, event)
            self._update_cursor()
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def leaveEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt API
        self.cursor_left.emit()
        super().leaveEvent(event)

    def _update_cursor(self) -> None:
        if self._pan_from is not None:
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
        elif self._space_down:
            self.setCursor(Qt.CursorShape.OpenHandCursor)
        elif self._tool is not None:
            self.setCursor(self._tool.cursor(self))
        else:
            self.unsetCursor()
