"""Fuzzing what hostile input reaches: image files, weights files, paths and command-line values (issues 18, 30).

Every case either works or is refused the way the app promises, and each
promise is checked where a user would see it break:

* one line: the command-line cases run as real ``sr-desk`` processes (forked
  from a warm one, see :class:`CliProcesses`; a few start from nothing) and
  their real stderr is counted: exactly one line starting ``sr-desk: error:``
  and exit status 1 or 2. In-process cases fail on anything written to the
  file descriptors (``capfd``: a C library's message counts) and on any
  Python warning that would reach the terminal;
* nothing hangs: every case has a time limit, and a case past it fails the
  test at once (:class:`Hung`) instead of stalling the suite;
* nothing is lost: the input keeps its bytes and mtime, a failed save leaves
  no output, the old target as it was, no ``.*.tmp`` file and no entry in the
  write journal;
* no weights file runs code: pickles that would create a marker file are
  given to every loader and every model method, and the marker never appears;
* the image cases reach the decoders: valid small files of every format are
  mutated inside their structure (PNG and WebP sizes and CRCs kept right,
  TIFF tags, JPEG segments, BMP and GIF header fields), and the share that
  gets past format sniffing is measured and held up.

The examples are derandomized (the same cases in every run) and bounded;
``SR_DESK_FUZZ_EXAMPLES`` scales them all (e.g. 10 for a long local run).
``tools/fuzz-mutants.py`` runs this file against a dozen deliberately broken
copies of the code and shows which it catches.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import logging
import os
import pickle
import re
import shutil
import stat
import struct
import subprocess
import sys
import threading
import warnings
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms

from sr_desk.core.errors import ImageReadError, ImageWriteError, SrDeskError
from sr_desk.core.imageio import ImageData, load_image, save_image, save_image_bands
from sr_desk.diffusion.weights_file import CheckpointError
from tests.foreign_output import ForeignLogLines

SCALE = float(os.environ.get("SR_DESK_FUZZ_EXAMPLES", "1"))

#: An in-process case (one file loaded, one weights file read) takes milliseconds; only a hang gets near this.
CASE_LIMIT_S = 30.0
#: One sr-desk process on a tiny image, loaded CI machine included.
PROCESS_LIMIT_S = 60.0


def fuzz(examples: int) -> settings:
    return settings(
        max_examples=max(1, int(examples * SCALE)),
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                               HealthCheck.data_too_large],
    )


# =====================================================================================
# The harness: time limits, the real terminal, files left alone
# =====================================================================================


class Hung(BaseException):
    """A case ran past its time limit.

    A BaseException, so Hypothesis does not catch it and replay the hang
    while shrinking: the run ends at once, naming the case.
    """


def within(limit_s: float, call: Callable[..., Any], *args: Any, on_hang: Callable[[], None] | None = None) -> Any:
    """``call(*args)`` on a daemon thread; :class:`Hung` if it is still running after ``limit_s``.

    ``on_hang`` may unblock the thread afterwards (open a FIFO's other end),
    so one hang does not hold a lock the next cases need.
    """
    box: dict[str, Any] = {}

    def body() -> None:
        try:
            box["value"] = call(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=body, name="fuzz-case", daemon=True)
    thread.start()
    thread.join(limit_s)
    if thread.is_alive():
        if on_hang is not None:
            on_hang()
        raise Hung(f"{getattr(call, '__name__', call)}{args!r} still running after {limit_s:.0f} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def assert_one_printable_line(message: str, context: object = "") -> None:
    """A message the user reads: not empty, no control characters (no line breaks, tabs or escape codes)."""
    assert message.strip(), f"an empty message {context}"
    assert message.isprintable(), f"a message with control characters: {message!r} {context}"


def attempt(capfd: pytest.CaptureFixture[str], call: Callable[..., Any], *args: Any,
            refusal: type[BaseException] | tuple[type[BaseException], ...] = SrDeskError,
            on_hang: Callable[[], None] | None = None, quiet: bool = True) -> tuple[Any, BaseException | None]:
    """``call(*args)`` as one fuzz case: ``(result, None)`` or ``(None, the refusal)``.

    Fails on anything else: another exception, a hang past
    :data:`CASE_LIMIT_S`, a refusal that is not one printable line, and with
    ``quiet``, anything written to the real stdout or stderr (file
    descriptors 1 and 2, where a C library writes), a Python warning or
    another library's log record that would reach the terminal. (The
    fuzzers check ``quiet`` in a test of its own, so that a stray line
    today does not hide a crash in the same cases.)
    """
    capfd.readouterr()
    logged = ForeignLogLines()
    logging.getLogger().addHandler(logged)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result, error = within(CASE_LIMIT_S, call, *args, on_hang=on_hang), None
            except refusal as exc:
                result, error = None, exc
    finally:
        logging.getLogger().removeHandler(logged)
    out, err = capfd.readouterr()
    name = getattr(call, "__name__", call)
    if error is not None:
        assert_one_printable_line(str(error), f"from {name}{args!r}")
    if not quiet:
        return result, error
    assert not out and not err, f"{name}{args!r} wrote to the terminal itself: {(out + err)[:600]!r}"
    escaped = [f"{w.category.__name__}: {w.message}" for w in caught]
    assert not escaped, f"{name}{args!r} let warnings through to the terminal: {escaped[:3]}"
    assert not logged.lines, f"{name}{args!r} let a library's log lines through to the terminal: {logged.lines[:3]}"
    return result, error


@dataclass(frozen=True)
class Snapshot:
    """A file as the user left it: what must not change when sr-desk reads it or fails to write over it."""

    path: Path
    data: bytes
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> Snapshot:
        return cls(path, path.read_bytes(), path.stat().st_mtime_ns)

    def assert_unchanged(self) -> None:
        assert self.path.exists(), f"{self.path.name} was removed"
        assert self.path.read_bytes() == self.data, f"{self.path.name} was changed"
        assert self.path.stat().st_mtime_ns == self.mtime_ns, f"{self.path.name} was written (its mtime moved)"


def journal_path() -> Path:
    """The write journal of this test's private home (conftest's ``private_home``), where the CLI lists temp files."""
    return Path(os.environ["SR_DESK_HOME"]) / "cache" / "pending-writes.txt"


def assert_no_temp_files(folder: Path, journal: Path | None = None) -> None:
    """No ``.*.tmp`` left in ``folder``, and no journal line still naming a file there."""
    left = sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp"))
    assert not left, f"temporary files left behind: {left}"
    if journal is not None and journal.exists():
        listed = [line for line in journal.read_text(errors="replace").splitlines() if str(folder) in line]
        assert not listed, f"the write journal still lists: {listed}"


@pytest.fixture
def journal(private_home):
    """The write journal switched on for in-process saves (as the CLI and the editor do), off again after."""
    from sr_desk.core import atomic

    path = Path(private_home) / "cache" / "pending-writes.txt"
    atomic.set_journal(path)
    yield path
    atomic.set_journal(None)


# -- sr-desk processes --------------------------------------------------------------------

#: A warm sr-desk: imports the app and its built-in plugins once, then forks one child per command.
#: Each child is a real process (its own fd 1 and 2, default logging and warnings, sys.exit as the
#: console script does) that exits as the interpreter would, less freeing every module, which takes
#: most of a second with torch loaded. The parent never runs a model, so the fork is safe.
ZYGOTE = r'''
import atexit, json, os, signal, sys, threading, time
import torch, tqdm
import sr_desk.cli, sr_desk.engine.pipeline, sr_desk.engine.plugins, sr_desk.engine.weights, sr_desk.engine.worker
from importlib import metadata
for ep in metadata.entry_points(group="sr_desk.plugins"):
    if ep.value.startswith("sr_desk_plugins."):
        ep.load()
requests, replies = os.fdopen(os.dup(0), "r"), os.fdopen(os.dup(1), "w")
null = os.open(os.devnull, os.O_RDWR)
os.dup2(null, 0)
os.dup2(null, 1)
replies.write(json.dumps([sr_desk.__file__, sr_desk.cli.__file__]) + "\n")
replies.flush()


def child(job):
    requests.close()
    replies.close()
    os.chdir(job["cwd"])
    os.environ.clear()
    os.environ.update(job["env"])
    sys.path[:0] = job["path"]
    for fd, name in ((1, job["stdout"]), (2, job["stderr"])):
        f = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(f, fd)
        os.close(f)
    sys.argv = ["sr-desk", *job["argv"]]
    try:
        code = sr_desk.cli.main(job["argv"])
    except SystemExit as exc:
        code = exc.code
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    threading._shutdown()  # the interpreter's exit: wait for threads that are not daemons
    atexit._run_exitfuncs()
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(code & 0xFF)


for line in requests:
    job = json.loads(line)
    pid = os.fork()
    if pid == 0:
        child(job)
    deadline = time.monotonic() + job["limit"]
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            code = None
            break
        time.sleep(0.002)
    replies.write(json.dumps(code) + "\n")
    replies.flush()
'''


def import_roots() -> list[str]:
    """Folders to put first on a child's PYTHONPATH so it imports the very code this test imported.

    (``tools/fuzz-mutants.py`` runs this file against a copy of the code put
    first on the path; the editable install would otherwise win in a child.)
    """
    import sr_desk
    import sr_desk_plugins

    roots = [str(Path(sr_desk.__file__).resolve().parents[1])]
    plugins = Path(list(sr_desk_plugins.__path__)[0]).resolve()
    if plugins.name == "sr_desk_plugins":
        roots.append(str(plugins.parent))
    return roots


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*import_roots(), *filter(None, [os.environ.get("PYTHONPATH")])])
    env.pop("SR_DESK_SAFE_MODE", None)
    return env


@dataclass(frozen=True)
class Run:
    """One finished sr-desk process."""

    argv: tuple[str, ...]
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        """What the terminal shows on stderr, line by line (any line break counts, as it would on screen), less
        the progress lines a run prints where stderr is not a terminal (``dtls: 50% (3 s)``)."""
        return [line for line in self.err.splitlines() if line.strip() and not PROGRESS_LINE.fullmatch(line)]


ERROR_LINE = re.compile(r"sr-desk(?: [a-z-]+)?: error: \S")
PROGRESS_LINE = re.compile(r"\S+: \d+% \(\d+ s\)")


def assert_refused(run: Run, codes: tuple[int, ...] = (1, 2)) -> None:
    """Refused as promised: exit status 1 or 2 and exactly one line on stderr, ``sr-desk: error: ...``."""
    assert run.code in codes, f"exit status {run.code} for {run.argv!r}; stderr: {run.err[-800:]!r}"
    assert len(run.lines) == 1 and ERROR_LINE.match(run.lines[0]), (
        f"{len(run.lines)} lines on stderr for {run.argv!r}, not one error line: {run.err[-1500:]!r}"
    )


class CliProcesses:
    """Runs ``sr-desk ARGS`` as real processes, forked from a warm one (:data:`ZYGOTE`)."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.process = subprocess.Popen([sys.executable, "-c", ZYGOTE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, env=child_env(), cwd=scratch)
        assert self.process.stdout is not None
        ready = self.process.stdout.readline()
        assert ready, "the warm sr-desk did not start"
        self.imported = json.loads(ready)

    def run(self, *argv: str, cwd: Path | None = None, limit_s: float = PROCESS_LIMIT_S,
            path: tuple[str, ...] = ()) -> Run:
        """``sr-desk *argv`` in ``cwd``, with this test's environment; :class:`Hung` past ``limit_s``."""
        assert self.process.stdin is not None and self.process.stdout is not None
        out, err = self.scratch / "stdout", self.scratch / "stderr"
        job = {"argv": list(argv), "cwd": str(cwd or self.scratch), "env": child_env(), "path": list(path),
               "stdout": str(out), "stderr": str(err), "limit": limit_s}
        self.process.stdin.write(json.dumps(job) + "\n")
        self.process.stdin.flush()
        reply = self.process.stdout.readline()
        assert reply, "the warm sr-desk died"
        code = json.loads(reply)
        if code is None:
            raise Hung(f"sr-desk {' '.join(map(repr, argv))} still running after {limit_s:.0f} s (killed)")
        return Run(tuple(argv), code, out.read_text(errors="replace"), err.read_text(errors="replace"))

    def close(self) -> None:
        self.process.stdin.close()  # type: ignore[union-attr]
        self.process.wait(10)


