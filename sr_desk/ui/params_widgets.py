"""Widgets built from parameter declarations.

A method declares its parameters with ``sr_desk.api`` types; this module
turns each declaration into an editor widget, so a new plugin gets its panel
without any GUI code. Every widget is a :class:`ParamWidget`: ``value()``,
``set_value(v)`` and a ``changed(object)`` signal, with the declaration's
``help`` as its tooltip and its ``label`` as :attr:`ParamWidget.label`.

Parameter types this module does not know (a third-party ``Param``
subclass) get a line edit that reads its text with ``param.parse``.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import qtawesome as qta
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QPixmap, QResizeEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSlider,
    QSpinBox,
    QToolButton,
    QWidget,
)

from sr_desk.api import (
    BoolParam,
    ChoiceParam,
    FloatParam,
    ImageInput,
    ImageParam,
    IntParam,
    Param,
    ParamError,
    SeedParam,
    SizeParam,
)
from sr_desk.core.errors import SrDeskError
from sr_desk.core.imageio import load_image
from sr_desk.ui.qimage import rgb_to_qimage

__all__ = [
    "IMAGE_FILTER",
    "SEED_MAX",
    "BoolWidget",
    "ChoiceWidget",
    "ImageWidget",
    "LineEditWidget",
    "NumberWidget",
    "ParamWidget",
    "SeedWidget",
    "SizeWidget",
    "make_param_widget",
    "register_param_widget",
]

#: Largest seed the seed spin box shows (a QSpinBox holds a signed 32-bit int).
SEED_MAX = 2**31 - 1
_INT_LIMIT = 2**31 - 1
#: At most this many slider positions, however wide a parameter's range is.
_SLIDER_POSITIONS = 10_000

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.webp *.tif *.tiff *.bmp *.gif);;All files (*)"
THUMBNAIL_SIZE = 40


class ParamWidget(QWidget):
    """The editor of one parameter.

    ``changed`` carries the new value after every change (user or
    ``set_value``). ``message(text, level)`` reports a problem to show the
    user without a dialog (an image that does not load, text that does not
    parse); the method panel forwards it.
    """

    changed = Signal(object)
    message = Signal(str, str)

    def __init__(self, param: Param, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.param = param
        self.label: str = param.label
        self.setToolTip(param.help)
        self.setObjectName(f"param_{param.name}")

    def value(self) -> Any:
        raise NotImplementedError

    def set_value(self, value: Any) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        """Back to the declaration's default."""
        self.set_value(self.param.default)

    def _row(self) -> QHBoxLayout:
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        return layout


def _icon_button(icon: str, tip: str, parent: QWidget) -> QToolButton:
    button = QToolButton(parent)
    button.setIcon(qta.icon(icon))
    button.setToolTip(tip)
    button.setAutoRaise(True)
    return button


# --------------------------------------------------------------------------- #
# Numbers: a slider and a spin box kept in sync
# --------------------------------------------------------------------------- #


