"""Finding weights files: built-in ones first, then the user's models folder."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LocalWeights:
    """A ``WeightsStore`` over an ordered list of folders."""

    folders: Sequence[Path]

    def path(self, name: str) -> Path:
        if Path(name).name != name:
            raise ValueError(f"weights are looked up by file name, not path: {name!r}")
        for folder in self.folders:
            candidate = Path(folder) / name
            if candidate.is_file():
                return candidate
        where = ", ".join(str(f) for f in self.folders) or "no folder"
        raise FileNotFoundError(f"weights file {name!r} not found (looked in {where})")


def default_weights(models_dir: Path) -> LocalWeights:
    from sr_desk_resources import WEIGHTS_DIR

    return LocalWeights((WEIGHTS_DIR, models_dir))
