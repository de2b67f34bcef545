"""Atomic file replacement, and the removal of what a killed writer left.

A crash, a full disk or an encoder error halfway through a save must never
leave a half-written file where the user's image was. We write into a
temporary file in the target's folder (same filesystem, so ``os.replace`` is
an atomic rename), fsync it, then rename it over the target.

A process killed outright (SIGKILL, power loss) cannot remove its temporary
file, which may be tens of megabytes, hidden next to the user's picture. When
a journal is set (the CLI and the editor set one in the cache folder), every
temporary file is listed there while it exists, and the next start removes
those whose writer is dead. A live writer's file must never be taken for one:
a streamed save (``save_png_bands``) touches its file only when a band of
tiles is done, and a band can take longer than any age limit, so the age of a
file says nothing about its writer. What decides is, in this order:

1. The writer's lock. The writer holds an ``flock`` on its temporary file from
   before the file is listed until after it is renamed or removed. The kernel
   drops it when the writer's last descriptor closes, however the process
   ends (SIGKILL included); over NFS it travels as a POSIX lock. A cleanup
   that cannot take a shared lock on the file without waiting leaves it
   alone, whatever else it knows.
2. The writer's identity: the journal line records where it ran (the boot id
   and pid namespace on Linux, else the host name), its pid and, on Linux, its
   start time (field 22 of ``/proc/PID/stat``), so a recycled pid is not
   taken for the writer. On the same machine that settles it: the process is
   there (alive) or not, or a zombie (dead).
3. Where the identity cannot be checked (no ``/proc``: macOS), a free lock is
   enough if the writer says it held one and ran on this machine.
4. Only where no witness can answer (Windows, a filesystem without locks,
   another machine whose locks may not reach us, a line written by an sr-desk
   before the lock) does the age rule decide: older than
   :data:`STALE_AFTER_S`. On Windows a file still open cannot be deleted at
   all, which protects a live writer there.

Why a lock, and not a writer that keeps its file fresh: a heartbeat is still
a guess from time, and it misses beats when the machine sleeps, the process
is stopped (Ctrl-Z) or swaps; a lock is true exactly as long as the writer
lives. Why not the pid alone: it needs ``/proc``, means nothing in another pid
namespace or on another machine, while the lock works there too.

A listed name that is no longer a regular file (a symlink, a FIFO put there
since) is never opened nor removed; it is only dropped from the journal.

Several processes add, remove and rewrite journal lines at once: each
read-and-rewrite holds an exclusive lock on a companion file (``.lock`` beside
the journal), and a rewrite goes through a new file renamed over the journal,
so no reader ever sees it truncated. The lock is waited for at most
:data:`JOURNAL_LOCK_WAIT_S`; past that the update goes ahead unlocked, since
the journal only serves the cleanup and a save must never hang on it.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import functools
import json
import os
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from sr_desk.core.file_locks import Lock, has_flock, release, try_lock

__all__ = [
    "atomic_write",
    "atomic_write_bytes",
    "listed_temp_files",
    "remove_stale_temp_files",
    "set_journal",
    "start_journal",
]

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
    lock_fd = None
    try:
        # Locked before it is listed, released after it is gone: no cleanup ever sees it listed and free.
        lock_fd = _lock_for_life(tmp)
        _journal_add(tmp.name, locked=lock_fd is not None)
        with tmp:
            write(tmp)  # type: ignore[arg-type]  # _TemporaryFileWrapper proxies a BinaryIO
            tmp.flush()
            os.fsync(tmp.fileno())
        # NamedTemporaryFile creates 0o600 files; give the result normal bits.
        os.chmod(tmp.name, mode)
        os.replace(tmp.name, target)
    except BaseException:
        tmp.close()
        with contextlib.suppress(OSError):
            os.unlink(tmp.name)
        raise
    finally:
        _journal_remove(tmp.name)
        if lock_fd is not None:
            os.close(lock_fd)
    _fsync_dir(folder)


def _lock_for_life(tmp: BinaryIO) -> int | None:
    """An exclusive flock on ``tmp`` through a descriptor of its own; None where the filesystem has no locks.

    The lock belongs to the open file description, which the duplicate keeps
    alive even if ``write`` closes the file object: it lasts until the caller
    closes the returned descriptor, or the kernel does at the process's end.
    """
    if not has_flock():
        return None
    fd = os.dup(tmp.fileno())
    if try_lock(fd) is not Lock.TAKEN:
        os.close(fd)
        return None
    return fd


# -- the journal of temporary files -------------------------------------------------------

_journal: str | None = None
_journal_lock = threading.Lock()
#: Where no lock and no process can say whether a listed file's writer lives, one older than this is abandoned.
STALE_AFTER_S = 600.0
#: The longest a journal update waits for another process's; then it goes ahead unlocked.
JOURNAL_LOCK_WAIT_S = 5.0
_LOCK_POLL_S = 0.01


def set_journal(path: str | os.PathLike[str] | None) -> None:
    """List temporary files in ``path`` from now on (``None``: stop listing)."""
    global _journal
    _journal = None if path is None else os.fspath(path)


def start_journal(path: str | os.PathLike[str]) -> list[str]:
    """At a process start: remove what dead processes left (see :func:`remove_stale_temp_files`), then list ours."""
    removed = remove_stale_temp_files(path)
    set_journal(path)
    return removed


def listed_temp_files(path: str | os.PathLike[str]) -> list[str]:
    """The temporary files the journal ``path`` lists now, in order."""
    with _journal_held(os.fspath(path)):
        lines = _read_journal(os.fspath(path))
    return [entry.path for entry in map(_parse_entry, lines) if entry is not None]


def remove_stale_temp_files(path: str | os.PathLike[str], now: float | None = None) -> list[str]:
    """Delete the temporary files listed in the journal ``path`` whose writers are dead; the removed paths.

    ``now`` is the clock the age rule uses, where it is the only witness. The
    files are examined without holding the journal, so saves starting
    meanwhile are not held up; their lines, added after the read, are kept.
    """
    journal = os.fspath(path)
    now = time.time() if now is None else now
    with _journal_held(journal):
        lines = _read_journal(journal)
    removed: list[str] = []
    settled: set[str] = set()  # lines to drop: their files are removed, gone or not ours
    verdicts: dict[str, _Verdict] = {}
    for line in dict.fromkeys(lines):
        entry = _parse_entry(line)
        if entry is None or not _is_our_temp_name(entry.path):
            settled.add(line)
            continue
        if entry.path not in verdicts:
            verdicts[entry.path] = _remove_if_abandoned(entry, now)
            if verdicts[entry.path] is _Verdict.REMOVED:
                removed.append(entry.path)
        if verdicts[entry.path] is not _Verdict.KEPT:
            settled.add(line)
    if settled:
        with _journal_held(journal):
            _rewrite_journal(journal, lambda line: line not in settled)
    return removed


@dataclass(frozen=True)
class _Entry:
    """One journal line: a temporary file and what is known of its writer (nothing, for an old bare path)."""

    path: str
    place: str | None = None
    pid: int | None = None
    start: int | None = None
    locked: bool = False


class _Verdict(enum.Enum):
    REMOVED = "removed"
    KEPT = "kept"  # its writer may be alive: the line stays
    GONE = "gone"  # no longer there, or no longer a regular file: the line goes, the path is not touched


def _is_our_temp_name(path: str) -> bool:
    """Only ever our own temporary files, whatever the journal says."""
    return os.path.isabs(path) and os.path.basename(path).startswith(".") and path.endswith(TEMP_SUFFIX)


def _entry_line(path: str, locked: bool) -> str:
    """The journal line for a temporary file this process writes now (JSON: any name fits on one line)."""
    pid = os.getpid()
    try:
        start = _process_start(pid)
    except (OSError, ValueError, IndexError):
        start = None  # no /proc: the lock, or else the age, will have to tell
    fields = {"path": path, "place": _this_place(), "pid": pid, "start": start, "locked": locked}
    return json.dumps(fields, ensure_ascii=True)


def _parse_entry(line: str) -> _Entry | None:
    """A journal line read back; a bare path is an sr-desk before the lock; None for a damaged line."""
    if not line.startswith("{"):
        return _Entry(path=line)
    try:
        fields = json.loads(line)
        entry = _Entry(
            path=fields["path"],
            place=fields.get("place"),
            pid=fields.get("pid"),
            start=fields.get("start"),
            locked=fields.get("locked") is True,
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    if not isinstance(entry.path, str) or not all(
        value is None or (isinstance(value, int) and not isinstance(value, bool)) for value in (entry.pid, entry.start)
    ):
        return None
    if not isinstance(entry.place, str | None):
        return None
    return entry


def _remove_if_abandoned(entry: _Entry, now: float) -> _Verdict:
    """Remove ``entry``'s file if its writer is dead (see the module docstring for who decides)."""
    try:
        before = os.lstat(entry.path)
    except FileNotFoundError:
        return _Verdict.GONE
    except OSError:
        return _Verdict.KEPT  # cannot look: perhaps later
    if not stat.S_ISREG(before.st_mode):
        return _Verdict.GONE
    with _probe_lock(entry.path, before) as lock:
        if lock is Lock.HELD:  # someone holds the writer's lock: alive
            return _Verdict.KEPT
        if lock is None:
            return _Verdict.GONE  # replaced by something else while we looked
        alive = _writer_alive(entry)
        if alive is None:
            trusted_lock = lock is Lock.TAKEN and entry.locked and entry.place == _this_place()
            alive = not trusted_lock and now - before.st_mtime < STALE_AFTER_S
        if alive:
            return _Verdict.KEPT
        try:
            if not os.path.samestat(os.lstat(entry.path), before):
                return _Verdict.GONE
            os.unlink(entry.path)
        except FileNotFoundError:
            return _Verdict.GONE
        except OSError:
            return _Verdict.KEPT  # Windows: still open, so still written
    return _Verdict.REMOVED


