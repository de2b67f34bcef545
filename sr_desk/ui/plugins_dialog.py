"""The Plugins dialog (Edit ▸ Plugins…): what is installed, switching plugins on and off, installing more.

Every plugin the host discovered is listed with its version, author,
methods, origin and status; a broken one is greyed with its reason. Its
check box writes ``Settings.disabled_plugins`` (and saves the settings) at
once, the host is discovered again and ``plugins_changed`` tells the window
to reload its method panel: no restart.

Installing runs pip in a ``QProcess``, so the window stays responsive: the
exact command goes into the log first, pip's output follows as it comes,
and on success the host is discovered again (after
``importlib.invalidate_caches()``) so the new plugin's methods appear at
once. Nothing here pops up a modal message; results are shown in the
dialog's message strip and log.

Where pip installs (:func:`install_target`): into sr-desk's own Python
environment when that is writable and the app is not frozen; otherwise into
the user plugin folder with ``pip install --target``, which discovery
searches too.
"""

from __future__ import annotations

import codecs
import importlib
import importlib.metadata as metadata
import os
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path

import qtawesome as qta
from PySide6.QtCore import QProcess, QProcessEnvironment, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFontDatabase, QTextCursor
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from sr_desk.core.paths import app_paths
from sr_desk.api import Method
from sr_desk.core.settings import Settings
from sr_desk.engine.plugins import PluginHost, PluginRecord
from sr_desk.ui.banner import MessageBanner

__all__ = [
    "AUTO",
    "PluginsColumn",
    "PluginsDialog",
    "build_pip_command",
    "environment_writable",
    "format_command",
    "install_target",
]

_GREY = QColor(140, 140, 140)
_MAX_LOG_LINES = 5000


class _Auto:
    def __repr__(self) -> str:
        return "AUTO"


#: ``PluginsDialog(install_target=AUTO)``: decide with :func:`install_target` (the default).
AUTO = _Auto()


class PluginsColumn:
    NAME, VERSION, AUTHOR, METHODS, ORIGIN, STATUS = range(6)
    TITLES = ("Plugin", "Version", "Author", "Methods", "Origin", "Status")


# -- where and how pip installs -------------------------------------------------------------


def environment_writable() -> bool:
    """Whether pip may install into the environment sr-desk runs in.

    False where its site-packages is not writable, or where the environment
    is a system Python marked ``EXTERNALLY-MANAGED`` (PEP 668), which pip refuses.
    """
    if sys.prefix == sys.base_prefix:  # not a virtual environment
        stdlib = sysconfig.get_path("stdlib")
        if stdlib and (Path(stdlib) / "EXTERNALLY-MANAGED").is_file():
            return False
    purelib = sysconfig.get_path("purelib")
    return bool(purelib) and os.access(purelib, os.W_OK)


def install_target() -> Path | None:
    """Where the Plugins dialog installs: None for sr-desk's own environment, else the user plugin folder.

    A frozen (bundled) app has no site-packages to write to, and a read-only
    environment cannot take new packages: both install into
    ``app_paths().plugins_dir`` with ``pip install --target``.
    """
    if getattr(sys, "frozen", False) or not environment_writable():
        return app_paths().plugins_dir
    return None


_default_install_target = install_target  # PluginsDialog's argument of the same name hides it


def build_pip_command(spec: str, target: Path | str | None, *, python: str | None = None) -> list[str]:
    """The pip command line that installs ``spec`` (a requirement or a wheel path).

    ``target`` None installs into the environment of ``python`` (default
    ``sys.executable``), with the dependencies pip resolves. A folder installs
    there with ``--target`` and ``--no-deps``: sr-desk and its libraries are
    already importable, and letting pip resolve ``sr-desk`` into the folder
    would put a second copy of the app in it.
    """
    command = [
        python or sys.executable, "-m", "pip", "install", "--upgrade",
        "--no-input", "--disable-pip-version-check", "--progress-bar", "off",
    ]  # fmt: skip
    if target is not None:
        command += ["--no-deps", "--target", str(target)]
    command.append(spec)
    return command


