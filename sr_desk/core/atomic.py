"""Atomic file replacement.

A crash, a full disk or an encoder error halfway through a save must never
leave a half-written file where the user's image was. We write into a
temporary file in the target's folder (same filesystem, so ``os.replace`` is
an atomic rename), fsync it, then rename it over the target.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
import threading
import time
from collections.abc import Callable
from typing import BinaryIO

__all__ = ["atomic_write", "atomic_write_bytes", "remove_stale_temp_files", "set_journal", "start_journal"]

#: The temporary file is ``.<start of the name>.<random>.tmp``: at most this many bytes of the name,
#: so that targets with names of up to 255 bytes can be written.
TEMP_NAME_BYTES = 100
TEMP_SUFFIX = ".tmp"


def _current_umask() -> int:
    """The process umask.

    Linux exposes it read-only in /proc; elsewhere the only way is to set and
    restore it, which is briefly process-wide (acceptable for a rare call).
    """
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def _default_mode() -> int:
    """0o666 minus the umask, i.e. what a plain ``open(path, 'wb')`` would give."""
    return 0o666 & ~_current_umask()


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(fileobj)`` and atomically move the result onto ``path``.

    If ``write`` (or anything else) raises, the temporary file is removed, the
    existing target (if any) is untouched, and the exception propagates.
    The target keeps its permission bits when it already existed; a symlink
    target is followed, so the file it points to is the one replaced.
    """
    # Write through a symlink instead of replacing the link with a file.
    target = os.path.realpath(os.fspath(path))
    folder = os.path.dirname(os.path.abspath(target))
    name = os.path.basename(target)

    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = _default_mode()

    if os.path.exists(target) and not os.path.isfile(target):
        # A FIFO or a device named like an image must not be replaced by a regular file.
        raise OSError(errno.EISDIR if os.path.isdir(target) else errno.EINVAL, "not a regular file", target)
    # The temporary name must fit in 255 bytes even when the target's own name nearly fills them.
    stem = name.encode("utf-8", "surrogateescape")[:TEMP_NAME_BYTES].decode("utf-8", "ignore")
    tmp = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed explicitly below
        dir=folder, delete=False, prefix="." + stem + ".", suffix=TEMP_SUFFIX
    )
    _journal_add(tmp.name)
    try:
        with tmp:
            write(tmp)  # type: ignore[arg-type]  # _TemporaryFileWrapper proxies a BinaryIO
            tmp.flush()
            os.fsync(tmp.fileno())
        # NamedTemporaryFile creates 0o600 files; give the result normal bits.
        os.chmod(tmp.name, mode)
        os.replace(tmp.name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp.name)
        raise
    finally:
        _journal_remove(tmp.name)
    _fsync_dir(folder)


# -- the journal of temporary files -------------------------------------------------------
#
# A process killed outright (SIGKILL, power loss) cannot remove its temporary file, which may be tens of
# megabytes, hidden, next to the user's picture. When a journal is set (the CLI and the editor set one in
# the cache folder), every temporary file is listed there while it exists, and the next start removes
# those a dead process left behind.

_journal: str | None = None
_journal_lock = threading.Lock()
#: A listed file younger than this may belong to another sr-desk still writing it: left alone.
STALE_AFTER_S = 600.0


def set_journal(path: str | os.PathLike[str] | None) -> None:
    """List temporary files in ``path`` from now on (``None``: stop listing)."""
    global _journal
    _journal = None if path is None else os.fspath(path)


def start_journal(path: str | os.PathLike[str]) -> list[str]:
    """At a process start: remove what dead processes left (see :func:`remove_stale_temp_files`), then list ours."""
    removed = remove_stale_temp_files(path)
    set_journal(path)
    return removed


def remove_stale_temp_files(path: str | os.PathLike[str], now: float | None = None) -> list[str]:
    """Delete the temporary files listed in the journal ``path`` that dead processes left; the removed paths."""
    now = time.time() if now is None else now
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            listed = [line.rstrip("\n") for line in f if line.strip()]
    except OSError:
        return []
    removed, kept = [], []
    for name in dict.fromkeys(listed):
        if not (os.path.basename(name).startswith(".") and name.endswith(TEMP_SUFFIX)):
            continue  # only ever our own temporary files
        try:
            if now - os.stat(name).st_mtime < STALE_AFTER_S:
                kept.append(name)
                continue
            os.unlink(name)
            removed.append(name)
        except OSError:
            pass  # already gone
    with contextlib.suppress(OSError), _journal_lock, open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.writelines(f"{name}\n" for name in kept)
    return removed


def _journal_add(name: str) -> None:
    if _journal is None:
        return
    with contextlib.suppress(OSError), _journal_lock:
        os.makedirs(os.path.dirname(_journal) or ".", exist_ok=True)
        with open(_journal, "a", encoding="utf-8", errors="surrogateescape") as f:
            f.write(name + "\n")


def _journal_remove(name: str) -> None:
    journal = _journal
    if journal is None or name == journal:
        return
    with contextlib.suppress(OSError), _journal_lock:
        with open(journal, encoding="utf-8", errors="surrogateescape") as f:
            lines = [line for line in f if line.rstrip("\n") != name]
        with open(journal, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.writelines(lines)


def _fsync_dir(folder: str) -> None:
    """Persist the rename itself; best effort (not possible on Windows)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Atomically replace ``path`` with ``data``."""

    def write(f: BinaryIO) -> None:
        f.write(data)

    atomic_write(path, write)