@pytest.fixture(scope="module")
def cli(tmp_path_factory) -> Iterator[CliProcesses]:
    processes = CliProcesses(tmp_path_factory.mktemp("cli"))
    yield processes
    processes.close()


def run_cold(*argv: str, cwd: Path) -> Run:
    """``python -m sr_desk *argv`` started from nothing: the most honest run, for a few cases (about 2 s each)."""
    try:
        done = subprocess.run([sys.executable, "-m", "sr_desk", *argv], capture_output=True, text=True,
                              errors="replace", cwd=cwd, env=child_env(), timeout=PROCESS_LIMIT_S,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise Hung(f"sr-desk {' '.join(map(repr, argv))} still running after {PROCESS_LIMIT_S:.0f} s") from None
    return Run(tuple(argv), done.returncode, done.stdout, done.stderr)


def test_the_processes_run_the_code_under_test(cli):
    """A child that imported another copy of sr-desk (the editable install instead of a mutant) tests nothing."""
    import sr_desk
    import sr_desk.cli

    assert [str(Path(p).resolve()) for p in cli.imported] == [str(Path(sr_desk.__file__).resolve()),
                                                             str(Path(sr_desk.cli.__file__).resolve())]


# =====================================================================================
# Image files: valid small files of every format, mutated inside their structure
# =====================================================================================


def _picture(mode: str, size: tuple[int, int] = (24, 16)) -> Image.Image:
    """A small gradient in ``mode`` (every value differs, so encoders and palettes have real work)."""
    w, h = size
    x = np.linspace(0, 255, w)[None, :].repeat(h, 0)
    y = np.linspace(255, 0, h)[:, None].repeat(w, 1)
    rgb = Image.fromarray(np.stack([x, y, (x + y) / 2], -1).astype(np.uint8), "RGB")
    if mode == "RGBA":
        rgb.putalpha(Image.fromarray(y.astype(np.uint8), "L"))
        return rgb
    if mode == "LA":
        gray = rgb.convert("L")
        return Image.merge("LA", (gray, Image.fromarray(x.astype(np.uint8), "L")))
    if mode == "I;16":
        return Image.fromarray((x * 257).astype(np.uint16))
    if mode == "P":
        return rgb.quantize(6)
    return rgb.convert(mode)


def _exif(orientation: int = 6) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "fuzz camera"
    exif[0x0132] = "2024:01:02 03:04:05"
    return exif.tobytes()


def _encoded(mode: str, fmt: str, **params: Any) -> bytes:
    buffer = io.BytesIO()
    _picture(mode).save(buffer, format=fmt, **params)
    return buffer.getvalue()


@functools.lru_cache(maxsize=None)
def seed_files() -> dict[str, bytes]:
    """Valid small files of every read format: alpha, palette, 16-bit, 1-bit, CMYK, EXIF, ICC, compressions."""
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    gif = io.BytesIO()
    _picture("P").save(gif, format="GIF", save_all=True, append_images=[_picture("RGB").quantize(4)], duration=50)
    return {
        "rgb.png": _encoded("RGB", "PNG", exif=_exif(), dpi=(300, 300), icc_profile=srgb),
        "rgba.png": _encoded("RGBA", "PNG"),
        "palette.png": _encoded("P", "PNG", transparency=2),
        "gray.png": _encoded("L", "PNG"),
        "gray-alpha.png": _encoded("LA", "PNG"),
        "gray16.png": _encoded("I;16", "PNG"),
        "bilevel.png": _encoded("1", "PNG"),
        "rgb.jpg": _encoded("RGB", "JPEG", quality=90, exif=_exif(), icc_profile=srgb),
        "gray.jpg": _encoded("L", "JPEG"),
        "cmyk.jpg": _encoded("CMYK", "JPEG"),
        "progressive.jpg": _encoded("RGB", "JPEG", progressive=True, subsampling=2),
        "lossy.webp": _encoded("RGB", "WEBP", quality=80, exif=_exif(3)),
        "lossless-alpha.webp": _encoded("RGBA", "WEBP", lossless=True),
        "rgb.tiff": _encoded("RGB", "TIFF"),
        "rgba-deflate.tiff": _encoded("RGBA", "TIFF", compression="tiff_deflate"),
        "gray16.tiff": _encoded("I;16", "TIFF"),
        "cmyk.tiff": _encoded("CMYK", "TIFF"),
        "gray-lzw.tiff": _encoded("L", "TIFF", compression="tiff_lzw"),
        "bilevel-g4.tiff": _encoded("1", "TIFF", compression="group4"),
        "rgb-packbits-exif.tiff": _encoded("RGB", "TIFF", compression="packbits", exif=_exif(8)),
        "rgb-jpeg.tiff": _encoded("RGB", "TIFF", compression="jpeg"),
        "rgb.bmp": _encoded("RGB", "BMP"),
        "palette.bmp": _encoded("P", "BMP"),
        "bilevel.bmp": _encoded("1", "BMP"),
        "palette.gif": _encoded("P", "GIF", transparency=1),
        "animated.gif": gif.getvalue(),
    }


#: Values that break parsers: zero, sign and width boundaries, and sizes around the pixel limit.
INTERESTING = (0, 1, 2, 3, 4, 7, 8, 15, 16, 31, 0x7F, 0x80, 0xFF, 0x100, 0x3FFF, 0x4000, 0x7FFF, 0x8000, 0xFFFF,
               0x10000, 9460, 30000, 65500, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)


#: Mutations per file: mostly one, so that most files still get past the format's own header checks.
HOW_MANY = st.sampled_from([1, 1, 1, 2, 3])


def _put(data: bytearray, at: int, width: int, value: int, order: str) -> None:
    if 0 <= at and at + width <= len(data):
        data[at:at + width] = (value & ((1 << 8 * width) - 1)).to_bytes(width, order)  # type: ignore[arg-type]


def _field(draw: st.DrawFn, data: bytearray, at: int, order: str) -> None:
    """Set a 1, 2 or 4 byte number at ``at`` to an interesting value."""
    _put(data, at, draw(st.sampled_from([1, 2, 4])), draw(st.sampled_from(INTERESTING)), order)


def _cut(draw: st.DrawFn, data: bytearray, start: int = 0) -> None:
    """Cut ``data`` short somewhere after ``start`` (a download that stopped)."""
    if len(data) > start:
        del data[draw(st.integers(start, len(data) - 1)):]


def _scribble(draw: st.DrawFn, data: bytearray, start: int = 0, end: int | None = None) -> None:
    """Change a few bytes somewhere in ``data[start:end]``."""
    end = len(data) if end is None else min(end, len(data))
    if end <= start:
        return
    for _ in range(draw(st.integers(1, 4))):
        data[draw(st.integers(start, end - 1))] = draw(st.integers(0, 255))


# -- PNG: chunks, with lengths and CRCs kept right (else the first CRC check ends every case) ----------

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_chunks(data: bytes) -> list[list[Any]]:
    chunks, at = [], 8
    while at + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        chunks.append([kind, bytearray(data[at + 8:at + 8 + length])])
        at += 12 + length
    return chunks


def _png_join(chunks: list[list[Any]], bad_crc: int | None = None) -> bytes:
    out = bytearray(PNG_MAGIC)
    for i, (kind, body) in enumerate(chunks):
        crc = zlib.crc32(kind + bytes(body)) ^ (1 if i == bad_crc else 0)
        out += struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)
    return bytes(out)


