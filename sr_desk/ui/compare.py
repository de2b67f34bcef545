"""Comparing two images: a before/after split or side by side, with fidelity to the input.

Both images are shown in one "scene" the size of the larger one (the
original, say, enlarged to the result's size, nearest neighbour by default
so its real pixels show). Zoom and pan are shared: in side-by-side mode
both panes follow each other. Given the low-resolution input, each result
shows its LR-PSNR (the result shrunk back to the input's size, compared
with it) and, on request, a heat map of where it departs from the input:
where a diffusion model invented detail that changes the picture.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import qtawesome as qta
from PySide6.QtCore import QObject, QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QImage,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QResizeEvent,
    QShowEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QButtonGroup,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QSizePolicy,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from sr_desk.core.resize import Filter, resize
from sr_desk.ui.qimage import rgb_to_qimage

__all__ = ["CompareView", "ViewState"]

MIN_ZOOM = 0.02
MAX_ZOOM = 64.0
#: Heat maps above this many pixels are made at the input's size and stretched on screen.
_HEAT_MAP_FULL_SIZE_LIMIT = 16_000_000
#: Above this many pixels (both images together) the LR-PSNR, the display images and the heat maps are
#: made on a worker thread, so the window stays responsive (a 100 MP result took 13 s on the GUI thread).
ASYNC_PIXELS = 4_000_000
_DIVIDER_GRAB = 8
_BACKGROUND = QColor(40, 40, 40)


class ViewState(QObject):
    """Zoom and pan shared by the panes: ``origin`` is the scene point at a pane's top-left corner."""

    changed = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.zoom = 1.0
        self.origin = QPointF(0.0, 0.0)
        self.scene_size = (1, 1)
        self.fitted = True

    def map_to_scene(self, pos: QPointF) -> QPointF:
        return QPointF(self.origin.x() + pos.x() / self.zoom, self.origin.y() + pos.y() / self.zoom)

    def fit(self, viewport: QSize) -> None:
        """Show the whole scene centred in ``viewport`` (never enlarged beyond 8x)."""
        width, height = max(1, viewport.width()), max(1, viewport.height())
        sw, sh = self.scene_size
        self.zoom = min(8.0, width / sw, height / sh)
        self.origin = QPointF(sw / 2 - width / (2 * self.zoom), sh / 2 - height / (2 * self.zoom))
        self.fitted = True
        self.changed.emit()

    def zoom_at(self, pos: QPointF, factor: float) -> None:
        """Zoom by ``factor`` keeping the scene point under ``pos`` (pane pixels) where it is."""
        anchor = self.map_to_scene(pos)
        self.zoom = min(MAX_ZOOM, max(MIN_ZOOM, self.zoom * factor))
        self.origin = QPointF(anchor.x() - pos.x() / self.zoom, anchor.y() - pos.y() / self.zoom)
        self.fitted = False
        self.changed.emit()

    def set_zoom(self, zoom: float, viewport: QSize) -> None:
        """Zoom to ``zoom`` about the centre of ``viewport``."""
        centre = QPointF(viewport.width() / 2, viewport.height() / 2)
        self.zoom_at(centre, zoom / self.zoom)

    def pan(self, delta: QPointF) -> None:
        """Move the picture by ``delta`` pane pixels."""
        self.origin = QPointF(self.origin.x() - delta.x() / self.zoom, self.origin.y() - delta.y() / self.zoom)
        self.fitted = False
        self.changed.emit()