class NumberWidget(ParamWidget):
    """``IntParam`` / ``FloatParam``: a slider and a spin box showing the same value.

    The spin box has the declaration's range, step and (for floats)
    decimals; values outside the range are clamped. The slider maps the
    range onto at most 10 000 positions, so any range works.
    """

    def __init__(self, param: IntParam | FloatParam, parent: QWidget | None = None) -> None:
        super().__init__(param, parent)
        self._is_float = isinstance(param, FloatParam)
        self._lo = float(param.minimum)
        self._hi = float(param.maximum)
        if not self._is_float:
            self._lo = float(max(-_INT_LIMIT, param.minimum))
            self._hi = float(min(_INT_LIMIT, param.maximum))
        span = self._hi - self._lo
        self._positions = max(1, min(_SLIDER_POSITIONS, round(span / param.step))) if span > 0 else 0

        self.slider = QSlider(Qt.Orientation.Horizontal, self)
        self.slider.setRange(0, self._positions)
        self.slider.setEnabled(self._positions > 0)
        if self._is_float:
            assert isinstance(param, FloatParam)
            self.spin: QSpinBox | QDoubleSpinBox = QDoubleSpinBox(self)
            self.spin.setDecimals(param.decimals)
            self.spin.setRange(self._lo, self._hi)
            self.spin.setSingleStep(param.step)
        else:
            self.spin = QSpinBox(self)
            self.spin.setRange(int(self._lo), int(self._hi))
            self.spin.setSingleStep(int(param.step))
        self.spin.setKeyboardTracking(False)
        self.spin.setAccelerated(True)
        self.spin.setMinimumWidth(72)

        row = self._row()
        row.addWidget(self.slider, 1)
        row.addWidget(self.spin)

        self.set_value(param.default)
        self.slider.valueChanged.connect(self._slider_moved)
        self.spin.valueChanged.connect(self._spin_changed)

    # slider position <-> value
    def _position_of(self, value: float) -> int:
        if self._positions == 0:
            return 0
        return round((value - self._lo) / (self._hi - self._lo) * self._positions)

    def _value_at(self, position: int) -> float:
        if self._positions == 0:
            return self._lo
        value = self._lo + (self._hi - self._lo) * position / self._positions
        step = float(self.param.step)  # type: ignore[attr-defined]
        snapped = self._lo + round((value - self._lo) / step) * step
        return min(self._hi, max(self._lo, snapped))

    def _slider_moved(self, position: int) -> None:
        self.spin.setValue(self._value_at(position))  # type: ignore[arg-type]

    def _spin_changed(self, _value: object) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(self._position_of(float(self.spin.value())))
        self.slider.blockSignals(False)
        self.changed.emit(self.value())

    def value(self) -> int | float:
        if self._is_float:
            return round(float(self.spin.value()), self.param.decimals)  # type: ignore[attr-defined]
        return int(self.spin.value())

    def set_value(self, value: Any) -> None:
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = float(self.param.default)
        if not math.isfinite(number):
            number = float(self.param.default)
        number = min(self._hi, max(self._lo, number))
        if self._is_float:
            self.spin.setValue(number)  # type: ignore[arg-type]
        else:
            self.spin.setValue(round(number))  # type: ignore[arg-type]
        # Keep the slider right even when the spin box did not change (no signal).
        self.slider.blockSignals(True)
        self.slider.setValue(self._position_of(float(self.spin.value())))
        self.slider.blockSignals(False)


# --------------------------------------------------------------------------- #
# Simple kinds
# --------------------------------------------------------------------------- #


class BoolWidget(ParamWidget):
    """``BoolParam``: a check box."""

    def __init__(self, param: BoolParam, parent: QWidget | None = None) -> None:
        super().__init__(param, parent)
        self.check = QCheckBox(self)
        self._row().addWidget(self.check)
        self.check.setChecked(bool(param.default))
        self.check.toggled.connect(lambda on: self.changed.emit(bool(on)))

    def value(self) -> bool:
        return self.check.isChecked()

    def set_value(self, value: Any) -> None:
        self.check.setChecked(bool(value))


class ChoiceWidget(ParamWidget):
    """``ChoiceParam``: a drop-down of the declared options."""

    def __init__(self, param: ChoiceParam, parent: QWidget | None = None) -> None:
        super().__init__(param, parent)
        self.combo = QComboBox(self)
        for choice in param.choices:
            self.combo.addItem(choice, choice)
        self._row().addWidget(self.combo, 1)
        self.set_value(param.default)
        self.combo.currentIndexChanged.connect(lambda _i: self.changed.emit(self.value()))

    def value(self) -> str:
        return str(self.combo.currentData())

    def set_value(self, value: Any) -> None:
        index = self.combo.findData(value)
        if index >= 0:
            self.combo.setCurrentIndex(index)


