"""The method panel is built from declarations alone: a new plugin's method gets its form for free."""

from __future__ import annotations

import pytest

from sr_desk.api import Capabilities, ChoiceParam, FloatParam, IntParam, Method, Task, hookimpl
from sr_desk.engine.pipeline import JobSpec
from sr_desk.engine.plugins import PluginHost
from sr_desk.ui.method_panel import MethodPanel
from sr_desk.ui.params_widgets import ChoiceWidget, NumberWidget, SizeWidget
from tests.ui_widgets import fake_any_scale, fake_fusion, fake_interpolation, fake_upscaler, stepping_run


@pytest.fixture
def panel(qtbot):
    widget = MethodPanel([fake_upscaler(), fake_any_scale(), fake_fusion(), fake_interpolation()])
    qtbot.addWidget(widget)
    return widget


def form_labels(panel: MethodPanel) -> list[str]:
    role = panel.form.ItemRole.LabelRole
    return [panel.form.itemAt(row, role).widget().text() for row in range(panel.form.rowCount())]


def test_tasks_methods_and_form_come_from_the_declarations(panel):
    titles = [panel.task_tabs.tabText(i) for i in range(panel.task_tabs.count())]
    assert titles == ["Upscale", "Fuse", "Interpolate"]
    assert panel.selected_method().id == "fake-up"
    assert [panel.method_combo.itemText(i) for i in range(panel.method_combo.count())] == [
        "Fake upscaler",
        "Fake any-scale",
    ]
    assert form_labels(panel) == ["Steps", "Strength", "Sharpen", "Sampler"]
    assert panel.param_widgets["steps"].toolTip() == "How many steps"
    assert panel.description.text() == "A fake method for tests."
    assert not panel.seed_widget.isHidden()  # capabilities.seeds
    assert not panel.scale_box.isHidden()
    assert panel.live_check.isHidden()


def test_switching_methods_rebuilds_the_form(panel):
    panel.select_method("fake-fuse")
    assert panel.current_task() is Task.FUSE
    assert form_labels(panel) == ["Donor", "Strength"]
    assert panel.scale_box.isHidden()  # scale 1 only
    panel.select_method("fake-any")
    assert form_labels(panel) == ["Tile"]
    assert isinstance(panel.param_widgets["tile"], SizeWidget)
    assert panel.seed_widget.isHidden()


def test_a_new_plugin_method_gets_a_panel_without_code_changes(qtbot):
    class NewPlugin:
        SR_DESK_API_VERSION = "1.0"

        @hookimpl
        def sr_desk_methods(self):
            return [
                Method(
                    id="glow",
                    name="Glow",
                    task=Task.UPSCALE,
                    run=stepping_run(1),
                    params=[
                        FloatParam(name="radius", default=3.0, minimum=0.5, maximum=20.0, step=0.5, decimals=1),
                        ChoiceParam(name="palette", choices=("warm", "cold")),
                        IntParam(name="passes", default=2, minimum=1, maximum=5),
                    ],
                    capabilities=Capabilities(scales=(2,)),
                    description="Makes things glow.",
                )
            ]

    host = PluginHost()
    assert host.register(NewPlugin(), "glow-plugin").ok
    panel = MethodPanel(host)
    qtbot.addWidget(panel)
    assert panel.selected_method().id == "glow"
    assert form_labels(panel) == ["Radius", "Palette", "Passes"]
    assert isinstance(panel.param_widgets["radius"], NumberWidget)
    assert isinstance(panel.param_widgets["palette"], ChoiceWidget)
    panel.param_widgets["radius"].set_value(7.5)
    spec = panel.current_spec()
    assert spec.params == {"radius": 7.5, "palette": "warm", "passes": 2}
    assert spec.scale == 2.0
    assert panel.task_tabs.isTabEnabled(0) and not panel.task_tabs.isTabEnabled(1)


