"""User settings, stored as JSON where platformdirs says.

Unknown keys are kept (a newer sr-desk may have written them) and a corrupt
file falls back to defaults with a warning instead of stopping the app.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sr_desk.core.atomic import atomic_write_bytes
from sr_desk.core.paths import app_paths

log = logging.getLogger(__name__)

DEVICES = ("auto", "cuda", "mps", "cpu")


@dataclass
class Settings:
    device: str = "auto"
    precision: str = "auto"
    models_dir: str | None = None
    tile_size: int = 512
    tile_overlap: int = 32
    undo_memory_mb: int = 1024
    disabled_plugins: list[str] = field(default_factory=list)
    #: Why sr-desk itself switched a plugin of ``disabled_plugins`` off (it crashed or hung); shown with it.
    disabled_reasons: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            log.warning("unknown device %r in settings; using auto", self.device)
            self.device = "auto"
        if not (isinstance(self.disabled_reasons, dict)
                and all(isinstance(k, str) and isinstance(v, str) for k, v in self.disabled_reasons.items())):
            log.warning("unreadable disabled_reasons in settings; dropping them")
            self.disabled_reasons = {}

    def disable_plugin(self, name: str, reason: str | None = None) -> None:
        """Switch plugin ``name`` off; ``reason`` when sr-desk does it (the user needs none)."""
        if name not in self.disabled_plugins:
            self.disabled_plugins = sorted([*self.disabled_plugins, name])
        if reason:
            self.disabled_reasons[name] = reason

    def enable_plugin(self, name: str) -> bool:
        """Switch plugin ``name`` on again (its reason goes too); False when it was not off."""
        self.disabled_reasons.pop(name, None)
        if name not in self.disabled_plugins:
            return False
        self.disabled_plugins.remove(name)
        return True

    def set_disabled_plugins(self, names: list[str]) -> None:
        """The user's choice of disabled plugins; reasons are kept only for those still off."""
        self.disabled_plugins = list(names)
        self.disabled_reasons = {n: r for n, r in self.disabled_reasons.items() if n in names}

    def resolved_models_dir(self) -> Path:
        return Path(self.models_dir).expanduser() if self.models_dir else app_paths().models_dir

    @classmethod
    def load(cls, path: Path | None = None) -> Settings:
        path = path or app_paths().settings_file
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            log.warning("settings file %s is unreadable (%s); using defaults", path, exc)
            return cls()
        if not isinstance(raw, dict):
            log.warning("settings file %s is not a JSON object; using defaults", path)
            return cls()
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        values = {k: v for k, v in raw.items() if k in known}
        extra = {k: v for k, v in raw.items() if k not in known}
        try:
            return cls(**values, extra=extra)
        except TypeError as exc:
            log.warning("settings file %s has bad values (%s); using defaults", path, exc)
            return cls()

    def save(self, path: Path | None = None) -> None:
        path = path or app_paths().settings_file
        path.parent.mkdir(parents=True, exist_ok=True)
        data = dataclasses.asdict(self)
        data.update(data.pop("extra"))
        atomic_write_bytes(path, json.dumps(data, indent=2, sort_keys=True).encode("utf-8"))
