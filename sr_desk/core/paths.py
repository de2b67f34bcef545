"""Where sr-desk keeps settings, models, user plugins and caches.

platformdirs picks the platform's conventional folders. ``SR_DESK_HOME``
moves all of them under one folder: a portable install, or a test that must
not touch the real user's files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "sr-desk"


@dataclass(frozen=True)
class AppPaths:
    config_dir: Path
    data_dir: Path
    cache_dir: Path

    @property
    def settings_file(self) -> Path:
        return self.config_dir / "settings.json"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def write_journal(self) -> Path:
        """Temporary files being written (see ``sr_desk.core.atomic``): what a killed process leaves is removed."""
        return self.cache_dir / "pending-writes.txt"

    @property
    def plugin_loading_marks(self) -> Path:
        """Live marks of the plugins being loaded (``sr_desk.core.live_marks``): a dead process's mark names
        the plugin that ended it (``os._exit``, a native crash)."""
        return self.cache_dir / "loading-plugins"

    @property
    def plugins_dir(self) -> Path:
        """Plugins installed with ``pip install --target`` (the frozen app has no site-packages to write to)."""
        return self.data_dir / "plugins"


def app_paths() -> AppPaths:
    home = os.environ.get("SR_DESK_HOME")
    if home:
        root = Path(home).expanduser()
        return AppPaths(root / "config", root / "data", root / "cache")
    return AppPaths(
        Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)),
        Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)),
        Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False)),
    )
