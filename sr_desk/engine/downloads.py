"""Downloading weights files: resumable, verified, and never half-installed.

Weights are hundreds of megabytes, so a dropped connection or a Cancel must
not throw away what already arrived: bytes go to ``<target>.part`` and the
next attempt asks the server for the rest with an HTTP ``Range`` request.
Only a complete file whose size and SHA-256 match the declaration is renamed
onto the target (``os.replace``, atomic on one filesystem), so a method never
loads a truncated or tampered file.

Stdlib only (``urllib``): one less dependency to freeze into the app.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Literal

from sr_desk.api.method import WeightFile
from sr_desk.core.errors import SrDeskError
from sr_desk.core.special_files import file_problem
from sr_desk.engine.weights import check_weights_name, find_weights

__all__ = [
    "DownloadCancelled",
    "DownloadError",
    "ModelManager",
    "Progress",
    "ShouldCancel",
    "WeightStatus",
    "download",
    "part_path",
    "sha256_of",
]

Progress = Callable[[int, int | None], None]
"""``progress(done_bytes, total_bytes_or_None)``, called once per received chunk."""

ShouldCancel = Callable[[], bool]
"""Polled before each chunk; returning True stops the download (the ``.part`` file stays)."""

WeightStatus = Literal["builtin", "installed", "partial", "missing"]

_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)", re.IGNORECASE)
_HASH_BLOCK = 1 << 20


class DownloadError(SrDeskError):
    """A download failed; ``str()`` is one line naming the host and the reason."""


class DownloadCancelled(DownloadError):
    """The caller cancelled; the ``.part`` file is kept so the next download resumes."""


class _Restart(Exception):
    """Internal: the partial file is unusable; delete it and start from byte zero."""


def part_path(target: Path) -> Path:
    """Where the bytes of ``target`` collect until the file is complete and verified."""
    target = Path(target)
    return target.with_name(target.name + ".part")


def sha256_of(path: Path, *, limit: int | None = None) -> str:
    """Hex SHA-256 of a file (or of its first ``limit`` bytes), read in blocks to bound memory."""
    return _hash_file(path, limit).hexdigest()


def _hash_file(path: Path, limit: int | None = None) -> hashlib._Hash:
    digest = hashlib.sha256()
    left = limit
    with open(path, "rb") as f:
        while left is None or left > 0:
            block = f.read(_HASH_BLOCK if left is None else min(_HASH_BLOCK, left))
            if not block:
                break
            digest.update(block)
            if left is not None:
                left -= len(block)
    return digest


# One lock per .part file: two threads downloading the same weights would
# interleave their bytes in one file. Re-entrant so ModelManager.ensure can
# hold it across its "already installed?" check and the download itself.
_locks: dict[str, threading.RLock] = {}
_locks_guard = threading.Lock()


@contextlib.contextmanager
def _exclusive(target: Path, cancel: ShouldCancel | None) -> Iterator[None]:
    """Hold the per-target lock, polling ``cancel`` while another thread downloads the file."""
    key = os.path.abspath(part_path(target))
    with _locks_guard:
        lock = _locks.setdefault(key, threading.RLock())
    while not lock.acquire(timeout=0.1):
        if cancel is not None and cancel():
            raise DownloadCancelled(f"download of {Path(target).name} cancelled while waiting for another download of it")
    try:
        yield
    finally:
        lock.release()


class _NoRedirectOffHttp(urllib.request.HTTPRedirectHandler):
    """Follow redirects (release hosts use them) but only to http or https."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        scheme = urllib.parse.urlsplit(newurl).scheme.lower()
        if scheme not in ("http", "https"):
            raise urllib.error.URLError(f"redirected to a non-HTTP URL ({scheme or 'no scheme'}), which is not allowed")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _opener() -> urllib.request.OpenerDirector:
    """An opener that speaks only HTTP(S): no file://, ftp:// or data: even through a redirect."""
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),
        urllib.request.UnknownHandler(),
        urllib.request.HTTPHandler(),
        urllib.request.HTTPSHandler(),
        urllib.request.HTTPDefaultErrorHandler(),
        _NoRedirectOffHttp(),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener


def _host_of(url: str) -> str:
    """``host[:port]`` for messages; never the user:password part of a URL."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "?"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{host}:{port}" if port else host


def _check_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise DownloadError(f"refusing to download from {url!r}: only http and https URLs are allowed")
    try:
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        raise DownloadError(f"refusing to download from {url!r}: the port is not a number") from None
    if not parts.hostname:
        raise DownloadError(f"refusing to download from {url!r}: the URL names no host")


def _reason(exc: BaseException, timeout: float) -> str:
    """A short human reason for a network exception (no errno noise, no traceback)."""
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        reason = exc.reason
        if isinstance(reason, BaseException):
            return _reason(reason, timeout)
        return str(reason)
    if isinstance(exc, TimeoutError):
        return f"timed out after {timeout:g} s"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


class _Download:
    """One ``download()`` call: the state shared by its request, its checks and its messages."""

    def __init__(
        self,
        url: str,
        target: Path,
        sha256: str | None,
        size: int | None,
        progress: Progress | None,
        cancel: ShouldCancel | None,
        timeout: float,
        chunk_size: int,
    ) -> None:
        self.url = url
        self.target = target
        self.part = part_path(target)
        self.sha256 = sha256.lower() if sha256 else None
        self.size = size
        self.progress = progress
        self.cancel = cancel
        self.timeout = timeout
        self.chunk_size = max(1, chunk_size)
        self.host = _host_of(url)
        self.label = target.name

    # -- the whole procedure -------------------------------------------------

    def run(self) -> Path:
        """Fetch (resuming if possible), verify, install. At most one restart from zero."""
        for fresh in (False, True):
            if fresh:
                _unlink(self.part)
            try:
                digest, resumed = self._fetch()
            except _Restart:
                if fresh:  # pragma: no cover - a fresh fetch never asks for a restart
                    raise DownloadError(f"could not download {self.label} from {self.host}: the server misbehaved")
                continue
            mismatch = self._mismatch(digest)
            if mismatch is None:
                self._install()
                return self.target
            _unlink(self.part)
            # Bytes from an earlier session may belong to an older version of
            # the file; one clean download settles whether the server is wrong.
            if resumed and not fresh:
                continue
            raise DownloadError(f"{self.label} from {self.host} {mismatch}; the download was deleted")
        raise AssertionError("unreachable")  # pragma: no cover

    def _fetch(self) -> tuple[hashlib._Hash | None, bool]:
        """Bring ``.part`` to the complete file; return its running hash and whether it resumed."""
        offset = self._usable_offset()
        if offset and offset == self.size:
            # Complete from an earlier session (e.g. cancelled during verification).
            self._report(offset, offset)
            return self._prefix_digest(offset), True
        self._check_cancel()
        headers = {"User-Agent": "sr-desk", "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        request = urllib.request.Request(self.url, headers=headers)
        try:
            response = _opener().open(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            with contextlib.suppress(Exception):
                exc.close()
            if exc.code == 416 and offset:
                return self._unsatisfiable(offset, exc.headers.get("Content-Range", "") if exc.headers else "")
            raise self._error(f"HTTP {exc.code} {exc.reason}".rstrip()) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
            raise self._error(_reason(exc, self.timeout)) from None
        with response:
            return self._receive(response, offset)

    def _usable_offset(self) -> int:
        """Size of the existing ``.part``, or 0 when there is none or it cannot be a prefix."""
        problem = file_problem(self.part, allow_missing=True)  # a FIFO would block the write below forever
        if problem is not None:
            raise DownloadError(f"cannot download {self.label}: {self.part} {problem.removeprefix('it ')}")
        try:
            offset = self.part.stat().st_size
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise DownloadError(f"cannot read {self.part}: {exc.strerror or exc}") from None
        if self.size is not None and offset > self.size:
            _unlink(self.part)
            return 0
        return offset

    def _unsatisfiable(self, offset: int, content_range: str) -> tuple[hashlib._Hash | None, bool]:
        """416: the ``.part`` is already whole (verify it) or longer than the file (restart)."""
        match = _UNSATISFIED_RANGE.fullmatch(content_range.strip())
        total = int(match[1]) if match else self.size
        if total == offset or (total is None and self.sha256 is not None):
            self._report(offset, total)
            return self._prefix_digest(offset), True
        raise _Restart

    def _receive(self, response: http.client.HTTPResponse, offset: int) -> tuple[hashlib._Hash | None, bool]:
        """Stream the body into ``.part``: appended after a 206, from zero after a 200."""
        status = response.status
        length_header = response.headers.get("Content-Length")
        length = int(length_header) if length_header and length_header.isdigit() else None
        if status == 206 and offset:
            match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
            if match is None or int(match[1]) != offset:
                raise _Restart  # not the range we asked for; the simplest safe answer is all of it
            server_total = int(match[3]) if match[3] != "*" else None
            mode = "ab"
        elif 200 <= status < 300 and status != 206:
            offset = 0  # the server ignored Range (or there was none): start over
            server_total = length
            mode = "wb"
        else:
            raise self._error(f"unexpected HTTP {status} {response.reason}".rstrip())
        if self.size is not None and server_total is not None and server_total != self.size:
            _unlink(self.part)
            raise self._error(f"the server offers {server_total} bytes, expected {self.size}; nothing was kept")
        total = self.size if self.size is not None else server_total
        digest = self._prefix_digest(offset) if offset else (hashlib.sha256() if self.sha256 else None)
        end = offset + length if length is not None else None
        done = offset
        try:
            with open(self.part, mode) as f:
                self._report(done, total)
                while True:
                    self._check_cancel()
                    try:
                        chunk = response.read1(self.chunk_size)
                    except (OSError, http.client.HTTPException) as exc:
                        raise self._lost(done, total, _reason(exc, self.timeout)) from None
                    if not chunk:
                        break
                    f.write(chunk)
                    if digest is not None:
                        digest.update(chunk)
                    done += len(chunk)
                    if self.size is not None and done > self.size:
                        f.close()
                        _unlink(self.part)
                        raise self._error(f"the server sent more than the expected {self.size} bytes; nothing was kept")
                    self._report(done, total)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:  # disk full, permissions: keep what we have for a retry
            raise DownloadError(f"cannot write {self.part}: {exc.strerror or exc}") from None
        if end is not None and done < end:
            raise self._lost(done, total, "the connection closed early")
        return digest, offset > 0

    # -- checks and installation ---------------------------------------------

    def _prefix_digest(self, offset: int) -> hashlib._Hash | None:
        """The hash of the bytes already on disk, so resuming still checks the whole file."""
        if self.sha256 is None:
            return None
        try:
            return _hash_file(self.part, offset)
        except OSError as exc:
            raise DownloadError(f"cannot read {self.part}: {exc.strerror or exc}") from None

    def _mismatch(self, digest: hashlib._Hash | None) -> str | None:
        """What is wrong with the finished ``.part``, or ``None`` if it matches the declaration."""
        actual_size = self.part.stat().st_size
        if self.size is not None and actual_size != self.size:
            return f"has {actual_size} bytes, expected {self.size}"
        if self.sha256 is not None:
            actual = digest.hexdigest() if digest is not None else sha256_of(self.part)
            if actual != self.sha256:
                return f"failed its checksum: expected sha256 {self.sha256[:12]}..., got {actual[:12]}..."
        return None

    def _install(self) -> None:
        try:
            os.replace(self.part, self.target)
        except OSError as exc:
            raise DownloadError(f"cannot install {self.target}: {exc.strerror or exc}") from None

    # -- callbacks and messages ----------------------------------------------

    def _report(self, done: int, total: int | None) -> None:
        if self.progress is not None:
            self.progress(done, total)

    def _check_cancel(self) -> None:
        if self.cancel is not None and self.cancel():
            raise DownloadCancelled(
                f"download of {self.label} cancelled; the partial file is kept and the next download will resume"
            )

    def _error(self, reason: str) -> DownloadError:
        return DownloadError(f"could not download {self.label} from {self.host}: {reason}")

    def _lost(self, done: int, total: int | None, reason: str) -> DownloadError:
        of = f" of {total}" if total is not None else ""
        return DownloadError(
            f"download of {self.label} from {self.host} stopped after {done}{of} bytes ({reason}); "
            "try again to resume"
        )


def download(
    url: str,
    target: Path,
    *,
    sha256: str | None = None,
    size: int | None = None,
    progress: Progress | None = None,
    cancel: ShouldCancel | None = None,
    timeout: float = 30.0,
    chunk_size: int = 1 << 20,
) -> Path:
    """Download ``url`` to ``target`` and return ``target``.

    Resumes an earlier ``target.part``; checks ``size`` and ``sha256`` (when
    given) over the whole file before the atomic rename, so ``target`` is
    either absent or complete. ``timeout`` bounds the connect and each read,
    not the whole transfer. Every failure is a one-line ``DownloadError``;
    a cancel is a ``DownloadCancelled`` and keeps the ``.part`` file.
    """
    _check_url(url)
    target = Path(target)
    if size is not None and size < 0:
        raise ValueError(f"size must not be negative: {size}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create the folder {target.parent}: {exc.strerror or exc}") from None
    job = _Download(url, target, sha256, size, progress, cancel, timeout, chunk_size)
    with _exclusive(target, cancel):
        return job.run()


class ModelManager:
    """The app's weights: shipped ones (read-only) and downloaded ones in ``models_dir``.

    Satisfies the ``WeightsStore`` protocol, so the worker hands it to
    methods directly; its ``FileNotFoundError`` tells the user how to get
    the file rather than only where it was not.
    """

    def __init__(self, models_dir: Path, builtin_dirs: Sequence[Path] = ()) -> None:
        self.models_dir = Path(models_dir)
        self.builtin_dirs = tuple(Path(d) for d in builtin_dirs)

    @property
    def folders(self) -> tuple[Path, ...]:
        """Lookup order (as ``LocalWeights.folders``): built-in folders first, then ``models_dir``."""
        return (*self.builtin_dirs, self.models_dir)

    def status(self, wf: WeightFile) -> WeightStatus:
        """Where ``wf`` stands: shipped, downloaded, half downloaded, or absent."""
        if find_weights(self.builtin_dirs, wf.name) is not None:
            return "builtin"
        if (self.models_dir / wf.name).is_file():
            return "installed"
        if part_path(self.models_dir / wf.name).is_file():
            return "partial"
        return "missing"

    def path(self, name: str) -> Path:
        """Local path of weights file ``name``; ``FileNotFoundError`` says how to install it."""
        found = find_weights(self.folders, name)
        if found is not None:
            return found
        raise FileNotFoundError(
            f"weights file {name} is not installed; run `sr-desk models download {name}` "
            f"or put the file in {self.models_dir}"
        )

    def ensure(self, wf: WeightFile, progress: Progress | None = None, cancel: ShouldCancel | None = None) -> Path:
        """The path of ``wf``, downloading it into ``models_dir`` first if it is not present.

        An existing file is returned as is (``verify`` checks it on demand:
        hashing gigabytes at every run would be slow).
        """
        check_weights_name(wf.name)
        found = find_weights(self.folders, wf.name)
        if found is not None:
            return found
        if not wf.url:
            raise DownloadError(
                f"weights file {wf.name} is not installed and declares no download URL; "
                f"put the file in {self.models_dir}"
            )
        target = self.models_dir / wf.name
        with _exclusive(target, cancel):
            if target.is_file():  # another thread finished it while we waited
                return target
            return download(wf.url, target, sha256=wf.sha256, size=wf.size, progress=progress, cancel=cancel)

    def verify(self, wf: WeightFile) -> bool:
        """True when the file in use matches the declared size and SHA-256 (False if absent).

        A declaration with neither has nothing to check against, so any present file passes.
        """
        try:
            path = self.path(wf.name)
        except FileNotFoundError:
            return False
        if wf.size is not None and path.stat().st_size != wf.size:
            return False
        return wf.sha256 is None or sha256_of(path) == wf.sha256

    def remove(self, name: str) -> bool:
        """Delete the downloaded file ``name`` and its ``.part``; True if anything was deleted.

        Built-in weights are never touched: they belong to the installation.
        """
        check_weights_name(name)
        target = self.models_dir / name
        removed = False
        with _exclusive(target, None):
            for path in (target, part_path(target)):
                try:
                    path.unlink()
                    removed = True
                except FileNotFoundError:
                    pass
        return removed


def default_weights(models_dir: Path, before: Sequence[Path] = ()) -> ModelManager:
    """The app's weights store: shipped weights first, then ``models_dir``.

    ``before``: folders looked in ahead of the shipped weights (a benchmark's
    newly trained candidates under the shipped names). A ``ModelManager``
    rather than a plain ``LocalWeights`` so that a missing file's error tells
    the user how to download it.
    """
    from sr_desk_resources import WEIGHTS_DIR

    return ModelManager(models_dir, builtin_dirs=(*before, WEIGHTS_DIR))