def format_command(command: list[str]) -> str:
    """``command`` as one line the user could paste into their shell."""
    return subprocess.list2cmdline(command) if os.name == "nt" else shlex.join(command)


def _looks_like_path(spec: str) -> bool:
    return (
        spec.lower().endswith((".whl", ".tar.gz", ".zip"))
        or spec.startswith((".", "~"))
        or "/" in spec
        or (os.sep != "/" and os.sep in spec)
    ) and "://" not in spec


def _origin(record: PluginRecord, plugins_dir: Path) -> tuple[str, str]:
    """(short origin, where it is installed) of a plugin."""
    if record.builtin:
        return "built-in", "shipped with sr-desk"
    if record.distribution is None:
        return "in-process", "registered by the running program"
    try:
        location = Path(metadata.distribution(record.distribution).locate_file("")).resolve()
    except (metadata.PackageNotFoundError, OSError, TypeError, ValueError):
        return "package", f"distribution {record.distribution}"
    try:
        in_folder = location.is_relative_to(plugins_dir.resolve())
    except OSError:
        in_folder = False
    return ("package (plugin folder)" if in_folder else "package"), f"{record.distribution}, installed in {location}"


# -- the dialog -----------------------------------------------------------------------------


class PluginsDialog(QDialog):
    """Lists the plugins of ``host``, switches them on and off, and installs new ones with pip.

    ``install_target``: :data:`AUTO` (decide with :func:`install_target`),
    None (sr-desk's environment) or a folder (``pip install --target``).
    ``settings_path`` overrides where the settings file is written and
    ``python`` the interpreter that runs pip.

    Signals
    -------
    plugins_changed()
        A plugin was installed, switched on or switched off; :attr:`host` is
        already discovered again.
    install_finished(bool, str)
        An install ended: (success, a one-line message).
    """

    plugins_changed = Signal()
    install_finished = Signal(bool, str)

    def __init__(
        self,
        settings: Settings,
        host: PluginHost | None = None,
        parent: QWidget | None = None,
        *,
        install_target: Path | str | None | _Auto = AUTO,
        settings_path: Path | None = None,
        python: str | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Plugins")
        self.setWindowIcon(qta.icon("mdi6.puzzle-outline"))
        self.setObjectName("plugins_dialog")
        self._settings = settings
        self._settings_path = settings_path
        self._python = python
        self._plugins_dir = app_paths().plugins_dir
        if isinstance(install_target, _Auto):
            install_target = _default_install_target()
        self.target: Path | None = Path(install_target) if install_target is not None else None
        if host is None:
            host = PluginHost(disabled=list(settings.disabled_plugins), disabled_reasons=dict(settings.disabled_reasons),
                              extra_paths=[self._plugins_dir])
            host.discover()
        self.host = host
        self._filling = False
        self._process: QProcess | None = None
        self._cancelled = False
        self._output_tail = ""
        self._decoders: dict[str, codecs.IncrementalDecoder] = {}
        self._methods_seen: dict[str, tuple[Method, ...]] = {}  # what each plugin offered when last loaded
        self._build_ui()
        self._fill()

    # ------------------------------------------------------------------ UI

    def _build_ui(self) -> None:
        layout = QVBoxLayout(self)

        self.banner = MessageBanner(self)
        layout.addWidget(self.banner)

        installed = QGroupBox("Installed plugins", self)
        installed_layout = QVBoxLayout(installed)
        self.tree = QTreeWidget(installed)
        self.tree.setObjectName("plugins_tree")
        self.tree.setColumnCount(len(PluginsColumn.TITLES))
        self.tree.setHeaderLabels(list(PluginsColumn.TITLES))
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        self.tree.setUniformRowHeights(True)
        header = self.tree.header()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(PluginsColumn.METHODS, QHeaderView.ResizeMode.Interactive)
        header.resizeSection(PluginsColumn.METHODS, 180)
        header.setStretchLastSection(True)
        installed_layout.addWidget(self.tree)
        note = "Untick a plugin to switch it off; the method panel follows at once."
        if self.host.safe_mode:
            note += " <b>Safe mode is on</b>: only the built-in plugins are loaded."
        self.note_label = QLabel(note, installed)
        self.note_label.setWordWrap(True)
        installed_layout.addWidget(self.note_label)
        layout.addWidget(installed, 3)

        install = QGroupBox("Install a plugin", self)
        install_layout = QVBoxLayout(install)
        row = QHBoxLayout()
        self.spec_edit = QLineEdit(install)
        self.spec_edit.setObjectName("plugin_spec")
        self.spec_edit.setPlaceholderText("a package name (sr-desk-nearest, sr-desk-nearest==1.2) or a wheel file")
        self.spec_edit.setClearButtonEnabled(True)
        self.choose_button = QPushButton(qta.icon("mdi6.folder-open-outline"), "Choose wheel\u2026", install)
        self.install_button = QPushButton(qta.icon("mdi6.download-outline"), "Install", install)
        self.install_button.setDefault(True)
        self.stop_button = QPushButton(qta.icon("mdi6.stop-circle-outline"), "Stop", install)
        self.stop_button.setToolTip("Stop pip (the package may be left half installed)")
        self.stop_button.setVisible(False)
        row.addWidget(self.spec_edit, 1)
        row.addWidget(self.choose_button)
        row.addWidget(self.install_button)
        row.addWidget(self.stop_button)
        install_layout.addLayout(row)
        if self.target is None:
            where = f"Installs into sr-desk's Python environment ({sysconfig.get_path('purelib')}), with pip."
        else:
            where = (
                f"Installs into the user plugin folder <code>{self.target}</code> with "
                "<code>pip install --target</code>, without dependencies (sr-desk and its libraries are already here)."
            )
        self.target_label = QLabel(where, install)
        self.target_label.setWordWrap(True)
        self.target_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        install_layout.addWidget(self.target_label)
        self.log_view = QPlainTextEdit(install)
        self.log_view.setObjectName("pip_log")
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(_MAX_LOG_LINES)
        self.log_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.log_view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.log_view.setPlaceholderText("pip's output appears here")
        install_layout.addWidget(self.log_view, 1)
        layout.addWidget(install, 2)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)

        self.tree.itemChanged.connect(self._on_item_changed)
        self.choose_button.clicked.connect(self._choose_wheel)
        self.install_button.clicked.connect(lambda: self.install())
        self.spec_edit.returnPressed.connect(lambda: self.install())
        self.stop_button.clicked.connect(self.stop_install)
        self.resize(920, 620)

    def show_message(self, text: str, level: str = "info") -> None:
        """The one-line message strip at the top of the dialog (never a modal box)."""
        self.banner.show_message(" ".join(str(text).split()), level)

    def message_text(self) -> str:
        return self.banner.text()

    def log_text(self) -> str:
        return self.log_view.toPlainText()

    # --------------------------------------------------------------- the list

    def _fill(self) -> None:
        """Show the host's records; existing rows are updated in place (this may run inside itemChanged)."""
        self._filling = True
        try:
            disabled = set(self._settings.disabled_plugins)
            records = {r.name: r for r in self.host.records}
            for index in reversed(range(self.tree.topLevelItemCount())):
                item = self.tree.topLevelItem(index)
                if item.data(PluginsColumn.NAME, Qt.ItemDataRole.UserRole) not in records:
                    self.tree.takeTopLevelItem(index)
            added = False
            for record in self.host.records:
                item = self.plugin_item(record.name)
                if item is None:
                    item = QTreeWidgetItem()
                    item.setData(PluginsColumn.NAME, Qt.ItemDataRole.UserRole, record.name)
                    item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                    self.tree.addTopLevelItem(item)
                    added = True
                # The box shows the user's choice; safe mode may keep a ticked plugin unloaded (see Status).
                self._show_record(item, record, off=record.name in disabled)
            if added:  # a new plugin takes its place in discovery order (never the case inside itemChanged)
                order = {r.name: i for i, r in enumerate(self.host.records)}
                items = [self.tree.takeTopLevelItem(0) for _ in range(self.tree.topLevelItemCount())]
                items.sort(key=lambda it: order.get(it.data(PluginsColumn.NAME, Qt.ItemDataRole.UserRole), 0))
                self.tree.addTopLevelItems(items)
        finally:
            self._filling = False

    def _show_record(self, item: QTreeWidgetItem, record: PluginRecord, *, off: bool) -> None:
        origin, where = _origin(record, self._plugins_dir)
        status = "disabled" if off and record.error is None else record.status
        reason = record.error or (record.disabled_reason if off else None)
        texts = [
            record.name,
            record.version or "",
            record.author or "",
            ", ".join(m.id for m in record.methods) or "\u2014",
            origin,
            f"{status}: {reason}" if reason else status,
        ]
        for column, text in enumerate(texts):
            item.setText(column, text)
        item.setCheckState(PluginsColumn.NAME, Qt.CheckState.Unchecked if off else Qt.CheckState.Checked)
        tip = f"{record.name} ({record.source})\n{where}"
        if reason:
            tip += f"\n{status}: {reason}"
        if record.methods:
            methods_tip = "\n".join(f"{m.id}: {m.name} ({m.task.value})" for m in record.methods)
        else:
            methods_tip = tip
        grey = record.error is not None or off
        for column in range(len(PluginsColumn.TITLES)):
            item.setToolTip(column, methods_tip if column == PluginsColumn.METHODS else tip)
            item.setForeground(column, QBrush(_GREY) if grey else QBrush())
        if record.error:
            icon = qta.icon("mdi6.alert-circle-outline", color="#c0392b")
        elif off:
            icon = qta.icon("mdi6.power-plug-off-outline", color="#8c8c8c")
        else:
            icon = qta.icon("mdi6.check-circle-outline", color="#27ae60")
        item.setIcon(PluginsColumn.STATUS, icon)

    def plugin_item(self, name: str) -> QTreeWidgetItem | None:
        for index in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(index)
            if item.data(PluginsColumn.NAME, Qt.ItemDataRole.UserRole) == name:
                return item
        return None

    def plugin_names(self) -> list[str]:
        return [
            self.tree.topLevelItem(i).data(PluginsColumn.NAME, Qt.ItemDataRole.UserRole)
            for i in range(self.tree.topLevelItemCount())
        ]

    def set_plugin_enabled(self, name: str, enabled: bool) -> None:
        """Tick or untick ``name``, as a click on its check box does."""
        item = self.plugin_item(name)
        if item is not None:
            item.setCheckState(PluginsColumn.NAME, Qt.CheckState.Checked if enabled else Qt.CheckState.Unchecked)

    def _on_item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        if self._filling or column != PluginsColumn.NAME:
            return
        name = item.data(PluginsColumn.NAME, Qt.ItemDataRole.UserRole)
        enabled = item.checkState(PluginsColumn.NAME) == Qt.CheckState.Checked
        disabled = set(self._settings.disabled_plugins)
        if enabled == (name not in disabled):
            return
        if enabled:
            self._settings.enable_plugin(name)
        else:
            self._settings.disable_plugin(name)
        saved = True
        try:
            self._settings.save(self._settings_path)
        except OSError as exc:
            saved = False
            problem = " ".join(str(exc).split())
        self.rediscover()
        record = next((r for r in self.host.records if r.name == name), None)
        if not saved:
            self.show_message(
                f"Plugin {name} is {'on' if enabled else 'off'} until sr-desk closes: the settings could not be "
                f"saved ({problem}).",
                "warning",
            )
        elif enabled and record is not None and record.error:
            self.show_message(f"Plugin {name} is on but broken: {record.error}", "warning")
        elif enabled:
            methods = ", ".join(m.id for m in record.methods) if record else ""
            self.show_message(f"Plugin {name} is on{': ' + methods if methods else ''}.", "info")
        elif record is not None and record.builtin:
            methods = ", ".join(m.id for m in self._methods_seen.get(name, ())) or "its methods"
            self.show_message(
                f"{name} ships with sr-desk and is now off: {methods} are gone until you tick it again.", "warning"
            )
        else:
            self.show_message(f"Plugin {name} is off; its methods are gone from the method panel.", "info")
        self.plugins_changed.emit()

    # ------------------------------------------------------------ discovery

    def rediscover(self) -> PluginHost:
        """Discover the plugins again (a new host; loaded code stays loaded) and refresh the list."""
        for record in self.host.records:
            if record.methods:
                self._methods_seen[record.name] = record.methods
        importlib.invalidate_caches()
        extra = [Path(p) for p in self.host.extra_paths]
        for folder in (self._plugins_dir, self.target):
            if folder is not None and Path(folder) not in extra:
                extra.append(Path(folder))
        host = PluginHost(disabled=list(self._settings.disabled_plugins), extra_paths=extra, safe_mode=self.host.safe_mode,
                          disabled_reasons=dict(self._settings.disabled_reasons))
        host.discover()
        self.host = host
        self._fill()
        return host

    # -------------------------------------------------------------- install

    def _choose_wheel(self) -> None:
        start = self.spec_edit.text().strip()
        start_dir = str(Path(start).expanduser().parent) if start and _looks_like_path(start) else str(Path.home())
        path, _ = QFileDialog.getOpenFileName(
            self, "Choose a plugin wheel", start_dir, "Python wheels (*.whl);;All files (*)"
        )
        if path:
            self.spec_edit.setText(path)

    def is_installing(self) -> bool:
        return self._process is not None

    def install(self, spec: str | None = None) -> bool:
        """Start ``pip install`` for ``spec`` (default: the line edit); False when refused before pip runs."""
        if self._process is not None:
            self.show_message("An install is already running.", "warning")
            return False
        text = (self.spec_edit.text() if spec is None else spec).strip()
        if not text:
            self.show_message("Type a package name or choose a wheel file first.", "warning")
            return False
        if text.startswith("-"):
            self._refuse(f"{text!r} looks like a pip option, not a package name or a file.")
            return False
        if _looks_like_path(text):
            path = Path(text).expanduser()
            if not path.exists():
                self._refuse(f"There is no file {str(path)!r}.")
                return False
            text = str(path.resolve())

        command = build_pip_command(text, self.target, python=self._python)
        self._log(f"$ {format_command(command)}\n")
        if self.target is not None:
            self._log(
                f"# installing into the user plugin folder with --target; --no-deps: sr-desk and its libraries are "
                f"already installed, and a plugin that needs more must have it installed into {self.target} too\n"
            )
            try:
                self.target.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                self._refuse(f"The plugin folder {self.target} cannot be created: {' '.join(str(exc).split())}")
                return False

        process = QProcess(self)
        process.setProgram(command[0])
        process.setArguments(command[1:])
        environment = QProcessEnvironment.systemEnvironment()
        environment.insert("PYTHONUNBUFFERED", "1")  # pip's output arrives line by line, not at exit
        environment.insert("PYTHONIOENCODING", "utf-8")
        process.setProcessEnvironment(environment)
        process.readyReadStandardOutput.connect(lambda: self._read(process, "stdout"))
        process.readyReadStandardError.connect(lambda: self._read(process, "stderr"))
        process.finished.connect(lambda code, status: self._on_finished(process, code, status))
        process.errorOccurred.connect(lambda error: self._on_error(process, error))
        self._process = process
        self._cancelled = False
        self._output_tail = ""
        self._decoders = {
            "stdout": codecs.getincrementaldecoder("utf-8")("replace"),
            "stderr": codecs.getincrementaldecoder("utf-8")("replace"),
        }
        self._set_busy(True)
        self.show_message(f"Installing {text}\u2026", "info")
        process.start()
        return True

    def stop_install(self) -> None:
        """Kill a running pip (it may leave the package half installed)."""
        if self._process is not None:
            self._cancelled = True
            self._process.kill()

    def _refuse(self, message: str) -> None:
        self._log(f"{message}\n")
        self.show_message(message, "error")
        self.install_finished.emit(False, message)

    def _set_busy(self, busy: bool) -> None:
        self.install_button.setEnabled(not busy)
        self.choose_button.setEnabled(not busy)
        self.spec_edit.setReadOnly(busy)
        self.stop_button.setVisible(busy)

    def _log(self, text: str) -> None:
        cursor = self.log_view.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(text)
        self.log_view.setTextCursor(cursor)
        self.log_view.ensureCursorVisible()

    def _read(self, process: QProcess, channel: str) -> None:
        data = process.readAllStandardOutput() if channel == "stdout" else process.readAllStandardError()
        text = self._decoders[channel].decode(bytes(data.data()))
        if text:
            self._output_tail = (self._output_tail + text)[-20000:]
            self._log(text)

    def _on_error(self, process: QProcess, error: QProcess.ProcessError) -> None:
        if error != QProcess.ProcessError.FailedToStart or process is not self._process:
            return  # the other errors end in finished()
        self._end(process)
        message = f"Install failed: {process.program()} could not be started ({process.errorString()})."
        self._log(message + "\n")
        self.show_message(message, "error")
        self.install_finished.emit(False, message)

    def _end(self, process: QProcess) -> None:
        self._process = None
        self._set_busy(False)
        process.deleteLater()

    def _on_finished(self, process: QProcess, code: int, status: QProcess.ExitStatus) -> None:
        if process is not self._process:
            return
        self._read(process, "stdout")
        self._read(process, "stderr")
        for decoder in self._decoders.values():
            rest = decoder.decode(b"", final=True)
            if rest:
                self._log(rest)
        self._end(process)
        if self._cancelled:
            message = "Install stopped; the package may be partly installed."
            self._log(f"# {message}\n")
            self.show_message(message, "warning")
            self.install_finished.emit(False, message)
            return
        if status != QProcess.ExitStatus.NormalExit or code != 0:
            reason = self._pip_error() or (
                "pip crashed" if status != QProcess.ExitStatus.NormalExit else f"pip exited with status {code}"
            )
            message = f"Install failed: {reason}"
            self._log(f"# {message}\n")
            self.show_message(message, "error")
            self.install_finished.emit(False, message)
            return
        self._log("# pip finished; looking for new plugins\n")
        before = {r.name: r.version for r in self.host.records}
        self.rediscover()
        message, level = self._install_summary(before)
        self._log(f"# {message}\n")
        self.show_message(message, level)
        self.plugins_changed.emit()
        self.install_finished.emit(True, message)

    def _pip_error(self) -> str:
        """The last ``ERROR:`` line pip printed (its reason), or ''."""
        lines = [line.strip() for line in self._output_tail.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("ERROR:")]
        if errors:
            return " ".join(errors[-1].removeprefix("ERROR:").split())
        return ""

    def _install_summary(self, before: dict[str, str | None]) -> tuple[str, str]:
        new = [r for r in self.host.records if r.name not in before]
        updated = [r for r in self.host.records if r.name in before and r.version != before[r.name]]
        parts: list[str] = []
        level = "info"
        for record in new:
            if record.error:
                parts.append(f"plugin {record.name} {record.version or ''} is installed but broken: {record.error}")
                level = "warning"
            else:
                methods = ", ".join(m.id for m in record.methods) or "no methods"
                parts.append(f"plugin {record.name} {record.version or ''} adds {methods}")
        for record in updated:
            parts.append(f"plugin {record.name} is now {record.version}; restart sr-desk to run the new version")
            level = "warning" if level == "info" else level
        if not parts:
            return "Installed, but no new sr-desk plugin appeared (is it an sr-desk plugin?).", "warning"
        text = "; ".join(" ".join(p.split()) for p in parts)
        return f"Installed: {text}.", level

    # ---------------------------------------------------------------- close

    def done(self, result: int) -> None:
        """Closing stops a running pip (killed; the log says so)."""
        if self._process is not None:
            process = self._process
            self.stop_install()
            process.waitForFinished(3000)
        super().done(result)