def test_run_requested_carries_a_typed_job_spec(panel, qtbot):
    widgets = panel.param_widgets
    widgets["steps"].set_value(42)
    widgets["strength"].set_value(0.75)
    widgets["sharpen"].set_value(True)
    widgets["sampler"].set_value("euler")
    panel.scale_combo.setCurrentIndex(panel.scale_combo.findData(4.0))
    panel.color_lock_check.setChecked(True)
    panel.seed_widget.set_value(1234)
    with qtbot.waitSignal(panel.run_requested) as blocker:
        panel.run_button.click()
    method, spec = blocker.args
    assert method.id == "fake-up"
    assert isinstance(spec, JobSpec)
    assert spec.params == {"steps": 42, "strength": 0.75, "sharpen": True, "sampler": "euler"}
    assert type(spec.params["steps"]) is int and type(spec.params["strength"]) is float
    assert (spec.scale, spec.size, spec.seed, spec.color_lock, spec.region) == (4.0, None, 1234, True, None)


def test_scale_choices_native_custom_and_target_size(panel):
    texts = [panel.scale_combo.itemText(i) for i in range(panel.scale_combo.count())]
    assert texts == ["×2 (native)", "×3", "×4 (native)", "×8", "Target size"]
    assert panel.current_spec().scale == 2.0  # the method's default
    panel.set_document_size((100, 50))
    panel.select_method("fake-any")
    assert panel.scale_combo.currentData() == 3.0  # the method's default
    assert panel.scale_combo.findData("custom") >= 0  # any-scale methods take a free factor
    panel.scale_combo.setCurrentIndex(panel.scale_combo.findData("custom"))
    panel.scale_spin.setValue(1.5)
    assert panel.current_spec().scale == 1.5
    panel.scale_combo.setCurrentIndex(panel.scale_combo.findData("size"))
    panel.size_width.setValue(300)
    panel.size_height.setValue(200)
    panel.fit_check.setChecked(False)
    spec = panel.current_spec()
    assert (spec.scale, spec.size, spec.fit) == (None, (300, 200), False)
    assert panel.size_preset.currentData() is None  # "Custom"
    panel.size_preset.setCurrentIndex(panel.size_preset.findData("3840x2160"))
    assert panel.current_spec().size == (3840, 2160) and panel.size_preset.currentText() == "4K (3840×2160)"
    panel.size_height.setValue(2000)
    assert panel.size_preset.currentData() is None  # edited by hand: Custom again


def test_values_are_remembered_per_method(panel):
    panel.param_widgets["steps"].set_value(77)
    panel.seed_widget.set_value(99)
    panel.select_method("fake-interp")
    panel.param_widgets["blend"].set_value(0.9)
    panel.select_method("fake-up")
    assert panel.param_widgets["steps"].value() == 77
    assert panel.seed_widget.value() == 99
    assert panel.remembered_values("fake-up") == {"steps": 77}
    panel.select_method("fake-interp")
    assert panel.param_widgets["blend"].value() == 0.9
    assert panel.seed_widget.value() is None  # its own seed, still random


def test_seed_dice_gives_the_spec_a_seed(panel):
    assert panel.current_spec().seed is None
    panel.seed_widget.dice.click()
    seed = panel.current_spec().seed
    assert isinstance(seed, int) and seed >= 0
    panel.seed_widget.random_button.click()
    assert panel.current_spec().seed is None


def test_missing_required_image_is_a_message_not_a_run(panel, qtbot):
    panel.select_method("fake-fuse")
    runs = []
    panel.run_requested.connect(lambda *a: runs.append(a))
    with qtbot.waitSignal(panel.message) as blocker:
        assert not panel.request_run()
    assert "needs an image" in blocker.args[0] and blocker.args[1] == "warning"
    assert runs == []


def test_selection_only_follows_the_document(panel):
    assert not panel.selection_check.isEnabled() and not panel.selection_only()
    panel.set_selection_available(True)
    assert panel.selection_only()
    panel.selection_check.setChecked(False)
    assert not panel.selection_only()
    panel.set_selection_available(False)
    panel.set_selection_available(True)
    assert not panel.selection_only()  # the user's choice is kept


