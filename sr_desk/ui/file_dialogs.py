"""Open and Save As / Export dialogs, and the small questions around them.

The main window calls these module functions by name (``file_dialogs.ask_save_path(...)``),
so tests replace them with ``monkeypatch.setattr`` instead of driving
native dialogs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from sr_desk.core.imageio import IMAGE_EXTENSIONS, SAVE_FORMATS

__all__ = [
    "EXPORT_FORMATS",
    "QualityDialog",
    "SaveChoice",
    "ask_feather_radius",
    "ask_open_paths",
    "ask_quality",
    "ask_save_path",
    "open_filter",
    "resolve_save_path",
]


@dataclass(frozen=True)
class ExportFormat:
    name: str  # Pillow's format name
    label: str
    extensions: tuple[str, ...]
    lossy: bool

    @property
    def filter(self) -> str:
        return f"{self.label} ({' '.join('*' + e for e in self.extensions)})"


EXPORT_FORMATS: tuple[ExportFormat, ...] = (
    ExportFormat("PNG", "PNG image", (".png",), False),
    ExportFormat("JPEG", "JPEG image", (".jpg", ".jpeg"), True),
    ExportFormat("WEBP", "WebP image", (".webp",), True),
    ExportFormat("TIFF", "TIFF image", (".tif", ".tiff"), False),
)


@dataclass(frozen=True)
class SaveChoice:
    """Where and how to write: ``format`` is Pillow's name, ``quality`` matters for JPEG and WebP."""

    path: Path
    format: str
    quality: int = 95


def open_filter() -> str:
    patterns = " ".join(f"*{e}" for e in IMAGE_EXTENSIONS)
    return f"Images ({patterns});;All files (*)"


def ask_open_paths(parent: QWidget | None, directory: str = "") -> list[str]:
    """The files the user picked to open (possibly none)."""
    paths, _ = QFileDialog.getOpenFileNames(parent, "Open Images", directory, open_filter())
    return list(paths)


def format_for(path: Path) -> ExportFormat | None:
    name = SAVE_FORMATS.get(path.suffix.lower())
    return next((f for f in EXPORT_FORMATS if f.name == name), None)


def resolve_save_path(path: str | Path, chosen_filter: str = "") -> tuple[Path, ExportFormat]:
    """The path with an extension sr-desk can write, and its format.

    A known extension wins over the filter; a missing or unknown one gets
    the chosen filter's (PNG by default) appended.
    """
    path = Path(path)
    known = format_for(path)
    if known is not None:
        return path, known
    fmt = next((f for f in EXPORT_FORMATS if f.filter == chosen_filter), EXPORT_FORMATS[0])
    return path.with_name(path.name + fmt.extensions[0]), fmt


def ask_save_path(parent: QWidget | None, suggested: Path | str, quality: int = 95) -> SaveChoice | None:
    """Save As / Export: a file name and format, then the quality for lossy formats; None if cancelled."""
    suggested = Path(suggested)
    current = format_for(suggested) or EXPORT_FORMATS[0]
    filters = ";;".join(f.filter for f in EXPORT_FORMATS)
    name, chosen = QFileDialog.getSaveFileName(parent, "Save As", str(suggested), filters, current.filter)
    if not name:
        return None
    path, fmt = resolve_save_path(name, chosen)
    if fmt.lossy:
        asked = ask_quality(parent, fmt.label, quality)
        if asked is None:
            return None
        quality = asked
    return SaveChoice(path, fmt.name, quality)


class QualityDialog(QDialog):
    """A quality slider and spin box (1-100) for JPEG and WebP."""

    def __init__(self, parent: QWidget | None = None, label: str = "JPEG image", quality: int = 95) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"{label} Quality")
        self.spin = QSpinBox(self)
        self.spin.setRange(1, 100)
        self.spin.setValue(int(quality))
        self.slider = QSlider(Qt.Orientation.Horizontal, self)
        self.slider.setRange(1, 100)
        self.slider.setValue(int(quality))
        self.slider.valueChanged.connect(self.spin.setValue)
        self.spin.valueChanged.connect(self.slider.setValue)
        row = QHBoxLayout()
        row.addWidget(self.slider, 1)
        row.addWidget(self.spin)
        form = QFormLayout()
        form.addRow("Quality:", row)
        hint = QLabel("Higher keeps more detail and makes larger files; 90-95 suits photos.")
        hint.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(hint)
        layout.addWidget(buttons)

    def quality(self) -> int:
        return int(self.spin.value())


def ask_quality(parent: QWidget | None, label: str, quality: int = 95) -> int | None:
    dialog = QualityDialog(parent, label, quality)
    if dialog.exec() != QDialog.DialogCode.Accepted:
        return None
    return dialog.quality()


def ask_feather_radius(parent: QWidget | None, radius: float = 8.0) -> float | None:
    """Feather Selection's radius in pixels; None if cancelled."""
    value, ok = QInputDialog.getDouble(parent, "Feather Selection", "Feather radius (px):", radius, 0.5, 500.0, 1)
    return float(value) if ok else None
