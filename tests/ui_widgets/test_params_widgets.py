"""Every parameter declaration gets the right widget, and values survive the round trip."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
from PIL import Image
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QLineEdit, QSlider, QSpinBox

from sr_desk.api import BoolParam, ChoiceParam, FloatParam, ImageInput, ImageParam, IntParam, Param, ParamError
from sr_desk.api import SeedParam, SizeParam
from sr_desk.ui.params_widgets import (
    SEED_MAX,
    BoolWidget,
    ChoiceWidget,
    ImageWidget,
    LineEditWidget,
    NumberWidget,
    SeedWidget,
    SizeWidget,
    make_param_widget,
)


@dataclass(frozen=True, kw_only=True)
class RatioParam(Param):
    """A third-party parameter type the GUI has never heard of: ``"16:9"``."""

    kind: ClassVar[str] = "ratio"
    default: tuple[int, int] = (1, 1)

    def validate(self, value):
        if not (isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) and v > 0 for v in value)):
            raise ParamError(f"parameter {self.name!r} must be a ratio like 16:9 (got {value!r})")
        return value

    def parse(self, text):
        try:
            a, b = (int(v) for v in text.split(":"))
        except ValueError:
            raise ParamError(f"parameter {self.name!r} must look like 16:9 (got {text!r})") from None
        return self.validate((a, b))


@pytest.mark.parametrize(
    ("param", "kind", "inner"),
    [
        (IntParam(name="steps", default=20, minimum=1, maximum=100, help="h"), NumberWidget, QSpinBox),
        (FloatParam(name="eta", default=0.5, help="h"), NumberWidget, QDoubleSpinBox),
        (BoolParam(name="flip", help="h"), BoolWidget, QCheckBox),
        (ChoiceParam(name="sampler", choices=("a", "b"), help="h"), ChoiceWidget, QComboBox),
        (SeedParam(name="seed_b", help="h"), SeedWidget, QSpinBox),
        (ImageParam(name="donor", help="h"), ImageWidget, None),
        (SizeParam(name="target", default=(640, 480), help="h"), SizeWidget, QSpinBox),
        (RatioParam(name="ratio", help="h"), LineEditWidget, QLineEdit),
    ],
)
def test_each_declaration_gets_its_widget_with_help_as_tooltip(qtbot, param, kind, inner):
    widget = make_param_widget(param)
    qtbot.addWidget(widget)
    assert isinstance(widget, kind)
    assert widget.toolTip() == "h"
    assert widget.label == param.label
    if inner is not None:
        assert widget.findChildren(inner)


def test_int_slider_and_spin_box_stay_in_sync_and_clamp(qtbot):
    widget = make_param_widget(IntParam(name="steps", default=20, minimum=1, maximum=100, step=1))
    qtbot.addWidget(widget)
    slider = widget.findChild(QSlider)
    assert widget.value() == 20 and isinstance(widget.value(), int)
    with qtbot.waitSignal(widget.changed) as blocker:
        widget.spin.setValue(50)
    assert blocker.args == [50]
    assert slider.value() == widget._position_of(50)
    slider.setValue(slider.maximum())
    assert widget.value() == 100
    widget.set_value(1000)
    assert widget.value() == 100
    widget.set_value(-5)
    assert widget.value() == 1
    assert widget.spin.minimum() == 1 and widget.spin.maximum() == 100


def test_float_widget_takes_range_step_and_decimals_from_the_declaration(qtbot):
    param = FloatParam(name="blend", default=0.25, minimum=-1.0, maximum=2.0, step=0.125, decimals=3)
    widget = make_param_widget(param)
    qtbot.addWidget(widget)
    spin = widget.spin
    assert (spin.minimum(), spin.maximum(), spin.singleStep(), spin.decimals()) == (-1.0, 2.0, 0.125, 3)
    assert widget.value() == 0.25
    widget.slider.setValue(widget.slider.maximum())
    assert widget.value() == 2.0
    widget.set_value(0.3333333)
    assert widget.value() == 0.333
    widget.set_value(99)
    assert widget.value() == 2.0
    param.validate(widget.value())


def test_huge_int_range_still_gets_a_usable_slider(qtbot):
    widget = make_param_widget(IntParam(name="big", default=0, minimum=0, maximum=10**12))
    qtbot.addWidget(widget)
    assert widget.slider.maximum() <= 10_000
    widget.set_value(123)
    assert widget.value() == 123


def test_bool_and_choice_round_trip(qtbot):
    flag = make_param_widget(BoolParam(name="flip", default=True))
    choice = make_param_widget(ChoiceParam(name="mode", choices=("slerp", "linear"), default="linear"))
    qtbot.addWidget(flag)
    qtbot.addWidget(choice)
    assert flag.value() is True and choice.value() == "linear"
    with qtbot.waitSignal(flag.changed):
        flag.set_value(False)
    choice.set_value("slerp")
    assert flag.value() is False and choice.value() == "slerp"
    choice.set_value("nonsense")  # not an option: ignored
    assert choice.value() == "slerp"


def test_seed_widget_random_dice_and_back(qtbot):
    widget = make_param_widget(SeedParam(name="seed_b"))
    qtbot.addWidget(widget)
    assert widget.value() is None and widget.spin.text() == "random"
    assert widget.spin.maximum() == SEED_MAX == 2**31 - 1
    with qtbot.waitSignal(widget.changed):
        widget.dice.click()
    seed = widget.value()
    assert isinstance(seed, int) and 0 <= seed <= SEED_MAX
    widget.set_value(7)
    assert widget.value() == 7 and not widget.is_random()
    widget.random_button.click()
    assert widget.value() is None
    widget.set_value(2**40)
    assert widget.value() == SEED_MAX


def test_size_widget_round_trip_and_aspect_lock(qtbot):
    widget = make_param_widget(SizeParam(name="target", default=(640, 480)))
    qtbot.addWidget(widget)
    assert widget.value() == (640, 480)
    widget.set_aspect_locked(True)
    widget.width_spin.setValue(1280)
    assert widget.value() == (1280, 960)
    widget.height_spin.setValue(240)
    assert widget.value() == (320, 240)
    widget.set_aspect_locked(False)
    widget.width_spin.setValue(100)
    assert widget.value() == (100, 240)


def test_optional_size_reads_none_when_auto(qtbot):
    widget = make_param_widget(SizeParam(name="target"))
    qtbot.addWidget(widget)
    assert widget.value() is None
    widget.set_value((3, 2))
    assert widget.value() == (3, 2)


def test_image_widget_loads_a_file_and_reports_a_bad_one(qtbot, tmp_path):
    path = tmp_path / "donor.png"
    Image.fromarray(np.full((5, 7, 3), 200, np.uint8)).save(path)
    widget = make_param_widget(ImageParam(name="donor", help="Donor"))
    qtbot.addWidget(widget)
    assert widget.value() is None
    with qtbot.waitSignal(widget.changed):
        assert widget.load_path(path)
    value = widget.value()
    assert isinstance(value, ImageInput) and value.size == (7, 5) and value.source == str(path)
    assert "donor.png" in widget.name_label.full_text()
    assert widget.thumbnail.pixmap() is not None and not widget.thumbnail.pixmap().isNull()

    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image at all")
    with qtbot.waitSignal(widget.message) as blocker:
        assert not widget.load_path(bad)  # no exception
    text, level = blocker.args
    assert level == "error" and "broken.png" in text
    assert widget.value() is value  # the previous image stays
    widget.clear_button.click()
    assert widget.value() is None


def test_unknown_param_type_gets_a_line_edit_using_parse(qtbot):
    widget = make_param_widget(RatioParam(name="ratio", help="Aspect"))
    qtbot.addWidget(widget)
    assert widget.value() == (1, 1)
    widget.set_value("16:9")
    assert widget.value() == (16, 9)
    with qtbot.waitSignal(widget.message):
        widget.set_value("wide")
    assert widget.value() == (16, 9) and widget.error and "16:9" in widget.error


def test_unknown_param_takes_typed_values_too(qtbot):
    widget = make_param_widget(RatioParam(name="ratio"))
    qtbot.addWidget(widget)
    widget.set_value((4, 3))  # a remembered value, not text
    assert widget.value() == (4, 3) and widget.error is None


def test_a_long_donor_name_is_elided_instead_of_widening_the_panel(qtbot, tmp_path):
    """Issue 19: a long file name widened the Method panel from 346 to 839 px."""
    short = tmp_path / "a.png"
    long = tmp_path / ("family_reunion_summer_2019_grandparents_garden_" * 3 + ".png")
    for path in (short, long):
        Image.fromarray(np.full((5, 7, 3), 200, np.uint8)).save(path)
    widget = make_param_widget(ImageParam(name="donor", help="Donor"))
    qtbot.addWidget(widget)
    widget.load_path(short)
    narrow = widget.sizeHint().width()
    widget.load_path(long)
    assert widget.sizeHint().width() <= narrow + 200 and widget.minimumSizeHint().width() <= narrow + 200
    widget.resize(300, widget.sizeHint().height())
    assert "\u2026" in widget.name_label.text() and long.name in widget.name_label.full_text()
