"""The Plugins dialog: the list, switching plugins on and off, and installing a wheel with pip, no restart.

Installs go into the user plugin folder of the private SR_DESK_HOME
(``pip install --target``), never into the test environment: the tests that
install force that mode and check it before pressing Install.
"""

from __future__ import annotations

import importlib
import importlib.util
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from sr_desk.core.paths import app_paths
from sr_desk.core.resize import Filter, resize
from sr_desk.core.settings import Settings
from sr_desk.engine.plugins import PluginHost
from sr_desk.ui import plugins_dialog
from sr_desk.ui.plugins_dialog import PluginsColumn, PluginsDialog, build_pip_command, format_command, install_target
from tests.conftest import install_fake_plugin

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "packaging" / "plugin-template"

SHARPISH = """
    from sr_desk.api import Method, Task, hookimpl
    SR_DESK_API_VERSION = "1.0"

    @hookimpl
    def sr_desk_methods():
        return [Method(id="sharpish", name="Sharpish", task=Task.UPSCALE, run=lambda request, context: request.image)]
"""


@pytest.fixture
def private_sys_path(monkeypatch):
    """Discovery appends the plugin folder to sys.path: give it back, and forget the plugin modules."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield
    for name in [n for n in sys.modules if n.split(".")[0] == "sr_desk_example"]:
        del sys.modules[name]
    importlib.invalidate_caches()


@pytest.fixture
def target_mode(monkeypatch):
    """The dialog's automatic choice becomes the user plugin folder (as in a read-only environment)."""
    monkeypatch.setattr(plugins_dialog, "environment_writable", lambda: False)
    return app_paths().plugins_dir