class SeedWidget(ParamWidget):
    """``SeedParam``: a spin box whose lowest position reads "random" (value ``None``).

    The dice button draws a new seed; the shuffle button goes back to random
    (a new seed for every run). Seeds are shown in 0..2^31-1.
    """

    def __init__(self, param: Param, parent: QWidget | None = None) -> None:
        super().__init__(param, parent)
        self.spin = QSpinBox(self)
        self.spin.setRange(-1, SEED_MAX)
        self.spin.setSpecialValueText("random")
        self.spin.setKeyboardTracking(False)
        self.spin.setMinimumWidth(110)
        self.dice = _icon_button("mdi6.dice-5", "Draw a new seed", self)
        self.random_button = _icon_button("mdi6.shuffle-variant", "Back to random: a new seed every run", self)
        row = self._row()
        row.addWidget(self.spin, 1)
        row.addWidget(self.dice)
        row.addWidget(self.random_button)
        self.dice.clicked.connect(self.roll)
        self.random_button.clicked.connect(lambda: self.set_value(None))
        self.set_value(param.default)
        self.spin.valueChanged.connect(self._on_spin)
        self._on_spin(self.spin.value(), emit=False)

    def _on_spin(self, value: int, emit: bool = True) -> None:
        self.random_button.setEnabled(value >= 0)
        if emit:
            self.changed.emit(self.value())

    def roll(self) -> int:
        """Draw a new seed, show it and return it."""
        seed = random.randint(0, SEED_MAX)
        self.set_value(seed)
        return seed

    def is_random(self) -> bool:
        return self.spin.value() < 0

    def value(self) -> int | None:
        value = int(self.spin.value())
        return None if value < 0 else value

    def set_value(self, value: Any) -> None:
        if value is None or isinstance(value, bool):
            self.spin.setValue(-1)
            return
        try:
            seed = int(value)
        except (TypeError, ValueError):
            return
        self.spin.setValue(min(SEED_MAX, max(0, seed)))


# --------------------------------------------------------------------------- #
# Image picker
# --------------------------------------------------------------------------- #


