"""``python -m sr_desk.training NAME [ARGS]``: any plugin's trainer, also from a plain checkout.

The GPU machine has torch but neither PySide6 nor platformdirs, and the
project is not installed there. Trainers are found as the app finds them,
through each plugin's ``sr_desk_trainers`` hook: the installed plugins'
entry points (third-party trainers included), or in a checkout that is not
installed, the ``plugins`` folder made importable under its installed name
``sr_desk_plugins``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sr_desk.api import ENTRY_POINT_GROUP, Trainer

CHECKOUT_PLUGINS = Path(__file__).resolve().parents[2] / "plugins"


def trainers() -> dict[str, Trainer]:
    """Every plugin's trainers by name, the first plugin's where two share one."""
    found: dict[str, Trainer] = {}
    for plugin in _installed_plugins() or _checkout_plugins():
        declare = getattr(plugin, "sr_desk_trainers", None)
        for trainer in (declare() or []) if callable(declare) else []:
            if isinstance(trainer, Trainer):
                found.setdefault(trainer.name, trainer)
    return found


def _installed_plugins() -> list[Any]:
    plugins = []
    for entry in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            plugins.append(entry.load())
        except Exception as exc:  # noqa: BLE001 - one broken plugin must not hide the other trainers
            print(f"sr-desk: plugin {entry.name!r} could not be loaded: {type(exc).__name__}: {exc}", file=sys.stderr)
    return plugins


def _checkout_plugins() -> Iterator[Any]:
    _plugins_package()
    for folder in sorted(CHECKOUT_PLUGINS.iterdir()):
        if (folder / "__init__.py").is_file():
            yield importlib.import_module(f"sr_desk_plugins.{folder.name}")


def _plugins_package() -> None:
    try:
        importlib.import_module("sr_desk_plugins")
        return
    except ImportError:
        pass
    spec = importlib.util.spec_from_file_location(
        "sr_desk_plugins", CHECKOUT_PLUGINS / "__init__.py", submodule_search_locations=[str(CHECKOUT_PLUGINS)]
    )
    if spec is None or spec.loader is None:
        raise SystemExit(f"no plugins folder at {CHECKOUT_PLUGINS}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["sr_desk_plugins"] = module
    spec.loader.exec_module(module)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    available = trainers()
    if not argv or argv[0].startswith("-") or argv[0] not in available:
        names = ", ".join(sorted(available)) or "none found"
        print(f"usage: python -m sr_desk.training NAME [ARGS]   (NAME: {names})", file=sys.stderr)
        return 2
    return int(available[argv[0]].main(argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
