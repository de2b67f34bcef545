"""The sr-desk editor (PySide6 widgets). Start it with :func:`sr_desk.ui.app.run_app`.

Layering: this package may import ``sr_desk.core``, ``sr_desk.engine`` and
``sr_desk.api``; nothing below it imports it.
"""

from __future__ import annotations

import ctypes
import logging
import sys

__all__ = ["guard_none_refcount"]

log = logging.getLogger(__name__)

_GUARDED = False


def guard_none_refcount() -> bool:
    """Keep a shiboken refcount bug from crashing the editor; True if the guard was needed.

    With PySide6/shiboken6 6.12.0 on CPython 3.11, every call of a Qt method
    that returns ``void`` drops one reference to ``None`` that it never took.
    CPython before 3.12 counts references to ``None`` like any object's, so
    after some thousands of paint calls it reaches zero and the process
    aborts with "none_dealloc: deallocating None". (From 3.12 ``None`` is
    immortal and the extra decrements are harmless; 6.11 does not have the bug.)

    We measure the bug instead of trusting version numbers: if a few void
    calls lose references, ``None`` is given 2**40 more, which lasts for
    centuries of painting. ``None`` is never freed anyway, so this changes
    nothing else.
    """
    global _GUARDED
    if _GUARDED or sys.implementation.name != "cpython" or sys.version_info >= (3, 12):
        return False
    from PySide6.QtCore import QPoint

    probe = QPoint()
    calls = 64
    before = sys.getrefcount(None)
    for _ in range(calls):
        probe.setX(1)
    lost = before - sys.getrefcount(None)
    if lost < calls // 2:
        return False
    refcount = ctypes.c_ssize_t.from_address(id(None))  # ob_refcnt is PyObject's first field
    refcount.value += 1 << 40
    _GUARDED = True
    log.info("shiboken drops references to None on void calls; guarded against it")
    return True


guard_none_refcount()
