"""Several seeds of one run, side by side, and the one the user picks.

Diffusion results change with the seed in their fine texture (DoSSR's own
paper names it as its limitation). A user who runs "Try seeds: 4" gets this
dialog when the last one is done: each result as a crop at 100 % from the
centre of the part that changed (a shrunken thumbnail would hide exactly the
differences that matter), its seed under it. Apply puts the chosen result on
the document as one undo step; Discard leaves the image as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QButtonGroup,
    QDialog,
    QDialogButtonBox,
    QGridLayout,
    QLabel,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from sr_desk.core.imageio import ImageData
from sr_desk.ui.qimage import rgb_to_qimage

#: Side of the crops shown, in result pixels (shown at 100 %).
CROP = 192
COLUMNS = 4


@dataclass(frozen=True)
class SeedResult:
    seed: int
    result: ImageData


def centre_crop(rgb: np.ndarray, box: tuple[int, int, int, int], side: int = CROP) -> np.ndarray:
    """The ``side x side`` crop (smaller where the image is) at the centre of ``box`` ``(x, y, w, h)``."""
    height, width = rgb.shape[:2]
    w, h = min(side, width), min(side, height)
    cx, cy = box[0] + box[2] // 2, box[1] + box[3] // 2
    x = min(max(0, cx - w // 2), width - w)
    y = min(max(0, cy - h // 2), height - h)
    return np.ascontiguousarray(rgb[y : y + h, x : x + w])


class SeedPicker(QDialog):
    """Pick one of several results; ``picked(SeedResult)`` on Apply, ``discarded()`` otherwise."""

    picked = Signal(object)
    discarded = Signal()

    def __init__(self, results: Sequence[SeedResult], box: tuple[int, int, int, int], parent: QWidget | None = None):
        super().__init__(parent)
        self.results = list(results)
        self.setWindowTitle("Pick a result")
        layout = QVBoxLayout(self)
        intro = QLabel(
            f"{len(self.results)} results, one per seed, shown at 100 % from the centre of the changed region. "
            "Pick the one to keep; the others are discarded.", self)
        intro.setWordWrap(True)
        layout.addWidget(intro)
        grid = QGridLayout()
        layout.addLayout(grid)
        self.group = QButtonGroup(self)
        self.group.setExclusive(True)
        self.buttons: list[QToolButton] = []
        for index, item in enumerate(self.results):
            crop = centre_crop(item.result.rgb, box)
            button = QToolButton(self)
            button.setCheckable(True)
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextUnderIcon)
            button.setIcon(QIcon(QPixmap.fromImage(rgb_to_qimage(crop))))
            button.setIconSize(QSize(crop.shape[1], crop.shape[0]))
            button.setText(f"seed {item.seed}")
            button.setToolTip(f"The result with seed {item.seed}")
            button.setAccessibleName(f"Result with seed {item.seed}")
            self.group.addButton(button, index)
            grid.addWidget(button, index // COLUMNS, index % COLUMNS)
            self.buttons.append(button)
        if self.buttons:
            self.buttons[0].setChecked(True)
        box_buttons = QDialogButtonBox(self)
        self.apply_button = box_buttons.addButton("Apply", QDialogButtonBox.ButtonRole.AcceptRole)
        self.discard_button = box_buttons.addButton("Discard all", QDialogButtonBox.ButtonRole.RejectRole)
        self.apply_button.setDefault(True)
        box_buttons.accepted.connect(self.accept)
        box_buttons.rejected.connect(self.reject)
        layout.addWidget(box_buttons)

    def choose(self, index: int) -> None:
        """Select result ``index`` and apply it (what a click and Apply do)."""
        self.buttons[index].setChecked(True)
        self.accept()

    def selected(self) -> SeedResult | None:
        index = self.group.checkedId()
        return self.results[index] if 0 <= index < len(self.results) else None

    def accept(self) -> None:
        chosen = self.selected()
        super().accept()
        if chosen is not None:
            self.picked.emit(chosen)
        else:
            self.discarded.emit()

    def reject(self) -> None:
        super().reject()
        self.discarded.emit()