def test_running_state_progress_and_device(panel, qtbot):
    panel.set_running(True)
    assert not panel.run_button.isEnabled() and panel.cancel_button.isEnabled()
    panel.set_progress(0.6, "step 12/20 · 3 s left")
    assert panel.progress_bar.value() == 600
    assert panel.progress_bar.text() == "step 12/20 · 3 s left"
    panel.set_progress(0.5, "50% done, %p not substituted")
    assert panel.progress_bar.text().replace("\u200b", "") == "50% done, %p not substituted"
    with qtbot.waitSignal(panel.cancel_requested):
        panel.cancel_button.click()
    panel.set_progress(0.65, "step 13/20")  # the step that was running ends: still cancelling
    assert panel.progress_bar.text().startswith("cancelling") and not panel.cancel_button.isEnabled()
    panel.set_running(False)
    assert panel.run_button.isEnabled() and not panel.cancel_button.isEnabled()
    panel.set_device("CPU (2 threads)")
    assert panel.device_label.text() == "CPU (2 threads)"


def test_live_slider_reruns_debounced_with_a_fixed_seed(panel, qtbot):
    panel.select_method("fake-interp")
    assert not panel.live_check.isHidden()
    runs = []
    panel.run_requested.connect(lambda method, spec: runs.append(spec))
    panel.live_check.setChecked(True)
    seed = panel.seed_widget.value()
    assert seed is not None  # pinned so the preview follows the slider, not a new seed
    panel.set_running(True)
    assert panel.run_button.isEnabled()  # live: a new run replaces the running one
    slider = panel.param_widgets["blend"].slider
    for position in (10, 20, 30, 40):
        slider.setValue(slider.maximum() * position // 100)
    qtbot.waitUntil(lambda: len(runs) == 1, timeout=2000)
    qtbot.wait(250)
    assert len(runs) == 1  # debounced: one run for the whole drag
    assert runs[0].params["blend"] == pytest.approx(0.4)
    assert runs[0].seed == seed
    assert runs[0].draft  # a quick look; Run renders in full
    panel.request_run()
    assert not runs[-1].draft
    panel.live_check.setChecked(False)
    slider.setValue(slider.maximum())
    qtbot.wait(250)
    assert len(runs) == 2


def test_a_method_with_detail_gets_the_live_switch_and_a_draft_per_stop_of_the_slider(qtbot):
    from sr_desk.api import detail_param

    panel = MethodPanel([fake_upscaler(), fake_upscaler("fake-detail", name="Fake detail",
                                                        params=[detail_param(0.5)])])
    qtbot.addWidget(panel)
    assert panel.live_check.isHidden()  # a plain upscaler: nothing to follow
    panel.select_method("fake-detail")
    assert not panel.live_check.isHidden()
    runs = []
    panel.run_requested.connect(lambda method, spec: runs.append(spec))
    panel.live_check.setChecked(True)
    slider = panel.param_widgets["detail"].slider
    slider.setValue(slider.maximum())
    qtbot.waitUntil(lambda: len(runs) == 1, timeout=2000)
    assert runs[0].params["detail"] == 1.0 and runs[0].draft and runs[0].seed is not None
    panel.select_method("fake-up")
    assert panel.live_check.isHidden() and not panel.live()


def test_no_methods_at_all(qtbot):
    panel = MethodPanel([])
    qtbot.addWidget(panel)
    assert panel.selected_method() is None and panel.current_spec() is None
    assert not panel.run_button.isEnabled()
    panel.set_methods([fake_upscaler()])
    assert panel.selected_method().id == "fake-up" and panel.run_button.isEnabled()


def _contrast(widget) -> float:
    """WCAG contrast of the darkest pixel (the text) against the most common one (the background)."""
    image = widget.grab().toImage()
    linear = lambda v: v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4  # noqa: E731
    lum = []
    for y in range(image.height()):
        for x in range(image.width()):
            c = image.pixelColor(x, y)
            lum.append(round(0.2126 * linear(c.redF()) + 0.7152 * linear(c.greenF()) + 0.0722 * linear(c.blueF()), 3))
    background = max(set(lum), key=lum.count)
    return (max(background, max(lum)) + 0.05) / (min(lum) + 0.05)


def test_the_description_and_device_line_are_readable(panel, qtbot):
    """Issue 19: light grey text on light grey."""
    panel.show()
    panel.set_device("CPU (2 threads)")
    assert _contrast(panel.description) >= 4.5 and _contrast(panel.device_label) >= 4.5
