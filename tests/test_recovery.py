"""Crash recovery: exact round trip, broken entries skipped, a crash mid-write harms nothing."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from sr_desk.core import recovery
from sr_desk.core.atomic import atomic_write
from sr_desk.core.document import Document
from sr_desk.core.imageio import ImageData, save_image
from sr_desk.core.recovery import (
    discard_all,
    discard_document,
    discard_recovery,
    list_recoveries,
    load_recovery,
    write_recovery,
)
from sr_desk.core.selection import Selection


def make_doc(rng: np.random.Generator, w: int = 9, h: int = 7) -> Document:
    image = ImageData(
        rgb=rng.random((h, w, 3), dtype=np.float32),
        alpha=rng.random((h, w), dtype=np.float32),
        icc_profile=b"\x00icc\xff",
        exif=b"Exif\x00\x00MM",
        bit_depth=16,
        grayscale=False,
        source_format="TIFF",
        dpi=(72.0, 96.0),
    )
    doc = Document.from_image(image, "scan")
    doc.set_selection(Selection.ellipse(image.size, (1, 1, 6, 5)).feathered(1), "Ellipse")
    return doc


def test_round_trip_is_exact(tmp_path: Path, rng: np.random.Generator) -> None:
    doc = make_doc(rng)
    manifest = write_recovery(doc, tmp_path)
    assert manifest.exists() and manifest.stem == doc.recovery_id
    (entry,) = list_recoveries(tmp_path)
    assert entry.id == doc.recovery_id and entry.name == "scan" and entry.size == (9, 7)
    assert entry.original_path is None and entry.time.year >= 2024

    back = load_recovery(entry)
    assert back.modified and back.path is None and back.recovery_id == doc.recovery_id
    assert back.display_name == "scan"
    assert np.array_equal(back.image.rgb, doc.image.rgb)
    assert back.image.alpha is not None and doc.image.alpha is not None
    assert np.array_equal(back.image.alpha, doc.image.alpha)
    assert back.selection == doc.selection
    for field in ("icc_profile", "exif", "bit_depth", "grayscale", "source_format", "dpi"):
        assert getattr(back.image, field) == getattr(doc.image, field), field


def test_original_path_is_remembered_for_save_as(tmp_path: Path) -> None:
    src = tmp_path / "photo.png"
    save_image(src, ImageData(rgb=np.zeros((4, 5, 3), np.float32)))
    doc = Document.open(src)
    doc.set_selection(Selection.all(doc.size), "Select all")
    write_recovery(doc, tmp_path / "rec")
    (entry,) = list_recoveries(tmp_path / "rec")
    assert entry.original_path == src and entry.source_path == src
    back = load_recovery(entry)
    assert back.path is None and back.original_path == src and back.source_path == src
    assert back.display_name == "photo.png" and back.selection == Selection.all((5, 4))


def test_rewrite_replaces_the_entry(tmp_path: Path, rng: np.random.Generator) -> None:
    doc = make_doc(rng)
    write_recovery(doc, tmp_path)
    doc.set_selection(Selection.none(doc.size), "Deselect")
    write_recovery(doc, tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 1  # the stale data file is gone
    (entry,) = list_recoveries(tmp_path)
    assert load_recovery(entry).selection.is_empty


def test_corrupt_entries_are_skipped(
    tmp_path: Path, rng: np.random.Generator, caplog: pytest.LogCaptureFixture
) -> None:
    good = make_doc(rng)
    write_recovery(good, tmp_path)
    broken = write_recovery(make_doc(rng), tmp_path)
    broken.write_text("{ not json")
    wrong_field = write_recovery(make_doc(rng), tmp_path)
    manifest = json.loads(wrong_field.read_text())
    manifest["width"] = "wide"
    wrong_field.write_text(json.dumps(manifest))
    no_data = write_recovery(make_doc(rng), tmp_path)
    for f in tmp_path.glob(no_data.stem + ".*.npz"):
        f.unlink()
    (tmp_path / "notes.json").write_text("[]")  # not ours: ignored silently

    with caplog.at_level(logging.WARNING, logger="sr_desk.core.recovery"):
        entries = list_recoveries(tmp_path)
    assert [e.id for e in entries] == [good.recovery_id]
    assert len([r for r in caplog.records if "skipping" in r.message]) == 3


def test_damaged_data_raises_recovery_error(tmp_path: Path, rng: np.random.Generator) -> None:
    write_recovery(make_doc(rng), tmp_path)
    (entry,) = list_recoveries(tmp_path)
    data = bytearray(entry.data_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    entry.data_path.write_bytes(bytes(data))
    with pytest.raises(recovery.RecoveryError, match="damaged"):
        load_recovery(entry)


def test_crash_mid_write_leaves_earlier_entries_intact(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = make_doc(rng)
    write_recovery(first, tmp_path)
    second = make_doc(rng)

    def crash_halfway(path: object, data: bytes) -> None:
        def write(f: object) -> None:
            f.write(data[: len(data) // 2])  # type: ignore[attr-defined]
            raise KeyboardInterrupt("power cut")

        atomic_write(path, write)  # type: ignore[arg-type]

    monkeypatch.setattr(recovery, "atomic_write_bytes", crash_halfway)
    with pytest.raises(KeyboardInterrupt):
        write_recovery(second, tmp_path)  # a new document's entry
    first.set_selection(Selection.none(first.size), "Deselect")
    with pytest.raises(KeyboardInterrupt):
        write_recovery(first, tmp_path)  # a newer version of the first
    monkeypatch.undo()

    (entry,) = list_recoveries(tmp_path)
    assert entry.id == first.recovery_id
    back = load_recovery(entry)
    assert np.array_equal(back.image.rgb, first.image.rgb)
    assert not back.selection.is_empty  # the version written before the crash
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [entry.manifest_path.name, entry.data_path.name]
    )


def test_crash_between_data_and_manifest(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = make_doc(rng)
    write_recovery(doc, tmp_path)
    real = recovery.atomic_write_bytes

    def fail_on_manifest(path: Path, data: bytes) -> None:
        if str(path).endswith(".json"):
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(recovery, "atomic_write_bytes", fail_on_manifest)
    doc.set_selection(Selection.none(doc.size), "Deselect")
    with pytest.raises(OSError):
        write_recovery(doc, tmp_path)
    monkeypatch.undo()
    (entry,) = list_recoveries(tmp_path)
    assert not load_recovery(entry).selection.is_empty
    assert len(list(tmp_path.glob("*.npz"))) == 1


def test_discard(tmp_path: Path, rng: np.random.Generator) -> None:
    a, b, c = make_doc(rng), make_doc(rng), make_doc(rng)
    for doc in (a, b, c):
        write_recovery(doc, tmp_path)
    (entry_a,) = [e for e in list_recoveries(tmp_path) if e.id == a.recovery_id]
    discard_recovery(entry_a)
    discard_document(b, tmp_path)
    assert [e.id for e in list_recoveries(tmp_path)] == [c.recovery_id]
    (tmp_path / f".{c.recovery_id}.json.abc.tmp").write_bytes(b"leftover of a crash")
    (tmp_path / "keep-me.txt").write_text("not ours")
    discard_all(tmp_path)
    assert list_recoveries(tmp_path) == []
    assert [p.name for p in tmp_path.iterdir()] == ["keep-me.txt"]
    assert list_recoveries(tmp_path / "missing") == []