def _mutate_png(draw: st.DrawFn, data: bytes) -> bytes:
    chunks = _png_chunks(data)
    for _ in range(draw(HOW_MANY)):
        how = draw(st.sampled_from(["header", "pixels", "pixels", "pixels", "chunk", "order"]))
        if how == "header":  # IHDR: size, bit depth, colour type, compression, filter, interlace
            ihdr = next((c[1] for c in chunks if c[0] == b"IHDR"), bytearray())
            at = draw(st.sampled_from([0, 4, 8, 9, 10, 11, 12]))
            if at < 8:
                _put(ihdr, at, 4, draw(st.sampled_from(INTERESTING)), "big")
            else:
                _put(ihdr, at, 1, draw(st.sampled_from([0, 1, 2, 3, 4, 5, 6, 8, 16, 255])), "big")
        elif how == "pixels":  # inside the deflate stream: filter types and pixel bytes, then compressed again
            idat = [c for c in chunks if c[0] == b"IDAT"]
            try:
                raw = bytearray(zlib.decompress(b"".join(bytes(c[1]) for c in idat)))
            except zlib.error:
                continue
            if draw(st.booleans()):
                _scribble(draw, raw)
            else:
                raw = raw[: draw(st.integers(0, len(raw)))] + draw(st.binary(max_size=8))
            first = chunks.index(idat[0])
            chunks = [c for c in chunks if c[0] != b"IDAT"]
            chunks.insert(first, [b"IDAT", bytearray(zlib.compress(bytes(raw)))])
        elif how == "chunk":  # any chunk's body: PLTE, tRNS, eXIf, iCCP, pHYs ...
            body = chunks[draw(st.integers(0, len(chunks) - 1))][1]
            if body and draw(st.booleans()):
                _field(draw, body, draw(st.integers(0, len(body) - 1)), "big")
            else:
                _cut(draw, body)
        elif len(chunks) > 2:  # a chunk after IHDR dropped, doubled or moved
            i = draw(st.integers(1, len(chunks) - 1))
            chunk = chunks.pop(i)
            what = draw(st.sampled_from(["drop", "double", "move"]))
            if what != "drop":
                chunks.insert(draw(st.integers(1, len(chunks))), [chunk[0], bytearray(chunk[1])])
            if what == "double":
                chunks.insert(i, chunk)
    broken = draw(st.sampled_from([False] * 19 + [True]))  # now and then a CRC left wrong, as a bad copy has it
    return _png_join(chunks, bad_crc=draw(st.integers(0, len(chunks) - 1)) if broken else None)


# -- WebP: RIFF chunks, with the RIFF and chunk sizes kept right ----------------------------------------


def _riff_chunks(data: bytes) -> list[list[Any]]:
    chunks, at = [], 12
    while at + 8 <= len(data):
        kind, length = data[at:at + 4], struct.unpack("<I", data[at + 4:at + 8])[0]
        chunks.append([kind, bytearray(data[at + 8:at + 8 + length])])
        at += 8 + length + (length & 1)
    return chunks


