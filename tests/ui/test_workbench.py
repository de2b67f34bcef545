"""The editor end to end: open, select, run a plugin's method, see previews, cancel, undo, compare."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from PySide6.QtCore import QPointF, Qt

from sr_desk.api import Capabilities, FloatParam, ImageInput, ImageParam, Method, Task, detail_param, hookimpl
from sr_desk.core.placement import place_image
from sr_desk.core.selection import Selection
from sr_desk.engine.plugins import PluginHost
from sr_desk.ui.workbench import Workbench

STEPS = 4
slow_gate = threading.Event()


def nearest_with_previews(request, context):
    factor = int(request.scale)
    result = np.repeat(np.repeat(request.image, factor, 0), factor, 1) * request.params["gain"]
    for step in range(1, STEPS + 1):
        if request.params["slow"] > 0:
            time.sleep(request.params["slow"])
        context.report(step, STEPS, preview=np.full_like(result, step / STEPS))
    return result


def seeded_x2(request, context):
    """Brightness from the seed, so that each seed's result can be told apart."""
    context.report(1, 1, preview=np.zeros((request.output_size[1], request.output_size[0], 3), np.float32))
    return np.repeat(np.repeat(request.image, 2, 0), 2, 1) * 0 + (request.seed % 10) / 10


placed_donors: list = []


def fuse_paste_donor(request, context):
    donor = request.params["donor"]
    placed_donors.append(donor.placement)
    return place_image(request.image, donor.rgb, donor.placement)


def blend_x2(request, context):
    """An interpolation stand-in: x2 nearest, brightness set by the blend slider."""
    result = np.repeat(np.repeat(request.image, 2, 0), 2, 1) * 0 + request.params["blend"]
    context.report(1, 1, preview=result)
    return result


def detail_x2(request, context):
    """An upscaler with the Detail control: x2 nearest, brightness set by Detail."""
    return np.repeat(np.repeat(request.image, 2, 0), 2, 1) * 0 + request.params["detail"]


def fuse_brightens_mask(request, context):
    context.report(1, 1)
    return request.image * (1 - request.mask[..., None]) + request.mask[..., None]


class FakePlugin:
    """An in-process plugin: the same declarations a pip-installed one makes."""

    SR_DESK_API_VERSION = "1.4"

    @staticmethod
    @hookimpl
    def sr_desk_methods():
        return [
            Method(id="fake-x2", name="Fake x2", task=Task.UPSCALE, run=nearest_with_previews,
                   params=[FloatParam(name="gain", default=1.0, minimum=0.0, maximum=2.0, help="Brightness"),
                           FloatParam(name="slow", default=0.0, minimum=0.0, maximum=1.0)],
                   capabilities=Capabilities(scales=(2,), default_scale=2, previews=True)),
            Method(id="fake-seeded", name="Fake seeded", task=Task.UPSCALE, run=seeded_x2,
                   capabilities=Capabilities(scales=(2,), default_scale=2, previews=True, seeds=True)),
            Method(id="fake-blend", name="Fake blend", task=Task.INTERPOLATE, run=blend_x2,
                   params=[FloatParam(name="blend", default=0.5, minimum=0.0, maximum=1.0)],
                   capabilities=Capabilities(scales=(2,), default_scale=2, previews=True)),
            Method(id="fake-detail", name="Fake detail", task=Task.UPSCALE, run=detail_x2,
                   params=[detail_param(0.5)], capabilities=Capabilities(scales=(2,), default_scale=2)),
            Method(id="fake-fuse", name="Fake fuse", task=Task.FUSE, run=fuse_brightens_mask,
                   capabilities=Capabilities(scales=(1,), default_scale=1, region=True, tiles=False)),
            Method(id="fake-paste", name="Fake paste", task=Task.FUSE, run=fuse_paste_donor,
                   params=[ImageParam(name="donor", placeable=True, help="Pasted where placed")],
                   capabilities=Capabilities(scales=(1,), default_scale=1, region=True, tiles=False)),
        ]


@pytest.fixture
def bench(window, qtbot):
    host = PluginHost()
    record = host.register(FakePlugin(), "fake")
    assert record.ok, record.error
    workbench = Workbench(window, host=host)
    yield workbench
    workbench.shutdown()


