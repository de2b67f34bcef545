"""User-facing error types.

Every error the GUI or CLI shows to a user derives from :class:`SrDeskError`;
its ``str()`` is a single line suitable for a status bar or dialog, so callers
never need to print a traceback.
"""

from __future__ import annotations


class SrDeskError(Exception):
    """Base of every user-facing sr-desk error; ``str()`` is one line."""

    def __str__(self) -> str:
        # Messages quote file names, OS text and values from files, which may hold newlines or a
        # terminal's escape sequences (one could clear the screen or recolour it): both are masked.
        line = " ".join(super().__str__().splitlines())
        return "".join(c if c.isprintable() else "?" for c in line)


class ImageReadError(SrDeskError):
    """An image file could not be opened or decoded."""


class ImageWriteError(SrDeskError):
    """An image file could not be encoded or written."""
