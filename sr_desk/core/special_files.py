"""One check, before anything opens a path, that it is a plain file.

``open()`` on a FIFO waits for a writer, which for a path the user typed
means forever; a character device such as ``/dev/zero`` reads without end; a
socket cannot be opened at all; a broken link or a folder fails with an
error that names neither. Every path sr-desk opens for the user (images in
and out, weights files, their folders) goes through :func:`file_problem` first,
which asks ``os.stat`` only: it follows links and never blocks, where
opening the path to find out would hang on the very thing it looks for.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable

from sr_desk.core.errors import SrDeskError

__all__ = ["NotAFileError", "check_openable_file", "check_openable_tree", "display_name", "file_problem"]

#: What each kind of non-file is called in a message.
_KINDS: tuple[tuple[str, Callable[[int], bool]], ...] = (
    ("a pipe (FIFO)", stat.S_ISFIFO),
    ("a socket", stat.S_ISSOCK),
    ("a device", stat.S_ISCHR),
    ("a device", stat.S_ISBLK),
)


class NotAFileError(SrDeskError):
    """A path sr-desk was to open is a pipe, a socket, a device, a folder or a broken link."""


def display_name(path: str | os.PathLike[str]) -> str:
    """The path's base name with control characters masked, so a message stays one line."""
    name = os.path.basename(os.fsdecode(path)) or os.fsdecode(path)
    return "".join(c if c.isprintable() else "?" for c in name)


def file_problem(
    path: str | os.PathLike[str],
    *,
    allow_folder: bool = False,
    allow_missing: bool = False,
) -> str | None:
    """Why ``path`` cannot be opened as a plain file (``"it is a pipe (FIFO), not a file"``), or None.

    None for a regular file (through any links), for a folder when
    ``allow_folder`` (a model in a folder format), and for a path that does
    not exist when ``allow_missing`` (an output about to be created; a
    dangling link counts, as the file it names will be). Errors other than
    a missing path (no permission, say) are left to the ``open()`` that
    follows, which reports them as they are.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if allow_missing:
            return None
        if os.path.islink(path):
            return f"it is a broken link (to '{_link_target(path)}', which does not exist)"
        return "no such file"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "it is a link that leads back to itself"
        return None
    if stat.S_ISREG(mode) or (allow_folder and stat.S_ISDIR(mode)):
        return None
    if stat.S_ISDIR(mode):
        return "it is a folder, not a file"
    kind = next((name for name, test in _KINDS if test(mode)), "a special file")
    return f"it is {kind}, not a file"


def _link_target(path: str | os.PathLike[str]) -> str:
    """Where a link points, masked like a name so the message stays one line."""
    try:
        target = os.fsdecode(os.readlink(path))
    except OSError:
        return "?"
    return "".join(c if c.isprintable() else "?" for c in target)


def check_openable_file(
    path: str | os.PathLike[str],
    what: str = "",
    *,
    allow_folder: bool = False,
    allow_missing: bool = False,
    error: type[SrDeskError] = NotAFileError,
) -> None:
    """Raise ``error`` (one line: ``cannot open {what} 'NAME': why``) unless ``path`` can be opened as a file.

    ``what`` names the file's role for the message ("weights file"); the
    flags are :func:`file_problem`'s. ``error`` lets each caller raise its own
    class (an ``ImageReadError``, a ``CheckpointError``), so the check adds
    no new kind of failure for callers to catch.
    """
    reason = file_problem(path, allow_folder=allow_folder, allow_missing=allow_missing)
    if reason is not None:
        role = f"{what} " if what else ""
        raise error(f"cannot open {role}'{display_name(path)}': {reason}")


def check_openable_tree(
    folder: str | os.PathLike[str],
    what: str = "",
    *,
    error: type[SrDeskError] = NotAFileError,
) -> None:
    """:func:`check_openable_file` for every entry under ``folder`` (a model in a folder format).

    A loader such as diffusers opens the files it finds in the folder by
    itself; one FIFO among them would hang it as surely as one given by name.
    """
    for root, dirs, files in os.walk(folder):
        for name in (*dirs, *files):
            entry = os.path.join(root, name)
            check_openable_file(entry, what, allow_folder=True, error=error)
