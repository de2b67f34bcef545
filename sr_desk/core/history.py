"""Undo/redo with bounded memory.

A step records the state *before* and *after* an edit as two payload dicts
of numpy arrays and small values. Super-resolution makes steps huge (one 4x
upscale of a 12 MP photo is over 2 GB of float32), so the history keeps at
most ``memory_limit_bytes`` of arrays in RAM: beyond that, the oldest steps'
arrays are spilled to ``.npy`` files and loaded back when the user walks
back to them. Without a spill folder, or when writing one fails (disk full),
the oldest steps are dropped instead: undo then stops earlier, but the
current image is never at risk because it lives in the document, not here.

Arrays are accounted once however many steps hold them: an edit's "after"
image is usually the next edit's "before", the very same array object. The
arrays of the current state are not counted or spilled at all, since the
document holds them anyway. Callers must therefore never modify an array
in place after handing it to a step.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import shutil
import tempfile
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["History", "Step"]

log = logging.getLogger(__name__)

Payload = dict[str, Any]


@dataclass
class Step:
    """One undoable edit: ``before`` restores the state it changed, ``after`` re-applies it.

    Payload keys name parts of the document's state (the same key in every
    step that touches that part); values are numpy arrays, which the history
    may spill to disk, or small values kept as they are.
    """

    label: str
    before: Payload = field(default_factory=dict)
    after: Payload = field(default_factory=dict)


@dataclass(frozen=True)
class _Spilled:
    """Stand-in for an array that lives in a ``.npy`` file."""

    path: Path
    nbytes: int


class History:
    """A linear undo stack with a clean point and a memory limit.

    ``index`` is the number of steps currently applied: ``undo`` returns
    ``steps[index - 1]`` (apply its ``before``), ``redo`` returns
    ``steps[index]`` (apply its ``after``). Returned steps always hold real
    arrays; spilled ones are read back for the occasion and stay on disk.
    """

    def __init__(self, memory_limit_bytes: int, spill_dir: Path | None = None) -> None:
        if memory_limit_bytes < 0:
            raise ValueError(f"memory_limit_bytes must be >= 0, got {memory_limit_bytes}")
        self.memory_limit_bytes = memory_limit_bytes
        self._spill_root = Path(spill_dir) if spill_dir is not None else None
        self._spill_folder: Path | None = None
        self._cleanup: weakref.finalize | None = None
        self._names = itertools.count()
        self._steps: list[Step] = []
        self._index = 0
        self._clean: int | None = 0

    # ------------------------------------------------------------------ #
    # State
    # ------------------------------------------------------------------ #

    @property
    def index(self) -> int:
        """How many steps are applied (0 = the state the history started from)."""
        return self._index

    @property
    def labels(self) -> list[str]:
        """Every step's label, oldest first; the first ``index`` ones are applied."""
        return [s.label for s in self._steps]

    def __len__(self) -> int:
        return len(self._steps)

    @property
    def can_undo(self) -> bool:
        return self._index > 0

    @property
    def can_redo(self) -> bool:
        return self._index < len(self._steps)

    @property
    def is_clean(self) -> bool:
        """True when the document is as it was last saved (or opened)."""
        return self._clean == self._index

    def steps_from_clean(self) -> list[Step] | None:
        """The steps between the saved state and the current one, or None when the saved state is gone.

        Their payload keys say what differs from the saved file (arrays may be
        spilled stand-ins: read only the keys).
        """
        if self._clean is None:
            return None
        low, high = sorted((self._clean, self._index))
        return self._steps[low:high]

    def mark_clean(self) -> None:
        """The current state is the saved one."""
        self._clean = self._index

    def mark_dirty(self) -> None:
        """No reachable state is the saved one (e.g. a document restored after a crash)."""
        self._clean = None

    @property
    def memory_in_use(self) -> int:
        """Bytes of distinct arrays held in RAM for undo/redo alone.

        The current state's arrays are not counted: the document holds them.
        """
        live = self._live_ids()
        return sum(a.nbytes for a in _unique(self._in_memory_arrays()) if id(a) not in live)

    @property
    def spill_folder(self) -> Path | None:
        """This history's own folder of spilled arrays, once it has one."""
        return self._spill_folder

    # ------------------------------------------------------------------ #
    # Editing the stack
    # ------------------------------------------------------------------ #

    def push(self, step: Step) -> None:
        """Record a step just applied; the redo tail is discarded."""
        self._truncate()
        if self._clean is not None and self._clean > self._index:
            self._clean = None  # the saved state was in the discarded tail
        self._steps.append(step)
        self._index += 1
        self._enforce_limit()

    def undo(self) -> Step | None:
        """The step to revert (apply its ``before``), or None at the start."""
        if not self.can_undo:
            return None
        step = self._load(self._steps[self._index - 1])
        if step is None:  # its spill file is gone: nothing older is reachable
            self._drop_oldest(self._index)
            return None
        self._index -= 1
        return step

    def redo(self) -> Step | None:
        """The step to re-apply (apply its ``after``), or None at the end."""
        if not self.can_redo:
            return None
        step = self._load(self._steps[self._index])
        if step is None:  # nothing newer is reachable either
            self._truncate()
            return None
        self._index += 1
        return step

    def clear(self) -> None:
        """Forget every step (the clean point survives only if it is the current state)."""
        dropped = list(self._steps)
        self._steps.clear()
        self._discard(dropped)
        self._clean = 0 if self.is_clean else None
        self._index = 0

    def close(self) -> None:
        """Forget every step and delete the spill folder."""
        self._steps.clear()
        self._index, self._clean = 0, None
        if self._cleanup is not None:
            self._cleanup()
        self._spill_folder = None

    # ------------------------------------------------------------------ #
    # Memory limit
    # ------------------------------------------------------------------ #

    def _enforce_limit(self) -> None:
        """Spill, or failing that drop, the oldest arrays until RAM use fits the limit."""
        live = self._live_ids()
        for array in list(_unique(self._in_memory_arrays())):
            if self.memory_in_use <= self.memory_limit_bytes:
                return
            if id(array) not in live and not self._spill_array(array):
                break
        while self._steps and self.memory_in_use > self.memory_limit_bytes:
            self._drop_oldest(1)

    def _spill_array(self, array: np.ndarray) -> bool:
        """Move one array to disk, in every payload that holds it; False on failure."""
        folder = self._ensure_spill_folder()
        if folder is None:
            return False
        path = folder / f"{next(self._names)}.npy"
        try:
            np.save(path, array, allow_pickle=False)
        except (OSError, ValueError) as exc:
            log.warning("cannot spill undo history to %s (%s); dropping old steps", folder, exc)
            _unlink_all([path])
            return False
        spilled = _Spilled(path, array.nbytes)
        for payload in self._payloads():
            for key, value in payload.items():
                if value is array:
                    payload[key] = spilled
        return True

    def _ensure_spill_folder(self) -> Path | None:
        if self._spill_root is None:
            return None
        if self._spill_folder is None:
            try:
                self._spill_root.mkdir(parents=True, exist_ok=True)
                folder = Path(tempfile.mkdtemp(prefix="undo-", dir=self._spill_root))
            except OSError as exc:
                log.warning("cannot create an undo spill folder in %s (%s)", self._spill_root, exc)
                return None
            self._spill_folder = folder
            self._cleanup = weakref.finalize(self, shutil.rmtree, folder, ignore_errors=True)
        return self._spill_folder

    def _drop_oldest(self, count: int) -> None:
        dropped = self._steps[:count]
        del self._steps[:count]
        self._discard(dropped)
        self._index -= count
        if self._clean is not None:
            self._clean = self._clean - count if self._clean >= count else None

    def _truncate(self) -> None:
        """Discard the redo tail."""
        tail = self._steps[self._index :]
        del self._steps[self._index :]
        self._discard(tail)

    # ------------------------------------------------------------------ #
    # Payload plumbing
    # ------------------------------------------------------------------ #

    def _payloads(self) -> Iterator[Payload]:
        for step in self._steps:
            yield step.before
            yield step.after

    def _in_memory_arrays(self) -> Iterator[np.ndarray]:
        for payload in self._payloads():
            yield from (v for v in payload.values() if isinstance(v, np.ndarray))

    def _live_ids(self) -> set[int]:
        """Ids of the arrays that make up the current state: the document holds those.

        Payload keys name parts of the document's state, so the current
        value of a key is the ``after`` of the latest applied step that set
        it, else the ``before`` of the first unapplied step that did.
        """
        state: Payload = {}
        for step in reversed(self._steps[self._index :]):
            state.update(step.before)
        for step in self._steps[: self._index]:
            state.update(step.after)
        return {id(v) for v in state.values() if isinstance(v, np.ndarray)}

    def _load(self, step: Step) -> Step | None:
        """A copy of ``step`` with spilled arrays read back; None if they are unreadable."""
        try:
            return Step(step.label, _load_payload(step.before), _load_payload(step.after))
        except (OSError, ValueError) as exc:
            log.error("undo data for %r is lost (%s)", step.label, exc)
            return None

    def _discard(self, steps: Iterable[Step]) -> None:
        """Delete the spill files of removed steps that no remaining step shares."""
        kept = {v.path for p in self._payloads() for v in p.values() if isinstance(v, _Spilled)}
        gone = {
            v.path
            for step in steps
            for p in (step.before, step.after)
            for v in p.values()
            if isinstance(v, _Spilled)
        }
        _unlink_all(gone - kept)


def _load_payload(payload: Payload) -> Payload:
    return {
        k: np.load(v.path, allow_pickle=False) if isinstance(v, _Spilled) else v
        for k, v in payload.items()
    }


def _unique(arrays: Iterable[np.ndarray]) -> list[np.ndarray]:
    seen: dict[int, np.ndarray] = {}
    for a in arrays:
        seen.setdefault(id(a), a)
    return list(seen.values())


def _unlink_all(paths: Iterable[Path]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink()