def _riff_join(chunks: list[list[Any]]) -> bytes:
    body = b"WEBP" + b"".join(k + struct.pack("<I", len(b)) + b + b"\0" * (len(b) & 1) for k, b in chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _mutate_webp(draw: st.DrawFn, data: bytes) -> bytes:
    chunks = _riff_chunks(data)
    for _ in range(draw(HOW_MANY)):
        kind, body = chunks[draw(st.integers(0, len(chunks) - 1))]
        if not body:
            continue
        how = draw(st.sampled_from(["body", "header", "body", "body", "cut"]))
        if how == "header":  # VP8 frame tag and sizes, VP8L's 14-bit sizes, VP8X flags and canvas
            _field(draw, body, draw(st.integers(0, min(len(body), 16) - 1)), "little")
        elif how == "body":  # past the chunk's own header: the compressed picture
            _scribble(draw, body, min(10, len(body) - 1))
        else:
            _cut(draw, body)
    return _riff_join(chunks)


# -- TIFF: the entries of the first IFD (tag types, counts, values and offsets) and the strips ----------


def _tiff_entry_value(data: bytearray, ifd: int, count: int, tag: int, order: str) -> int | None:
    """The value of ``tag`` in the IFD at ``ifd`` when it holds a single number (a single strip's offset, say)."""
    def number(start: int, end: int) -> int:
        return int.from_bytes(data[start:end], order)  # type: ignore[arg-type]

    for i in range(count):
        entry = ifd + 2 + 12 * i
        if entry + 12 <= len(data) and number(entry, entry + 2) == tag and number(entry + 4, entry + 8) == 1:
            return number(entry + 8, entry + (10 if number(entry + 2, entry + 4) == 3 else 12))
    return None


def _mutate_tiff(draw: st.DrawFn, data: bytes) -> bytes:
    out = bytearray(data)
    order = "little" if out[:2] == b"II" else "big"
    ifd = int.from_bytes(out[4:8], order)  # type: ignore[arg-type]
    count = int.from_bytes(out[ifd:ifd + 2], order) if ifd + 2 <= len(out) else 0  # type: ignore[arg-type]
    # The pixels: from the first strip to the IFD (libtiff writes it last) or to the end (Pillow writes it first).
    strips = _tiff_entry_value(out, ifd, count, 273, order) or ifd + 2 + 12 * count + 4
    pixels = (strips, ifd if strips < ifd else len(out))
    for _ in range(draw(HOW_MANY)):
        how = draw(st.sampled_from(["data", "entry", "data", "data", "data", "cut"]))
        if how == "entry" and count:
            entry = ifd + 2 + 12 * draw(st.integers(0, count - 1))
            part = draw(st.sampled_from([(2, 2), (4, 4), (8, 4), (8, 4), (8, 2), (8, 2)]))  # type, count, value
            _put(out, entry + part[0], part[1], draw(st.sampled_from(INTERESTING)), order)
        elif how == "data":
            _scribble(draw, out, *pixels)
        else:
            _cut(draw, out, pixels[0])
    return bytes(out)


# -- JPEG: the segments before the scan (DQT, DHT, SOF, APPn) and the entropy-coded data ---------------


def _jpeg_segments(data: bytes) -> tuple[list[tuple[int, int, int]], int]:
    """``[(marker, start, end)]`` of the segments up to and including SOS, and where the scan data starts."""
    segments, at = [], 2
    while at + 4 <= len(data) and data[at] == 0xFF:
        marker, length = data[at + 1], struct.unpack(">H", data[at + 2:at + 4])[0]
        segments.append((marker, at, at + 2 + length))
        at += 2 + length
        if marker == 0xDA:
            break
    return segments, at


def _mutate_jpeg(draw: st.DrawFn, data: bytes) -> bytes:
    out = bytearray(data)
    segments, scan = _jpeg_segments(data)
    for _ in range(draw(HOW_MANY)):
        how = draw(st.sampled_from(["payload", "payload", "length", "scan", "scan", "cut"]))
        if how in ("payload", "length") and segments:
            marker, start, end = draw(st.sampled_from(segments))
            if how == "length":
                _put(out, start + 2, 2, draw(st.sampled_from(INTERESTING)), "big")
            elif end > start + 4:  # SOF's precision, sizes and components; DHT's counts; DQT's tables
                _field(draw, out, draw(st.integers(start + 4, end - 1)), "big")
        elif how == "scan":
            _scribble(draw, out, scan, len(out) - 2)
        else:
            _cut(draw, out, scan)
    return bytes(out)


# -- BMP and GIF: fixed header fields, then the pixel data ------------------------------------------------

#: BMP: file size, pixel offset, header size, width, height, planes, bits, compression, image size, colours.
BMP_FIELDS = (2, 10, 14, 18, 22, 26, 28, 30, 34, 46, 50)
#: GIF: screen width and height, flags, background; the first image descriptor sits after the palette.
GIF_FIELDS = (6, 8, 10, 11)


def _mutate_fields(draw: st.DrawFn, data: bytes, fields: tuple[int, ...], body_from: int) -> bytes:
    out = bytearray(data)
    for _ in range(draw(HOW_MANY)):
        how = draw(st.sampled_from(["field", "body", "body", "cut"]))
        if how == "field":
            _field(draw, out, draw(st.sampled_from(fields)), "little")
        elif how == "body":
            _scribble(draw, out, body_from)
        else:
            _cut(draw, out, body_from)
    return bytes(out)


def _mutate_gif(draw: st.DrawFn, data: bytes) -> bytes:
    palette = 3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0
    descriptor = 13 + palette  # after the global palette; extensions may come first, the fields still hit them
    fields = GIF_FIELDS + tuple(descriptor + k for k in range(0, 12))
    return _mutate_fields(draw, data, fields, 13)


MUTATORS: dict[str, Callable[[st.DrawFn, bytes], bytes]] = {
    ".png": _mutate_png,
    ".webp": _mutate_webp,
    ".tiff": _mutate_tiff,
    ".jpg": _mutate_jpeg,
    ".bmp": lambda draw, data: _mutate_fields(draw, data, BMP_FIELDS, 54),
    ".gif": _mutate_gif,
}


@st.composite
def mutated_images(draw: st.DrawFn) -> tuple[str, bytes]:
    """A valid seed file of some format, changed inside its structure: ``(seed name, bytes)``."""
    name = draw(st.sampled_from(sorted(seed_files())))
    return name, MUTATORS[Path(name).suffix](draw, seed_files()[name])


@contextlib.contextmanager
def decoder_reach(counts: Counter[str]) -> Iterator[None]:
    """Count in ``counts["opened"]`` the cases that got past format sniffing and the header: ``Image.open``
    returned, so a format plugin parsed the file and its pixel decoder runs next (unless the size is refused)."""
    real_open = Image.open

    def counted_open(*args: Any, **kwargs: Any) -> Image.Image:
        image = real_open(*args, **kwargs)
        counts["opened"] += 1
        return image

    Image.open = counted_open  # type: ignore[assignment]
    try:
        yield
    finally:
        Image.open = real_open


def check_loaded(image: ImageData) -> None:
    assert image.rgb.dtype == np.float32 and image.rgb.ndim == 3 and image.rgb.shape[2] == 3
    assert image.width >= 1 and image.height >= 1
    assert np.isfinite(image.rgb).all() and image.rgb.min() >= 0 and image.rgb.max() <= 1
    if image.alpha is not None:
        assert image.alpha.shape == image.rgb.shape[:2]
        assert np.isfinite(image.alpha).all() and image.alpha.min() >= 0 and image.alpha.max() <= 1


def test_every_seed_file_loads(tmp_path, capfd):
    """The mutations start from files sr-desk reads: each seed loads, quietly."""
    for name, data in seed_files().items():
        path = tmp_path / name
        path.write_bytes(data)
        image, error = attempt(capfd, load_image, path)
        assert error is None, f"{name}: {error}"
        check_loaded(image)


#: The share of mutated files that get past format sniffing to a format plugin (measured: 0.8).
MIN_REACH = 0.7


def _load_mutated_files(tmp_path: Path, capfd: pytest.CaptureFixture[str], examples: int, quiet: bool) -> Counter[str]:
    counts: Counter[str] = Counter()

    @fuzz(examples)
    @given(case=mutated_images())
    def one(case: tuple[str, bytes]) -> None:
        name, data = case
        path = tmp_path / f"fuzz{Path(name).suffix}"
        path.write_bytes(data)
        before = Snapshot.of(path)
        counts["cases"] += 1
        image, error = attempt(capfd, load_image, path, quiet=quiet)
        before.assert_unchanged()
        if error is None:
            counts["loaded"] += 1
            check_loaded(image)
        else:
            assert isinstance(error, ImageReadError), f"{type(error).__name__}: {error}"

    with decoder_reach(counts):
        one()
    return counts


def test_mutated_image_files_load_or_are_refused_in_one_line(tmp_path, capfd):
    counts = _load_mutated_files(tmp_path, capfd, 1200, quiet=False)
    reach = counts["opened"] / counts["cases"]
    print(f"\nimage fuzz: {counts['cases']} cases, {reach:.0%} reached a decoder (past sniffing and the header), "
          f"{counts['loaded'] / counts['cases']:.0%} loaded")
    assert reach >= MIN_REACH, f"only {reach:.0%} of the mutated files reach a decoder: {dict(counts)}"


def test_a_mutated_image_file_prints_nothing_itself(tmp_path, capfd):
    """Nothing on the terminal besides sr-desk's own lines: not libtiff's or libjpeg's messages on fd 2, not
    Pillow's warnings or log records."""
    _load_mutated_files(tmp_path, capfd, 400, quiet=True)


@fuzz(40)
@given(case=mutated_images())
def test_a_damaged_image_given_to_the_cli_is_refused_in_one_line(tmp_path, cli, case):
    """The same files through a real sr-desk: the user sees one line, or gets a result; the input stays."""
    name, data = case
    source, target = tmp_path / f"in{Path(name).suffix}", tmp_path / "out.png"
    source.write_bytes(data)
    target.unlink(missing_ok=True)  # Hypothesis runs every example in the same folder
    before = Snapshot.of(source)
    run = cli.run("upscale", str(source), "-o", str(target), "-m", "bicubic", "--scale", "2", "--seed", "1")
    before.assert_unchanged()
    assert_no_temp_files(tmp_path, journal_path())
    if run.code == 0:
        assert target.exists() and load_image(target).size[0] >= 2
    else:
        assert_refused(run, codes=(1,))
        assert not target.exists()


# -- decompression bombs: sizes past the pixel limit, declared by a few header bytes ------------------


def _declare_size(name: str, width: int, height: int) -> bytes:
    """Seed ``name`` with its header saying ``width`` x ``height`` (and its checksums still right)."""
    data = seed_files()[name]
    if name.endswith(".png"):
        chunks = _png_chunks(data)
        chunks[0][1][0:8] = struct.pack(">II", width, height)
        return _png_join(chunks)
    out = bytearray(data)
    if name.endswith(".gif"):  # the screen and the first image: 16 bits each
        struct.pack_into("<HH", out, 6, width, height)
        palette = 3 << ((out[10] & 7) + 1) if out[10] & 0x80 else 0
        at = out.index(b",", 13 + palette)
        struct.pack_into("<HH", out, at + 5, width, height)
    elif name.endswith(".bmp"):
        struct.pack_into("<ii", out, 18, width, height)
    elif name.endswith(".jpg"):
        for marker, start, _ in _jpeg_segments(data)[0]:
            if marker in (0xC0, 0xC2):
                struct.pack_into(">HH", out, start + 5, height, width)
    elif name.endswith(".tiff"):
        ifd = struct.unpack_from("<I", out, 4)[0]
        for i in range(struct.unpack_from("<H", out, ifd)[0]):
            entry = ifd + 2 + 12 * i
            tag, kind = struct.unpack_from("<HH", out, entry)
            if tag in (256, 257):
                value = width if tag == 256 else height
                struct.pack_into("<HII", out, entry + 2, 4, 1, value)  # a LONG, so sizes past 65535 fit
    elif name.endswith(".webp"):  # lossless: 14-bit sizes minus one after the signature byte
        chunks = _riff_chunks(data)
        body = chunks[-1][1]
        bits = int.from_bytes(body[1:5], "little")
        bits = (bits & ~((1 << 28) - 1)) | (min(width, 16384) - 1) | ((min(height, 16384) - 1) << 14)
        body[1:5] = bits.to_bytes(4, "little")
        return _riff_join(chunks)
    return bytes(out)


BOMB_SEEDS = ("rgb.png", "palette.png", "rgb.jpg", "rgb.tiff", "rgb.bmp", "palette.gif", "lossless-alpha.webp")


@pytest.mark.parametrize("name", BOMB_SEEDS)
@pytest.mark.parametrize("side", [9460, 12000, 16384, 65500])
def test_a_decompression_bomb_is_refused_by_the_pixel_limit(tmp_path, capfd, name, side):
    """A few header bytes declaring 89-4290 MP must be refused before any pixel is decoded (not tried, not
    allocated, not left to a MemoryError on the way)."""
    path = tmp_path / f"bomb{Path(name).suffix}"
    path.write_bytes(_declare_size(name, side, side))
    image, error = attempt(capfd, load_image, path)
    assert error is not None, f"a {side}x{side} {name} loaded"
    assert re.search(r"limit|too large", str(error)), f"not refused for its size: {error}"


def test_the_pixel_limit_is_the_callers(tmp_path, capfd):
    """``max_pixels`` is the limit the caller asks for, checked before decoding, whatever Pillow's own is."""
    path = tmp_path / "small.png"
    path.write_bytes(seed_files()["rgb.png"])  # 24 x 16
    _, error = attempt(capfd, lambda p: load_image(p, max_pixels=24 * 16 - 1), path)
    assert error is not None and "limit" in str(error)
    image, error = attempt(capfd, lambda p: load_image(p, max_pixels=24 * 16), path)
    assert error is None and image.size == (16, 24)  # upright: its EXIF orientation turns it


# =====================================================================================
# Saving: a result is written whole or not at all; the old file and the folder stay clean
# =====================================================================================

SAVE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".PNG", ".gif", ".bmp", "")
OLD_FILE = b"the user's earlier result, which a failed save must leave as it was"


