"""The first start on a desktop without the X11 libraries Qt needs: a message that names them (issue 19)."""

from __future__ import annotations

import pytest

from sr_desk.core.xcb import XCB_LIBRARIES, missing_xcb_packages, needs_xcb, xcb_advice


@pytest.mark.parametrize(
    ("env", "platform", "expected"),
    [
        ({"DISPLAY": ":0"}, "linux", True),
        ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"}, "linux", False),
        ({"QT_QPA_PLATFORM": "xcb"}, "linux", True),
        ({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0"}, "linux", False),
        ({}, "linux", False),
        ({"DISPLAY": ":0"}, "darwin", False),
        ({"DISPLAY": ":0"}, "win32", False),
    ],
)
def test_the_check_runs_only_where_qt_will_use_xcb(env, platform, expected):
    assert needs_xcb(env, platform) is expected


def test_missing_libraries_are_named_by_their_package_with_the_install_command():
    absent = {"libxcb-cursor.so.0", "libxcb-keysyms.so.1"}
    missing = missing_xcb_packages(lambda soname: soname not in absent)
    assert missing == ["libxcb-cursor0", "libxcb-keysyms1"]
    advice = xcb_advice(missing)
    assert "sudo apt-get install libxcb-cursor0 libxcb-keysyms1" in advice
    assert "sr-desk upscale" in advice  # the command line still works
    assert missing_xcb_packages(lambda soname: True) == []
    assert {"libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1"} <= set(XCB_LIBRARIES.values())


def test_the_editor_says_what_to_install_instead_of_aborting(monkeypatch, capsys):
    pytest.importorskip("PySide6")
    from sr_desk.ui import app

    monkeypatch.setattr(app, "needs_xcb", lambda: True)
    monkeypatch.setattr(app, "missing_xcb_packages", lambda: ["libxcb-icccm4"])
    assert app.run_app([]) == 1
    assert "sudo apt-get install libxcb-icccm4" in capsys.readouterr().err