def run_and_wait(qtbot, workbench, method_id, **params):
    workbench.panel.select_method(method_id)
    if params:
        workbench.panel.set_param_values(params)
    with qtbot.waitSignal(workbench.controller.finished, timeout=30000):
        workbench.panel.request_run()


def test_upscale_applies_one_undoable_step_with_previews_on_the_canvas(window, bench, make_png, qtbot):
    view = window.open_paths([make_png("a.png", size=(12, 8))])[0]
    before = view.document.image.rgb.copy()
    previews = []
    bench.controller.preview.connect(lambda rgb, box: previews.append(view.canvas.has_preview))
    run_and_wait(qtbot, bench, "fake-x2", gain=1.0)
    assert view.document.image.size == (24, 16)
    assert previews and all(previews)
    assert view.document.history.labels[-1] == "Fake x2 \u00d72"
    window.undo()
    assert np.array_equal(view.document.image.rgb, before)
    window.redo()
    assert view.document.image.size == (24, 16)


def test_cancel_leaves_the_document_exactly_as_it_was(window, bench, make_png, qtbot):
    view = window.open_paths([make_png("a.png", size=(12, 8))])[0]
    image = view.document.image
    bench.panel.select_method("fake-x2")
    bench.panel.set_param_values({"slow": 0.05})
    with qtbot.waitSignal(bench.controller.progress, timeout=30000):
        bench.panel.request_run()
    with qtbot.waitSignal(bench.controller.cancelled, timeout=30000):
        bench.panel.cancel_button.click()
        assert "cancelling" in bench.panel.progress_bar.format()  # said at once, before the step ends
        assert not bench.panel.cancel_button.isEnabled()
    assert view.document.image is image and not view.document.modified
    assert not view.canvas.has_preview


def test_open_an_image_first_goes_away_once_an_image_is_open(window, bench, make_png):
    bench.panel.select_method("fake-x2")
    bench.panel.request_run()
    assert "Open an image first" in window.banner.text()
    window.open_paths([make_png("a.png", size=(12, 8))])
    assert window.banner.text() == ""  # issue 19: the stale banner stayed and hid the tab bar


def test_selection_only_replaces_just_the_selection(window, bench, make_png, qtbot):
    from sr_desk.core.selection import Selection

    view = window.open_paths([make_png("a.png", size=(40, 40), color=(100, 100, 100))])[0]
    document = view.document
    document.set_selection(Selection.rect(document.image.size, (10, 10, 10, 10)), "Rectangle")
    bench.panel.select_method("fake-x2")
    bench.panel.selection_check.setChecked(True)
    run_and_wait(qtbot, bench, "fake-x2", gain=2.0)
    rgb = document.image.rgb
    assert rgb.shape == (80, 80, 3)
    assert rgb[30, 30, 0] > 0.6 and abs(rgb[2, 2, 0] - 100 / 255) < 1e-3  # inside doubled, outside bicubic
    assert document.history.labels[-1].endswith("(selection)")


def test_fusion_needs_a_selection_and_keeps_the_outside(window, bench, make_png, qtbot):
    from sr_desk.core.selection import Selection

    view = window.open_paths([make_png("a.png", size=(32, 32), color=(10, 20, 30))])[0]
    document = view.document
    bench.panel.select_method("fake-fuse")
    bench.panel.request_run()
    assert "select a region first" in window.banner.text()
    before = document.image.rgb.copy()
    document.set_selection(Selection.rect(document.image.size, (8, 8, 8, 8)), "Rectangle")
    with qtbot.waitSignal(bench.controller.finished, timeout=30000):
        bench.panel.request_run()
    after = document.image.rgb
    assert np.array_equal(after[:4], before[:4]) and after[12, 12, 0] == pytest.approx(1.0)


def test_a_failing_method_is_a_message_and_changes_nothing(window, bench, make_png, qtbot, monkeypatch):
    view = window.open_paths([make_png("a.png", size=(12, 8))])[0]
    def broken(request, context):
        raise RuntimeError("model exploded")

    method = bench.host.method("fake-x2")
    object.__setattr__(method, "run", broken)
    bench.panel.select_method("fake-x2")
    with qtbot.waitSignal(bench.controller.failed, timeout=30000):
        bench.panel.request_run()
    assert "model exploded" in window.banner.text()
    assert not view.document.modified