def _fresh_folder(path: Path) -> Path:
    """An empty output folder (Hypothesis runs every example of a test in the same ``tmp_path``)."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
    return path


def _target(folder: Path, suffix: str, existing: bool) -> tuple[Path, Snapshot | None]:
    path = folder / f"result{suffix}"
    if not existing:
        return path, None
    path.write_bytes(OLD_FILE)
    return path, Snapshot.of(path)


def _after_failed_save(path: Path, old: Snapshot | None) -> None:
    if old is None:
        assert not path.exists(), f"a failed save left {path.name}"
    else:
        old.assert_unchanged()


IMAGE_DATA = st.builds(
    lambda height, width, alpha, grayscale, bit_depth, exif, dpi: ImageData(
        rgb=np.random.default_rng(height * 7 + width).random((height, width, 3), dtype=np.float32),
        alpha=np.random.default_rng(width).random((height, width), dtype=np.float32) if alpha else None,
        exif=exif, dpi=dpi, grayscale=grayscale, bit_depth=bit_depth),
    height=st.integers(1, 6),
    width=st.integers(1, 6),
    alpha=st.booleans(),
    grayscale=st.booleans(),
    bit_depth=st.sampled_from([8, 16]),
    exif=st.one_of(st.none(), st.binary(max_size=80), st.binary(max_size=80).map(lambda b: b"Exif\x00\x00II*\x00" + b),
                   st.just(b"Exif\x00\x00" + _exif(orientation=1))),  # an ImageData's orientation is applied
    dpi=st.one_of(st.none(), st.tuples(st.floats(0, 5e9), st.floats(0, 5e9))),
)


def _save_any_image_data(tmp_path: Path, capfd: pytest.CaptureFixture[str], journal: Path, examples: int,
                         quiet: bool) -> None:
    @fuzz(examples)
    @given(image=IMAGE_DATA, suffix=st.sampled_from(SAVE_SUFFIXES), existing=st.booleans())
    def one(image: ImageData, suffix: str, existing: bool) -> None:
        folder = _fresh_folder(tmp_path / "out")
        path, old = _target(folder, suffix, existing)
        _, error = attempt(capfd, save_image, path, image, quiet=quiet)
        assert_no_temp_files(folder, journal)
        if error is not None:
            assert isinstance(error, ImageWriteError), f"{type(error).__name__}: {error}"
            _after_failed_save(path, old)
            return
        assert load_image(path).size == image.size

    one()


def test_any_image_data_saves_whole_or_not_at_all(tmp_path, capfd, journal):
    _save_any_image_data(tmp_path, capfd, journal, 250, quiet=False)


def test_saving_any_image_data_prints_nothing_itself(tmp_path, capfd, journal):
    """No warning of Pillow's about the EXIF it was given, no libtiff line: the terminal stays sr-desk's."""
    _save_any_image_data(tmp_path, capfd, journal, 150, quiet=True)


class MethodFailed(Exception):
    """What a method raises halfway through a streamed result (a cancel, an error in a tile)."""


@fuzz(200)
@given(
    height=st.integers(1, 9),
    width=st.integers(1, 7),
    grayscale=st.booleans(),
    suffix=st.sampled_from((".png", ".jpg", ".webp", ".tiff")),
    fail_at=st.one_of(st.none(), st.integers(0, 4)),
    restart=st.booleans(),
    existing=st.booleans(),
)
def test_a_result_streamed_to_a_file_is_written_whole_or_not_at_all(tmp_path, capfd, journal, height, width,
                                                                    grayscale, suffix, fail_at, restart, existing):
    """The large-result path (``save_image_bands``): a method failing at any band, or starting over, must leave
    the old file as it was, no temp file and no journal entry; a finished one is the picture it was given."""
    rng = np.random.default_rng(height * 11 + width)
    rows = (rng.random((height, width, 3)) * 255).astype(np.uint8)
    if grayscale:  # one channel: rows are height x width
        rows = rows[..., 0]
    template = ImageData(rgb=np.zeros((1, 1, 3), np.float32), grayscale=grayscale)

    def produce(start: Callable[[], Callable[[np.ndarray], None]]) -> None:
        write = start()
        for band, at in enumerate(range(0, height, 2)):
            if band == fail_at:
                raise MethodFailed(f"failed at band {band}")
            write(rows[at:at + 2])
            if restart and band == 0:  # out of memory in a tile: the pipeline starts the file again
                write = start()
                write(rows[0:2])

    folder = _fresh_folder(tmp_path / "out")
    path, old = _target(folder, suffix, existing)
    _, error = attempt(capfd, save_image_bands, path, template, (width, height), produce,
                       refusal=(SrDeskError, MethodFailed))
    assert_no_temp_files(folder, journal)
    if error is not None:
        assert isinstance(error, MethodFailed) and fail_at is not None and fail_at * 2 < height, error
        _after_failed_save(path, old)
        return
    assert fail_at is None or fail_at * 2 >= height
    saved = load_image(path)
    assert saved.size == (width, height)
    if suffix in (".png", ".tiff"):  # lossless: the very rows
        values = np.rint(saved.rgb * 255).astype(np.uint8)
        assert np.array_equal(values[..., 0] if grayscale else values, rows)


# =====================================================================================
# Weights files: headers, bytes, and pickles that would run code
# =====================================================================================

ARCHITECTURES = ("dtls", "srdiff", "lddpm", "dossr", "diffsr")


def _loader(architecture: str) -> Callable[[Path], Any]:
    import importlib

    return importlib.import_module(f"sr_desk_plugins.{architecture}.checkpoints").load_model


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> dict[str, tuple[dict[str, Any], dict[str, str]]]:
    """For each architecture: a tiny model's tensors and its file's metadata, as the plugin writes them."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from sr_desk_plugins.diffsr.train import PRESETS as DIFFSR
    from sr_desk_plugins.dossr.train import PRESETS as DOSSR
    from sr_desk_plugins.dtls.train import PRESETS as DTLS
    from sr_desk_plugins.lddpm.train import PRESETS as LDDPM
    from sr_desk_plugins.srdiff.config import SRDiffConfig

    def network(architecture: str, config: Any) -> Any:
        import importlib

        module = importlib.import_module(f"sr_desk_plugins.{architecture}.network")
        kind = {"dtls": "DTLSUNet", "srdiff": "SRDiffModel", "lddpm": "LDDPMNet", "dossr": "DoSSRUNet",
                "diffsr": "DiffSRUNet"}[architecture]
        return getattr(module, kind)(config)

    configs = {"dtls": DTLS["tiny"], "lddpm": LDDPM["tiny"], "dossr": DOSSR["tiny"], "diffsr": DIFFSR["tiny"],
               "srdiff": SRDiffConfig(scale=4, rrdb_nf=8, rrdb_nb=2, rrdb_gc=4, unet_dim=8, dim_mults=(1, 2, 2, 2))}
    folder = tmp_path_factory.mktemp("weights")
    found = {}
    for architecture, config in configs.items():
        import importlib

        path = folder / f"{architecture}.safetensors"
        save = importlib.import_module(f"sr_desk_plugins.{architecture}.checkpoints").save_safetensors
        save(network(architecture, config), config, path)
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata())
        found[architecture] = (load_file(str(path)), metadata)
    return found


