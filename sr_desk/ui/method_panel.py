"""The method panel: pick a task and a method, set its parameters, run it.

Everything method-specific comes from the plugins' declarations: the task
tabs from ``Method.task``, the scale choices from ``Capabilities``, the
parameter form from ``Method.params`` through
:func:`sr_desk.ui.params_widgets.make_param_widget`. A newly installed
plugin gets its panel without a line of GUI code.

The panel only asks: ``run_requested(method, spec)`` carries a
``JobSpec`` built from the widgets (``region`` left ``None``: the window
fills it from the selection when :meth:`MethodPanel.selection_only` is on).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from typing import Any

import qtawesome as qta
from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QTabBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from sr_desk.api import DETAIL, FloatParam, ImageParam, Method, ParamError, SeedParam, Task
from sr_desk.core.errors import SrDeskError
from sr_desk.engine.pipeline import JobSpec, target_size
from sr_desk.engine.plugins import PluginHost, default_upscaler
from sr_desk.ui.params_widgets import ImageWidget, ParamWidget, SeedWidget, make_param_widget

__all__ = ["LIVE_DELAY_MS", "PRESET_SCALES", "SIZE_PRESETS", "MethodPanel"]

PRESET_SCALES = (2, 3, 4, 8)
#: Target sizes offered by name in "Target size" mode: (label, width, height); "fit" keeps the picture's shape.
SIZE_PRESETS = (("1080p", 1920, 1080), ("1440p", 2560, 1440), ("4K", 3840, 2160), ("8K", 7680, 4320))
#: The panel's width in average characters, the same for every method: wide enough for the widest form.
PANEL_CHARS = 60
#: Quiet time after the last slider move before a live run is asked for.
LIVE_DELAY_MS = 150
_CUSTOM = "custom"
_SIZE = "size"
_MAX_SIDE = 65535

# The job's own seed, shown like any SeedParam for methods that use seeds.
_JOB_SEED = SeedParam(
    name="seed",
    label="Seed",
    help="The run's random seed: the same seed and settings give the same result. "
    "Random draws a new one each run (the result's seed is kept in the history).",
)


def _task_title(task: Task) -> str:
    return task.value.replace("_", " ").capitalize()


def _secondary(label: QLabel) -> None:
    """Secondary text: a point smaller, in the normal text colour (palette(mid) grey on the light grey
    window was unreadable, about 2:1 contrast)."""
    font = label.font()
    font.setPointSizeF(max(7.0, font.pointSizeF() - 1))
    label.setFont(font)


#: Most seeds one Run may try (each is a full run, one after another).
MAX_VARIATIONS = 8
CANCELLING = "cancelling… (after the current step)"


class MethodPanel(QWidget):
    """Task tabs, method choice, scale, options, the parameter form, Run and Cancel, progress.

    ``source`` is a ``PluginHost`` (its working methods are listed) or a
    list of methods.

    Signals: ``run_requested(Method, JobSpec)``, ``cancel_requested()``,
    ``method_changed(Method)``, ``message(text, level)`` (problems to show
    in the notification bar: level is "info", "warning" or "error").
    """

    run_requested = Signal(object, object)
    cancel_requested = Signal()
    method_changed = Signal(object)
    message = Signal(str, str)
    placeable_image_changed = Signal(str, object)

    def __init__(self, source: PluginHost | Iterable[Method], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._host = source if isinstance(source, PluginHost) else None
        self._methods: list[Method] = []
        self._method: Method | None = None
        self._memory: dict[str, dict[str, Any]] = {}
        self._last_in_task: dict[Task, str] = {}
        self._doc_size: tuple[int, int] | None = None
        self._running = False
        self._cancelling = False
        self._building = False
        self._selection_wanted = True
        self.param_widgets: dict[str, ParamWidget] = {}

        self._live_timer = QTimer(self)
        self._live_timer.setSingleShot(True)
        self._live_timer.setInterval(LIVE_DELAY_MS)
        self._live_timer.timeout.connect(self._live_run)

        self._build_ui()
        self.set_methods(source.methods() if isinstance(source, PluginHost) else list(source))

    # ------------------------------------------------------------------ UI

    def _build_ui(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(6, 6, 6, 6)

        self.task_tabs = QTabBar(self)
        self.task_tabs.setExpanding(False)
        self.task_tabs.setDrawBase(False)
        self._tab_tasks: list[Task] = list(Task)  # tab index -> task (tab data would turn it into a str)
        for task in self._tab_tasks:
            self.task_tabs.addTab(_task_title(task))
        outer.addWidget(self.task_tabs)

        self.method_combo = QComboBox(self)
        self.method_combo.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        outer.addWidget(self.method_combo)
        self.description = QLabel(self)
        self.description.setWordWrap(True)
        _secondary(self.description)
        outer.addWidget(self.description)

        general = QFormLayout()
        general.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        outer.addLayout(general)

        # scale: presets, a free factor (any-scale methods) or an exact size
        self.scale_box = QWidget(self)
        scale_row = QHBoxLayout(self.scale_box)
        scale_row.setContentsMargins(0, 0, 0, 0)
        self.scale_combo = QComboBox(self.scale_box)
        self.scale_spin = QDoubleSpinBox(self.scale_box)
        self.scale_spin.setRange(0.1, 32.0)
        self.scale_spin.setDecimals(2)
        self.scale_spin.setSingleStep(0.25)
        self.scale_spin.setPrefix("×")
        self.scale_spin.setValue(4.0)
        self.size_preset = QComboBox(self.scale_box)
        self.size_preset.setToolTip("A common screen size; the fit box keeps the picture's shape inside it")
        self.size_preset.addItem("Custom", None)
        for label, width, height in SIZE_PRESETS:
            self.size_preset.addItem(f"{label} ({width}×{height})", f"{width}x{height}")
        self.size_width = QSpinBox(self.scale_box)
        self.size_height = QSpinBox(self.scale_box)
        for spin in (self.size_width, self.size_height):
            spin.setRange(1, _MAX_SIDE)
            spin.setSuffix(" px")
        self.size_width.setToolTip("Target width")
        self.size_height.setToolTip("Target height")
        self.fit_check = QCheckBox("fit", self.scale_box)
        self.fit_check.setToolTip("Keep the aspect ratio inside the target box")
        self.fit_check.setChecked(True)
        scale_row.addWidget(self.scale_combo)
        scale_row.addWidget(self.scale_spin)
        scale_row.addWidget(self.size_preset)
        scale_row.addWidget(self.size_width)
        scale_row.addWidget(self.size_height)
        scale_row.addWidget(self.fit_check)
        scale_row.addStretch(1)
        self.scale_label = QLabel("Scale", self)
        general.addRow(self.scale_label, self.scale_box)
        self.result_label = QLabel(self)
        self.result_label.setToolTip("The size of the result for the open image")
        _secondary(self.result_label)
        general.addRow("", self.result_label)

        options = QWidget(self)
        options_row = QHBoxLayout(options)
        options_row.setContentsMargins(0, 0, 0, 0)
        self.selection_check = QCheckBox("Selection only", options)
        self.selection_check.setIcon(qta.icon("mdi6.select"))
        self.selection_check.setToolTip("Run the method on the selection only; the rest is enlarged with bicubic")
        self.selection_check.setEnabled(False)
        self.color_lock_check = QCheckBox("Colour lock", options)
        self.color_lock_check.setIcon(qta.icon("mdi6.palette-outline"))
        self.color_lock_check.setToolTip("Keep the result's colours and tones on the input's (fixes colour drift)")
        self.live_check = QCheckBox("Live", options)
        self.live_check.setIcon(qta.icon("mdi6.flash"))
        self.live_check.setToolTip("Run again as soon as a slider moves, so the preview follows it")
        options_row.addWidget(self.selection_check)
        options_row.addWidget(self.color_lock_check)
        options_row.addWidget(self.live_check)
        options_row.addStretch(1)
        general.addRow(options)

        self.seed_widget = SeedWidget(_JOB_SEED, self)
        self.seed_label = QLabel(_JOB_SEED.label, self)
        self.seed_label.setToolTip(_JOB_SEED.help)
        general.addRow(self.seed_label, self.seed_widget)
        self.variations_spin = QSpinBox(self)
        self.variations_spin.setRange(1, MAX_VARIATIONS)
        self.variations_spin.setSpecialValueText("1 seed")
        self.variations_spin.setSuffix(" seeds")
        self.variations_spin.setToolTip(
            "Run this many seeds one after another, then pick the result you like: the seed changes fine "
            "texture (eyes, hair, grain)")
        self.variations_label = QLabel("Try", self)
        self.variations_label.setToolTip(self.variations_spin.toolTip())
        self.variations_label.setBuddy(self.variations_spin)
        general.addRow(self.variations_label, self.variations_spin)

        self.params_group = QGroupBox("Parameters", self)
        self.form = QFormLayout(self.params_group)
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        outer.addWidget(self.params_group)
        self.advanced_toggle = QToolButton(self)
        self.advanced_toggle.setCheckable(True)
        self.advanced_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced_toggle.setAutoRaise(True)
        self.advanced_toggle.setToolTip("Settings for those who know the method; the defaults are the measured best")
        outer.addWidget(self.advanced_toggle)
        self.advanced_group = QGroupBox(self)
        self.advanced_form = QFormLayout(self.advanced_group)
        self.advanced_form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.advanced_group.setVisible(False)
        outer.addWidget(self.advanced_group)
        self.advanced_toggle.toggled.connect(self._advanced_toggled)

        buttons = QHBoxLayout()
        self.run_button = QPushButton(qta.icon("mdi6.play"), "Run", self)
        self.run_button.setDefault(True)
        self.cancel_button = QPushButton(qta.icon("mdi6.stop"), "Cancel", self)
        self.cancel_button.setEnabled(False)
        buttons.addWidget(self.run_button, 1)
        buttons.addWidget(self.cancel_button)
        outer.addLayout(buttons)

        self.progress_bar = QProgressBar(self)
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(0)
        self.progress_bar.setTextVisible(True)
        self.progress_bar.setFormat("")
        outer.addWidget(self.progress_bar)

        device_row = QHBoxLayout()
        chip = QLabel(self)
        chip.setPixmap(qta.icon("mdi6.chip", color="gray").pixmap(14, 14))
        self.device_label = QLabel("device: chosen at the first run", self)
        _secondary(self.device_label)
        device_row.addWidget(chip)
        device_row.addWidget(self.device_label, 1)
        outer.addLayout(device_row)
        outer.addStretch(1)

        self.task_tabs.currentChanged.connect(self._task_changed)
        self.method_combo.currentIndexChanged.connect(self._method_index_changed)
        self.scale_combo.currentIndexChanged.connect(self._scale_mode_changed)
        self.scale_spin.valueChanged.connect(lambda _v: self._remember_general())
        self.size_width.valueChanged.connect(lambda _v: self._size_changed())
        self.size_height.valueChanged.connect(lambda _v: self._size_changed())
        self.size_preset.currentIndexChanged.connect(self._size_preset_chosen)
        self.fit_check.toggled.connect(lambda _v: self._remember_general())
        self.seed_widget.changed.connect(lambda _v: self._remember_general())
        self.variations_spin.valueChanged.connect(lambda _v: self._remember_general())
        self.selection_check.toggled.connect(self._selection_toggled)
        self.live_check.toggled.connect(self._live_toggled)
        self.run_button.clicked.connect(self.request_run)
        self.cancel_button.clicked.connect(self._cancel_clicked)

    # ------------------------------------------------------------- methods

    def set_methods(self, methods: Iterable[Method]) -> None:
        """Show these methods (after a plugin reload, say); keeps the current one when it is still there."""
        current = self._method.id if self._method else None
        self._methods = list(methods)
        present = {m.task for m in self._methods}
        for index, task in enumerate(self._tab_tasks):
            self.task_tabs.setTabEnabled(index, task in present)
            self.task_tabs.setTabToolTip(index, "" if task in present else "no method for this task is installed")
        target = (
            next((m for m in self._methods if m.id == current), None)
            or default_upscaler(self._methods)
            or (self._methods[0] if self._methods else None)
        )
        if target is None:
            self._method = None
            self.method_combo.clear()
            self._rebuild()
            return
        self._method = None  # force a rebuild even when the id is unchanged
        self.select_method(target.id)

    def reload(self) -> None:
        """Re-read the methods of the plugin host given at construction."""
        if self._host is not None:
            self.set_methods(self._host.methods())

    def methods(self) -> list[Method]:
        return list(self._methods)

    def select_method(self, method_id: str) -> None:
        """Switch to the task and method ``method_id``; unknown ids are ignored."""
        method = next((m for m in self._methods if m.id == method_id), None)
        if method is None:
            return
        tab = self._tab_tasks.index(method.task)
        self._last_in_task[method.task] = method.id
        if self.task_tabs.currentIndex() != tab:
            self.task_tabs.setCurrentIndex(tab)  # fills the combo with the last method of the task
        else:
            self._fill_method_combo(method.task)
        index = self.method_combo.findData(method.id)
        if index >= 0 and index != self.method_combo.currentIndex():
            self.method_combo.setCurrentIndex(index)
        elif self._method is None or self._method.id != method.id:
            self._switch_to(method)

    def selected_method(self) -> Method | None:
        return self._method

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        """One width for every method, so that the dock (and the canvas beside it) keeps still on a switch.

        The width a form asks for follows its longest label and slider; the
        dock followed it, and the canvas beside it jumped at every switch.
        """
        hint = super().sizeHint()
        width = max(self.minimumSizeHint().width(), self.fontMetrics().averageCharWidth() * PANEL_CHARS)
        return QSize(width, hint.height())

    def current_task(self) -> Task:
        return self._tab_tasks[self.task_tabs.currentIndex()]

    def _task_changed(self, index: int) -> None:
        if not 0 <= index < len(self._tab_tasks):
            return
        task = self._tab_tasks[index]
        self._fill_method_combo(task)
        method_id = self.method_combo.currentData()
        method = next((m for m in self._methods if m.id == method_id), None)
        if method is not None and (self._method is None or self._method.id != method.id):
            self._switch_to(method)

    def _fill_method_combo(self, task: Task) -> None:
        wanted = self._last_in_task.get(task)
        self.method_combo.blockSignals(True)
        self.method_combo.clear()
        for method in self._methods:
            if method.task is task:
                self.method_combo.addItem(method.name, method.id)
                self.method_combo.setItemData(
                    self.method_combo.count() - 1, method.description or method.name, Qt.ItemDataRole.ToolTipRole
                )
        index = self.method_combo.findData(wanted) if wanted else -1
        self.method_combo.setCurrentIndex(max(0, index) if self.method_combo.count() else -1)
        self.method_combo.blockSignals(False)

    def _method_index_changed(self, _index: int) -> None:
        method = next((m for m in self._methods if m.id == self.method_combo.currentData()), None)
        if method is not None:
            self._switch_to(method)

    def _switch_to(self, method: Method) -> None:
        self._live_timer.stop()
        if not self._running:
            self.set_progress(0.0, "")  # the last job's "done" was about another method
        self._method = method
        self._last_in_task[method.task] = method.id
        self._rebuild()
        self.method_changed.emit(method)

    # ----------------------------------------------------------- the form

    def _rebuild(self) -> None:
        """Build the scale choices, options and parameter form of the selected method."""
        self._building = True
        try:
            for form in (self.form, self.advanced_form):
                while form.rowCount():
                    form.removeRow(0)  # deletes the label and the widget
            self.param_widgets = {}
            method = self._method
            has_method = method is not None
            self.run_button.setEnabled(has_method and not self._running)
            basic = [p for p in method.param_set if not p.advanced] if method else []
            advanced = [p for p in method.param_set if p.advanced] if method else []
            self.params_group.setVisible(bool(basic))
            self.advanced_toggle.setVisible(bool(advanced))
            self.advanced_toggle.setText(f"Advanced ({len(advanced)})")
            if method is None:
                self.description.setText("No method is installed for this task.")
                self.method_combo.setToolTip("")
                for widget in (self.scale_label, self.scale_box, self.seed_label, self.seed_widget, self.live_check,
                               self.variations_label, self.variations_spin):
                    widget.setVisible(False)
                return
            self.description.setText(method.description)
            self.method_combo.setToolTip(method.description)
            memory = self._memory.setdefault(method.id, {})
            remembered = memory.setdefault("params", {})

            for param in method.param_set:
                group, form = (
                    (self.advanced_group, self.advanced_form) if param.advanced else (self.params_group, self.form)
                )
                widget = make_param_widget(param, group)
                if param.name in remembered:
                    widget.set_value(remembered[param.name])
                label = QLabel(param.label, group)
                label.setToolTip(param.help)
                label.setBuddy(widget)
                form.addRow(label, widget)
                self.param_widgets[param.name] = widget
                widget.changed.connect(lambda value, p=param: self._param_changed(p, value))
                widget.message.connect(self.message.emit)

            self._advanced_toggled(self.advanced_toggle.isChecked())
            self._fill_scales(method, memory)
            seeds = method.capabilities.seeds
            self.seed_label.setVisible(seeds)
            self.seed_widget.setVisible(seeds)
            self.seed_widget.set_value(memory.get("seed"))
            tries = seeds and method.task is not Task.INTERPOLATE  # interpolation has its two seeds already
            self.variations_label.setVisible(tries)
            self.variations_spin.setVisible(tries)
            self.variations_spin.setValue(memory.get("variations", 1))
            self.live_check.setVisible(_has_live_slider(method))
            if not _has_live_slider(method):
                self.live_check.setChecked(False)
        finally:
            self._building = False
        self.announce_placeable()
        self._show_result_size()

    def _placeable_param(self) -> ImageParam | None:
        method = self._method
        if method is None:
            return None
        return next((p for p in method.param_set if isinstance(p, ImageParam) and p.placeable), None)

    def announce_placeable(self) -> None:
        """Emit ``placeable_image_changed`` for the current method (``"", None`` when it has no such image)."""
        param = self._placeable_param()
        widget = self.param_widgets.get(param.name) if param is not None else None
        if param is None or widget is None:
            self.placeable_image_changed.emit("", None)
        else:
            self.placeable_image_changed.emit(param.name, widget.value())

    def set_placement(self, name: str, placement: tuple[float, float, float, float] | None,
                      fitted: bool = False) -> None:
        """Where the placeable image ``name`` lies on the canvas (sent as ``ImageInput.placement``); ``fitted``:
        the starting box, which the user has not moved (``ImageInput.fitted``)."""
        widget = self.param_widgets.get(name)
        if not isinstance(widget, ImageWidget) or widget.value() is None or self._method is None:
            return
        widget.set_placement(placement, fitted)
        self._memory.setdefault(self._method.id, {}).setdefault("params", {})[name] = widget.value()

    def _shows_scale(self, method: Method) -> bool:
        return method.capabilities.scales != (1,)

    def _fill_scales(self, method: Method, memory: dict[str, Any]) -> None:
        caps = method.capabilities
        visible = self._shows_scale(method)
        self.scale_label.setVisible(visible)
        self.scale_box.setVisible(visible)
        combo = self.scale_combo
        combo.blockSignals(True)
        combo.clear()
        scales = sorted({*PRESET_SCALES, *(caps.scales or ())} - {1})
        for scale in scales:
            native = caps.scales is not None and scale in caps.scales
            combo.addItem(f"×{scale}" + (" (native)" if native else ""), float(scale))
            if caps.scales is not None and not native:
                combo.setItemData(
                    combo.count() - 1,
                    f"runs at ×{caps.native_scale_for(scale):g} and resizes with Lanczos",
                    Qt.ItemDataRole.ToolTipRole,
                )
        if caps.arbitrary_scale:
            combo.addItem("Custom factor", _CUSTOM)
        combo.addItem("Target size", _SIZE)
        wanted = memory.get("scale", float(caps.default_scale))
        index = combo.findData(wanted)
        if index < 0:  # a default outside the presets: a custom factor
            index = combo.findData(_CUSTOM)
            if index >= 0 and isinstance(wanted, float):
                memory.setdefault("custom", wanted)
        combo.setCurrentIndex(max(0, index))
        combo.blockSignals(False)
        self.scale_spin.setValue(memory.get("custom", float(caps.default_scale)))
        size = memory.get("size") or self._default_target(caps.default_scale)
        self.size_width.setValue(size[0])
        self.size_height.setValue(size[1])
        self.fit_check.setChecked(memory.get("fit", True))
        self._scale_mode_changed()

    def _default_target(self, scale: float) -> tuple[int, int]:
        if self._doc_size is None:
            return (1920, 1080)
        return (
            min(_MAX_SIDE, max(1, round(self._doc_size[0] * scale))),
            min(_MAX_SIDE, max(1, round(self._doc_size[1] * scale))),
        )

    def _scale_mode_changed(self, _index: int = 0) -> None:
        mode = self.scale_combo.currentData()
        self.scale_spin.setVisible(mode == _CUSTOM)
        for widget in (self.size_preset, self.size_width, self.size_height, self.fit_check):
            widget.setVisible(mode == _SIZE)
        self._remember_general()

    def _size_preset_chosen(self, _index: int = 0) -> None:
        key = self.size_preset.currentData()
        if key is not None:
            width, height = (int(side) for side in key.split("x"))
            self.size_width.setValue(width)
            self.size_height.setValue(height)

    def _size_changed(self) -> None:
        """Show the preset the two boxes now match, or Custom."""
        index = self.size_preset.findData(f"{self.size_width.value()}x{self.size_height.value()}")
        self.size_preset.blockSignals(True)
        self.size_preset.setCurrentIndex(max(0, index))
        self.size_preset.blockSignals(False)
        self._remember_general()

    def _remember_general(self) -> None:
        if self._building or self._method is None:
            return
        self._show_result_size()
        memory = self._memory.setdefault(self._method.id, {})
        memory["scale"] = self.scale_combo.currentData()
        memory["custom"] = float(self.scale_spin.value())
        memory["size"] = (self.size_width.value(), self.size_height.value())
        memory["fit"] = self.fit_check.isChecked()
        memory["seed"] = self.seed_widget.value()
        memory["variations"] = self.variations_spin.value()

    def _param_changed(self, param: Any, value: Any) -> None:
        if self._building or self._method is None:
            return
        self._memory.setdefault(self._method.id, {}).setdefault("params", {})[param.name] = value
        if isinstance(param, ImageParam) and param.placeable:
            self.placeable_image_changed.emit(param.name, value)
        if isinstance(param, FloatParam) and self.live():
            self._live_timer.start()

    # ------------------------------------------------------------- options

    def set_selection_available(self, available: bool) -> None:
        """Enable "selection only" when the document has a selection."""
        self.selection_check.blockSignals(True)
        self.selection_check.setEnabled(available)
        self.selection_check.setChecked(available and self._selection_wanted)
        self.selection_check.blockSignals(False)

    def _selection_toggled(self, on: bool) -> None:
        self._selection_wanted = on

    def selection_only(self) -> bool:
        """True when the run should be limited to the selection (the window fills ``JobSpec.region``)."""
        return self.selection_check.isEnabled() and self.selection_check.isChecked()

    def set_document_size(self, size: tuple[int, int] | None) -> None:
        """The open document's ``(width, height)``: target sizes start from it times the scale."""
        self._doc_size = tuple(size) if size else None  # type: ignore[assignment]
        self._show_result_size()

    def result_size(self) -> tuple[int, int] | None:
        """The size the current settings make of the open image (None without an image or a scale)."""
        method, spec = self._method, self.current_spec()
        if method is None or spec is None or self._doc_size is None or not self._shows_scale(method):
            return None
        try:
            return target_size(self._doc_size, spec, method)
        except SrDeskError:
            return None

    def _show_result_size(self) -> None:
        size = self.result_size()
        self.result_label.setVisible(size is not None)
        if size is not None:
            self.result_label.setText(f"Result: {size[0]}×{size[1]} px ({size[0] * size[1] / 1e6:.1f} MP)")

    def _live_toggled(self, on: bool) -> None:
        if on and self._method is not None and self._method.capabilities.seeds and self.seed_widget.is_random():
            # The preview must follow the slider, not jump with a fresh seed every run.
            self.seed_widget.roll()
        self.run_button.setEnabled(self._method is not None and (not self._running or on))

    def variations(self) -> int:
        """How many seeds a Run tries (1: an ordinary run); only for methods with seeds."""
        method = self._method
        if method is None or not method.capabilities.seeds or method.task is Task.INTERPOLATE:
            return 1
        return int(self.variations_spin.value())

    def live(self) -> bool:
        """True when the live checkbox is on (methods with a slider worth following: see ``_has_live_slider``)."""
        method = self._method
        return method is not None and _has_live_slider(method) and self.live_check.isChecked()

    # ------------------------------------------------------------ the spec

    def current_spec(self) -> JobSpec | None:
        """The job the widgets describe (``region`` stays ``None``); ``None`` without a method."""
        method = self._method
        if method is None:
            return None
        scale: float | None = float(method.capabilities.default_scale)
        size: tuple[int, int] | None = None
        fit = False
        if self._shows_scale(method):
            mode = self.scale_combo.currentData()
            if mode == _SIZE:
                scale, size, fit = None, (self.size_width.value(), self.size_height.value()), self.fit_check.isChecked()
            elif mode == _CUSTOM:
                scale = float(self.scale_spin.value())
            else:
                scale = float(mode)
        seed = self.seed_widget.value() if method.capabilities.seeds else None
        params = {name: widget.value() for name, widget in self.param_widgets.items()}
        return JobSpec(
            method_id=method.id,
            scale=scale,
            size=size,
            fit=fit,
            params=params,
            seed=seed,
            color_lock=self.color_lock_check.isChecked(),
        )

    def request_run(self, *, draft: bool = False) -> bool:
        """Validate the form and emit ``run_requested``; a bad value is reported through ``message``.

        ``draft``: a live-slider run, which the method may do faster and coarser.
        """
        method = self._method
        spec = self.current_spec()
        if method is None or spec is None:
            return False
        if draft:
            spec = dataclasses.replace(spec, draft=True)
        try:
            method.param_set.resolve(dict(spec.params))
        except ParamError as exc:
            self.message.emit(f"{method.name}: {' '.join(str(exc).split())}", "warning")
            return False
        self.run_requested.emit(method, spec)
        return True

    def _live_run(self) -> None:
        if self.live() and self._method is not None:
            if self._method.capabilities.seeds and self.seed_widget.is_random():
                self.seed_widget.roll()
            self.request_run(draft=True)

    # ------------------------------------------------------ job feedback

    def _advanced_toggled(self, shown: bool) -> None:
        """Unfold or fold the advanced parameters (the choice holds across methods)."""
        self.advanced_toggle.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)
        self.advanced_group.setVisible(shown and self.advanced_form.rowCount() > 0)

    def _cancel_clicked(self) -> None:
        """Say at once that the job is stopping: it ends after the method's current step."""
        self._cancelling = True
        self.cancel_button.setEnabled(False)
        self.progress_bar.setFormat(CANCELLING)
        self.cancel_requested.emit()

    def set_running(self, running: bool) -> None:
        """Run is disabled while a job runs (except in live mode); Cancel only then."""
        self._running = running
        self._cancelling = False
        self.run_button.setEnabled(self._method is not None and (not running or self.live()))
        self.cancel_button.setEnabled(running)
        if running:
            self.set_progress(0.0, "starting…")

    def is_running(self) -> bool:
        return self._running

    def set_progress(self, fraction: float, text: str = "") -> None:
        self.progress_bar.setValue(round(min(1.0, max(0.0, fraction)) * 1000))
        if self._cancelling:
            text = CANCELLING  # progress still arrives until the step ends; the user must see Cancel took
        # QProgressBar substitutes %p, %v and %m (and has no escape): break those up invisibly.
        self.progress_bar.setFormat(re.sub(r"%([pvm])", "%\u200b\\1", text))

    def set_device(self, text: str) -> None:
        self.device_label.setText(text)
        self.device_label.setToolTip(f"Methods run on: {text}")

    # -------------------------------------------------------------- memory

    def remembered_values(self, method_id: str) -> dict[str, Any]:
        """The parameter values last used with ``method_id`` (those changed from the defaults)."""
        return dict(self._memory.get(method_id, {}).get("params", {}))

    def set_param_values(self, values: dict[str, Any]) -> None:
        """Set parameters of the current method by name (unknown names are ignored)."""
        for name, value in values.items():
            widget = self.param_widgets.get(name)
            if widget is not None:
                widget.set_value(value)

    def set_seed(self, seed: int | None) -> None:
        self.seed_widget.set_value(seed)


def _has_live_slider(method: Method) -> bool:
    """Interpolation's blend, and the Detail control of any method that declares it, rerun live when ticked.

    A user moves Detail to see how much texture suits the picture: a quick
    draft at each stop of the slider shows it without pressing Run each time.
    """
    return method.task is Task.INTERPOLATE or method.param_set.get(DETAIL) is not None
