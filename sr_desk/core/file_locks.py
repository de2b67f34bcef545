"""Advisory file locks taken without waiting: the one primitive the live marks and the write journal share.

Where there is ``flock`` (Linux, macOS, BSD), the lock belongs to the open
file description and the kernel drops it when the last descriptor of it
closes, however the process ends (``os._exit``, a crash, SIGKILL). On
Windows, ``msvcrt``'s byte-range lock is used instead (exclusive only),
which its process's end releases as well.
"""

from __future__ import annotations

import contextlib
import enum
import errno

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
try:
    import msvcrt
except ImportError:  # everywhere but Windows
    msvcrt = None  # type: ignore[assignment]

__all__ = ["Lock", "has_flock", "release", "try_lock"]


def has_flock() -> bool:
    """Whether this system has ``flock``, whose lock a second descriptor of the same file can hold for its life."""
    return fcntl is not None


class Lock(enum.Enum):
    TAKEN = "taken"
    HELD = "held"  # another open file holds it
    UNSUPPORTED = "unsupported"  # no such lock here (the system, the filesystem, or shared on Windows)


def try_lock(fd: int, *, shared: bool = False) -> Lock:
    """Lock the file open as ``fd``, exclusively or ``shared``, without waiting."""
    if fcntl is not None:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            return Lock.HELD
        except OSError:
            return Lock.UNSUPPORTED
        return Lock.TAKEN
    if msvcrt is not None and not shared:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
        except OSError as exc:
            return Lock.HELD if exc.errno in (errno.EACCES, errno.EDEADLK) else Lock.UNSUPPORTED
        return Lock.TAKEN
    return Lock.UNSUPPORTED


def release(fd: int) -> None:
    """Release a lock :func:`try_lock` took, before ``fd`` is closed (Windows frees a closed file's only eventually)."""
    with contextlib.suppress(OSError):
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
        elif msvcrt is not None:
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]
