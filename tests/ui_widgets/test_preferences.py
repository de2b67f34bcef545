"""Preferences round trip through the settings file; plugins listed with status and reason.

Also the notification bar, the editor's non-modal way of showing messages.
"""

from __future__ import annotations

from PySide6.QtCore import Qt

from sr_desk.api import hookimpl
from sr_desk.core.paths import app_paths
from sr_desk.core.settings import Settings
from sr_desk.engine.plugins import PluginHost
from sr_desk.ui.preferences import PluginColumn, PreferencesDialog
from tests.ui_widgets import fake_upscaler


class GoodPlugin:
    SR_DESK_API_VERSION = "1.0"

    @hookimpl
    def sr_desk_methods(self):
        return [fake_upscaler()]


class FuturePlugin:
    SR_DESK_API_VERSION = "2.0"


def host_with_plugins() -> PluginHost:
    host = PluginHost()
    host.register(GoodPlugin(), "good", version="1.2.0")
    host.register(FuturePlugin(), "future")
    return host


def test_ok_saves_every_field_and_they_load_back(qtbot, private_home, tmp_path):
    settings = Settings()
    dialog = PreferencesDialog(settings, host_with_plugins())
    qtbot.addWidget(dialog)
    dialog.device_combo.setCurrentIndex(dialog.device_combo.findData("cpu"))
    dialog.precision_combo.setCurrentIndex(dialog.precision_combo.findData("bfloat16"))
    dialog.models_edit.setText(str(tmp_path / "models"))
    dialog.tile_spin.setValue(256)
    dialog.undo_spin.setValue(2048)
    dialog.set_plugin_enabled("good", False)
    dialog.buttons.button(dialog.buttons.StandardButton.Ok).click()
    assert dialog.result() == dialog.DialogCode.Accepted
    assert settings.device == "cpu" and settings.disabled_plugins == ["good"]  # the caller's object follows
    assert dialog.plugins_changed()
    assert app_paths().settings_file.is_relative_to(private_home)
    loaded = Settings.load()
    assert (loaded.device, loaded.precision, loaded.models_dir, loaded.tile_size, loaded.undo_memory_mb) == (
        "cpu", "bfloat16", str(tmp_path / "models"), 256, 2048
    )
    assert loaded.disabled_plugins == ["good"]

    again = PreferencesDialog(loaded, host_with_plugins())
    qtbot.addWidget(again)
    assert again.device_combo.currentData() == "cpu" and again.tile_spin.value() == 256
    assert again.plugin_item("good").checkState(PluginColumn.NAME) == Qt.CheckState.Unchecked


def test_ok_keeps_plugin_switches_made_elsewhere_while_it_was_open(qtbot, private_home):
    settings = Settings()
    host = host_with_plugins()
    host.register(GoodPlugin(), "other", version="0.1")
    dialog = PreferencesDialog(settings, host)
    qtbot.addWidget(dialog)
    settings.disabled_plugins = ["other"]  # the Plugins dialog switched "other" off meanwhile
    dialog.set_plugin_enabled("good", False)  # and here the user switched "good" off
    dialog.buttons.button(dialog.buttons.StandardButton.Ok).click()
    assert settings.disabled_plugins == ["good", "other"]
    assert Settings.load(app_paths().settings_file).disabled_plugins == ["good", "other"]


def test_cancel_changes_nothing(qtbot):
    settings = Settings(tile_size=512)
    dialog = PreferencesDialog(settings, host_with_plugins())
    qtbot.addWidget(dialog)
    dialog.tile_spin.setValue(128)
    dialog.models_edit.setText("/somewhere")
    dialog.buttons.button(dialog.buttons.StandardButton.Cancel).click()
    assert settings.tile_size == 512 and settings.models_dir is None
    assert not app_paths().settings_file.exists()


def test_plugins_listed_with_status_and_broken_reason(qtbot):
    dialog = PreferencesDialog(Settings(), host_with_plugins())
    qtbot.addWidget(dialog)
    good = dialog.plugin_item("good")
    assert good.text(PluginColumn.VERSION) == "1.2.0"
    assert good.text(PluginColumn.METHODS) == "fake-up"
    assert good.text(PluginColumn.STATUS) == "ok"
    assert good.checkState(PluginColumn.NAME) == Qt.CheckState.Checked
    broken = dialog.plugin_item("future")
    status = broken.text(PluginColumn.STATUS)
    assert status.startswith("broken: ") and "API 2.0" in status
    assert "API 2.0" in broken.toolTip(PluginColumn.NAME)
    assert broken.foreground(PluginColumn.NAME).color().name() == "#8c8c8c"  # greyed