@pytest.mark.parametrize("method_id, param, label", [
    ("fake-blend", "blend", "Fake blend"),  # issue 19: an interpolation's blend slider
    ("fake-detail", "detail", "Fake detail ×2"),  # issue 31: an upscaler's Detail control
])
def test_a_live_slider_previews_the_whole_image_and_run_applies_it(window, bench, make_png, qtbot, method_id, param,
                                                                   label):
    """Live results were drawn at a quarter size in a corner, and Run with Live ticked discarded its result."""
    view = window.open_paths([make_png("a.png", size=(12, 8))])[0]
    bench.panel.select_method(method_id)
    bench.panel.live_check.setChecked(True)
    bench.panel.set_param_values({param: 0.25})
    with qtbot.waitSignal(bench.controller.finished, timeout=30000):
        bench.panel.request_run(draft=True)  # what moving the slider does
    assert view.document.image.size == (12, 8) and view.canvas.has_preview
    assert view.canvas._preview_box.getRect() == (0.0, 0.0, 12.0, 8.0)  # over the whole image, not a corner
    with qtbot.waitSignal(bench.controller.finished, timeout=30000):
        bench.panel.request_run()  # the Run button
    assert view.document.image.size == (24, 16)
    assert np.allclose(view.document.image.rgb, 0.25, atol=1 / 255)
    assert view.document.history.labels[-1] == label


def test_compare_shows_input_and_result_with_lr_psnr(window, bench, make_png, qtbot):
    window.open_paths([make_png("a.png", size=(12, 8))])
    assert not bench.compare_action.isEnabled()
    run_and_wait(qtbot, bench, "fake-x2", gain=1.0)
    assert bench.compare_action.isEnabled()
    bench.compare_action.trigger()
    assert bench.compare_window.isVisible()
    psnr = bench.compare_view.fidelity[1]
    assert psnr is not None and psnr > 40  # nearest x2 downscaled back is the input, nearly


def test_the_real_plugins_get_panels_without_ui_code(window, qtbot):
    workbench = Workbench(window)
    try:
        ids = {m.id for m in workbench.host.methods()}
        assert {"bicubic", "lanczos", "srdiff", "srdiff-fusion", "srdiff-interpolate", "dtls"} <= ids
        assert workbench.panel.method_combo.currentData() == "srdiff-encoder"  # the CLI's default too (issue 19)
        workbench.panel.select_method("srdiff-interpolate")
        assert {"detail", "seed_b", "blend", "mode", "noise_level", "sampler", "steps", "eta"} <= set(
            workbench.panel.param_widgets)
        # Issue 19: nine knobs at once; the research ones now sit in a folded "Advanced" section.
        assert workbench.panel.form.rowCount() == 4  # detail, seed_b, blend, lr_consistency
        assert workbench.panel.advanced_toggle.text() == "Advanced (5)" and workbench.panel.advanced_group.isHidden()
        workbench.panel.advanced_toggle.click()
        assert not workbench.panel.advanced_group.isHidden() and workbench.panel.advanced_form.rowCount() == 5
        workbench.panel.select_method("srdiff-fusion")
        assert "donor" in workbench.panel.param_widgets
        workbench.panel.select_method("dtls")
        assert set(workbench.panel.param_widgets) == {"sampler", "lr_consistency"}
        workbench.panel.select_method("diffsr")  # issue 13: its panel from its declarations, target sizes included
        assert {"detail", "steps", "auto_level", "noise_level"} <= set(workbench.panel.param_widgets)
        assert workbench.panel.advanced_toggle.text() == "Advanced (4)"  # the noise level switch and slider, sampler, consistency
        assert workbench.panel.scale_combo.findData("custom") >= 0 and workbench.panel.size_preset.count() == 5
    finally:
        workbench.shutdown()


def test_two_results_of_the_same_image_compare_side_by_side(window, bench, make_png, qtbot):
    view = window.open_paths([make_png("a.png", size=(12, 8))])[0]
    run_and_wait(qtbot, bench, "fake-x2", gain=1.0)
    assert not bench.compare_results_action.isEnabled()
    window.undo()  # back to the same input image, then a second variant
    run_and_wait(qtbot, bench, "fake-x2", gain=0.5)
    assert bench.compare_results_action.isEnabled()
    bench.compare_results_action.trigger()
    assert bench.compare_view.mode() == "side_by_side" and bench.compare_window.isVisible()
    left, right = bench.compare_view.fidelity
    assert left is not None and right is not None and left > right  # the darkened one departs more
    assert view.document.image.size == (24, 16)