class _Pane(QWidget):
    """Draws one image (or, split, two divided by a draggable line) through the shared view."""

    divider_moved = Signal(float)

    def __init__(self, view: ViewState, split: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = view
        self.split = split
        self.images: list[QImage | None] = [None, None]
        self.overlays: list[QImage | None] = [None, None]
        self.labels = ["", ""]
        self.divider = 0.5
        self._drag: str | None = None
        self._last = QPointF()
        self.setMouseTracking(True)
        self.setMinimumSize(80, 60)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        view.changed.connect(self.update)

    # geometry
    def divider_x(self) -> float:
        return self.divider * self.width()

    def set_divider(self, fraction: float) -> None:
        self.divider = min(1.0, max(0.0, fraction))
        self.update()
        self.divider_moved.emit(self.divider)

    def _near_divider(self, x: float) -> bool:
        return self.split and abs(x - self.divider_x()) <= _DIVIDER_GRAB

    # painting
    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), _BACKGROUND)
        view = self.view
        scene = QRectF(0, 0, *view.scene_size)
        painter.save()
        painter.translate(-view.origin.x() * view.zoom, -view.origin.y() * view.zoom)
        painter.scale(view.zoom, view.zoom)
        if self.split:
            cut = view.map_to_scene(QPointF(self.divider_x(), 0)).x()
            for side, clip in ((0, QRectF(-1e7, -1e7, cut + 1e7, 2e7)), (1, QRectF(cut, -1e7, 2e7, 2e7))):
                painter.save()
                painter.setClipRect(clip)
                self._draw_side(painter, side, scene)
                painter.restore()
        else:
            self._draw_side(painter, 0, scene)
        painter.restore()

        if self.split:
            x = self.divider_x()
            painter.setPen(QPen(QColor(255, 255, 255, 220), 2))
            painter.drawLine(QPointF(x, 0), QPointF(x, self.height()))
            painter.setBrush(QColor(255, 255, 255, 220))
            painter.drawEllipse(QPointF(x, self.height() / 2), 6, 6)
        self._draw_label(painter, self.labels[0], left=True)
        if self.split:
            self._draw_label(painter, self.labels[1], left=False)
        painter.end()

    def _draw_side(self, painter: QPainter, side: int, scene: QRectF) -> None:
        image = self.images[side]
        if image is not None:
            # Smooth only when shrinking: enlarged, every pixel shows as a sharp block.
            on_screen = self.view.zoom * scene.width() / max(1, image.width())
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, on_screen < 1.0)
            painter.drawImage(scene, image)
        overlay = self.overlays[side]
        if overlay is not None:
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
            painter.drawImage(scene, overlay)

    def _draw_label(self, painter: QPainter, text: str, left: bool) -> None:
        if not text:
            return
        font = QFont(self.font())
        font.setBold(True)
        painter.setFont(font)
        metrics = painter.fontMetrics()
        width, height = metrics.horizontalAdvance(text) + 12, metrics.height() + 6
        x = 8 if left else self.width() - width - 8
        box = QRectF(x, 8, width, height)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(0, 0, 0, 150))
        painter.drawRoundedRect(box, 4, 4)
        painter.setPen(QColor(255, 255, 255))
        painter.drawText(box, Qt.AlignmentFlag.AlignCenter, text)

    # interaction
    def mousePressEvent(self, event: QMouseEvent) -> None:
        pos = event.position()
        if event.button() == Qt.MouseButton.LeftButton and self._near_divider(pos.x()):
            self._drag = "divider"
        elif event.button() in (Qt.MouseButton.LeftButton, Qt.MouseButton.MiddleButton):
            self._drag = "pan"
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
        else:
            super().mousePressEvent(event)
            return
        self._last = pos
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        pos = event.position()
        if self._drag == "divider":
            self.set_divider(pos.x() / max(1, self.width()))
        elif self._drag == "pan":
            self.view.pan(pos - self._last)
        elif self._near_divider(pos.x()):
            self.setCursor(Qt.CursorShape.SplitHCursor)
        else:
            self.setCursor(Qt.CursorShape.OpenHandCursor)
        self._last = pos

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        self._drag = None
        self.setCursor(Qt.CursorShape.OpenHandCursor)
        event.accept()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        self.view.fit(self.size())
        event.accept()

    def wheelEvent(self, event: QWheelEvent) -> None:
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.view.zoom_at(event.position(), 1.25**steps)
        event.accept()

    def _refit(self) -> None:
        # The view is shared: only the pane on show may fit it to its size.
        if self.view.fitted and self.isVisibleTo(self.window()):
            self.view.fit(self.size())

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._refit()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._refit()


def _display_image(rgb: np.ndarray, scene: tuple[int, int], enlarge: str) -> QImage:
    size = (rgb.shape[1], rgb.shape[0])
    if size != scene and enlarge == "bicubic":
        rgb = resize(np.asarray(rgb, dtype=np.float32), scene, Filter.BICUBIC)
    # nearest: drawn stretched into the scene without smoothing, so no enlarged copy is kept
    return rgb_to_qimage(rgb)


