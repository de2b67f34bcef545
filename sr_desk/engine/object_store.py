"""Folders and files named by URI (``s3://``, ``gs://``, ``file://``), for the batch on a cluster.

An archive on a cluster often lives in an object store, not on a disk every
machine mounts. The cluster batch reads its inputs and writes its outputs
through the filesystem layer Ray Data itself uses, PyArrow's (``pyarrow.fs``:
S3, Google Cloud Storage, HDFS and local files; credentials as those
services configure them, from the environment). A worker copies an input to
a local scratch file, runs the ordinary job on it, and uploads the result
(an object store's put replaces the object whole, so an existing output is
a complete one, as with atomic writes on disk). Plain paths never come here.
"""

from __future__ import annotations

import functools
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = ["exists", "fetch", "is_uri", "join", "list_files", "name_of", "put", "read_text", "remove", "write_text"]


def is_uri(location: str | Path) -> bool:
    """Whether ``location`` names a place in a filesystem other than this machine's paths (``scheme://...``)."""
    return "://" in str(location)


@functools.lru_cache(maxsize=16)
def _folder(uri: str) -> tuple[Any, str]:
    """The filesystem of the folder ``uri`` and its path there, resolved once: for S3 that is a request (the bucket's
    region), and a batch asks about every file of one or two folders several times."""
    from pyarrow import fs

    try:
        return fs.FileSystem.from_uri(uri)
    except (OSError, ValueError) as exc:
        from sr_desk.core.errors import SrDeskError

        raise SrDeskError(f"cannot open {uri}: {' '.join(str(exc).split())}") from None


def _resolve(uri: str) -> tuple[Any, str]:
    """The filesystem of the file ``uri`` and its path there (through its folder's, see :func:`_folder`)."""
    folder, name = uri.rstrip("/").rsplit("/", 1)
    filesystem, root = _folder(folder)
    return filesystem, f"{root.rstrip('/')}/{name}"


def _uri_of(folder: str, root: str, path: str) -> str:
    """The URI of ``path`` in the filesystem that ``folder`` resolved to, as the path ``root``."""
    folder, root = folder.rstrip("/"), root.rstrip("/")
    prefix = folder[: len(folder) - len(root)] if folder.endswith(root) else folder.split("://", 1)[0] + "://"
    return prefix + path


def join(folder: str, name: str) -> str:
    return folder.rstrip("/") + "/" + name


def name_of(uri: str) -> str:
    return PurePosixPath(uri.split("://", 1)[1]).name


def list_files(folder: str) -> list[str]:
    """The URIs of the files directly in ``folder``, sorted."""
    from pyarrow import fs

    filesystem, root = _folder(folder.rstrip("/"))
    infos = filesystem.get_file_info(fs.FileSelector(root, allow_not_found=False))
    return sorted(_uri_of(folder, root, info.path) for info in infos if info.type == fs.FileType.File)


def exists(uri: str) -> bool:
    return _exists(*_resolve(uri))


def _exists(filesystem: Any, path: str) -> bool:
    from pyarrow import fs

    return filesystem.get_file_info(path).type != fs.FileType.NotFound


def fetch(uri: str, folder: Path) -> Path:
    """A local copy of ``uri`` in ``folder``, under its own name (its extension says its format)."""
    filesystem, path = _resolve(uri)
    local = folder / name_of(uri)
    with filesystem.open_input_stream(path) as source, open(local, "wb") as copy:
        while chunk := source.read(1 << 20):
            copy.write(chunk)
    return local


def put(local: Path, uri: str) -> None:
    """Upload ``local`` to ``uri``, replacing what is there."""
    filesystem, path = _resolve(uri)
    parent = str(PurePosixPath(path).parent)
    filesystem.create_dir(parent, recursive=True)
    with open(local, "rb") as source, filesystem.open_output_stream(path) as target:
        while chunk := source.read(1 << 20):
            target.write(chunk)


def read_text(uri: str) -> str | None:
    filesystem, path = _resolve(uri)
    if not _exists(filesystem, path):
        return None
    with filesystem.open_input_stream(path) as source:
        return source.read().decode("utf-8", "replace")


def write_text(uri: str, text: str) -> None:
    filesystem, path = _resolve(uri)
    filesystem.create_dir(str(PurePosixPath(path).parent), recursive=True)
    with filesystem.open_output_stream(path) as target:
        target.write(text.encode("utf-8"))


def remove(uri: str) -> None:
    filesystem, path = _resolve(uri)
    if _exists(filesystem, path):
        filesystem.delete_file(path)