def _with_config(path: Path, weights: tuple[dict[str, Any], dict[str, str]], config: dict[str, Any] | str) -> Path:
    from safetensors.torch import save_file

    tensors, metadata = weights
    header = config if isinstance(config, str) else json.dumps(config)
    save_file(tensors, str(path), metadata=metadata | {"config": header})
    return path


def test_the_tiny_weights_load(tmp_path, capfd, tiny_weights):
    """The header cases start from files each loader takes."""
    for architecture in ARCHITECTURES:
        weights = tiny_weights[architecture]
        path = _with_config(tmp_path / f"{architecture}.safetensors", weights, weights[1]["config"])
        _, error = attempt(capfd, _loader(architecture), path)
        assert error is None, f"{architecture}: {error}"


CONFIG_VALUES = st.one_of(
    st.integers(-10, 10**12), st.sampled_from([0, -1, 10**7, 2**31, 2**63, 1e308]), st.floats(allow_nan=True),
    st.text(max_size=8), st.booleans(), st.none(), st.lists(st.integers(-3, 10**10), max_size=12),
)


@fuzz(400)
@given(architecture=st.sampled_from(ARCHITECTURES), changes=st.dictionaries(st.text(max_size=12), CONFIG_VALUES,
                                                                               max_size=3), data=st.data())
def test_any_config_in_a_weights_header_loads_or_is_refused_in_one_line(tmp_path, capfd, tiny_weights, architecture,
                                                                        changes, data):
    weights = tiny_weights[architecture]
    fields = json.loads(weights[1]["config"])
    # Mostly change known fields (the interesting ones), sometimes add unknown ones.
    known = {data.draw(st.sampled_from(sorted(fields))): value for value in changes.values()}
    config = fields | known | (changes if data.draw(st.booleans()) else {})
    path = _with_config(tmp_path / "fuzz.safetensors", weights, config)
    _, error = attempt(capfd, _loader(architecture), path)
    assert error is None or isinstance(error, CheckpointError), f"{type(error).__name__}: {error}"


def _whole_number_fields(config: dict[str, Any]) -> list[str]:
    return sorted(k for k, v in config.items() if isinstance(v, int) and not isinstance(v, bool)
                  or isinstance(v, list) and v and all(isinstance(m, int) for m in v))


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_a_config_value_past_any_real_network_is_refused(tmp_path, capfd, tiny_weights, architecture):
    """Ten million timesteps, channels or levels in a header: refused while reading it, not tried (a schedule of
    that length builds quietly and samples for days; a width that large allocates until the machine stops)."""
    weights = tiny_weights[architecture]
    fields = json.loads(weights[1]["config"])
    for name in _whole_number_fields(fields):
        huge = [10**7] * len(fields[name]) if isinstance(fields[name], list) else 10**7
        path = _with_config(tmp_path / "huge.safetensors", weights, fields | {name: huge})
        _, error = attempt(capfd, _loader(architecture), path)
        assert isinstance(error, CheckpointError), f"{architecture} took {name} = {huge}"


@fuzz(300)
@given(header=st.binary(max_size=64), body=st.binary(max_size=64), architecture=st.sampled_from(ARCHITECTURES))
def test_any_bytes_as_a_weights_file_are_refused_in_one_line(tmp_path, capfd, header, body, architecture):
    path = tmp_path / "fuzz.safetensors"
    for data in (len(header).to_bytes(8, "little") + header + body,  # a safetensors header
                 b"PK\x03\x04" + header + body,  # a zip, as torch.save writes
                 b"\x80\x02" + header + body):  # a pickle
        path.write_bytes(data)
        _, error = attempt(capfd, _loader(architecture), path)
        assert isinstance(error, CheckpointError), f"{architecture} loaded {data[:40]!r}"


# -- pickles that would run code -------------------------------------------------------------


class RunsCode:
    """Unpickled, it creates ``marker``: by calling ``open`` itself, or through ``exec`` of a line of Python."""

    def __init__(self, marker: Path, how: str) -> None:
        self.marker, self.how = str(marker), how

    def __reduce__(self) -> tuple[Any, ...]:
        if self.how == "open":
            return (open, (self.marker, "w"))
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def hostile_weights(folder: Path, marker: Path) -> list[Path]:
    """Weights files that run code when unpickled: torch.save's zip and legacy formats, raw pickles of several
    protocols, the payload at the top or hidden among real tensors, under every name a checkpoint goes by."""
    import torch

    tensors = {"conv.weight": torch.zeros(2, 2), "conv.bias": torch.zeros(2)}
    made = []

    def torch_file(name: str, obj: Any, **kwargs: Any) -> None:
        torch.save(obj, folder / name, **kwargs)
        made.append(folder / name)

    def pickle_file(name: str, obj: Any, protocol: int) -> None:
        (folder / name).write_bytes(pickle.dumps(obj, protocol=protocol))
        made.append(folder / name)

    torch_file("zip.ckpt", {"state_dict": tensors | {"hook": RunsCode(marker, "open")}})
    torch_file("zip-ema.pt", {"ema": tensors, "model": RunsCode(marker, "exec")})
    torch_file("legacy.pth", {"state_dict": RunsCode(marker, "open")}, _use_new_zipfile_serialization=False)
    torch_file("named.safetensors", {"params": RunsCode(marker, "exec")})  # a pickle under a safetensors name
    pickle_file("raw2.bin", RunsCode(marker, "open"), 2)
    pickle_file("raw4.ckpt", {"state_dict": RunsCode(marker, "exec")}, 4)
    pickle_file("raw5.pt", [tensors["conv.bias"].numpy(), RunsCode(marker, "open")], 5)
    for path in made:
        assert path.exists() and not marker.exists(), "writing the payload ran it"
    return made


def _weights_readers() -> dict[str, Callable[[Path], Any]]:
    from sr_desk.diffusion.weights_file import read_metadata, read_weights_file
    from sr_desk_plugins.dtls.checkpoints import read_weights
    from sr_desk_plugins.srdiff.checkpoints import load_encoder, load_state_dict_file

    readers = {f"{a}.load_model": _loader(a) for a in ARCHITECTURES}
    readers |= {"read_weights_file": read_weights_file, "read_metadata": read_metadata,
                "dtls.read_weights": read_weights, "srdiff.load_encoder": load_encoder,
                "srdiff.load_state_dict_file": load_state_dict_file}
    return readers


def test_no_weights_reader_runs_the_code_in_a_pickle(tmp_path, capfd):
    marker = tmp_path / "code-ran"
    files = hostile_weights(tmp_path, marker)
    for reader, read in _weights_readers().items():
        for path in files:
            _, error = attempt(capfd, read, path)
            assert not marker.exists(), f"{reader}({path.name}) ran the code in the pickle"
            if reader != "read_metadata":  # it reads safetensors headers only: {} for anything else
                assert isinstance(error, CheckpointError), f"{reader} took {path.name}"


MODEL_METHODS = ("srdiff", "srdiff-encoder", "srdiff-interpolate", "dtls", "dossr", "lddpm", "diffsr")


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("photo") / "photo.png"
    Image.fromarray((np.indices((16, 24)).sum(0) * 5 % 255).astype(np.uint8)).convert("RGB").save(path)
    return path


