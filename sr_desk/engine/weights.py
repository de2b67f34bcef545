"""Finding weights files by name in an ordered list of folders (the app's store is ``downloads.default_weights``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path


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