def drag_on(qtbot, canvas, start, end):
    """Press at image point ``start``, move, release at image point ``end``."""
    to_widget = lambda p: canvas.map_from_image(QPointF(*p)).toPoint()  # noqa: E731
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=to_widget(start))
    qtbot.mouseMove(canvas, to_widget(((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)))
    qtbot.mouseMove(canvas, to_widget(end))
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=to_widget(end))


def test_a_placeable_donor_is_dragged_and_scaled_on_the_canvas_and_runs_where_placed(window, bench, make_png, qtbot):
    window.show()
    view = window.open_paths([make_png("a.png", size=(64, 64), color=(0, 0, 0))])[0]
    view.canvas.set_zoom(4.0)
    view.canvas.center_on(QPointF(32, 32))
    document = view.document
    document.set_selection(Selection.rect(document.image.size, (16, 16, 16, 16)), "Rectangle")
    bench.panel.select_method("fake-paste")
    assert not bench.place_action.isEnabled()  # no donor yet

    bench.panel.set_param_values({"donor": ImageInput(np.ones((8, 8, 3), np.float32), source="donor.png")})
    assert bench.place_action.isEnabled() and window.tool_name == "place"
    assert bench.panel.param_widgets["donor"].value().placement == (16, 16, 16, 16)  # covers the selection
    assert bench.panel.param_widgets["donor"].value().fitted  # the editor's box: a method may place it better
    assert "Drag the image to place it" in window.banner.text()

    drag_on(qtbot, view.canvas, (24, 24), (34, 28))  # inside: move by (10, 4)
    assert window.banner.text() == ""  # the hint gives way once the user drags (issue 19: it hid the handles)
    assert bench.panel.param_widgets["donor"].value().placement == pytest.approx((26, 20, 16, 16))
    assert not bench.panel.param_widgets["donor"].value().fitted  # the user's own placement from now on
    drag_on(qtbot, view.canvas, (42, 36), (50, 40))  # the south-east corner: scale, aspect kept
    x, y, w, h = bench.panel.param_widgets["donor"].value().placement
    assert (x, y) == pytest.approx((26, 20)) and w == pytest.approx(h) and w == pytest.approx(24, abs=0.6)

    with qtbot.waitSignal(bench.controller.finished, timeout=30000):
        bench.panel.request_run()
    assert placed_donors[-1] == pytest.approx((x, y, w, h))
    rgb = document.image.rgb
    assert rgb[30, 40, 0] == pytest.approx(1.0) and rgb[10, 10, 0] == 0.0
    assert window.tool_name == "rect"  # back to the tool used before placing: the result shows

    bench.panel.select_method("fake-x2")
    assert not bench.place_action.isEnabled() and not bench.placement.active


def test_an_untouched_donor_follows_the_selection(window, bench, make_png, qtbot):
    view = window.open_paths([make_png("a.png", size=(64, 64))])[0]
    document = view.document
    bench.panel.select_method("fake-paste")
    bench.panel.set_param_values({"donor": ImageInput(np.ones((8, 4, 3), np.float32))})
    assert bench.placement.as_tuple() == (0, -32, 64, 128)  # no selection yet: covers the image
    document.set_selection(Selection.rect(document.image.size, (10, 10, 20, 20)), "Rectangle")
    assert bench.placement.as_tuple() == (10, 0, 20, 40)
    assert bench.panel.param_widgets["donor"].value().placement == (10, 0, 20, 40)


def start_seed_trial(qtbot, bench, view, tries, seed=20):
    bench.panel.select_method("fake-seeded")
    bench.panel.seed_widget.set_value(seed)
    bench.panel.variations_spin.setValue(tries)
    bench.panel.request_run()
    qtbot.waitUntil(lambda: bench.seed_picker is not None and bench.seed_picker.isVisible(), timeout=30000)
    return bench.seed_picker


def test_trying_seeds_offers_every_result_and_applies_the_pick_as_one_step(window, bench, make_png, qtbot):
    view = window.open_paths([make_png("a.png", size=(12, 8))])[0]
    steps = len(view.document.history.labels)
    picker = start_seed_trial(qtbot, bench, view, 3)
    assert [r.seed for r in picker.results] == [20, 21, 22]
    assert [b.text() for b in picker.buttons] == ["seed 20", "seed 21", "seed 22"]
    assert view.document.image.size == (12, 8), "nothing is applied before the pick"
    picker.choose(1)
    assert view.document.image.size == (24, 16)
    assert np.allclose(view.document.image.rgb, 0.1)  # seed 21
    assert len(view.document.history.labels) == steps + 1
    assert view.document.history.labels[-1] == "Fake seeded \u00d72, seed 21"
    assert bench.panel.seed_widget.value() == 21


