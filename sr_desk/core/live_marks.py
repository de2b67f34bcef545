"""Marks a process leaves in a folder while it does something risky, that tell the dead from the living.

A mark is a small file holding one line of text (what the process is
doing). Its writer holds an exclusive advisory lock on it for as long as the
mark exists; the operating system drops that lock when the process ends,
however it ends (``os._exit``, a crash in native code, SIGKILL). So another
process that can take the lock knows the writer is gone, and one that cannot
knows it is alive: no age rule, no process id that may have been reused.

A mark is created under a temporary name, locked, then renamed into place,
so nobody can lock it between its creation and its writer's lock.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from sr_desk.core.file_locks import Lock, try_lock

__all__ = ["LiveMark", "left_by_the_dead", "live_mark"]

MARK_SUFFIX = ".mark"


def _try_lock(fd: int) -> bool:
    return try_lock(fd) is Lock.TAKEN


class LiveMark:
    """One mark in ``folder`` saying ``text`` while this process holds it; :meth:`remove` ends it."""

    def __init__(self, folder: Path, text: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{os.getpid()}-{uuid.uuid4().hex}"
        pending = folder / f".{name}.pending"
        self.path = folder / f"{name}{MARK_SUFFIX}"
        self._fd = os.open(pending, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            if not _try_lock(self._fd):
                raise OSError(f"cannot lock {pending}")
            os.write(self._fd, (text + "\n").encode("utf-8", "surrogateescape"))
            os.replace(pending, self.path)
        except BaseException:
            os.close(self._fd)
            with contextlib.suppress(OSError):
                os.unlink(pending)
            raise

    def remove(self) -> None:
        """The work ended while this process lives: the mark goes (before its lock is released)."""
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        with contextlib.suppress(OSError):
            os.close(self._fd)


@contextlib.contextmanager
def live_mark(folder: Path | None, text: str) -> Iterator[None]:
    """A :class:`LiveMark` for the duration of a ``with`` block; no mark (and no error) where it cannot be written."""
    mark = None
    if folder is not None:
        try:
            mark = LiveMark(folder, text)
        except OSError:  # a read-only cache must not stop the work itself
            mark = None
    try:
        yield
    finally:
        if mark is not None:
            mark.remove()


def left_by_the_dead(folder: Path) -> list[str]:
    """The texts of the marks in ``folder`` whose writers have ended, oldest first; those marks are removed.

    Marks of living processes are left alone, however old they are.
    """
    try:
        paths = sorted(folder.glob(f"*{MARK_SUFFIX}"), key=_mtime)
    except OSError:
        return []
    texts = []
    for path in paths:
        text = _take_if_dead(path)
        if text is not None:
            texts.append(text)
    return texts


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _take_if_dead(path: Path) -> str | None:
    try:
        fd = os.open(path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None  # gone already, or not ours to open
    try:
        if not _try_lock(fd):
            return None  # its writer is alive
        data = os.read(fd, 4096)
        with contextlib.suppress(OSError):
            os.unlink(path)
    finally:
        os.close(fd)
    return data.decode("utf-8", "surrogateescape").strip()
