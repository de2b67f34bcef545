"""Compare view: modes, the split divider, linked zoom and pan, LR-PSNR and the heat map."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication

from sr_desk.core.fidelity import lr_psnr
from sr_desk.core.resize import Filter, resize
from sr_desk.ui.compare import CompareView


@pytest.fixture
def images():
    y, x = np.mgrid[0:8, 0:10].astype(np.float32)
    lr = np.stack([0.3 + 0.02 * x, 0.4 + 0.02 * y, 0.5 + 0.01 * (x + y)], axis=-1)  # smooth: bicubic keeps it
    faithful = resize(lr, (40, 32), Filter.BICUBIC)
    invented = faithful.copy()
    invented[:16, :20] = 1.0  # a block the input does not have
    return lr, faithful, invented


@pytest.fixture
def view(qtbot):
    widget = CompareView()
    qtbot.addWidget(widget)
    widget.resize(400, 300)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def mouse(widget, kind, pos, button=Qt.MouseButton.LeftButton, buttons=Qt.MouseButton.LeftButton):
    event = QMouseEvent(kind, QPointF(pos), widget.mapToGlobal(QPointF(pos)), button, buttons,
                        Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)


def wheel(widget, pos, notches=1):
    event = QWheelEvent(QPointF(pos), widget.mapToGlobal(QPointF(pos)), QPoint(0, 0), QPoint(0, 120 * notches),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


def test_modes_switch_pages_and_buttons(view, images, qtbot):
    lr, faithful, invented = images
    view.set_images(lr, invented, "Original", "Result")
    assert view.mode() == "split" and view.stack.currentWidget() is view.split_pane
    with qtbot.waitSignal(view.mode_changed) as blocker:
        view.side_button.click()
    assert blocker.args == ["side_by_side"] and view.mode() == "side_by_side"
    assert view.left_pane.isVisible() and view.right_pane.isVisible()
    assert view.left_pane.labels[0] == "Original" and view.right_pane.labels[0] == "Result"
    view.set_mode("split")
    assert view.split_button.isChecked() and view.split_pane.labels == ["Original", "Result"]
    with pytest.raises(ValueError):
        view.set_mode("onion")


def test_the_smaller_image_is_shown_at_the_result_size(view, images):
    lr, faithful, _ = images
    view.set_images(lr, faithful)
    assert view.view.scene_size == (40, 32)
    view.set_enlarge_filter("bicubic")
    view.set_images(lr, faithful)
    assert view.split_pane.images[0].size().width() == 40


def test_dragging_the_divider(view, images):
    lr, faithful, _ = images
    view.set_images(lr, faithful)
    pane = view.split_pane
    start = QPointF(pane.divider_x(), pane.height() / 2)
    origin = QPointF(view.view.origin)
    mouse(pane, QMouseEvent.Type.MouseButtonPress, start)
    mouse(pane, QMouseEvent.Type.MouseMove, QPointF(pane.width() * 0.25, pane.height() / 2), Qt.MouseButton.NoButton)
    mouse(pane, QMouseEvent.Type.MouseButtonRelease, QPointF(pane.width() * 0.25, pane.height() / 2),
          buttons=Qt.MouseButton.NoButton)
    assert view.divider() == pytest.approx(0.25, abs=0.01)
    assert view.view.origin == origin  # the picture did not move


def test_linked_zoom_and_pan_in_side_by_side(view, images):
    lr, faithful, invented = images
    view.set_images(faithful, invented, "A", "B")
    view.set_mode("side_by_side")
    left, right = view.left_pane, view.right_pane
    before = right.view.zoom
    anchor = QPointF(30, 40)
    scene_point = left.view.map_to_scene(anchor)
    wheel(left, anchor, notches=2)
    assert right.view.zoom == pytest.approx(before * 1.25**2)
    assert view.zoom() == right.view.zoom
    moved = left.view.map_to_scene(anchor)  # zoom anchored at the cursor
    assert (moved.x(), moved.y()) == pytest.approx((scene_point.x(), scene_point.y()))
    origin = QPointF(right.view.origin)
    mouse(left, QMouseEvent.Type.MouseButtonPress, QPointF(100, 100))
    mouse(left, QMouseEvent.Type.MouseMove, QPointF(120, 90), Qt.MouseButton.NoButton)
    mouse(left, QMouseEvent.Type.MouseButtonRelease, QPointF(120, 90), buttons=Qt.MouseButton.NoButton)
    zoom = right.view.zoom
    assert right.view.origin.x() == pytest.approx(origin.x() - 20 / zoom)
    assert right.view.origin.y() == pytest.approx(origin.y() + 10 / zoom)
    view.fit()
    assert view.view.fitted


def test_lr_psnr_labels(view, images):
    lr, faithful, invented = images
    view.set_images(lr, invented, "Original", "SRDiff", reference_lr=lr)
    assert view.fidelity[0] is None  # the input itself
    expected = lr_psnr(invented, lr)
    assert view.fidelity[1] == pytest.approx(expected)
    assert view.right_fidelity.text() == f"SRDiff: LR-PSNR {expected:.1f} dB"
    assert view.left_fidelity.text() == "Original: input"
    view.set_images(faithful, invented, "Bicubic", "SRDiff", reference_lr=lr)
    assert view.fidelity[0] > view.fidelity[1]
    assert view.left_fidelity.text().startswith("Bicubic: LR-PSNR")
    view.set_images(lr, invented)  # no reference: no numbers
    assert view.right_fidelity.text() == "" and not view.heat_button.isEnabled()
    assert CompareView.fidelity_text("x", math.inf) == "x: identical"


def test_heat_map_toggle_shows_where_detail_was_invented(view, images, qtbot):
    lr, faithful, invented = images
    view.set_images(lr, invented, "Original", "Result", reference_lr=lr)
    assert view.heat_button.isEnabled() and view.split_pane.overlays == [None, None]
    with qtbot.waitSignal(view.heat_map_toggled):
        view.set_heat_map_visible(True)
    overlay = view.split_pane.overlays[1]
    assert view.split_pane.overlays[0] is None  # nothing to judge on the input itself
    assert overlay is not None and (overlay.width(), overlay.height()) == (40, 32)
    assert overlay.pixelColor(2, 2).alpha() > 100  # the invented block glows
    assert overlay.pixelColor(38, 30).alpha() < 30  # the faithful rest stays clear
    view.set_mode("side_by_side")
    assert view.right_pane.overlays[0] is overlay
    view.grab()  # paints with the overlay
    view.set_heat_map_visible(False)
    assert view.right_pane.overlays == [None, None] and not view.heat_map_visible()


def test_large_images_are_measured_on_a_worker_while_the_view_stays_responsive(view, images, qtbot):
    """Issue 19: compare froze the window 13 s for a 100 MP result; large pairs now go to a worker thread."""
    lr, faithful, invented = images
    view.async_pixels = 0  # these small images stand in for large ones
    with qtbot.waitSignal(view.measured, timeout=10000):
        view.set_images(lr, invented, "Original", "SRDiff", reference_lr=lr)
        assert view.is_measuring() and view.busy.isVisibleTo(view)  # set_images returned before measuring
        assert view.right_fidelity.text() == "SRDiff: measuring\u2026" and not view.heat_button.isEnabled()
    assert not view.is_measuring() and not view.busy.isVisibleTo(view)
    assert view.fidelity[1] == pytest.approx(lr_psnr(invented, lr))
    assert view.split_pane.images[1] is not None and view.right_fidelity.text().startswith("SRDiff: LR-PSNR")
    view.set_heat_map_visible(True)
    qtbot.waitUntil(lambda: view.split_pane.overlays[1] is not None, timeout=10000)
    assert view.split_pane.overlays[1].pixelColor(2, 2).alpha() > 100


def test_a_pair_replaced_while_measuring_is_not_shown(view, images, qtbot):
    lr, faithful, invented = images
    view.async_pixels = 0
    view.set_images(lr, invented, "Original", "Stale", reference_lr=lr)
    with qtbot.waitSignal(view.measured, timeout=10000):
        view.set_images(lr, faithful, "Original", "Fresh", reference_lr=lr)
    qtbot.wait(50)
    assert view.right_fidelity.text().startswith("Fresh: LR-PSNR")
    assert view.fidelity[1] == pytest.approx(lr_psnr(faithful, lr))
