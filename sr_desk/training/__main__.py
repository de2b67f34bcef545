"""``python -m sr_desk.training NAME [ARGS]``: a built-in trainer, run from a plain checkout.

The GPU machine has torch but neither PySide6 nor platformdirs, and the
project is not installed there; this runs ``plugins/NAME/train.py`` with the
``plugins`` folder importable under its installed name ``sr_desk_plugins``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path


def _plugins_package() -> None:
    try:
        importlib.import_module("sr_desk_plugins")
        return
    except ImportError:
        pass
    folder = Path(__file__).resolve().parents[2] / "plugins"
    spec = importlib.util.spec_from_file_location(
        "sr_desk_plugins", folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    if spec is None or spec.loader is None:
        raise SystemExit(f"no plugins folder at {folder}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["sr_desk_plugins"] = module
    spec.loader.exec_module(module)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-"):
        print("usage: python -m sr_desk.training NAME [ARGS]   (NAME: srdiff, dtls, dossr, diffsr, lddpm)", file=sys.stderr)
        return 2
    _plugins_package()
    trainer = importlib.import_module(f"sr_desk_plugins.{argv[0]}.train")
    return int(trainer.main(argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