@pytest.mark.parametrize("method", MODEL_METHODS)
def test_no_model_method_runs_the_code_in_a_pickle(tmp_path, cli, photo, method):
    """``--weights`` with each hostile file: one line, no output, no marker, the photo as it was."""
    marker = tmp_path / "code-ran"
    files = hostile_weights(tmp_path, marker)
    before = Snapshot.of(photo)
    command = ["run", method] if method == "srdiff-interpolate" else ["upscale", "-m", method]
    for weights in files:
        out = tmp_path / "out.png"
        run = cli.run(*command, str(photo), "-o", str(out), "--weights", str(weights), "--seed", "1")
        assert not marker.exists(), f"{method} ran the code in {weights.name}"
        assert_refused(run, codes=(1,))
        assert not out.exists()
    before.assert_unchanged()
    assert_no_temp_files(tmp_path, journal_path())


@pytest.mark.parametrize("architecture, method", [("srdiff", "srdiff-encoder"), ("dtls", "dtls")])
def test_weights_full_of_nan_write_no_picture(tmp_path, cli, photo, tiny_weights, architecture, method):
    """A file that fits the network but holds NaN (a diverged training run): the method fails in one line, and
    no black picture is saved as if it had worked."""
    import torch

    tensors, metadata = tiny_weights[architecture]
    nan = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in tensors.items()}
    path = _with_config(tmp_path / "nan.safetensors", (nan, metadata), metadata["config"])
    out = tmp_path / "out.png"
    run = cli.run("upscale", str(photo), "-o", str(out), "-m", method, "--weights", str(path), "--scale", "4",
                  "--seed", "1")
    assert_refused(run, codes=(1,))
    assert not out.exists(), "a picture was written from NaN"


@pytest.mark.parametrize("layout", ["bin-only", "shard-index"])
def test_a_diffusers_folder_never_unpickles(tmp_path, cli, photo, layout):
    """Diff-SR's diffusers folders: a pickled ``.bin`` is refused, alone or named in a shard index."""
    marker = tmp_path / "code-ran"
    model = tmp_path / "prior"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel", "sample_size": 16, "in_channels": 3,
                                                   "out_channels": 3, "block_out_channels": [8, 16],
                                                   "down_block_types": ["DownBlock2D", "DownBlock2D"],
                                                   "up_block_types": ["UpBlock2D", "UpBlock2D"],
                                                   "layers_per_block": 1, "norm_num_groups": 4}))
    (model / "diffusion_pytorch_model.bin").write_bytes(pickle.dumps({"w": RunsCode(marker, "open")}, protocol=2))
    if layout == "shard-index":
        (model / "diffusion_pytorch_model-00001-of-00001.safetensors").write_bytes(b"\0" * 8)
        index = {"metadata": {}, "weight_map": {"conv_in.weight": "diffusion_pytorch_model.bin"}}
        (model / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(index))
    out = tmp_path / "out.png"
    run = cli.run("upscale", str(photo), "-o", str(out), "-m", "diffsr", "--weights", str(model), "--seed", "1")
    assert not marker.exists(), "the diffusers folder's pickle ran"
    assert_refused(run, codes=(1,))
    assert not out.exists()


# =====================================================================================
# The command line: option values, names, special files, the input itself as the output
# =====================================================================================

OPTION_VALUES = st.one_of(
    st.text(alphabet="0123456789.,x-+eEinfa ", max_size=12), st.text(max_size=6),
    st.sampled_from(["nan", "-1", "0", "1e9", "0x0", "1x0", "99999x99999", "100000x1", "1e400", "2,2,0,0", "-0"]),
)


@fuzz(120)
@given(option=st.sampled_from(["--scale", "--size", "--region", "--feather", "--quality", "--seed", "--param", "--tile",
                               "--method", "--device", "--precision"]),
       value=OPTION_VALUES)
def test_any_option_value_works_or_fails_in_one_line(tmp_path, cli, photo, option, value):
    out = tmp_path / "out.png"
    out.unlink(missing_ok=True)  # Hypothesis runs every example in the same folder
    before = Snapshot.of(photo)
    method = [] if option == "--method" else ["-m", "bicubic"]
    run = cli.run("upscale", str(photo), "-o", str(out), *method, option, value)
    before.assert_unchanged()
    assert_no_temp_files(tmp_path, journal_path())
    if run.code == 0:
        assert out.exists(), f"exit 0 for {option} {value!r} without a result"
        load_image(out)
        return
    assert_refused(run)
    assert not out.exists(), f"{option} {value!r} failed but wrote {out.name}"


#: Characters that break a line or a terminal, and bytes that are no UTF-8 at all.
HOSTILE_CHARS = "\n\r\t\x1b[31m\x07\x08 -'\"\\é\u2028\u202e"


@fuzz(40)
@given(name=st.text(alphabet=HOSTILE_CHARS + "ab", min_size=1, max_size=12).filter(lambda n: n not in (".", "..")),
       raw=st.booleans(), role=st.sampled_from(["missing input", "damaged input", "output in a missing folder",
                                                 "output with a wrong extension", "missing weights", "weights folder",
                                                 "damaged weights"]))
def test_a_hostile_file_name_is_one_line_in_every_message(tmp_path, cli, photo, name, raw, role):
    """Names with line breaks, escape codes and undecodable bytes: whatever the message quotes, it stays one line."""
    name = name.replace("/", "_")
    if raw:  # a name that is not UTF-8 at all, as old archives and other systems make them
        name = os.fsdecode(b"\xff" + os.fsencode(name))
    folder = _fresh_folder(tmp_path / "case")
    source, out, weights = Path(photo), folder / "out.png", []
    if role == "missing input":
        source = folder / f"{name}.png"
    elif role == "damaged input":
        source = folder / f"{name}.png"
        source.write_bytes(PNG_MAGIC + b"\0" * 20)
    elif role == "output in a missing folder":
        out = folder / name / "sub" / "out.png"
        (folder / name).write_bytes(b"a file where a folder is needed")
    elif role == "output with a wrong extension":
        out = folder / f"out.{name}"
    elif role == "missing weights":
        weights = ["-m", "dtls", "--weights", str(folder / f"{name}.safetensors")]
    elif role == "weights folder":
        (folder / name).mkdir()
        weights = ["-m", "dtls", "--weights", str(folder / name)]
    else:
        (folder / f"{name}.ckpt").write_bytes(b"PK\x03\x04" + name.encode("utf-8", "surrogateescape"))
        weights = ["-m", "dtls", "--weights", str(folder / f"{name}.ckpt")]
    run = cli.run("upscale", str(source), "-o", str(out), *(weights or ["-m", "bicubic"]), "--seed", "1")
    assert_refused(run)


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _release(fifo: Path) -> None:
    """Open the FIFO's other end and close it again: a reader blocked in open() gets an empty file and goes on."""
    with contextlib.suppress(OSError):
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def test_a_fifo_or_a_device_is_not_read_as_an_image(tmp_path, capfd):
    fifo = _fifo(tmp_path / "pipe.png")
    for path in (fifo, Path("/dev/zero"), Path("/dev/null")):
        _, error = attempt(capfd, load_image, path, on_hang=lambda: _release(fifo))
        assert isinstance(error, ImageReadError), f"{path} was read as an image"


SPECIAL_CASES = {
    "fifo input": lambda folder, photo: (["upscale", str(_fifo(folder / "in.png")), "-o", str(folder / "o.png")], None),
    "device input": lambda folder, photo: (["upscale", "/dev/zero", "-o", str(folder / "o.png")], None),
    "fifo output": lambda folder, photo: (["upscale", str(photo), "-o", str(_fifo(folder / "o.png"))],
                                          folder / "o.png"),
    "device output": lambda folder, photo: (["upscale", str(photo), "-o", "/dev/full"], None),
    "folder output": lambda folder, photo: (["upscale", str(photo), "-o", str(folder)], None),
    "broken link input": lambda folder, photo: (
        ["upscale", str(_symlink(folder / "gone.png", folder / "in.png")), "-o", str(folder / "o.png")], None),
}

WEIGHTS_CASES = {
    "fifo weights": lambda folder: str(_fifo(folder / "w.safetensors")),
    "fifo weights (.ckpt)": lambda folder: str(_fifo(folder / "w.ckpt")),
    "device weights": lambda folder: "/dev/zero",
}


def _symlink(target: Path, link: Path) -> Path:
    link.symlink_to(target)
    return link