@pytest.fixture(scope="module")
def example_wheel(tmp_path_factory) -> Path:
    """The wheel of packaging/plugin-template, built (from a copy, so the source tree stays clean) offline."""
    work = tmp_path_factory.mktemp("plugin-template")
    source = work / "sr-desk-example-plugin"
    shutil.copytree(TEMPLATE, source, ignore=shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__"))
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(work / "dist"),
         str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = (work / "dist").glob("sr_desk_example_plugin-0.1.0-*.whl")
    return wheel


def open_dialog(qtbot, settings=None, host=None, **kwargs) -> PluginsDialog:
    kwargs.setdefault("install_target", app_paths().plugins_dir)
    dialog = PluginsDialog(settings or Settings(), host, **kwargs)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def method_ids(workbench) -> list[str]:
    return [m.id for m in workbench.panel.methods()]


# -- pip's command line and where it installs ------------------------------------------------


def test_the_pip_command_installs_into_the_environment_or_a_target_folder(tmp_path):
    plain = build_pip_command("sr-desk-nearest==1.2", None)
    assert plain[:4] == [sys.executable, "-m", "pip", "install"] and plain[-1] == "sr-desk-nearest==1.2"
    assert "--target" not in plain and "--no-deps" not in plain and "--upgrade" in plain

    target = tmp_path / "plugins dir"
    into = build_pip_command("/wheels/x.whl", target, python="/opt/py/bin/python3")
    assert into[:4] == ["/opt/py/bin/python3", "-m", "pip", "install"] and into[-1] == "/wheels/x.whl"
    assert into[into.index("--target") + 1] == str(target) and "--no-deps" in into
    assert shlex.split(format_command(into)) == into  # what the log shows can be pasted into a shell


def test_install_target_is_the_environment_unless_frozen_or_read_only(monkeypatch):
    monkeypatch.setattr(plugins_dialog, "environment_writable", lambda: True)
    assert install_target() is None
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert install_target() == app_paths().plugins_dir
    monkeypatch.delattr(sys, "frozen")
    monkeypatch.setattr(plugins_dialog, "environment_writable", lambda: False)
    assert install_target() == app_paths().plugins_dir


# -- the list --------------------------------------------------------------------------------


def test_plugins_are_listed_with_their_origin_and_a_broken_one_with_its_reason(qtbot, private_sys_path):
    folder = app_paths().plugins_dir
    folder.mkdir(parents=True)
    install_fake_plugin(folder, "exploding", "raise ImportError('needs libfoo 9')", version="2.0.1")
    install_fake_plugin(folder, "sharpish", SHARPISH)
    dialog = open_dialog(qtbot)  # discovers on its own, the user plugin folder included

    assert {"classic", "srdiff", "exploding", "sharpish"} <= set(dialog.plugin_names())
    classic = dialog.plugin_item("classic")
    assert classic.text(PluginsColumn.ORIGIN) == "built-in"
    assert "bicubic" in classic.text(PluginsColumn.METHODS) and classic.text(PluginsColumn.STATUS) == "ok"
    sharpish = dialog.plugin_item("sharpish")
    assert sharpish.text(PluginsColumn.ORIGIN) == "package (plugin folder)"
    assert sharpish.text(PluginsColumn.AUTHOR) == "Test Author" and sharpish.text(PluginsColumn.VERSION) == "0.1.0"
    broken = dialog.plugin_item("exploding")
    assert broken.text(PluginsColumn.VERSION) == "2.0.1"
    assert broken.text(PluginsColumn.STATUS) == "broken: failed to import: ImportError: needs libfoo 9"
    assert "needs libfoo 9" in broken.toolTip(PluginsColumn.NAME)
    assert broken.foreground(PluginsColumn.NAME).color().name() == "#8c8c8c"  # greyed
    assert sharpish.foreground(PluginsColumn.NAME).style() == Qt.BrushStyle.NoBrush


def test_switching_a_plugin_off_saves_the_setting_and_drops_its_methods_at_once(
    qtbot, window, private_sys_path
):
    from sr_desk.ui.workbench import Workbench

    folder = app_paths().plugins_dir
    folder.mkdir(parents=True)
    install_fake_plugin(folder, "sharpish", SHARPISH)
    workbench = Workbench(window)
    try:
        assert {"sharpish", "bicubic"} <= set(method_ids(workbench))
        window.actions["plugins"].trigger()
        dialog = workbench.plugins_dialog
        assert dialog is not None and dialog.isVisible()
        qtbot.addWidget(dialog)

        with qtbot.waitSignal(dialog.plugins_changed, timeout=5000):
            dialog.set_plugin_enabled("sharpish", False)
        assert window.settings.disabled_plugins == ["sharpish"]
        assert Settings.load().disabled_plugins == ["sharpish"]  # saved
        assert "sharpish" not in method_ids(workbench) and "bicubic" in method_ids(workbench)
        assert dialog.plugin_item("sharpish").text(PluginsColumn.STATUS) == "disabled"
        assert "off" in dialog.message_text()

        with qtbot.waitSignal(dialog.plugins_changed, timeout=5000):
            dialog.set_plugin_enabled("classic", False)  # built in: allowed, with a warning
        assert "ships with sr-desk" in dialog.message_text() and "bicubic" in dialog.message_text()
        assert "bicubic" not in method_ids(workbench)
        assert Settings.load().disabled_plugins == ["classic", "sharpish"]

        with qtbot.waitSignal(dialog.plugins_changed, timeout=5000):
            dialog.set_plugin_enabled("sharpish", True)
        assert "sharpish" in method_ids(workbench) and window.settings.disabled_plugins == ["classic"]
        assert dialog.plugin_item("sharpish").checkState(PluginsColumn.NAME) == Qt.CheckState.Checked
    finally:
        workbench.shutdown()


def test_an_option_or_a_missing_file_is_refused_before_pip_runs(qtbot, tmp_path):
    dialog = open_dialog(qtbot)
    with qtbot.waitSignal(dialog.install_finished, timeout=1000) as finished:
        assert not dialog.install(str(tmp_path / "nowhere" / "plugin-1.0-py3-none-any.whl"))
    assert finished.args[0] is False and "There is no file" in dialog.message_text()
    assert not dialog.install("--index-url=https://example.invalid/simple")
    assert "pip option" in dialog.log_text() and not dialog.is_installing()
    assert not app_paths().plugins_dir.exists()


# -- installing ------------------------------------------------------------------------------


@pytest.mark.slow
def test_installing_the_template_wheel_adds_its_method_without_a_restart(
    qtbot, window, example_wheel, target_mode, private_sys_path, make_png
):
    from sr_desk.ui.workbench import Workbench

    workbench = Workbench(window)
    try:
        assert "example-sharpen" not in method_ids(workbench)
        dialog = workbench.show_plugins()
        qtbot.addWidget(dialog)
        assert dialog.target == target_mode  # never into the test environment
        qtbot.keyClicks(dialog.spec_edit, str(example_wheel))
        with qtbot.waitSignal(dialog.install_finished, timeout=120_000) as finished:
            qtbot.mouseClick(dialog.install_button, Qt.MouseButton.LeftButton)
            assert dialog.is_installing() and not dialog.install_button.isEnabled()
        ok, message = finished.args
        log = dialog.log_text()
        assert ok, log

        command = log.splitlines()[0]
        assert command.startswith("$ ") and shlex.split(command[2:]) == build_pip_command(
            str(example_wheel), target_mode
        )
        assert "Successfully installed sr-desk-example-plugin-0.1.0" in log  # pip's own output
        assert "example 0.1.0 adds example-sharpen" in message and message in dialog.message_text()
        assert (target_mode / "sr_desk_example" / "__init__.py").is_file()

        item = dialog.plugin_item("example")
        assert item is not None and item.text(PluginsColumn.VERSION) == "0.1.0"
        assert item.text(PluginsColumn.METHODS) == "example-sharpen" and item.text(PluginsColumn.STATUS) == "ok"
        assert item.text(PluginsColumn.ORIGIN) == "package (plugin folder)"
        assert item.text(PluginsColumn.AUTHOR) == "Example Author"

        # The running editor has it: listed in the method panel, and it runs.
        assert "example-sharpen" in method_ids(workbench)
        view = window.open_paths([make_png("a.png", size=(12, 8))])[0]
        workbench.panel.select_method("example-sharpen")
        with qtbot.waitSignal(workbench.controller.finished, timeout=30_000):
            workbench.panel.request_run()
        assert view.document.image.size == (48, 32)
    finally:
        workbench.shutdown()


@pytest.mark.slow
def test_a_bogus_wheel_fails_with_pips_error_and_changes_nothing(qtbot, tmp_path, private_sys_path):
    bogus = tmp_path / "sr_desk_bogus-0.1.0-py3-none-any.whl"
    bogus.write_bytes(b"this is not a zip archive")
    host = PluginHost(extra_paths=[app_paths().plugins_dir])
    host.discover()
    dialog = open_dialog(qtbot, host=host)
    names = dialog.plugin_names()
    dialog.spec_edit.setText(str(bogus))
    with qtbot.assertNotEmitted(dialog.plugins_changed), qtbot.waitSignal(
        dialog.install_finished, timeout=120_000
    ) as finished:
        qtbot.mouseClick(dialog.install_button, Qt.MouseButton.LeftButton)
    ok, message = finished.args
    assert not ok and message.startswith("Install failed: ")
    assert "ERROR:" in dialog.log_text() and message in dialog.log_text()
    assert dialog.message_text() == message and "\n" not in message
    assert dialog.plugin_names() == names and dialog.host is host
    assert [p.name for p in app_paths().plugins_dir.iterdir()] == []
    assert dialog.install_button.isEnabled() and not dialog.is_installing()


# -- the template's method itself ------------------------------------------------------------


class _Context:
    device, dtype = "cpu", "float32"

    def __init__(self):
        self.reports = []

    def report(self, step, total, preview=None, message="", box=None):
        self.reports.append((step, total))

    def check_cancelled(self):
        pass


def test_the_template_method_is_bicubic_plus_an_unsharp_mask():
    from sr_desk.api import Request

    spec = importlib.util.spec_from_file_location(
        "template_sr_desk_example", TEMPLATE / "src" / "sr_desk_example" / "__init__.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    record = PluginHost().register(module, "example")
    assert record.ok, record.error
    (method,) = record.methods
    assert method.id == "example-sharpen" and method.capabilities.scales is None
    params = {p.name: p for p in method.params}
    assert params["amount"].default == 0.6 and (params["amount"].minimum, params["amount"].maximum) == (0, 2)
    assert params["amount"].help and params["radius"].help

    image = np.zeros((8, 10, 3), np.float32)
    image[:, 5:] = 0.8
    bicubic = np.clip(resize(image, (25, 20), Filter.BICUBIC), 0, 1)
    context = _Context()
    plain = method.run(Request(image, 2.5, (25, 20), {"amount": 0.0, "radius": 2}), context)
    assert plain.shape == (20, 25, 3) and plain.dtype == np.float32 and np.allclose(plain, bicubic, atol=1e-6)
    assert context.reports[-1] == (3, 3)
    sharp = method.run(Request(image, 2.5, (25, 20), {"amount": 1.5, "radius": 2}), _Context())
    edge = lambda rgb: float(np.abs(np.diff(rgb[10, :, 0])).max())  # noqa: E731
    assert edge(sharp) > edge(plain) and sharp.min() >= 0 and sharp.max() <= 1


def test_a_plugin_sr_desk_switched_off_shows_why_and_switching_it_on_forgets_the_reason(qtbot, private_sys_path):
    """Issue 30: the reason a crashed plugin was switched off was shown at one start only."""
    folder = app_paths().plugins_dir
    folder.mkdir(parents=True)
    install_fake_plugin(folder, "sharpish", SHARPISH)
    settings = Settings()
    settings.disable_plugin("sharpish", "loading it ended sr-desk")
    dialog = open_dialog(qtbot, settings)
    item = dialog.plugin_item("sharpish")
    assert item.text(PluginsColumn.STATUS) == "disabled: loading it ended sr-desk"
    assert "loading it ended sr-desk" in item.toolTip(PluginsColumn.NAME)
    dialog.set_plugin_enabled("sharpish", True)
    assert Settings.load().disabled_plugins == [] and Settings.load().disabled_reasons == {}