def _lr_psnr(rgb: np.ndarray, reference: np.ndarray | None) -> float | None:
    """The LR-PSNR of ``rgb`` against the input, or None for the input itself (or without one)."""
    if reference is None or (rgb.shape == reference.shape and bool(np.array_equal(rgb, reference))):
        return None
    from sr_desk.core.fidelity import lr_psnr

    return float(lr_psnr(np.asarray(rgb, dtype=np.float32), reference))


def _heat_qimage(rgb: np.ndarray, reference: np.ndarray) -> QImage:
    from sr_desk.core.fidelity import heat_map, model_departure_map

    departure = model_departure_map(np.asarray(rgb, dtype=np.float32), reference)
    size = (rgb.shape[1], rgb.shape[0])
    if size[0] * size[1] > _HEAT_MAP_FULL_SIZE_LIMIT:
        size = (departure.shape[1], departure.shape[0])  # painted stretched, without smoothing
    return rgb_to_qimage(heat_map(departure, size))


class CompareView(QWidget):
    """Two images compared: ``"split"`` (before/after with a divider) or ``"side_by_side"``.

    Signals: ``mode_changed(str)``, ``heat_map_toggled(bool)``, ``measured()``.
    After :meth:`set_images` with a ``reference_lr``, :attr:`fidelity` holds
    each side's LR-PSNR in dB (``None`` for the input itself or without a
    reference; ``inf`` when identical). Large images are measured on a worker
    thread: :meth:`is_measuring` is true and a busy bar shows until
    ``measured`` is emitted; small ones are done before ``set_images`` returns.
    """

    MODES = ("split", "side_by_side")

    mode_changed = Signal(str)
    heat_map_toggled = Signal(bool)
    measured = Signal()
    _computed = Signal(int, object, object)  # generation, what to apply (from a worker thread), its payload

    def __init__(self, parent: QWidget | None = None, *, enlarge_filter: str = "nearest") -> None:
        super().__init__(parent)
        self.view = ViewState(self)
        self._mode = "split"
        self._enlarge = enlarge_filter
        self._arrays: list[np.ndarray | None] = [None, None]
        self._reference: np.ndarray | None = None
        self._heat_cache: list[QImage | None] = [None, None]
        self.labels = ["", ""]
        self.fidelity: list[float | None] = [None, None]
        self.async_pixels = ASYNC_PIXELS
        self._generation = 0
        self._pending = 0
        self._heat_pending: set[int] = set()
        self._computed.connect(self._on_computed)

        bar = QHBoxLayout()
        bar.setContentsMargins(4, 2, 4, 2)
        self.split_button = self._tool("mdi6.compare", "Split: before and after, divided by a line you can drag")
        self.side_button = self._tool("mdi6.view-split-vertical", "Side by side, zoom and pan linked")
        self._mode_group = QButtonGroup(self)
        self._mode_group.setExclusive(True)
        for button in (self.split_button, self.side_button):
            button.setCheckable(True)
            self._mode_group.addButton(button)
        self.split_button.setChecked(True)
        self.heat_button = self._tool(
            "mdi6.fire", "Heat map: where each result, shrunk back, departs from the input further than a bicubic "
            "enlargement does (detail a method invented)"
        )
        self.heat_button.setText("Heat map")
        self.heat_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.heat_button.setCheckable(True)
        self.heat_button.setEnabled(False)
        self.fit_button = self._tool("mdi6.fit-to-screen-outline", "Fit the picture in the view")
        self.left_fidelity = QLabel(self)
        self.right_fidelity = QLabel(self)
        for label in (self.left_fidelity, self.right_fidelity):
            label.setToolTip(
                "LR-PSNR: the result shrunk back to the input's size and compared with the input. It measures "
                "faithfulness, not quality: a blurry enlargement can score higher than a sharp one, and the "
                "input itself would be perfect. Above about 45 dB nothing visible was changed; see the heat map "
                "for where a result departs."
            )
        bar.addWidget(self.split_button)
        bar.addWidget(self.side_button)
        bar.addWidget(self.fit_button)
        bar.addSpacing(12)
        bar.addWidget(self.heat_button)
        self.busy = QProgressBar(self)
        self.busy.setRange(0, 0)  # busy: no fraction to show
        self.busy.setMaximumWidth(120)
        self.busy.setToolTip("Measuring on a worker thread; the window stays usable")
        self.busy.hide()
        bar.addSpacing(12)
        bar.addWidget(self.busy)
        bar.addStretch(1)
        bar.addWidget(self.left_fidelity)
        bar.addSpacing(12)
        bar.addWidget(self.right_fidelity)

        self.split_pane = _Pane(self.view, split=True, parent=self)
        side = QWidget(self)
        side_row = QHBoxLayout(side)
        side_row.setContentsMargins(0, 0, 0, 0)
        side_row.setSpacing(2)
        self.left_pane = _Pane(self.view, split=False, parent=side)
        self.right_pane = _Pane(self.view, split=False, parent=side)
        side_row.addWidget(self.left_pane)
        side_row.addWidget(self.right_pane)
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self.split_pane)
        self.stack.addWidget(side)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(bar)
        layout.addWidget(self.stack, 1)

        self.split_button.clicked.connect(lambda: self.set_mode("split"))
        self.side_button.clicked.connect(lambda: self.set_mode("side_by_side"))
        self.heat_button.toggled.connect(self._heat_toggled)
        self.fit_button.clicked.connect(self.fit)

    def _tool(self, icon: str, tip: str) -> QToolButton:
        button = QToolButton(self)
        button.setIcon(qta.icon(icon))
        button.setToolTip(tip)
        button.setAutoRaise(True)
        return button

    # ------------------------------------------------------------ images

    def set_images(
        self,
        left: np.ndarray,
        right: np.ndarray,
        left_label: str = "Before",
        right_label: str = "After",
        reference_lr: np.ndarray | None = None,
    ) -> None:
        """Show ``left`` and ``right`` (float RGB ``H x W x 3``); ``reference_lr`` is the input they came from.

        The smaller image is enlarged to the larger's size for display. With
        ``reference_lr``, each side that is not the input itself gets its
        LR-PSNR and (when switched on) its heat map.
        """
        arrays = [np.asarray(left), np.asarray(right)]
        reference = None if reference_lr is None else np.asarray(reference_lr, dtype=np.float32)
        self._arrays, self._reference = list(arrays), reference
        self.labels = [left_label, right_label]
        self._heat_cache = [None, None]
        self._heat_pending.clear()
        self._generation += 1
        sizes = [(a.shape[1], a.shape[0]) for a in arrays]
        scene = max(sizes, key=lambda s: s[0] * s[1])
        self.view.scene_size = scene
        enlarge = self._enlarge

        def measure() -> tuple[list[QImage], list[float | None]]:
            images = [_display_image(a, scene, enlarge) for a in arrays]
            return images, [_lr_psnr(a, reference) for a in arrays]

        if sum(w * h for w, h in sizes) <= self.async_pixels:
            self._apply_measures(measure())
            return
        for pane in (self.split_pane, self.left_pane, self.right_pane):
            pane.images, pane.overlays = [None, None], [None, None]
        for label, name in zip((self.left_fidelity, self.right_fidelity), self.labels, strict=True):
            label.setText(f"{name}: measuring\u2026" if reference is not None and name else "")
        self.heat_button.setEnabled(False)
        self.fit()
        self._start(self._apply_measures, measure)

    def is_measuring(self) -> bool:
        """True while a worker thread makes the images, LR-PSNR or a heat map of the current pair."""
        return self._pending > 0

    def _start(self, apply: Callable[[Any], None], work: Callable[[], Any]) -> None:
        """Run ``work`` on a worker thread; ``apply`` gets its result on the GUI thread, unless the pair changed."""
        generation = self._generation
        self._pending += 1
        self.busy.show()

        def run() -> None:
            try:
                payload = work()
            except Exception as exc:  # noqa: BLE001 - shown to the user, never lost on a thread
                payload = exc
            try:
                self._computed.emit(generation, apply, payload)
            except RuntimeError:  # the view was closed meanwhile
                pass

        threading.Thread(target=run, name="compare", daemon=True).start()

    def _on_computed(self, generation: int, apply: Callable[[Any], None], payload: Any) -> None:
        self._pending = max(0, self._pending - 1)
        self.busy.setVisible(self._pending > 0)
        if generation != self._generation:
            return  # another pair was shown meanwhile
        if isinstance(payload, Exception):
            for label in (self.left_fidelity, self.right_fidelity):
                label.setText(f"cannot measure: {payload}")
            return
        apply(payload)

    def _apply_measures(self, measures: tuple[list[QImage], list[float | None]]) -> None:
        images, self.fidelity = measures
        left_label, right_label = self.labels
        self.split_pane.images = list(images)
        self.split_pane.labels = [left_label, right_label]
        self.left_pane.images = [images[0], None]
        self.left_pane.labels = [left_label, ""]
        self.right_pane.images = [images[1], None]
        self.right_pane.labels = [right_label, ""]
        for label, name, value in zip(
            (self.left_fidelity, self.right_fidelity), (left_label, right_label), self.fidelity, strict=True
        ):
            label.setText(self.fidelity_text(name, value) if self._reference is not None else "")
        self.heat_button.setEnabled(any(v is not None for v in self.fidelity))
        self._update_overlays()
        self.fit()
        self.measured.emit()

    @staticmethod
    def fidelity_text(name: str, value: float | None) -> str:
        if value is None:
            return f"{name}: input" if name else "input"
        number = "identical" if math.isinf(value) else f"LR-PSNR {value:.1f} dB"
        return f"{name}: {number}" if name else number

    # --------------------------------------------------------- heat maps

    def set_heat_map_visible(self, visible: bool) -> None:
        """Overlay each result's departure from the input (needs ``reference_lr``)."""
        self.heat_button.setChecked(bool(visible))
        self._update_overlays()  # also when the button did not change (no images yet)

    def heat_map_visible(self) -> bool:
        return self.heat_button.isChecked()

    def _heat_toggled(self, on: bool) -> None:
        self._update_overlays()
        self.heat_map_toggled.emit(on)

    def _heat_image(self, side: int) -> QImage | None:
        """The side's heat map when made; large ones are started on a worker thread and shown when ready."""
        if self._heat_cache[side] is None:
            rgb, reference = self._arrays[side], self._reference
            if rgb is None or reference is None or self.fidelity[side] is None:
                return None
            if rgb.shape[0] * rgb.shape[1] <= self.async_pixels:
                self._heat_cache[side] = _heat_qimage(rgb, reference)
            elif side not in self._heat_pending:
                self._heat_pending.add(side)
                self._start(lambda image, side=side: self._heat_ready(side, image), lambda: _heat_qimage(rgb, reference))
        return self._heat_cache[side]

    def _heat_ready(self, side: int, image: QImage) -> None:
        self._heat_pending.discard(side)
        self._heat_cache[side] = image
        self._update_overlays()

    def _update_overlays(self) -> None:
        on = self.heat_button.isChecked()
        overlays = [self._heat_image(side) if on else None for side in (0, 1)]
        self.split_pane.overlays = overlays
        self.left_pane.overlays = [overlays[0], None]
        self.right_pane.overlays = [overlays[1], None]
        for pane in (self.split_pane, self.left_pane, self.right_pane):
            pane.update()

    # -------------------------------------------------------------- modes

    def set_mode(self, mode: str) -> None:
        if mode not in self.MODES:
            raise ValueError(f"unknown compare mode {mode!r} (choose from {', '.join(self.MODES)})")
        changed = mode != self._mode
        self._mode = mode
        self.stack.setCurrentIndex(self.MODES.index(mode))
        (self.split_button if mode == "split" else self.side_button).setChecked(True)
        if self.view.fitted:
            self.fit()
        if changed:
            self.mode_changed.emit(mode)

    def mode(self) -> str:
        return self._mode

    def set_divider(self, fraction: float) -> None:
        """Where the split line is, as a fraction of the view's width."""
        self.split_pane.set_divider(fraction)

    def divider(self) -> float:
        return self.split_pane.divider

    def set_enlarge_filter(self, name: str) -> None:
        """How the smaller image is enlarged: ``"nearest"`` (default: real pixels) or ``"bicubic"``.

        Applies from the next :meth:`set_images`.
        """
        if name not in ("nearest", "bicubic"):
            raise ValueError(f"unknown filter {name!r}")
        self._enlarge = name

    # ---------------------------------------------------------- zoom/pan

    def _active_panes(self) -> list[_Pane]:
        return [self.split_pane] if self._mode == "split" else [self.left_pane, self.right_pane]

    def fit(self) -> None:
        self.view.fit(self._active_panes()[0].size())

    def zoom(self) -> float:
        return self.view.zoom

    def set_zoom(self, zoom: float) -> None:
        self.view.set_zoom(zoom, self._active_panes()[0].size())

    def images(self) -> list[Any]:
        """The two arrays given to :meth:`set_images`."""
        return list(self._arrays)
