"""Before the editor opens on X11: the system libraries Qt's xcb platform plugin needs.

Without them Qt aborts with "could not load the Qt platform plugin xcb",
which names none of them. The wheels of PySide6 bundle Qt but not these
X11 client libraries, and a fresh Debian or Ubuntu desktop lacks some
(libxcb-cursor0, libxcb-icccm4, libxcb-keysyms1 in particular), so the
editor checks first and says which packages to install.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable, Mapping

__all__ = ["XCB_LIBRARIES", "missing_xcb_packages", "needs_xcb", "xcb_advice"]

#: The shared libraries Qt 6's xcb plugin loads beyond libxcb itself, and the Debian/Ubuntu package of each.
XCB_LIBRARIES: dict[str, str] = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
}


def needs_xcb(env: Mapping[str, str] | None = None, platform: str | None = None) -> bool:
    """Whether Qt will open its xcb (X11) platform: Linux, an X display, no other platform asked for."""
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    if not platform.startswith("linux"):
        return False
    chosen = env.get("QT_QPA_PLATFORM", "").split(":")[0].strip().lower()
    if chosen:
        return chosen == "xcb"
    return bool(env.get("DISPLAY")) and not env.get("WAYLAND_DISPLAY")


def _loads(soname: str) -> bool:
    try:
        ctypes.CDLL(soname)
    except OSError:
        return False
    return True


def missing_xcb_packages(loads: Callable[[str], bool] = _loads) -> list[str]:
    """The packages whose libraries cannot be loaded, in a stable order (empty when all are there)."""
    return [package for soname, package in XCB_LIBRARIES.items() if not loads(soname)]


def xcb_advice(packages: list[str]) -> str:
    """The message shown instead of Qt's: what is missing and the command that installs it."""
    names = " ".join(packages)
    return (
        f"sr-desk cannot open its window: the X11 libraries Qt needs are missing ({', '.join(packages)}).\n"
        f"Install them, then start sr-desk again:\n"
        f"    sudo apt-get install {names}          (Debian, Ubuntu)\n"
        f"Other systems name them alike (xcb-util-cursor, xcb-util-wm, xcb-util-keysyms on Fedora and Arch).\n"
        f"The command line works without them: sr-desk upscale IMAGE -o OUT."
    )