@pytest.mark.parametrize("case", sorted(SPECIAL_CASES))
def test_a_special_file_is_refused_at_once(tmp_path, cli, photo, case):
    """A FIFO would block the open() forever, a device would be read without end or written into."""
    argv, fifo = SPECIAL_CASES[case](tmp_path, photo)
    before = Snapshot.of(photo)
    run = cli.run(*argv, "-m", "bicubic", "--scale", "2", limit_s=30)
    assert_refused(run)
    before.assert_unchanged()
    if fifo is not None:
        assert stat.S_ISFIFO(fifo.lstat().st_mode), "the FIFO was replaced by a file"


@pytest.mark.parametrize("method", ["srdiff-encoder", "dtls", "diffsr"])
@pytest.mark.parametrize("case", sorted(WEIGHTS_CASES))
def test_a_special_file_as_weights_is_refused_at_once(tmp_path, cli, photo, case, method):
    weights = WEIGHTS_CASES[case](tmp_path)
    try:
        run = cli.run("upscale", str(photo), "-o", str(tmp_path / "o.png"), "-m", method, "--weights", weights,
                      limit_s=30)
    finally:
        if weights.startswith(str(tmp_path)):
            _release(Path(weights))
    assert_refused(run, codes=(1, 2))
    assert not (tmp_path / "o.png").exists()


READ_EVERY_SPECIAL_FILE = """
import sys
from pathlib import Path
from sr_desk.diffusion.weights_file import CheckpointError
from tests.test_fuzz import _weights_readers
for reader, read in _weights_readers().items():
    for path in sys.argv[1:]:
        try:
            read(Path(path))
            outcome = "read"
        except CheckpointError:
            outcome = "refused"
        except Exception as exc:  # noqa: BLE001 - reported to the test
            outcome = type(exc).__name__
        print(reader, path, outcome, flush=True)
"""


def test_every_weights_reader_refuses_a_special_file_at_once(tmp_path):
    """Each reader on its own, past the pipeline's check: in a child process, since safetensors blocks in
    open() holding the GIL, where no thread's time limit can end the case."""
    specials = [str(_fifo(tmp_path / "w.safetensors")), str(_fifo(tmp_path / "w.ckpt")), "/dev/zero"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    try:
        done = subprocess.run([sys.executable, "-c", READ_EVERY_SPECIAL_FILE, *specials], capture_output=True,
                              text=True, timeout=120, env=env, cwd=Path(__file__).resolve().parents[1])
    except subprocess.TimeoutExpired as hung:
        pytest.fail(f"a weights reader hung on a special file; it got as far as: {hung.stdout!r}")
    finally:
        for special in specials[:2]:
            _release(Path(special))
    outcomes = [line.split() for line in done.stdout.splitlines()]
    assert len(outcomes) == len(_weights_readers()) * len(specials), done.stderr[-2000:]
    for reader, path, outcome in outcomes:
        assert outcome == "refused" or (reader == "read_metadata" and outcome == "read"), (reader, path, outcome)


def _same_file_cases(folder: Path) -> dict[str, tuple[list[str], list[Path]]]:
    """Ways of naming the input as the output: the same path, another spelling, a hard link, a symbolic link,
    and a folder upscaled into itself."""
    photo = folder / "photo.png"
    Image.new("RGB", (6, 4), (10, 200, 30)).save(photo)
    os.link(photo, folder / "hard.png")
    (folder / "soft.png").symlink_to(photo)
    batch = folder / "batch"
    batch.mkdir()
    Image.new("RGB", (5, 3), (1, 2, 3)).save(batch / "a.png")
    Image.new("RGB", (5, 3), (4, 5, 6)).save(batch / "b.jpg")
    return {
        "same path": (["upscale", str(photo), "-o", str(photo)], [photo]),
        "another spelling": (["upscale", str(photo), "-o", f"{folder}/./sub/../photo.png"], [photo]),
        "hard link": (["upscale", str(photo), "-o", str(folder / "hard.png")], [photo]),
        "symbolic link": (["upscale", str(folder / "soft.png"), "-o", str(photo)], [photo]),
        "folder into itself": (["upscale", str(batch), "-o", str(batch)], [batch / "a.png", batch / "b.jpg"]),
    }


@pytest.mark.parametrize("case", ["same path", "another spelling", "hard link", "symbolic link", "folder into itself"])
def test_the_input_is_never_written_over_without_force(tmp_path, cli, case):
    (tmp_path / "sub").mkdir()
    argv, inputs = _same_file_cases(tmp_path)[case]
    before = [Snapshot.of(p) for p in inputs]
    run = cli.run(*argv, "-m", "bicubic", "--scale", "2")
    assert_refused(run, codes=(2,))
    for snapshot in before:
        snapshot.assert_unchanged()


def test_a_plugin_that_prints_cannot_corrupt_the_json_listing(tmp_path, cli):
    """``sr-desk methods --json | jq``: a plugin's print() at import or in its hook goes to stderr, not the JSON."""
    from tests.conftest import install_fake_plugin

    site = tmp_path / "site"
    site.mkdir()
    install_fake_plugin(site, "chatty", """
        import numpy as np
        from sr_desk.api import Capabilities, Method, Task, hookimpl
        SR_DESK_API_VERSION = "1.0"
        print("hello from chatty's import")

        def run(request, context):
            return np.zeros((request.output_size[1], request.output_size[0], 3), np.float32)

        @hookimpl
        def sr_desk_methods():
            print("hello from chatty's hook")
            return [Method(id="chatty", name="Chatty", task=Task.UPSCALE, run=run,
                           capabilities=Capabilities(scales=(2,)))]
    """)
    run = cli.run("methods", "--json", path=(str(site),))
    assert run.code == 0, run.err
    listed = json.loads(run.out)
    assert "chatty" in {m["id"] for m in listed}, f"the fake plugin was not loaded: the case tests nothing {run.err}"
    assert "hello" in run.err


# -- a few from nothing: python -m sr_desk, no warm parent -----------------------------------------------


def test_from_a_cold_start_every_refusal_is_one_line(tmp_path, photo):
    marker = tmp_path / "code-ran"
    evil = hostile_weights(tmp_path, marker)[0]
    broken = tmp_path / "broken.png"
    broken.write_bytes(seed_files()["rgba.png"][:-300])
    cases = [
        ["upscale", str(photo), "-o", str(tmp_path / "o.png"), "-m", "dtls", "--weights", str(evil)],
        ["upscale", str(broken), "-o", str(tmp_path / "o.png"), "-m", "bicubic"],
        ["upscale", str(photo), "-o", str(tmp_path / "o.png"), "-m", "bicubic", "--size", "0x5"],
    ]
    for argv in cases:
        run = run_cold(*argv, cwd=tmp_path)
        assert_refused(run)
        assert not marker.exists()
        assert not (tmp_path / "o.png").exists()


# =====================================================================================
# Coverage-guided, with atheris
# =====================================================================================


@pytest.mark.parametrize("target, runs, quiet", [("images", 10000, False), ("weights", 3000, True)])
def test_coverage_guided_fuzzing_finds_no_crash(tmp_path, target, runs, quiet):
    """libFuzzer's mutations from the seed files, guided by the lines of sr-desk and Pillow reached; each input
    under a time limit, and weights seeds that would run code if they were ever unpickled. ``quiet``: also no
    output on the terminal; for images that is test_a_mutated_image_file_prints_nothing_itself's part (libtiff's
    lines on fd 2 would end every run at its first damaged TIFF, hiding the crashes this looks for)."""
    pytest.importorskip("atheris")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    if target == "images":
        for name, data in seed_files().items():
            (corpus / name).write_bytes(data)
    else:
        header = json.dumps({"__metadata__": {"format": "sr-desk", "config": "{}"},
                             "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
        (corpus / "tiny.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + b"\0\0\0\0")
        hostile_weights(corpus, tmp_path / "code-ran")
    harness = Path(__file__).with_name("fuzz_atheris.py")
    runs = max(1, int(runs * SCALE))
    try:
        done = subprocess.run([sys.executable, str(harness), target, str(corpus), f"-runs={runs}", "-timeout=20",
                               "-rss_limit_mb=3072", "-max_total_time=120"], capture_output=True, text=True,
                              errors="replace", timeout=300, cwd=tmp_path,
                              env=child_env() | {"FUZZ_MARKER": str(tmp_path / "code-ran"),
                                                 "FUZZ_QUIET": str(int(quiet))})
    except subprocess.TimeoutExpired:
        raise Hung(f"atheris {target} still running after 300 s") from None
    crash = done.stderr.find("=== Uncaught Python exception")
    assert done.returncode == 0, done.stderr[crash:crash + 3000] if crash >= 0 else done.stderr[-3000:]
    assert f"Done {runs} runs" in done.stderr, done.stderr[-2000:]
    assert not (tmp_path / "code-ran").exists(), "a weights file ran code"
