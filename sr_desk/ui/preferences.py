"""The Preferences dialog: device, precision, folders, memory, and the plugins.

OK writes the settings file (``Settings.save``); Cancel leaves the given
``Settings`` object untouched. Enabling or disabling a plugin is stored in
``Settings.disabled_plugins`` and applies when OK is pressed: the editor
reloads its plugin host and the method panel follows (as the Plugins
dialog does).
"""

from __future__ import annotations

import copy
from pathlib import Path

import qtawesome as qta
from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QSpinBox,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from sr_desk.core.paths import app_paths
from sr_desk.core.settings import Settings
from sr_desk.engine.devices import DEVICE_CHOICES, PRECISION_CHOICES
from sr_desk.engine.plugins import PluginHost, PluginRecord

__all__ = ["PluginColumn", "PreferencesDialog"]

_SHOWN_OFF_ROLE = Qt.ItemDataRole.UserRole + 1  # whether a plugin's box was unticked when the dialog opened

_DEVICE_LABELS = {
    "auto": "Automatic (CUDA, then Apple MPS, then CPU)",
    "cuda": "CUDA GPU",
    "mps": "Apple MPS",
    "cpu": "CPU",
}
_PRECISION_LABELS = {
    "auto": "Automatic (bfloat16 on CUDA and on CPUs with native bf16, float32 elsewhere)",
    "float32": "float32 (exact)",
    "bfloat16": "bfloat16 (faster, less memory)",
}


class PluginColumn:
    NAME, VERSION, AUTHOR, METHODS, STATUS = range(5)
    TITLES = ("Plugin", "Version", "Author", "Methods", "Status")


