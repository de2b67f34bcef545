"""Undo history: order, clean point, and a memory limit that spills or drops old steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sr_desk.core.history import History, Step

KB = 1024


def image_steps(
    n: int, shape: tuple[int, ...] = (16, 16)
) -> tuple[list[np.ndarray], list[Step]]:
    """n steps over states 0..n, each state a distinct array (4*16*16 = 1 KiB by default)."""
    states = [np.full(shape, i, dtype=np.float32) for i in range(n + 1)]
    steps = [Step(f"edit {i}", {"img": states[i]}, {"img": states[i + 1]}) for i in range(n)]
    return states, steps


def test_push_undo_redo_order() -> None:
    h = History(10 * KB)
    _, steps = image_steps(3)
    for s in steps:
        h.push(s)
    assert h.labels == ["edit 0", "edit 1", "edit 2"] and h.index == 3
    assert h.can_undo and not h.can_redo
    undone = [h.undo() for _ in range(3)]
    assert [s.label for s in undone if s is not None] == ["edit 2", "edit 1", "edit 0"]
    assert h.undo() is None and h.index == 0 and not h.can_undo
    redone = [h.redo() for _ in range(2)]
    assert [s.label for s in redone if s is not None] == ["edit 0", "edit 1"]
    assert h.index == 2 and h.can_redo


def test_push_drops_redo_tail() -> None:
    h = History(10 * KB)
    _, steps = image_steps(3)
    for s in steps[:2]:
        h.push(s)
    h.undo()
    h.push(Step("other", {"img": steps[0].after}, {"img": np.zeros((16, 16), np.float32)}))
    assert h.labels == ["edit 0", "other"] and not h.can_redo


def test_clean_point() -> None:
    h = History(10 * KB)
    _, steps = image_steps(3)
    assert h.is_clean
    h.push(steps[0])
    assert not h.is_clean
    h.mark_clean()
    assert h.is_clean
    h.push(steps[1])
    assert not h.is_clean
    h.undo()
    assert h.is_clean  # back at the saved state
    h.undo()
    assert not h.is_clean
    h.push(steps[2])  # the saved state was in the dropped redo tail
    assert not h.is_clean
    h.undo()
    assert not h.is_clean
    h.mark_clean()
    h.mark_dirty()
    assert not h.is_clean


def test_current_state_is_not_counted() -> None:
    h = History(100 * KB)
    _, steps = image_steps(3)
    h.push(steps[0])
    assert h.memory_in_use == 1 * KB  # state 1 is the document's; state 0 is history's alone
    h.push(steps[1])
    assert h.memory_in_use == 2 * KB  # shared state 1 counted once


def test_memory_limit_spills_and_undo_restores_exactly(tmp_path: Path) -> None:
    h = History(2 * KB, spill_dir=tmp_path)
    states, steps = image_steps(6)
    for s in steps:
        h.push(s)
    assert h.memory_in_use <= 2 * KB
    assert h.spill_folder is not None and h.spill_folder.parent == tmp_path
    assert len(list(h.spill_folder.glob("*.npy"))) >= 3
    assert h.labels == [f"edit {i}" for i in range(6)]  # nothing dropped
    for i in reversed(range(6)):
        step = h.undo()
        assert step is not None and step.label == f"edit {i}"
        assert np.array_equal(step.before["img"], states[i])
        assert np.array_equal(step.after["img"], states[i + 1])
    for i in range(6):
        step = h.redo()
        assert step is not None and np.array_equal(step.after["img"], states[i + 1])


def test_no_spill_dir_drops_oldest() -> None:
    h = History(2 * KB)
    states, steps = image_steps(6)
    for s in steps:
        h.push(s)
    assert h.memory_in_use <= 2 * KB
    assert h.labels == ["edit 4", "edit 5"] and h.index == 2
    assert h.undo().label == "edit 5"  # type: ignore[union-attr]
    step = h.undo()
    assert step is not None and np.array_equal(step.before["img"], states[4])
    assert h.undo() is None and not h.can_undo


def test_dropping_the_clean_state_makes_it_unreachable() -> None:
    h = History(1 * KB)
    _, steps = image_steps(3)
    for s in steps:
        h.push(s)
    while h.can_undo:
        h.undo()
    assert not h.is_clean  # the opened state fell off the end


def test_failed_spill_drops_instead(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", full_disk)
    h = History(2 * KB, spill_dir=tmp_path)
    _, steps = image_steps(5)
    for s in steps:
        h.push(s)
    assert h.memory_in_use <= 2 * KB and h.labels == ["edit 3", "edit 4"]
    assert h.spill_folder is not None and not any(h.spill_folder.iterdir())


def test_spill_files_deleted_with_dropped_steps_and_on_close(tmp_path: Path) -> None:
    h = History(1 * KB, spill_dir=tmp_path)
    _, steps = image_steps(4)
    for s in steps:
        h.push(s)
    folder = h.spill_folder
    assert folder is not None and any(folder.glob("*.npy"))
    while h.can_undo:
        h.undo()
    h.push(Step("new", {"img": steps[0].before}, {"img": np.ones((16, 16), np.float32)}))
    assert h.labels == ["new"]
    assert not list(folder.glob("*.npy"))  # every spilled step was in the dropped tail
    for s in image_steps(4)[1]:
        h.push(s)
    h.close()
    assert not folder.exists() and len(h) == 0 and not h.can_undo


def test_lost_spill_file_ends_undo_there(tmp_path: Path) -> None:
    h = History(1 * KB, spill_dir=tmp_path)
    _, steps = image_steps(3)
    for s in steps:
        h.push(s)
    assert h.spill_folder is not None
    for f in h.spill_folder.glob("*.npy"):
        f.unlink()
    assert h.undo() is not None  # edit 2: state 2 is still in RAM, state 3 is current
    assert h.undo() is None and not h.can_undo  # edit 1's state 1 was spilled and is gone
    assert h.labels == ["edit 2"] and h.index == 0
    redone = h.redo()
    assert redone is not None and redone.label == "edit 2"