def test_discarding_the_seeds_leaves_the_image_as_it_was(window, bench, make_png, qtbot):
    view = window.open_paths([make_png("a.png", size=(12, 8))])[0]
    before = view.document.image.rgb.copy()
    picker = start_seed_trial(qtbot, bench, view, 2)
    picker.reject()
    assert np.array_equal(view.document.image.rgb, before)
    assert "None of the 2 results" in window.banner.text()


def test_the_seed_row_shows_only_for_methods_with_seeds(window, bench):
    bench.panel.select_method("fake-seeded")
    assert not bench.panel.variations_spin.isHidden()
    bench.panel.select_method("fake-x2")
    assert bench.panel.variations_spin.isHidden() and bench.panel.variations() == 1


def test_the_panel_shows_the_result_size_and_a_huge_result_is_asked_about_first(window, bench, make_png, qtbot):
    view = window.open_paths([make_png("a.png", size=(12, 8))])[0]
    panel = bench.panel
    panel.select_method("fake-x2")
    assert panel.result_label.text() == "Result: 24×16 px (0.0 MP)"
    panel.scale_combo.setCurrentIndex(panel.scale_combo.findData("size"))
    panel.fit_check.setChecked(False)
    panel.size_width.setValue(12000)
    panel.size_height.setValue(10000)
    assert panel.result_label.text() == "Result: 12000×10000 px (120.0 MP)"
    asked = []
    bench.ask_large_result = lambda title, text, can_save: asked.append((title, text, can_save)) or "cancel"
    panel.request_run()
    assert asked and asked[0][0] == "A 120-megapixel result" and "12000×10000" in asked[0][1]
    assert not asked[0][2]  # an exact size is resized after the method: not a result tiles write band by band
    assert bench.job is None and view.document.image.size == (12, 8)  # declined: nothing ran


def test_a_huge_result_can_go_straight_to_a_file_and_the_document_stays(window, bench, make_png, qtbot,
                                                                         monkeypatch, tmp_path):
    from PIL import Image

    from sr_desk.ui import workbench as workbench_module
    from sr_desk.ui.file_dialogs import SaveChoice

    monkeypatch.setattr(workbench_module, "LARGE_RESULT_MP", 0.0001)  # 24x16 counts as huge here
    view = window.open_paths([make_png("a.png", size=(12, 8))])[0]
    before = view.document.image.rgb.copy()
    asked, target = [], tmp_path / "big.jpg"
    bench.ask_large_result = lambda title, text, can_save: asked.append((text, can_save)) or "file"
    bench.ask_result_path = lambda suggested: asked.append(suggested) or SaveChoice(target, "JPEG", 90)
    bench.panel.select_method("fake-x2")
    with qtbot.waitSignal(bench.controller.finished, timeout=30000):
        bench.panel.request_run()
    assert asked[0][1] and "save it straight to a file" in asked[0][0]
    assert asked[1].name == "a-fake-x2-24x16.png"  # the suggestion names the method and size
    assert Image.open(target).size == (24, 16)
    assert np.array_equal(view.document.image.rgb, before) and not view.document.history.can_undo
    assert "Saved the 24×16 result to" in window.banner.text() and bench.job is None


def test_switching_methods_keeps_the_dock_still_and_clears_the_last_jobs_progress(window, bench, make_png, qtbot):
    """Issue 28: the Method dock changed width with each method (the canvas jumped), and "done" stayed."""
    window.resize(1200, 800)
    window.show()
    window.open_paths([make_png("a.png", size=(12, 8))])
    run_and_wait(qtbot, bench, "fake-x2", gain=1.0)
    assert bench.panel.progress_bar.format() != ""
    widths = {bench.panel_dock.width()}
    for method in [m for m in bench.panel.methods() if m.id != "fake-x2"]:
        bench.panel.select_method(method.id)
        qtbot.wait(10)
        widths.add(bench.panel_dock.width())
        assert bench.panel.progress_bar.format() == "" and bench.panel.progress_bar.value() == 0
    assert len(widths) == 1