class ElidedLabel(QLabel):
    """A label that shows as much of its text as fits, with "…" in the middle, instead of widening its panel.

    A long file name would otherwise widen the whole method panel and squeeze
    the canvas; the full text stays in :meth:`full_text` (and the tooltip).
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = ""
        self.setMinimumWidth(40)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt's name
        self._full = text
        self._elide()

    def full_text(self) -> str:
        return self._full

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(self.minimumWidth(), super().minimumSizeHint().height())

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(min(super().sizeHint().width(), 200), super().sizeHint().height())

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        shown = self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideMiddle, max(self.width(), 40))
        super().setText(shown)


class ImageWidget(ParamWidget):
    """``ImageParam``: a button opening a file dialog, a thumbnail and the file name.

    ``value()`` is an ``ImageInput`` or ``None``. A file that does not load
    leaves the value as it was and reports the reason through ``message``.
    """

    def __init__(self, param: ImageParam, parent: QWidget | None = None) -> None:
        super().__init__(param, parent)
        self._value: ImageInput | None = None
        self.button = QToolButton(self)
        self.button.setIcon(qta.icon("mdi6.image-outline"))
        self.button.setText("Choose…")
        self.button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.thumbnail = QLabel(self)
        self.thumbnail.setFixedSize(QSize(THUMBNAIL_SIZE, THUMBNAIL_SIZE))
        self.thumbnail.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.name_label = ElidedLabel(self)
        self.name_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.clear_button = _icon_button("mdi6.close", "Remove the image", self)
        row = self._row()
        row.addWidget(self.button)
        row.addWidget(self.thumbnail)
        row.addWidget(self.name_label, 1)
        row.addWidget(self.clear_button)
        self.button.clicked.connect(self.browse)
        self.clear_button.clicked.connect(lambda: self.set_value(None))
        self._show()

    def browse(self) -> None:
        """Ask for a file (modal file dialog, the one dialog the user opened) and load it."""
        start = str(Path(self._value.source).parent) if self._value and self._value.source else ""
        path, _ = QFileDialog.getOpenFileName(self, f"Choose {self.label.lower()}", start, IMAGE_FILTER)
        if path:
            self.load_path(path)

    def load_path(self, path: str | Path) -> bool:
        """Load ``path`` as the value; on failure report why and keep the old value."""
        try:
            image = load_image(path)
        except (SrDeskError, OSError, ValueError, MemoryError) as exc:
            self.message.emit(f"{self.label}: {' '.join(str(exc).split()) or type(exc).__name__}", "error")
            return False
        self.set_value(ImageInput(image.rgb, image.alpha, source=str(path)))
        return True

    def value(self) -> ImageInput | None:
        return self._value

    def set_placement(self, placement: tuple[float, float, float, float] | None, fitted: bool = False) -> None:
        """Keep where the image was laid on the canvas (``fitted``: the starting box, not moved by the user);
        not a new value, so ``changed`` stays quiet."""
        if self._value is not None:
            self._value = dataclasses.replace(self._value, placement=placement, fitted=fitted)

    def set_value(self, value: Any) -> None:
        if isinstance(value, (str, Path)):
            self.load_path(value)
            return
        if value is not None and not hasattr(value, "rgb"):
            return
        self._value = value
        self._show()
        self.changed.emit(self._value)

    def _show(self) -> None:
        value = self._value
        self.clear_button.setEnabled(value is not None)
        if value is None:
            self.thumbnail.clear()
            self.thumbnail.setPixmap(qta.icon("mdi6.image-off-outline", color="gray").pixmap(24, 24))
            self.name_label.setText("required" if getattr(self.param, "required", True) else "none")
            self.name_label.setEnabled(False)
            return
        name = Path(value.source).name if value.source else "image"
        width, height = value.size
        self.name_label.setText(f"{name} ({width}×{height})")
        self.name_label.setToolTip(value.source)
        self.name_label.setEnabled(True)
        self.thumbnail.setPixmap(_thumbnail(value.rgb, THUMBNAIL_SIZE))


def _thumbnail(rgb: Any, side: int) -> QPixmap:
    """A small pixmap of ``rgb``: decimated in numpy first so a huge image costs nothing."""
    height, width = rgb.shape[:2]
    stride = max(1, max(height, width) // (side * 2))
    image = rgb_to_qimage(rgb[::stride, ::stride])
    return QPixmap.fromImage(
        image.scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
    )


# --------------------------------------------------------------------------- #
# Size
# --------------------------------------------------------------------------- #


class SizeWidget(ParamWidget):
    """``SizeParam``: width and height spin boxes with an aspect-ratio lock.

    A side of 0 reads "auto" and makes the value ``None`` (allowed only when
    the declaration's default is ``None``).
    """

    def __init__(self, param: SizeParam, parent: QWidget | None = None) -> None:
        super().__init__(param, parent)
        self._optional = param.default is None
        lowest = 0 if self._optional else 1
        self.width_spin = QSpinBox(self)
        self.height_spin = QSpinBox(self)
        for spin, what in ((self.width_spin, "Width"), (self.height_spin, "Height")):
            spin.setRange(lowest, min(_INT_LIMIT, param.maximum))
            spin.setSuffix(" px")
            spin.setKeyboardTracking(False)
            spin.setToolTip(f"{what} in pixels" + (" (0: automatic)" if self._optional else ""))
            if self._optional:
                spin.setSpecialValueText("auto")
        self.lock = _icon_button("mdi6.link-variant-off", "Keep the aspect ratio", self)
        self.lock.setCheckable(True)
        row = self._row()
        row.addWidget(self.width_spin, 1)
        row.addWidget(QLabel("×", self))
        row.addWidget(self.height_spin, 1)
        row.addWidget(self.lock)
        self._ratio: float | None = None
        self.set_value(param.default)
        self.lock.toggled.connect(self._lock_toggled)
        self.width_spin.valueChanged.connect(lambda _v: self._side_changed(self.width_spin))
        self.height_spin.valueChanged.connect(lambda _v: self._side_changed(self.height_spin))

    def _lock_toggled(self, on: bool) -> None:
        self.lock.setIcon(qta.icon("mdi6.link-variant" if on else "mdi6.link-variant-off"))
        w, h = self.width_spin.value(), self.height_spin.value()
        self._ratio = h / w if on and w > 0 and h > 0 else None

    def set_aspect_locked(self, on: bool) -> None:
        self.lock.setChecked(on)

    def _side_changed(self, source: QSpinBox) -> None:
        if self.lock.isChecked() and self._ratio is not None and source.value() > 0:
            if source is self.width_spin:
                other, value = self.height_spin, source.value() * self._ratio
            else:
                other, value = self.width_spin, source.value() / self._ratio
            other.blockSignals(True)
            other.setValue(max(1, round(value)))
            other.blockSignals(False)
        self.changed.emit(self.value())

    def value(self) -> tuple[int, int] | None:
        w, h = self.width_spin.value(), self.height_spin.value()
        if w < 1 or h < 1:
            return None
        return (w, h)

    def set_value(self, value: Any) -> None:
        try:
            w, h = (int(v) for v in value) if value is not None else (0, 0)
        except (TypeError, ValueError):
            return
        for spin, side in ((self.width_spin, w), (self.height_spin, h)):
            spin.blockSignals(True)
            spin.setValue(side)
            spin.blockSignals(False)
        if self.lock.isChecked():
            self._lock_toggled(True)
        self.changed.emit(self.value())


# --------------------------------------------------------------------------- #
# Anything else: text through param.parse
# --------------------------------------------------------------------------- #


class LineEditWidget(ParamWidget):
    """A parameter type this GUI does not know: a line edit read with ``param.parse``.

    ``value()`` is the last text that parsed (the default at first); text
    that does not parse is marked and its reason shown in the tooltip.
    """

    def __init__(self, param: Param, parent: QWidget | None = None) -> None:
        super().__init__(param, parent)
        self.edit = QLineEdit(self)
        self.edit.setPlaceholderText(param.kind)
        self._row().addWidget(self.edit, 1)
        self._value: Any = param.default
        self._error: str | None = None
        self.edit.setText(_as_text(param.default))
        self.edit.editingFinished.connect(self._commit)

    def _commit(self) -> None:
        try:
            value = self.param.parse(self.edit.text())
        except (ParamError, ValueError, TypeError) as exc:
            self._error = " ".join(str(exc).split())
            self.edit.setStyleSheet("QLineEdit { border: 1px solid #d9534f; }")
            self.edit.setToolTip(f"{self.param.help}\n{self._error}".strip())
            self.message.emit(self._error, "warning")
            return
        self._error = None
        self.edit.setStyleSheet("")
        self.edit.setToolTip("")
        if value != self._value:
            self._value = value
            self.changed.emit(value)

    @property
    def error(self) -> str | None:
        return self._error

    def value(self) -> Any:
        return self._value

    def set_value(self, value: Any) -> None:
        """Text is parsed; any other value is taken as it is when ``param.validate`` accepts it."""
        if isinstance(value, str):
            self.edit.setText(value)
            self._commit()
            return
        try:
            value = self.param.validate(value)
        except (ParamError, ValueError, TypeError):
            return
        self.edit.setText(_as_text(value))
        self._error = None
        self.edit.setStyleSheet("")
        if value != self._value:
            self._value = value
            self.changed.emit(value)


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, tuple) and len(value) == 2:
        return f"{value[0]}x{value[1]}"
    return str(value)


# --------------------------------------------------------------------------- #
# Factory
# --------------------------------------------------------------------------- #

WidgetFactory = Callable[[Param], ParamWidget]

# Checked in order: SeedParam before anything numeric, subclasses before bases.
_FACTORIES: list[tuple[type[Param], WidgetFactory]] = [
    (SeedParam, SeedWidget),
    (BoolParam, BoolWidget),
    (IntParam, NumberWidget),  # type: ignore[list-item]
    (FloatParam, NumberWidget),  # type: ignore[list-item]
    (ChoiceParam, ChoiceWidget),  # type: ignore[list-item]
    (ImageParam, ImageWidget),  # type: ignore[list-item]
    (SizeParam, SizeWidget),  # type: ignore[list-item]
]


def register_param_widget(param_type: type[Param], factory: WidgetFactory) -> None:
    """Use ``factory`` for ``param_type`` (and its subclasses) ahead of the built-in widgets."""
    _FACTORIES.insert(0, (param_type, factory))


def make_param_widget(param: Param, parent: QWidget | None = None) -> ParamWidget:
    """The editor widget for ``param``; unknown kinds get a line edit using ``param.parse``."""
    for param_type, factory in _FACTORIES:
        if isinstance(param, param_type):
            widget = factory(param)
            break
    else:
        widget = LineEditWidget(param)
    if parent is not None:
        widget.setParent(parent)
    return widget
