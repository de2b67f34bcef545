"""The document: open/save, the protected original, exact undo of an upscale, observers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sr_desk.core.document import Document, OverwriteRefusedError
from sr_desk.core.errors import SrDeskError
from sr_desk.core.imageio import ImageData, save_image
from sr_desk.core.resize import Filter, resize
from sr_desk.core.selection import Selection


def make_image(rng: np.random.Generator, w: int = 12, h: int = 10) -> ImageData:
    # Multiples of 1/255 survive an 8-bit PNG round trip exactly.
    rgb = rng.integers(0, 256, (h, w, 3)).astype(np.float32) / np.float32(255)
    return ImageData(rgb=rgb, icc_profile=b"fake icc", dpi=(300.0, 300.0))


def upscale4(image: ImageData) -> ImageData:
    big = resize(image.rgb, (image.width * 4, image.height * 4), Filter.BICUBIC)
    return image.with_pixels(big, None)


def test_open_save_round_trip(tmp_path: Path, rng: np.random.Generator) -> None:
    src = tmp_path / "photo.png"
    save_image(src, make_image(rng))
    doc = Document.open(src)
    assert doc.path == src and doc.source_path == src and doc.display_name == "photo.png"
    assert not doc.modified and doc.size == (12, 10)
    doc.replace_image(upscale4(doc.image), "Upscale x4")
    assert doc.modified
    out = tmp_path / "photo-x4.png"
    doc.save(out)
    assert not doc.modified and doc.path == out and doc.display_name == "photo-x4.png"
    again = Document.open(out)
    assert again.size == (48, 40)
    assert np.max(np.abs(again.image.rgb - np.clip(doc.image.rgb, 0, 1))) <= 0.5 / 255 + 1e-6


def test_save_refuses_to_overwrite_the_original(tmp_path: Path, rng: np.random.Generator) -> None:
    src = tmp_path / "photo.png"
    save_image(src, make_image(rng))
    before = src.read_bytes()
    doc = Document.open(src)
    doc.replace_image(upscale4(doc.image), "Upscale x4")
    with pytest.raises(OverwriteRefusedError) as info:
        doc.save(tmp_path / "." / "photo.png")
    assert isinstance(info.value, SrDeskError) and "\n" not in str(info.value)
    assert src.read_bytes() == before and doc.modified
    doc.save(src, overwrite_original=True)
    assert not doc.modified and Document.open(src).size == (48, 40)


def test_undo_of_upscale_is_exact(rng: np.random.Generator) -> None:
    image = make_image(rng)
    doc = Document.from_image(image, "pasted")
    assert doc.path is None and doc.display_name == "pasted" and not doc.modified
    sel = Selection.ellipse(image.size, (2, 2, 7, 5))
    doc.set_selection(sel, "Ellipse")
    big = upscale4(image)
    doc.replace_image(big, "Upscale x4")
    assert doc.size == (48, 40) and doc.selection.size == (48, 40)
    assert doc.history.labels == ["Ellipse", "Upscale x4"]

    assert doc.undo() == "Upscale x4"
    assert np.array_equal(doc.image.rgb, image.rgb) and doc.image.alpha is None
    assert doc.image.icc_profile == b"fake icc" and doc.image.dpi == (300.0, 300.0)
    assert doc.selection == sel
    assert doc.redo() == "Upscale x4"
    assert np.array_equal(doc.image.rgb, big.rgb) and doc.selection.size == (48, 40)
    assert doc.undo() == "Upscale x4" and doc.undo() == "Ellipse"
    assert doc.selection.is_empty and not doc.modified
    assert doc.undo() is None


def test_undo_of_spilled_upscale_is_exact(tmp_path: Path, rng: np.random.Generator) -> None:
    image = make_image(rng)
    doc = Document.from_image(image, history_limit_bytes=0, spill_dir=tmp_path)
    sel = Selection.rect(image.size, (1, 1, 5, 5)).feathered(1)
    doc.set_selection(sel, "Select")
    doc.replace_image(upscale4(image), "Upscale x4")
    assert doc.history.memory_in_use == 0 and any(tmp_path.rglob("*.npy"))
    assert doc.undo() == "Upscale x4"
    assert np.array_equal(doc.image.rgb, image.rgb) and doc.selection == sel
    doc.close()
    assert not any(tmp_path.rglob("*.npy"))


def test_replace_image_with_explicit_selection(rng: np.random.Generator) -> None:
    doc = Document.from_image(make_image(rng))
    doc.set_selection(Selection.all(doc.size), "Select all")
    new_sel = Selection.rect((48, 40), (0, 0, 4, 4))
    doc.replace_image(upscale4(doc.image), "Upscale x4", selection=new_sel)
    assert doc.selection is new_sel
    with pytest.raises(ValueError):
        doc.replace_image(doc.image, "bad", selection=Selection.all((3, 3)))
    with pytest.raises(ValueError):
        doc.set_selection(Selection.all((3, 3)), "bad")


def test_observers(tmp_path: Path, rng: np.random.Generator) -> None:
    doc = Document.from_image(make_image(rng))
    events: list[str] = []
    unsubscribe = doc.subscribe(events.append)

    def broken(event: str) -> None:
        raise RuntimeError("a view crashed")

    doc.subscribe(broken)
    doc.set_selection(Selection.all(doc.size), "Select all")
    assert events == ["selection", "history"]
    events.clear()
    doc.replace_image(upscale4(doc.image), "Upscale x4")
    assert events == ["image", "selection", "history"]
    events.clear()
    doc.undo()
    assert events == ["image", "selection", "history"]
    events.clear()
    doc.redo()
    doc.save(tmp_path / "out.png")
    assert events == ["image", "selection", "history", "path", "history"]
    events.clear()
    unsubscribe()
    doc.undo()
    assert events == []


def test_redo_after_new_edit_is_gone(rng: np.random.Generator) -> None:
    doc = Document.from_image(make_image(rng))
    doc.set_selection(Selection.rect(doc.size, (0, 0, 2, 2)), "A")
    doc.set_selection(Selection.rect(doc.size, (0, 0, 3, 3)), "B")
    assert doc.undo() == "B"
    doc.set_selection(Selection.rect(doc.size, (0, 0, 4, 4)), "C")
    assert doc.redo() is None
    assert doc.history.labels == ["A", "C"]
    assert doc.undo() == "C" and doc.selection.area == 4


def test_a_selection_does_not_mark_the_document_unsaved(tmp_path: Path, rng: np.random.Generator) -> None:
    """Issue 19: selecting is not an edit of the file; only pixel changes are."""
    src = tmp_path / "photo.png"
    save_image(src, make_image(rng))
    doc = Document.open(src)
    doc.set_selection(Selection.rect(doc.size, (2, 2, 4, 4)), "Select")
    assert not doc.modified and doc.history.can_undo  # still undoable
    doc.replace_image(doc.image.with_pixels(doc.image.rgb * 0.5, None), "Darken")
    assert doc.modified
    doc.undo()
    assert not doc.modified  # back to the saved pixels, selection still there
    doc.undo()
    assert not doc.modified and doc.selection.is_empty
