"""Crash recovery of unsaved work.

Every open, modified document is written now and then to a recovery folder
as two files named by its ``recovery_id``:

- ``<id>.<token>.npz``: the pixels (float32 ``rgb``, optional ``alpha``) and
  the selection mask, exactly as in memory (no 8-bit rounding), compressed;
- ``<id>.json``: the manifest (names, paths, size, time, image metadata) that
  names its ``.npz`` and records the data file's SHA-256.

Both are written atomically, data first and manifest last, and a new write
uses a new token, so a crash at any moment leaves the previous manifest
pointing at its own intact data; stale data files are deleted only after the
new manifest is in place. Nothing is pickled: the manifest is JSON and the
arrays are read with ``allow_pickle=False``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import logging
import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from sr_desk.core.atomic import atomic_write_bytes
from sr_desk.core.document import DEFAULT_HISTORY_LIMIT, Document
from sr_desk.core.errors import SrDeskError
from sr_desk.core.history import History
from sr_desk.core.imageio import ImageData
from sr_desk.core.paths import app_paths
from sr_desk.core.selection import Selection

__all__ = [
    "RecoveryEntry",
    "RecoveryError",
    "default_recovery_dir",
    "discard_all",
    "discard_document",
    "discard_recovery",
    "list_recoveries",
    "load_recovery",
    "write_recovery",
]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_ID = re.compile(r"^[0-9a-f]{32}$")
_DATA_NAME = re.compile(r"^([0-9a-f]{32})\.[0-9a-f]{12}\.npz$")


class RecoveryError(SrDeskError):
    """A recovery entry could not be read back."""


@dataclass(frozen=True)
class RecoveryEntry:
    """One recoverable document, as listed for the "restore unsaved work?" dialog."""

    id: str
    name: str
    original_path: Path | None
    source_path: Path | None
    time: datetime
    size: tuple[int, int]
    manifest_path: Path
    data_path: Path


def default_recovery_dir() -> Path:
    """Where the editor keeps recovery entries (under the user's data folder)."""
    return app_paths().data_dir / "recovery"


# ---------------------------------------------------------------------- #
# Writing
# ---------------------------------------------------------------------- #


def write_recovery(doc: Document, folder: Path) -> Path:
    """Write (or rewrite) ``doc``'s recovery entry; returns the manifest's path.

    Raises ``OSError`` when the folder cannot be written; the previous entry
    for the document, if any, is then still intact. Compressing a large
    image takes seconds, so the UI may call this from a worker thread: the
    image and selection are read once, and the document never modifies
    their arrays in place.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    image, selection = doc.image, doc.selection
    data = _encode_arrays(image, selection)
    data_path = folder / f"{doc.recovery_id}.{uuid.uuid4().hex[:12]}.npz"
    atomic_write_bytes(data_path, data)
    manifest = _manifest(doc, image, data_path.name, hashlib.sha256(data).hexdigest())
    manifest_path = folder / f"{doc.recovery_id}.json"
    try:
        atomic_write_bytes(manifest_path, json.dumps(manifest, indent=1).encode("utf-8"))
    except BaseException:
        _unlink(data_path)  # the old manifest still names the old data
        raise
    _remove_stale_data(folder, doc.recovery_id, keep=data_path.name)
    return manifest_path


def _encode_arrays(image: ImageData, selection: Selection) -> bytes:
    arrays: dict[str, np.ndarray] = {"rgb": image.rgb}
    if image.alpha is not None:
        arrays["alpha"] = image.alpha
    if selection.mask is not None:
        arrays["selection"] = selection.mask
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _manifest(doc: Document, image: ImageData, data_name: str, sha256: str) -> dict[str, Any]:
    return {
        "format": "sr-desk-recovery",
        "version": FORMAT_VERSION,
        "id": doc.recovery_id,
        "name": doc.display_name,
        "original_path": _path_str(doc.path or doc.original_path),
        "source_path": _path_str(doc.source_path),
        "time": time.time(),
        "width": image.width,
        "height": image.height,
        "data": data_name,
        "sha256": sha256,
        "metadata": {
            "icc_profile": _b64(image.icc_profile),
            "exif": _b64(image.exif),
            "bit_depth": image.bit_depth,
            "grayscale": image.grayscale,
            "source_format": image.source_format,
            "dpi": list(image.dpi) if image.dpi is not None else None,
        },
    }


def _remove_stale_data(folder: Path, doc_id: str, keep: str) -> None:
    for path in folder.glob(f"{doc_id}.*.npz"):
        if path.name != keep:
            _unlink(path)


# ---------------------------------------------------------------------- #
# Listing and loading
# ---------------------------------------------------------------------- #


def list_recoveries(folder: Path) -> list[RecoveryEntry]:
    """Every readable entry in ``folder``, newest first; broken ones are logged and skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    entries = []
    for path in folder.glob("*.json"):
        if not _ID.match(path.stem):
            continue
        try:
            entries.append(_entry(path, _read_manifest(path)))
        except RecoveryError as exc:
            log.warning("skipping recovery entry %s: %s", path.name, exc)
    return sorted(entries, key=lambda e: e.time, reverse=True)


def load_recovery(
    entry: RecoveryEntry,
    *,
    history_limit_bytes: int = DEFAULT_HISTORY_LIMIT,
    spill_dir: Path | None = None,
) -> Document:
    """Rebuild the document of ``entry``: unsaved (modified), with no path, same recovery id.

    Raises :class:`RecoveryError` when the entry is damaged.
    """
    manifest = _read_manifest(entry.manifest_path)
    entry = _entry(entry.manifest_path, manifest)
    try:
        raw = entry.data_path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or exc
        raise RecoveryError(f"cannot read '{entry.data_path.name}': {reason}") from None
    if hashlib.sha256(raw).hexdigest() != manifest["sha256"]:
        raise RecoveryError(f"'{entry.data_path.name}' is damaged (checksum mismatch)")
    image, mask = _decode_arrays(raw, manifest, entry.size)
    doc = Document(
        image,
        name=entry.name,
        source_path=entry.source_path,
        selection=Selection.from_mask(entry.size, mask),
        history=History(history_limit_bytes, spill_dir),
    )
    doc.original_path = entry.original_path
    doc.recovery_id = entry.id
    doc.history.mark_dirty()
    return doc


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RecoveryError(f"unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != "sr-desk-recovery":
        raise RecoveryError("not an sr-desk recovery manifest")
    if manifest.get("version") != FORMAT_VERSION:
        raise RecoveryError(f"unsupported recovery format version {manifest.get('version')!r}")
    return manifest


def _entry(manifest_path: Path, m: dict[str, Any]) -> RecoveryEntry:
    """Validate a manifest's fields; raises RecoveryError on anything off."""
    try:
        doc_id, data = str(m["id"]), str(m["data"])
        match = _DATA_NAME.match(data)
        if not _ID.match(doc_id) or match is None or match.group(1) != doc_id:
            raise RecoveryError("bad id or data file name")
        width, height = int(m["width"]), int(m["height"])
        if width < 1 or height < 1:
            raise RecoveryError(f"bad size {width}x{height}")
        if not isinstance(m["sha256"], str) or not isinstance(m["metadata"], dict):
            raise RecoveryError("bad checksum or metadata")
        data_path = manifest_path.parent / data
        if not data_path.is_file():
            raise RecoveryError(f"its data file '{data}' is missing")
        return RecoveryEntry(
            id=doc_id,
            name=str(m["name"]),
            original_path=_opt_path(m["original_path"]),
            source_path=_opt_path(m["source_path"]),
            time=datetime.fromtimestamp(float(m["time"]), tz=timezone.utc),
            size=(width, height),
            manifest_path=manifest_path,
            data_path=data_path,
        )
    except (KeyError, TypeError, ValueError, OverflowError, OSError) as exc:
        raise RecoveryError(f"malformed manifest ({type(exc).__name__}: {exc})") from None


def _decode_arrays(
    raw: bytes, manifest: dict[str, Any], size: tuple[int, int]
) -> tuple[ImageData, np.ndarray | None]:
    w, h = size
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            rgb = _array(npz, "rgb", (h, w, 3))
            alpha = _array(npz, "alpha", (h, w)) if "alpha" in npz.files else None
            mask = _array(npz, "selection", (h, w)) if "selection" in npz.files else None
        if mask is not None:
            mask.flags.writeable = False  # ours alone: the selection may share it
        meta = manifest["metadata"]
        dpi = meta.get("dpi")
        image = ImageData(
            rgb=rgb,
            alpha=alpha,
            icc_profile=_unb64(meta.get("icc_profile")),
            exif=_unb64(meta.get("exif")),
            bit_depth=int(meta.get("bit_depth", 8)),
            grayscale=bool(meta.get("grayscale", False)),
            source_format=meta.get("source_format"),
            dpi=(float(dpi[0]), float(dpi[1])) if dpi else None,
        )
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise RecoveryError(f"damaged recovery data ({exc})") from None
    return image, mask


def _array(npz: Any, key: str, shape: tuple[int, ...]) -> np.ndarray:
    array = npz[key]
    if array.shape != shape or array.dtype != np.float32:
        raise ValueError(f"{key} is {array.dtype} {array.shape}, expected float32 {shape}")
    return array


# ---------------------------------------------------------------------- #
# Discarding
# ---------------------------------------------------------------------- #


def discard_recovery(entry: RecoveryEntry) -> None:
    """Delete an entry (the user declined to restore it, or restored and saved it)."""
    _discard_id(entry.manifest_path.parent, entry.id)


def discard_document(doc: Document, folder: Path) -> None:
    """Delete ``doc``'s entry, if any: call after it is saved or closed without saving."""
    _discard_id(Path(folder), doc.recovery_id)


def discard_all(folder: Path) -> None:
    """Delete every recovery entry in ``folder``, broken ones and crashed writes' leftovers too."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        name = path.name.lstrip(".")  # atomic_write's temporaries start with a dot
        if re.match(r"^[0-9a-f]{32}\.", name) and path.is_file():
            _unlink(path)


def _discard_id(folder: Path, doc_id: str) -> None:
    # Manifest first: without it the data files are inert leftovers.
    _unlink(folder / f"{doc_id}.json")
    for path in folder.glob(f"{doc_id}.*.npz"):
        _unlink(path)


# ---------------------------------------------------------------------- #
# Small helpers
# ---------------------------------------------------------------------- #


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _path_str(path: Path | None) -> str | None:
    return str(path) if path is not None else None


def _opt_path(value: object) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"expected a path string, got {type(value).__name__}")
    return Path(value)


def _b64(data: bytes | None) -> str | None:
    return base64.b64encode(data).decode("ascii") if data is not None else None


def _unb64(text: object) -> bytes | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise TypeError("expected base64 text")
    return base64.b64decode(text.encode("ascii"), validate=True)
