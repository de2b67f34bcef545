"""Finding weights files: built-in ones first, then the user's models folder."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sr_desk.engine.downloads import ModelManager


def check_weights_name(name: str) -> None:
    """Refuse anything but a plain file name, so a lookup can never leave its folders."""
    if not name or Path(name).name != name or name in (".", ".."):
        raise ValueError(f"weights are looked up by file name, not path: {name!r}")


def find_weights(folders: Iterable[Path], name: str) -> Path | None:
    """The first ``folder / name`` that is a file, in folder order, or ``None``."""
    check_weights_name(name)
    for folder in folders:
        candidate = Path(folder) / name
        if candidate.is_file():
            return candidate
    return None


@dataclass(frozen=True)
class LocalWeights:
    """A ``WeightsStore`` over an ordered list of folders."""

    folders: Sequence[Path]

    def path(self, name: str) -> Path:
        found = find_weights(self.folders, name)
        if found is not None:
            return found
        where = ", ".join(str(f) for f in self.folders) or "no folder"
        raise FileNotFoundError(f"weights file {name!r} not found (looked in {where})")


def default_weights(models_dir: Path, before: Sequence[Path] = ()) -> ModelManager:
    """The app's weights store: shipped weights first, then ``models_dir``.

    ``before``: folders looked in ahead of the shipped weights (a benchmark's
    newly trained candidates under the shipped names). A ``ModelManager``
    rather than a plain ``LocalWeights`` so that a missing file's error tells
    the user how to download it.
    """
    from sr_desk_resources import WEIGHTS_DIR

    from sr_desk.engine.downloads import ModelManager

    return ModelManager(models_dir, builtin_dirs=(*before, WEIGHTS_DIR))
