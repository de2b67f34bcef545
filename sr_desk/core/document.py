"""The open document: the image, its selection, where it lives, and its undo history.

The Qt layer only draws a :class:`Document` and calls its methods; it learns
about changes through :meth:`Document.subscribe`. Everything here runs on
the GUI thread: a worker computes a new image from a snapshot (``image`` and
``selection`` are never modified in place, so handing them out is safe) and
the result comes back through :meth:`Document.replace_image`.

Undo steps hold references to the image arrays, not copies: an edit always
builds new arrays, so the "before" of one step is the very object the
previous step produced, and memory is spent only on images that differ.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sr_desk.core.errors import SrDeskError
from sr_desk.core.history import History, Payload, Step
from sr_desk.core.imageio import ImageData, load_image, save_image
from sr_desk.core.selection import Selection

__all__ = ["DEFAULT_HISTORY_LIMIT", "Document", "OverwriteRefusedError"]

log = logging.getLogger(__name__)

#: Undo memory when the caller does not say (Settings.undo_memory_mb's default).
DEFAULT_HISTORY_LIMIT = 1024 * 1024 * 1024

Listener = Callable[[str], None]

# Payload keys: the parts of the document state a step can change.
_RGB, _ALPHA, _META = "rgb", "alpha", "image_meta"
_SEL_MASK, _SEL_SIZE = "selection_mask", "selection_size"
_META_FIELDS = tuple(
    f.name for f in dataclasses.fields(ImageData) if f.name not in ("rgb", "alpha")
)


class OverwriteRefusedError(SrDeskError):
    """Saving would replace the file the document was opened from.

    The UI asks the user, then retries with ``overwrite_original=True``.
    """


class Document:
    """An image being edited, its selection, its file and its history.

    ``path`` is where the document was last opened from or saved to;
    ``source_path`` the file it was first opened from, which :meth:`save`
    protects; ``original_path`` remembers a recovered document's file for
    Save As while ``path`` stays None. ``recovery_id`` names the document's
    crash-recovery entry and never changes.
    """

    def __init__(
        self,
        image: ImageData,
        *,
        name: str = "Untitled",
        path: Path | None = None,
        source_path: Path | None = None,
        selection: Selection | None = None,
        history: History | None = None,
    ) -> None:
        self.image = image
        self.selection = selection if selection is not None else Selection.none(image.size)
        _check_fits(self.selection, image)
        self.name = name
        self.path = Path(path) if path is not None else None
        self.source_path = Path(source_path) if source_path is not None else None
        self.original_path: Path | None = self.path
        self.history = history if history is not None else History(DEFAULT_HISTORY_LIMIT)
        self.recovery_id = uuid.uuid4().hex
        self._listeners: list[Listener] = []

    # ------------------------------------------------------------------ #
    # Construction
    # ------------------------------------------------------------------ #

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        history_limit_bytes: int = DEFAULT_HISTORY_LIMIT,
        spill_dir: Path | None = None,
    ) -> Document:
        """Load an image file; raises :class:`~sr_desk.core.errors.ImageReadError`."""
        path = Path(path)
        image = load_image(path)
        return cls(
            image,
            name=path.name,
            path=path,
            source_path=path,
            history=History(history_limit_bytes, spill_dir),
        )

    @classmethod
    def from_image(
        cls,
        image: ImageData,
        name: str = "Untitled",
        *,
        history_limit_bytes: int = DEFAULT_HISTORY_LIMIT,
        spill_dir: Path | None = None,
    ) -> Document:
        """A new, never-saved document (pasted, generated, or made by a script)."""
        return cls(image, name=name, history=History(history_limit_bytes, spill_dir))

    # ------------------------------------------------------------------ #
    # State
    # ------------------------------------------------------------------ #

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size

    @property
    def display_name(self) -> str:
        """File name for title bars and tabs (the UI adds its own "modified" mark)."""
        return self.path.name if self.path is not None else self.name

    @property
    def modified(self) -> bool:
        """Whether the pixels differ from the saved file; a selection is not saved, so it does not count."""
        if self.history.is_clean:
            return False
        steps = self.history.steps_from_clean()
        if steps is None:
            return True
        selection_only = {_SEL_MASK, _SEL_SIZE}
        return any(not (set(step.before) | set(step.after)) <= selection_only for step in steps)

    # ------------------------------------------------------------------ #
    # Edits
    # ------------------------------------------------------------------ #

    def replace_image(self, new: ImageData, label: str, selection: Selection | None = None) -> None:
        """Make ``new`` the document's image, as one undoable step.

        The selection follows a size change (a 4x upscale enlarges it 4x)
        unless ``selection`` is given. ``new``'s arrays become the
        document's: do not modify them afterwards.
        """
        if selection is None:
            selection = self.selection.resized(new.size)
        else:
            _check_fits(selection, new)
        step = Step(
            label,
            before={**_image_state(self.image), **_selection_state(self.selection)},
            after={**_image_state(new), **_selection_state(selection)},
        )
        self.image, self.selection = new, selection
        self.history.push(step)
        self._notify("image", "selection", "history")

    def set_selection(self, selection: Selection, label: str) -> None:
        """Change the selection, as one undoable step."""
        _check_fits(selection, self.image)
        step = Step(
            label, before=_selection_state(self.selection), after=_selection_state(selection)
        )
        self.selection = selection
        self.history.push(step)
        self._notify("selection", "history")

    def undo(self) -> str | None:
        """Revert the last step; its label, or None when there is nothing to undo."""
        step = self.history.undo()
        if step is None:
            self._notify("history")
            return None
        self._apply(step.before)
        return step.label

    def redo(self) -> str | None:
        """Re-apply the next step; its label, or None when there is nothing to redo."""
        step = self.history.redo()
        if step is None:
            self._notify("history")
            return None
        self._apply(step.after)
        return step.label

    def _apply(self, state: Payload) -> None:
        events: list[str] = []
        if _RGB in state:
            self.image = ImageData(rgb=state[_RGB], alpha=state[_ALPHA], **state[_META])
            events.append("image")
        if _SEL_SIZE in state:
            self.selection = _selection_from_state(state)
            events.append("selection")
        self._notify(*events, "history")

    # ------------------------------------------------------------------ #
    # Saving
    # ------------------------------------------------------------------ #

    def save(
        self,
        path: str | os.PathLike[str],
        *,
        format: str | None = None,  # noqa: A002 - mirrors save_image
        quality: int = 95,
        overwrite_original: bool = False,
    ) -> None:
        """Write the image to ``path``, then mark the document clean and adopt the path.

        Writing over the file the document was opened from needs
        ``overwrite_original=True``: the UI asks the user first, because
        an upscale saved as JPEG over the original cannot be taken back.
        Raises :class:`OverwriteRefusedError` or
        :class:`~sr_desk.core.errors.ImageWriteError`.
        """
        path = Path(path)
        if not overwrite_original and self._is_source(path):
            raise OverwriteRefusedError(
                f"'{path.name}' is the original image; saving would replace it"
            )
        save_image(path, self.image, format=format, quality=quality)
        self.path = path
        self.original_path = path
        self.history.mark_clean()
        self._notify("path", "history")

    def _is_source(self, path: Path) -> bool:
        if self.source_path is None:
            return False
        try:
            return os.path.samefile(path, self.source_path)
        except OSError:  # one of them does not exist (any more)
            return path.resolve() == self.source_path.resolve()

    # ------------------------------------------------------------------ #
    # Observers
    # ------------------------------------------------------------------ #

    def subscribe(self, callback: Listener) -> Callable[[], None]:
        """Call ``callback(what)`` after each change; returns the function that stops it.

        ``what`` is "image", "selection", "history" or "path". A callback
        that raises is logged and the others still run, so one broken view
        cannot leave the rest out of date.
        """
        self._listeners.append(callback)

        def unsubscribe() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return unsubscribe

    def _notify(self, *events: str) -> None:
        for event in events:
            for callback in list(self._listeners):
                try:
                    callback(event)
                except Exception:  # noqa: BLE001 - see subscribe()
                    log.exception("document listener %r failed on %r", callback, event)

    def close(self) -> None:
        """Release the undo history (and its spill files)."""
        self.history.close()
        self._listeners.clear()

    def __repr__(self) -> str:
        w, h = self.size
        return f"Document({self.display_name!r}, {w}x{h}, modified={self.modified})"


def _check_fits(selection: Selection, image: ImageData) -> None:
    if selection.size != image.size:
        raise ValueError(f"selection size {selection.size} does not match image {image.size}")


def _image_state(image: ImageData) -> Payload:
    """An image as payload entries: arrays by reference, metadata as small values."""
    meta: dict[str, Any] = {name: getattr(image, name) for name in _META_FIELDS}
    return {_RGB: image.rgb, _ALPHA: image.alpha, _META: meta}


def _selection_state(selection: Selection) -> Payload:
    return {_SEL_MASK: selection.mask, _SEL_SIZE: selection.size}


def _selection_from_state(state: Payload) -> Selection:
    mask = state[_SEL_MASK]
    if mask is not None and mask.flags.writeable:  # read back from a spill file: ours alone
        mask.flags.writeable = False
    return Selection.from_mask(state[_SEL_SIZE], mask)