class PreferencesDialog(QDialog):
    """Edits a copy of ``settings``; :meth:`accept` (OK) copies it back and saves.

    ``settings_path`` overrides where the file is written (default: the
    platform's settings file, under ``SR_DESK_HOME`` when that is set).
    After OK, :meth:`plugins_changed` says whether the enabled set changed
    (the window may offer to reload the plugins).
    """

    def __init__(
        self,
        settings: Settings,
        host: PluginHost | None = None,
        parent: QWidget | None = None,
        *,
        settings_path: Path | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Preferences")
        self.setWindowIcon(qta.icon("mdi6.cog-outline"))
        self._settings = settings
        self._path = settings_path
        self._host = host
        self._plugins_changed = False

        layout = QVBoxLayout(self)

        compute = QGroupBox("Computation", self)
        form = QFormLayout(compute)
        self.device_combo = QComboBox(compute)
        for name in DEVICE_CHOICES:
            self.device_combo.addItem(_DEVICE_LABELS.get(name, name), name)
        self.device_combo.setToolTip("Where methods run; a device that is missing is reported, never replaced silently")
        self.precision_combo = QComboBox(compute)
        for name in PRECISION_CHOICES:
            self.precision_combo.addItem(_PRECISION_LABELS.get(name, name), name)
        self.precision_combo.setToolTip("Compute precision of the diffusion models")
        self.tile_spin = QSpinBox(compute)
        self.tile_spin.setRange(0, 8192)
        self.tile_spin.setSingleStep(64)
        self.tile_spin.setSuffix(" px")
        self.tile_spin.setSpecialValueText("off (whole image at once)")
        self.tile_spin.setToolTip("Large images are processed in overlapping tiles of this many input pixels")
        form.addRow("Device", self.device_combo)
        form.addRow("Precision", self.precision_combo)
        form.addRow("Tile size", self.tile_spin)
        layout.addWidget(compute)

        storage = QGroupBox("Storage", self)
        form = QFormLayout(storage)
        models_row = QWidget(storage)
        row = QHBoxLayout(models_row)
        row.setContentsMargins(0, 0, 0, 0)
        self.models_edit = QLineEdit(models_row)
        self.models_edit.setPlaceholderText(str(app_paths().models_dir))
        self.models_edit.setToolTip("Where downloaded weights are kept; empty for the default folder")
        self.models_browse = QToolButton(models_row)
        self.models_browse.setIcon(qta.icon("mdi6.folder-open-outline"))
        self.models_browse.setToolTip("Choose the models folder")
        row.addWidget(self.models_edit, 1)
        row.addWidget(self.models_browse)
        self.undo_spin = QSpinBox(storage)
        self.undo_spin.setRange(64, 1024 * 1024)
        self.undo_spin.setSingleStep(256)
        self.undo_spin.setSuffix(" MB")
        self.undo_spin.setToolTip("Memory the undo history may use before the oldest steps are dropped")
        form.addRow("Models folder", models_row)
        form.addRow("Undo memory", self.undo_spin)
        layout.addWidget(storage)

        plugins = QGroupBox("Plugins", self)
        plugins_layout = QVBoxLayout(plugins)
        self.plugin_tree = QTreeWidget(plugins)
        self.plugin_tree.setColumnCount(len(PluginColumn.TITLES))
        self.plugin_tree.setHeaderLabels(list(PluginColumn.TITLES))
        self.plugin_tree.setRootIsDecorated(False)
        self.plugin_tree.setAlternatingRowColors(True)
        self.plugin_tree.header().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.plugin_tree.header().setSectionResizeMode(PluginColumn.METHODS, QHeaderView.ResizeMode.Interactive)
        self.plugin_tree.header().resizeSection(PluginColumn.METHODS, 180)
        self.plugin_tree.header().setStretchLastSection(True)
        plugins_layout.addWidget(self.plugin_tree)
        note = QLabel(
            "Switching a plugin on or off applies when you press OK: the method panel follows at once. "
            f"User plugins are installed in <code>{app_paths().plugins_dir}</code>.",
            plugins,
        )
        note.setWordWrap(True)
        note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        plugins_layout.addWidget(note)
        layout.addWidget(plugins, 1)

        self.error_label = QLabel(self)
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #c0392b;")
        self.error_label.setVisible(False)
        layout.addWidget(self.error_label)

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        layout.addWidget(self.buttons)

        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.models_browse.clicked.connect(self._browse_models)

        self._load(settings)
        self._fill_plugins(host.records if host is not None else [], settings.disabled_plugins)
        self.resize(640, 560)

    # ------------------------------------------------------------- fields

    def _load(self, settings: Settings) -> None:
        self.device_combo.setCurrentIndex(max(0, self.device_combo.findData(settings.device)))
        self.precision_combo.setCurrentIndex(max(0, self.precision_combo.findData(settings.precision)))
        self.tile_spin.setValue(int(settings.tile_size))
        self.models_edit.setText(settings.models_dir or "")
        self.undo_spin.setValue(int(settings.undo_memory_mb))

    def _browse_models(self) -> None:
        start = self.models_edit.text() or str(app_paths().models_dir)
        folder = QFileDialog.getExistingDirectory(self, "Models folder", start)
        if folder:
            self.models_edit.setText(folder)

    # ------------------------------------------------------------ plugins

    def _fill_plugins(self, records: list[PluginRecord], disabled: list[str]) -> None:
        self.plugin_tree.clear()
        grey = QBrush(QColor(140, 140, 140))
        for record in records:
            methods = ", ".join(m.id for m in record.methods) or "—"
            off = record.name in disabled or not record.enabled
            status = "disabled" if off else record.status
            item = QTreeWidgetItem(
                [record.name, record.version or "", record.author or "", methods, status]
            )
            item.setData(PluginColumn.NAME, Qt.ItemDataRole.UserRole, record.name)
            item.setData(PluginColumn.NAME, _SHOWN_OFF_ROLE, off)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(PluginColumn.NAME, Qt.CheckState.Unchecked if off else Qt.CheckState.Checked)
            tip = f"{record.name} ({record.source})"
            if record.builtin:
                tip += "\nshipped with sr-desk"
            if record.error:
                tip += f"\n{status}: {record.error}"
                item.setText(PluginColumn.STATUS, f"{status}: {record.error}")
                item.setIcon(PluginColumn.STATUS, qta.icon("mdi6.alert-circle-outline", color="#c0392b"))
                for column in range(len(PluginColumn.TITLES)):
                    item.setForeground(column, grey)
            elif status == "ok":
                item.setIcon(PluginColumn.STATUS, qta.icon("mdi6.check-circle-outline", color="#27ae60"))
            else:
                for column in range(len(PluginColumn.TITLES)):
                    item.setForeground(column, grey)
            for column in range(len(PluginColumn.TITLES)):
                item.setToolTip(column, tip)
            if record.methods:
                item.setToolTip(
                    PluginColumn.METHODS, "\n".join(f"{m.id}: {m.name} ({m.task.value})" for m in record.methods)
                )
            self.plugin_tree.addTopLevelItem(item)

    def plugin_item(self, name: str) -> QTreeWidgetItem | None:
        for index in range(self.plugin_tree.topLevelItemCount()):
            item = self.plugin_tree.topLevelItem(index)
            if item.data(PluginColumn.NAME, Qt.ItemDataRole.UserRole) == name:
                return item
        return None

    def set_plugin_enabled(self, name: str, enabled: bool) -> None:
        item = self.plugin_item(name)
        if item is not None:
            item.setCheckState(PluginColumn.NAME, Qt.CheckState.Checked if enabled else Qt.CheckState.Unchecked)

    def _disabled_from_tree(self) -> list[str]:
        """The disabled plugins after the switches the user flipped *here*.

        Only flipped boxes count, applied to the settings as they are now: the
        Plugins dialog may have switched other plugins on or off while this
        dialog stood open, and its choices must survive this one's OK.
        """
        disabled = set(self._settings.disabled_plugins)
        for index in range(self.plugin_tree.topLevelItemCount()):
            item = self.plugin_tree.topLevelItem(index)
            name = item.data(PluginColumn.NAME, Qt.ItemDataRole.UserRole)
            off = item.checkState(PluginColumn.NAME) != Qt.CheckState.Checked
            if off != bool(item.data(PluginColumn.NAME, _SHOWN_OFF_ROLE)):
                (disabled.add if off else disabled.discard)(name)
        return sorted(disabled)

    # ------------------------------------------------------------- result

    def edited_settings(self) -> Settings:
        """A copy of the settings with the dialog's values (the original is not touched)."""
        result = copy.deepcopy(self._settings)
        result.device = self.device_combo.currentData()
        result.precision = self.precision_combo.currentData()
        result.tile_size = int(self.tile_spin.value())
        result.models_dir = self.models_edit.text().strip() or None
        result.undo_memory_mb = int(self.undo_spin.value())
        result.set_disabled_plugins(self._disabled_from_tree())
        return result

    def plugins_changed(self) -> bool:
        return self._plugins_changed

    def settings(self) -> Settings:
        return self._settings

    def accept(self) -> None:
        """Copy the values into the given ``Settings`` and save them."""
        edited = self.edited_settings()
        try:
            edited.save(self._path)
        except OSError as exc:  # shown in the dialog, which stays open; nothing changed
            self.error_label.setText(f"The settings could not be saved: {' '.join(str(exc).split())}")
            self.error_label.setVisible(True)
            return
        self._plugins_changed = sorted(edited.disabled_plugins) != sorted(self._settings.disabled_plugins)
        for name, value in vars(edited).items():
            setattr(self._settings, name, value)
        super().accept()