@contextlib.contextmanager
def _probe_lock(path: str, seen: os.stat_result) -> Iterator[Lock | None]:
    """Try for a shared lock on ``path`` without waiting, held while the caller decides; None: not the file seen.

    Opened read-only, without following a symlink and without blocking on a
    FIFO, and checked to be the very regular file ``seen`` was. Shared, not
    exclusive: over NFS flock becomes a POSIX lock, and an exclusive one
    would need the file open for writing.
    """
    if not has_flock():
        yield Lock.UNSUPPORTED
        return
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        yield None
        return
    except OSError:
        yield Lock.UNSUPPORTED  # e.g. not readable: the other witnesses decide
        return
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode) or not os.path.samestat(opened, seen):
            yield None
            return
        yield try_lock(fd, shared=True)
    finally:
        os.close(fd)


def _writer_alive(entry: _Entry) -> bool | None:
    """Whether the process that listed ``entry`` still runs; None where this process cannot tell."""
    if entry.pid is None or entry.start is None or entry.place is None or entry.place != _this_place():
        return None
    try:
        return _process_start(entry.pid) == entry.start
    except FileNotFoundError:
        return False  # no such process
    except (OSError, ValueError, IndexError):
        return None


def _process_start(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (Linux); None for a zombie, which writes no more.

    Raises FileNotFoundError where there is no such process, another error where this cannot be read.
    """
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()  # the command name before ")" may hold anything
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])  # field 22 of the whole line: starttime


@functools.lru_cache(maxsize=1)
def _this_place() -> str:
    """What a pid is relative to: the boot and the pid namespace on Linux, else the host's name."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            boot = f.read().strip()
        return f"{boot} {os.readlink('/proc/self/ns/pid')}"
    except OSError:
        return f"host {socket.gethostname()}"


# -- reading and rewriting the journal, one process at a time ------------------------------


@contextlib.contextmanager
def _journal_held(journal: str) -> Iterator[None]:
    """Run the body holding the journal's companion lock file: other threads and processes wait their turn.

    Best effort: where the lock cannot be made (no folder yet: then there is
    no journal either) or is not had within :data:`JOURNAL_LOCK_WAIT_S`, the
    body runs anyway.
    """
    with _journal_lock:
        fd = None
        with contextlib.suppress(OSError):
            flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
            fd = os.open(journal + ".lock", flags, 0o600)
        locked = fd is not None and _wait_for_exclusive_lock(fd)
        try:
            yield
        finally:
            if fd is not None:
                if locked:
                    release(fd)
                os.close(fd)


def _wait_for_exclusive_lock(fd: int) -> bool:
    """Lock ``fd`` exclusively, polling so that a stuck holder cannot hang a save; whether it was had."""
    deadline = time.monotonic() + JOURNAL_LOCK_WAIT_S
    while (state := try_lock(fd)) is Lock.HELD and time.monotonic() < deadline:
        time.sleep(_LOCK_POLL_S)
    return state is Lock.TAKEN


def _read_journal(journal: str) -> list[str]:
    try:
        with open(journal, encoding="utf-8", errors="surrogateescape") as f:
            return [line.rstrip("\n") for line in f if line.strip()]
    except OSError:
        return []


def _rewrite_journal(journal: str, keep: Callable[[str], bool]) -> None:
    """Replace the journal with its lines that ``keep`` accepts; a reader sees the old or the new whole."""
    lines = _read_journal(journal)
    kept = [line for line in lines if keep(line)]
    if kept == lines:
        return
    with contextlib.suppress(OSError):
        folder, name = os.path.split(journal)
        fd, new = tempfile.mkstemp(dir=folder or ".", prefix=name + ".", suffix=".new")
        try:
            with open(fd, "w", encoding="utf-8", errors="surrogateescape") as f:
                f.writelines(f"{line}\n" for line in kept)
            os.replace(new, journal)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(new)
            raise


def _journal_add(name: str, locked: bool) -> None:
    journal = _journal
    if journal is None:
        return
    line = _entry_line(name, locked)
    with contextlib.suppress(OSError):
        os.makedirs(os.path.dirname(journal) or ".", exist_ok=True)
    with _journal_held(journal), contextlib.suppress(OSError):
        with open(journal, "a", encoding="utf-8", errors="surrogateescape") as f:
            f.write(line + "\n")


def _journal_remove(name: str) -> None:
    journal = _journal
    if journal is None:
        return
    with _journal_held(journal):

        def keep(line: str) -> bool:
            entry = _parse_entry(line)
            return entry is None or entry.path != name

        _rewrite_journal(journal, keep)


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
