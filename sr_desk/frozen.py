"""What the frozen (PyInstaller) ``sr-desk`` executable does with its arguments.

In a bundled app ``sys.executable`` is the app itself, not a Python
interpreter. The Plugins dialog installs plugins by running
``[sys.executable, "-m", "pip", "install", ..., "--target", <plugin folder>, spec]``
(see ``sr_desk.ui.plugins_dialog.build_pip_command``), so the frozen
executable must behave like ``python -m pip`` for that one form and like the
``sr-desk`` command for everything else. The bundle carries pip for this.

Kept apart from ``packaging/frozen/entry.py`` so that the dispatch can be
unit-tested without building anything.
"""

from __future__ import annotations

import runpy
import sys
from collections.abc import Sequence

#: The one module the frozen app runs as ``<app> -m MODULE``.
PIP_MODULE = "pip"


def is_pip_call(argv: Sequence[str]) -> bool:
    """True for ``<app> -m pip ...`` (``argv`` includes the program name, like ``sys.argv``)."""
    return len(argv) >= 3 and argv[1] == "-m" and argv[2] == PIP_MODULE


def exit_status(code: object) -> int:
    """The process exit status for a ``SystemExit`` code, as the interpreter maps it."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)  # sys.exit("message") prints the message and exits 1
    return 1


def run_pip(program: str, args: Sequence[str]) -> int:
    """Run pip in this process with ``args`` (what follows ``-m pip``); return its exit status.

    ``runpy`` with ``alter_sys`` gives pip the same ``sys.argv`` and
    ``__main__`` it would see under ``python -m pip``; pip ends with
    ``sys.exit``, which is caught here so the caller decides how to exit.
    """
    saved_argv = sys.argv
    sys.argv = [program, *args]  # runpy replaces sys.argv[0] with pip's __main__.py, as -m does
    try:
        runpy.run_module(PIP_MODULE, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        return exit_status(exc.code)
    finally:
        sys.argv = saved_argv
    return 0


def run_frozen(argv: Sequence[str]) -> int:
    """Entry point of the frozen app: ``argv`` is the full ``sys.argv``; returns the exit status.

    ``<app> -m pip ...`` runs pip (plugin installs from the Plugins dialog);
    anything else is the ``sr-desk`` command line. The CLI is imported only
    when needed, so a pip run does not load Qt or torch.
    """
    if is_pip_call(argv):
        return run_pip(argv[0], argv[3:])
    from sr_desk.cli import main

    return int(main(list(argv[1:])))
