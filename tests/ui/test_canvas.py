"""The canvas and the selection tools, on small in-memory documents."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QImage, QNativeGestureEvent, QPointingDevice, QWheelEvent
from PySide6.QtWidgets import QApplication

from sr_desk.core.selection import Selection
from sr_desk.ui.canvas import MAX_ZOOM, MIN_ZOOM, Canvas, mask_outline
from sr_desk.ui.document_view import MODIFIED_MARK, DocumentView
from sr_desk.ui.qimage import qimage_to_arrays, qimage_to_rgb, rgb_to_qimage
from sr_desk.ui.tools import resize_selection

from .conftest import make_document, repaint

# --------------------------------------------------------------------------- #
# numpy <-> QImage
# --------------------------------------------------------------------------- #


def test_rgb_to_qimage_round_trips_and_owns_its_pixels(qapp):
    rng = np.random.default_rng(0)
    rgb = rng.random((5, 7, 3), dtype=np.float32)  # odd width: rows are padded in some formats
    image = rgb_to_qimage(rgb)
    assert (image.width(), image.height()) == (7, 5)
    assert image.format() == QImage.Format.Format_RGB32
    back = qimage_to_rgb(image)
    assert np.abs(back - rgb).max() <= 0.5 / 255 + 1e-6
    colour = image.pixelColor(6, 4)
    assert colour.red() == round(rgb[4, 6, 0] * 255) and colour.blue() == round(rgb[4, 6, 2] * 255)


def test_rgb_to_qimage_with_alpha_and_uint8(qapp):
    rgb = np.zeros((2, 3, 3), dtype=np.uint8)
    rgb[..., 0] = 200
    alpha = np.array([[0, 0.5, 1]] * 2, dtype=np.float32)
    image = rgb_to_qimage(rgb, alpha, premultiplied=False)
    assert image.format() == QImage.Format.Format_ARGB32
    assert [image.pixelColor(x, 0).alpha() for x in range(3)] == [0, 128, 255]
    assert image.pixelColor(0, 0).red() == 200  # colour kept under zero alpha
    premultiplied = rgb_to_qimage(rgb, alpha)
    assert premultiplied.format() == QImage.Format.Format_ARGB32_Premultiplied
    assert premultiplied.pixelColor(2, 1).red() == 200
    back, back_alpha = qimage_to_arrays(image)
    assert back_alpha is not None and back_alpha[0, 1] == pytest.approx(128 / 255)
    assert back[0, 0, 0] == pytest.approx(200 / 255)


def test_rgb_to_qimage_clips_and_rejects_bad_shapes(qapp):
    image = rgb_to_qimage(np.array([[[np.nan, -1.0, 2.0]]], dtype=np.float32))
    assert image.pixelColor(0, 0).getRgb() == (0, 0, 255, 255)
    with pytest.raises(ValueError):
        rgb_to_qimage(np.zeros((4, 4, 2), dtype=np.float32))


# --------------------------------------------------------------------------- #
# Selection outline
# --------------------------------------------------------------------------- #


def test_outline_of_a_rectangle_is_its_border(qapp):
    selection = Selection.rect((40, 30), (5, 6, 10, 8))
    path = mask_outline(selection.mask)
    assert path.boundingRect().getRect() == (5.0, 6.0, 10.0, 8.0)
    assert path.elementCount() == 5  # four corners, closed: the runs were chained into one polygon


def test_outline_follows_holes_and_the_image_border(qapp):
    mask = np.ones((20, 20), dtype=np.float32)
    mask[5:10, 5:10] = 0
    path = mask_outline(mask)
    assert path.boundingRect().getRect() == (0.0, 0.0, 20.0, 20.0)
    polygons = path.toSubpathPolygons()
    assert len(polygons) == 2
    assert sorted(p.boundingRect().width() for p in polygons) == [5.0, 20.0]


def test_a_ragged_outline_is_traced_coarser(qapp):
    mask = (np.random.default_rng(0).random((200, 300)) > 0.5).astype(np.float32)
    path = mask_outline(mask, max_segments=2_000)
    assert path.elementCount() < 5 * 2_000
    box = path.boundingRect()
    assert box.left() >= 0 and box.top() >= 0 and box.right() <= 300 and box.bottom() <= 200


def test_void_qt_calls_do_not_use_up_none(qapp):
    # shiboken6 6.12.0 on Python 3.11 drops a reference to None per void call;
    # importing sr_desk.ui guards against it (see sr_desk/ui/__init__.py).
    import sys

    from PySide6.QtCore import QPoint

    point = QPoint()
    for _ in range(20_000):  # more than None's references in an unguarded process
        point.setX(1)
    assert sys.getrefcount(None) > 0


def test_outline_of_a_faint_selection_is_still_drawn(qapp):
    mask = np.zeros((10, 10), dtype=np.float32)
    mask[2:4, 2:4] = 0.2
    assert not mask_outline(mask).isEmpty()
    assert mask_outline(None).isEmpty()


# --------------------------------------------------------------------------- #
# View: fit, zoom, pan
# --------------------------------------------------------------------------- #


@pytest.fixture
def view(qtbot):
    document = make_document((64, 48))
    widget = DocumentView(document)
    qtbot.addWidget(widget)
    widget.resize(400, 300)
    widget.show()
    qtbot.waitExposed(widget)
    widget.canvas.setFocus()
    return widget


def test_fit_shows_the_whole_image_centred(view):
    canvas = view.canvas
    canvas.fit()
    top_left = canvas.map_from_image(QPointF(0, 0))
    bottom_right = canvas.map_from_image(QPointF(64, 48))
    assert top_left.x() >= 0 and top_left.y() >= 0
    assert bottom_right.x() <= canvas.width() and bottom_right.y() <= canvas.height()
    assert (top_left.x() + bottom_right.x()) / 2 == pytest.approx(canvas.width() / 2)
    assert canvas.fitting


def test_actual_size_zoom_steps_and_limits(view, qtbot):
    canvas = view.canvas
    with qtbot.waitSignal(canvas.zoom_changed) as blocker:
        canvas.actual_size()
    assert canvas.zoom == 1.0 and blocker.args == [1.0]
    canvas.zoom_in()
    assert canvas.zoom == 1.5
    canvas.zoom_out()
    canvas.zoom_out()
    assert canvas.zoom == pytest.approx(2 / 3)
    canvas.set_zoom(1000)
    assert canvas.zoom == MAX_ZOOM
    canvas.set_zoom(0)
    assert canvas.zoom == MIN_ZOOM
    assert not canvas.fitting


def send_wheel(widget, pos: QPointF, delta: int, modifiers=Qt.KeyboardModifier.NoModifier):
    event = QWheelEvent(
        pos,
        widget.mapToGlobal(pos),
        QPoint(),
        QPoint(0, delta),
        Qt.MouseButton.NoButton,
        modifiers,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(widget, event)


def test_wheel_zooms_about_the_cursor(view):
    canvas = view.canvas
    canvas.actual_size()
    cursor = QPointF(150.0, 120.0)
    under = canvas.map_to_image(cursor)
    send_wheel(canvas, cursor, 120)
    assert canvas.zoom > 1.0
    after = canvas.map_to_image(cursor)
    assert after.x() == pytest.approx(under.x(), abs=1e-6) and after.y() == pytest.approx(under.y(), abs=1e-6)
    send_wheel(canvas, cursor, -240)
    assert canvas.zoom < 1.0
    assert canvas.map_to_image(cursor).x() == pytest.approx(under.x(), abs=1e-6)


def test_pinch_gesture_zooms(view):
    canvas = view.canvas
    canvas.actual_size()
    pos = QPointF(100, 100)
    event = QNativeGestureEvent(
        Qt.NativeGestureType.ZoomNativeGesture,
        QPointingDevice.primaryPointingDevice(),
        2,
        pos,
        pos,
        canvas.mapToGlobal(pos),
        0.5,
        QPointF(),
        0,
    )
    assert event.type() == QEvent.Type.NativeGesture
    QApplication.sendEvent(canvas, event)
    assert canvas.zoom == pytest.approx(1.5)


def test_middle_drag_and_space_drag_pan(view, qtbot):
    canvas = view.canvas
    canvas.set_zoom(4.0)
    start = canvas.offset
    qtbot.mousePress(canvas, Qt.MouseButton.MiddleButton, pos=QPoint(100, 100))
    qtbot.mouseMove(canvas, QPoint(130, 90))
    qtbot.mouseRelease(canvas, Qt.MouseButton.MiddleButton, pos=QPoint(130, 90))
    assert canvas.offset - start == QPointF(30, -10)
    assert view.document.history.labels == []  # panning is not an edit

    start = canvas.offset
    qtbot.keyPress(canvas, Qt.Key.Key_Space)
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=QPoint(100, 100))
    qtbot.mouseMove(canvas, QPoint(90, 120))
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=QPoint(90, 120))
    qtbot.keyRelease(canvas, Qt.Key.Key_Space)
    assert canvas.offset - start == QPointF(-10, 20)
    assert view.document.history.labels == []  # space-drag pans instead of selecting


def test_cursor_position_in_image_pixels(view, qtbot):
    canvas = view.canvas
    canvas.set_zoom(2.0)
    target = canvas.map_from_image(QPointF(10.5, 7.5)).toPoint()
    with qtbot.waitSignal(canvas.cursor_moved) as blocker:
        qtbot.mouseMove(canvas, target)
    assert blocker.args == [10, 7]


# --------------------------------------------------------------------------- #
# Drawing
# --------------------------------------------------------------------------- #


def colour_at(image: QImage, point: QPointF) -> tuple[int, int, int]:
    c = QColor(image.pixel(int(point.x()), int(point.y())))
    return c.red(), c.green(), c.blue()


def test_preview_overlay_draws_over_its_box_and_clears(view):
    canvas = view.canvas
    canvas.actual_size()
    image_colour = (204, 51, 26)
    preview = np.zeros((10, 10, 3), dtype=np.float32)
    preview[..., 1] = 1.0
    canvas.show_preview(preview, (20, 10, 20, 20))  # a 10x10 preview stretched over 20x20 px
    assert canvas.has_preview
    shot = repaint(canvas)
    assert colour_at(shot, canvas.map_from_image(QPointF(30.5, 20.5))) == (0, 255, 0)
    assert colour_at(shot, canvas.map_from_image(QPointF(5.5, 5.5))) == image_colour
    canvas.clear_preview()
    shot = repaint(canvas)
    assert colour_at(shot, canvas.map_from_image(QPointF(30.5, 20.5))) == image_colour
    # A box in the pixels of a 4x output lands on the same part of the image.
    canvas.show_preview(preview, (160, 80, 40, 40), box_space=(256, 192))
    shot = repaint(canvas)
    assert colour_at(shot, canvas.map_from_image(QPointF(45.5, 25.5))) == (0, 255, 0)
    assert colour_at(shot, canvas.map_from_image(QPointF(38.5, 25.5))) == image_colour


def test_pixels_are_crisp_when_zoomed_in_and_the_grid_shows(qtbot):
    document = make_document((4, 4))
    rgb = np.zeros((4, 4, 3), dtype=np.float32)
    rgb[::2, ::2] = 1.0
    rgb[1::2, 1::2] = 1.0
    from sr_desk.core.imageio import ImageData

    document.replace_image(ImageData(rgb=rgb), "Checker")
    widget = DocumentView(document)
    qtbot.addWidget(widget)
    widget.resize(300, 300)
    widget.show()
    qtbot.waitExposed(widget)
    canvas = widget.canvas
    canvas.set_zoom(4.0)
    shot = repaint(canvas)
    # Nearest neighbour: a pixel's edge is as white as its centre.
    assert colour_at(shot, canvas.map_from_image(QPointF(0.1, 0.1))) == (255, 255, 255)
    assert colour_at(shot, canvas.map_from_image(QPointF(1.1, 0.1))) == (0, 0, 0)
    canvas.set_zoom(16.0)
    shot = repaint(canvas)
    on_grid = canvas.map_from_image(QPointF(1.0, 0.5))
    assert colour_at(shot, QPointF(round(on_grid.x()), on_grid.y())) not in ((255, 255, 255), (0, 0, 0))
    canvas.set_pixel_grid(False)
    shot = repaint(canvas)
    assert colour_at(shot, QPointF(round(on_grid.x()), on_grid.y())) in ((255, 255, 255), (0, 0, 0))


def test_checkerboard_shows_through_transparent_images(qtbot):
    widget = DocumentView(make_document((32, 32), alpha=0.0))
    qtbot.addWidget(widget)
    widget.resize(200, 200)
    widget.show()
    qtbot.waitExposed(widget)
    canvas = widget.canvas
    shot = repaint(canvas)
    seen = {colour_at(shot, canvas.map_from_image(QPointF(x + 0.5, 0.5))) for x in range(0, 32, 2)}
    assert seen <= {(204, 204, 204), (153, 153, 153)} and len(seen) == 2


def test_marching_ants_follow_the_selection(view, qtbot):
    canvas = view.canvas
    canvas.actual_size()
    view.document.set_selection(Selection.rect((64, 48), (10, 10, 20, 20)), "Rect")
    assert canvas.ants_running
    assert canvas.outline_path.boundingRect().getRect() == (10.0, 10.0, 20.0, 20.0)
    shot = repaint(canvas)
    edge = canvas.map_from_image(QPointF(10, 20))
    colours = {colour_at(shot, QPointF(edge.x(), edge.y() + dy)) for dy in range(8)}
    assert (0, 0, 0) in colours and (255, 255, 255) in colours
    view.document.set_selection(Selection.none((64, 48)), "Deselect")
    assert canvas.outline_path.isEmpty() and not canvas.ants_running


def test_title_marks_unsaved_changes(view, qtbot):
    assert view.title() == "test.png"
    view.document.set_selection(Selection.all((64, 48)), "Select All")
    assert view.title() == "test.png"  # a selection is not saved with the file
    darker = view.document.image.with_pixels(view.document.image.rgb * 0.5, view.document.image.alpha)
    with qtbot.waitSignal(view.title_changed) as blocker:
        view.document.replace_image(darker, "Darken")
    assert blocker.args == ["test.png" + MODIFIED_MARK]


# --------------------------------------------------------------------------- #
# Selection tools
# --------------------------------------------------------------------------- #


def drag(qtbot, canvas: Canvas, start, end, modifiers=Qt.KeyboardModifier.NoModifier, via=()):
    """Press at image point ``start``, move through ``via``, release at ``end``."""
    to_widget = lambda p: canvas.map_from_image(QPointF(*p)).toPoint()  # noqa: E731
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, modifiers, to_widget(start))
    for point in (*via, end):
        qtbot.mouseMove(canvas, to_widget(point))
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, modifiers, to_widget(end))


@pytest.fixture
def tool_view(view):
    view.canvas.set_zoom(4.0)
    view.canvas.center_on(QPointF(32, 24))
    return view


def test_rectangle_drag_selects_that_rectangle(tool_view, qtbot):
    document = tool_view.document
    drag(qtbot, tool_view.canvas, (10, 8), (30, 20), via=[(20, 14)])
    assert document.selection.bbox == (10, 8, 20, 12)
    assert document.selection.area == 20 * 12
    assert document.history.labels == ["Rectangle Select"]
    # Dragging up-left selects the same kind of box.
    drag(qtbot, tool_view.canvas, (40, 30), (35, 25))
    assert document.selection.bbox == (35, 25, 5, 5)


def test_shift_adds_alt_subtracts_shift_alt_intersects(tool_view, qtbot):
    document, canvas = tool_view.document, tool_view.canvas
    drag(qtbot, canvas, (0, 0), (20, 20))
    drag(qtbot, canvas, (30, 0), (40, 10), Qt.KeyboardModifier.ShiftModifier)
    assert document.selection.area == 20 * 20 + 10 * 10
    assert document.history.labels[-1] == "Rectangle Select (Add)"
    drag(qtbot, canvas, (0, 0), (10, 10), Qt.KeyboardModifier.AltModifier)
    assert document.selection.area == 20 * 20 + 10 * 10 - 10 * 10
    assert document.history.labels[-1] == "Rectangle Select (Subtract)"
    drag(qtbot, canvas, (10, 10), (35, 20), Qt.KeyboardModifier.ShiftModifier | Qt.KeyboardModifier.AltModifier)
    assert document.selection.bbox == (10, 10, 10, 10)
    assert document.history.labels[-1] == "Rectangle Select (Intersect)"


def test_a_click_deselects(tool_view, qtbot):
    document, canvas = tool_view.document, tool_view.canvas
    drag(qtbot, canvas, (5, 5), (15, 15))
    point = canvas.map_from_image(QPointF(40, 40)).toPoint()
    qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, pos=point)
    assert document.selection.is_empty
    assert document.history.labels == ["Rectangle Select", "Deselect"]


def test_ellipse_and_lasso(tool_view, qtbot):
    document, canvas = tool_view.document, tool_view.canvas
    tool_view.set_tool("ellipse")
    drag(qtbot, canvas, (10, 10), (30, 30))
    assert document.selection.bbox == (10, 10, 20, 20)
    assert document.selection.area == pytest.approx(np.pi * 100, rel=0.03)
    tool_view.set_tool("lasso")
    drag(qtbot, canvas, (5, 5), (5, 5), via=[(25, 5), (25, 25), (5, 25)])
    assert document.selection.bbox == (5, 5, 20, 20)
    assert document.selection.area == pytest.approx(400, rel=0.05)
    assert document.history.labels == ["Ellipse Select", "Lasso Select"]


def test_move_tool_moves_and_resizes_the_selection(tool_view, qtbot):
    document, canvas = tool_view.document, tool_view.canvas
    drag(qtbot, canvas, (10, 10), (20, 20))
    tool_view.set_tool("move")
    drag(qtbot, canvas, (15, 15), (20, 17), via=[(18, 16)])
    assert document.selection.bbox == (15, 12, 10, 10)
    assert document.history.labels[-1] == "Move Selection"
    # The bottom-right corner handle sits on the box's corner.
    drag(qtbot, canvas, (25, 22), (35, 30))
    assert document.selection.bbox == (15, 12, 20, 18)
    assert document.selection.area == 20 * 18  # still an exact rectangle
    assert document.history.labels[-1] == "Resize Selection"
    # A drag outside the selection does nothing.
    drag(qtbot, canvas, (50, 40), (55, 45))
    assert document.history.labels[-1] == "Resize Selection"


def test_resize_selection_scales_other_shapes():
    ellipse = Selection.ellipse((100, 100), (10, 10, 20, 20))
    bigger = resize_selection(ellipse, (10, 10, 40, 40))
    assert bigger.bbox == (10, 10, 40, 40)
    assert bigger.area == pytest.approx(ellipse.area * 4, rel=0.05)
