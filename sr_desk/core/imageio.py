"""Reading and writing image files with Pillow.

Images travel through sr-desk as :class:`ImageData`: float32 RGB in [0, 1]
plus optional alpha and the metadata worth carrying to the output (ICC
profile, EXIF, DPI, bit depth). Everything that can go wrong with a user's
file is reported as a one-line :class:`ImageReadError` /
:class:`ImageWriteError`; no Pillow exception escapes, and what libtiff
prints on stderr by itself is caught and folded into that line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import io
import logging
import os
import re
import struct
import sys
import tempfile
import threading
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from sr_desk.core.atomic import atomic_write
from sr_desk.core.errors import ImageReadError, ImageWriteError
from sr_desk.core.special_files import check_openable_file, display_name, file_problem

try:  # LittleCMS is an optional part of a Pillow build.
    from PIL import ImageCms
except ImportError:  # pragma: no cover - depends on the Pillow build
    ImageCms = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "READ_FORMATS",
    "SAVE_FORMATS",
    "ImageData",
    "check_output_path",
    "check_output_fits",
    "check_output_size",
    "load_image",
    "save_image",
    "to_uint8",
]

FloatArray = npt.NDArray[np.float32]

#: Pillow decoders we let near user files. Each decoder is attack surface, so
#: only the formats people actually feed an upscaler are enabled. Phone MPO
#: files (JPEG + extra frames) need no entry: Pillow's JPEG opener returns them
#: itself, and naming "MPO" here would make ``Image.open`` raise ``KeyError``
#: on unrecognised files because MPO has no opener of its own.
READ_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "TIFF", "BMP", "GIF")

#: File extensions :func:`load_image` can read (lower case), for batch folders.
IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".mpo",
    ".webp", ".tif", ".tiff", ".bmp", ".gif",
)  # fmt: skip

#: Extension -> Pillow format name for :func:`save_image`.
SAVE_FORMATS: dict[str, str] = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}

#: Largest image (width * height) :func:`load_image` decodes by default.
MAX_PIXELS: int = Image.MAX_IMAGE_PIXELS or 89_478_485

_EXIF_PREFIX = b"Exif\x00\x00"
_ORIENTATION = 0x0112
_JPEG_MAX_EXIF = 65533  # one APP1 marker segment, prefix included

# Tags a TIFF file keeps in the same IFD as its EXIF-style tags but which
# describe that file's pixel layout; copied into another file they would lie.
_TIFF_LAYOUT_TAGS = frozenset({
    254, 255, 256, 257, 258, 259, 262, 266, 273, 277, 278, 279, 284, 317,
    320, 322, 323, 324, 325, 330, 338, 339, 340, 341, 347, 513, 514, 529,
    530, 531, 532, 700, 34675,
})  # fmt: skip

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
)

# warnings.catch_warnings swaps a process-wide filter list; serialise our own
# uses so two loading threads cannot leave each other's filter behind.
_warnings_lock = threading.Lock()

# File descriptor 2 belongs to the whole process: one capture of it at a time.
_stderr_lock = threading.Lock()

#: How libtiff's default handlers start a line: the reporting function ("TIFFAppendToStrip: ", "ZIPDecode: ")
#: or the file ("tempfile.tif: Using code not yet in table.").
_LIBRARY_LINE = re.compile(r"(_?[A-Z][A-Za-z0-9]*|[^\s:]+\.(?i:tiff?)): ")


@contextlib.contextmanager
def _library_messages() -> Iterator[list[str]]:
    """Catch what C libraries print on file descriptor 2 while the block runs; the list fills when it ends.

    libtiff reports through C handlers that write straight to fd 2 ("TIFFAppendToStrip: Write error",
    "ZIPDecode: Decoding error"), past Python's ``sys.stderr``; the app promises one line of its own. Lines
    that are not a library's (another thread's progress or log line) are written back when the block ends.
    """
    lines: list[str] = []
    with _stderr_lock, contextlib.ExitStack() as stack:
        try:
            sink = stack.enter_context(tempfile.TemporaryFile())
            saved = os.dup(2)
        except OSError:  # no room for the sink, or no fd 2 at all (a windowed app): run as before
            yield lines
            return
        stack.callback(os.close, saved)
        with contextlib.suppress(Exception):
            sys.stderr.flush()  # what Python printed before stays where it was going
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            lines += _sorted_out(sink)


def _sorted_out(sink: BinaryIO) -> list[str]:
    """The library lines caught in ``sink``, each on one line; any other line is written back to fd 2."""
    sink.seek(0)
    caught = []
    for line in sink.read().decode("utf-8", "replace").splitlines(keepends=True):
        if _LIBRARY_LINE.match(line):
            caught.append(" ".join(line.split()))
        else:
            os.write(2, line.encode("utf-8", "replace"))
    return caught

# Errors Pillow's decoders raise on bad data (besides OSError, which covers
# UnidentifiedImageError and "image file is truncated").
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ValueError,
    SyntaxError,
    struct.error,
    EOFError,
    zlib.error,
    IndexError,
    KeyError,
    TypeError,
    AssertionError,  # Pillow asserts on structures a valid file always has (a palette image's palette, say)
)
if ImageCms is not None:
    _DECODE_ERRORS += (ImageCms.PyCMSError,)


@dataclass(eq=False)
class ImageData:
    """Pixels plus the metadata sr-desk carries from input to output.

    ``rgb`` is float32 ``(H, W, 3)`` in [0, 1] (values outside are clipped on
    save); ``alpha`` is float32 ``(H, W)`` or ``None`` when the source had no
    alpha channel at all. ``exif`` has its orientation already applied to the
    pixels and its orientation tag set to 1. ``bit_depth`` (8 or 16) and
    ``grayscale`` describe the source and steer how :func:`save_image` encodes.
    """

    rgb: FloatArray
    alpha: FloatArray | None = None
    icc_profile: bytes | None = None
    exif: bytes | None = None
    bit_depth: int = 8
    grayscale: bool = False
    source_format: str | None = None
    dpi: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        self.rgb = np.ascontiguousarray(self.rgb, dtype=np.float32)
        if self.rgb.ndim != 3 or self.rgb.shape[2] != 3:
            raise ValueError(f"rgb must have shape (H, W, 3), got {self.rgb.shape}")
        if self.alpha is not None:
            self.alpha = np.ascontiguousarray(self.alpha, dtype=np.float32)
            if self.alpha.shape != self.rgb.shape[:2]:
                raise ValueError(
                    f"alpha shape {self.alpha.shape} does not match rgb {self.rgb.shape[:2]}"
                )
        if self.bit_depth not in (8, 16):
            raise ValueError(f"bit_depth must be 8 or 16, got {self.bit_depth}")

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)``, Pillow's order."""
        return self.width, self.height

    def with_pixels(self, rgb: FloatArray, alpha: FloatArray | None) -> ImageData:
        """A copy with new pixels (any size) and this image's metadata."""
        return dataclasses.replace(self, rgb=rgb, alpha=alpha)


# --------------------------------------------------------------------------- #
# Loading
# --------------------------------------------------------------------------- #


def load_image(path: str | os.PathLike[str], *, max_pixels: int | None = None) -> ImageData:
    """Decode the first frame of an image file into :class:`ImageData`.

    EXIF orientation is applied, so the result is upright. 16-bit grayscale
    keeps its precision (``bit_depth=16``); 16-bit RGB(A) PNG/TIFF files come
    out 8-bit because Pillow has no 16-bit colour mode. CMYK and LAB are
    converted to sRGB. Images above ``max_pixels`` (default :data:`MAX_PIXELS`)
    are refused before their pixels are decoded; Pillow's own
    ``Image.MAX_IMAGE_PIXELS`` check applies as well.

    Raises :class:`ImageReadError` for every problem with the file.
    """
    name = display_name(path)
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    # A FIFO would block the open() forever, a device would be read to its end.
    check_openable_file(path, error=ImageReadError)
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except FileNotFoundError:
        raise ImageReadError(f"cannot open '{name}': no such file") from None
    except IsADirectoryError:
        raise ImageReadError(f"cannot open '{name}': it is a folder, not an image") from None
    except PermissionError:
        if os.path.isdir(path):  # Windows reports folders as access denied
            raise ImageReadError(f"cannot open '{name}': it is a folder, not an image") from None
        raise ImageReadError(f"cannot open '{name}': permission denied") from None
    except OSError as exc:
        raise ImageReadError(f"cannot open '{name}': {_os_reason(exc)}") from None

    with f:
        head = f.read(16)
        if not head:
            raise ImageReadError(f"cannot open '{name}': the file is empty")
        f.seek(0)
        return _decode(f, name, head, limit)


def _decode(f: BinaryIO, name: str, head: bytes, limit: int) -> ImageData:
    """Decode with Pillow's warnings (a damaged tag skipped, corrupt EXIF) gathered into one logged line.

    Pillow warns on stderr, several lines per damaged tag; the app promises
    one line. Pillow only *warns* between 1x and 2x its pixel limit: that
    warning is an error here.
    """
    library = _library_messages() if _sniff_format(head) == "TIFF" else contextlib.nullcontext([])
    with _pillow_warnings_in_one_line(name):
        said: list[str] = []
        try:
            with library as said:  # libtiff's own lines: our one-line error already says what failed
                return _decode_quietly(f, name, head, limit)
        finally:
            if said:
                log.debug("libtiff on '%s': %s", name, "; ".join(said))


@contextlib.contextmanager
def _pillow_warnings_in_one_line(name: str) -> Iterator[None]:
    """Pillow's warnings and log records while the block runs (several stderr lines each) as one line.

    The line is a logged warning when the block succeeds; when it fails, the
    caller's one-line error already says what went wrong, so they go to the
    debug log only.
    """
    records = _Records()
    pil_log = logging.getLogger("PIL")
    with _warnings_lock, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        pil_log.addHandler(records)
        propagate, pil_log.propagate = pil_log.propagate, False
        failed = True
        try:
            yield
            failed = False
        finally:
            pil_log.removeHandler(records)
            pil_log.propagate = propagate
            said = [" ".join(str(w.message).split()) for w in caught] + records.lines
            messages = list(dict.fromkeys(said))
            if messages:
                summary = "; ".join(messages)
                summary = summary if len(summary) <= 200 else summary[:197] + "..."
                (log.debug if failed else log.warning)("warning: '%s': %s", name, summary)


class _Records(logging.Handler):
    """Pillow's own log records of warning level and above, kept as one-line texts."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(" ".join(record.getMessage().split()))


def _decode_quietly(f: BinaryIO, name: str, head: bytes, limit: int) -> ImageData:
    corrupt = f"'{name}' is truncated or corrupt"
    try:
        im = Image.open(f, formats=READ_FORMATS)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ImageReadError(
            f"'{name}' is too large to open: above the "
            f"{_megapixels(Image.MAX_IMAGE_PIXELS or 0)} safety limit"
        ) from None
    except UnidentifiedImageError:
        if _sniff_format(head) is not None:
            raise ImageReadError(corrupt) from None
        raise ImageReadError(
            f"'{name}' is not an image sr-desk can read "
            "(supported: PNG, JPEG, WebP, TIFF, BMP, GIF)"
        ) from None
    except MemoryError:
        raise ImageReadError(f"not enough memory to open '{name}'") from None
    except _DECODE_ERRORS as exc:
        raise ImageReadError(f"{corrupt} ({_exc_summary(exc)})") from None

    with im:
        width, height = im.size
        if width * height > limit:
            raise ImageReadError(
                f"'{name}' is {width}x{height} pixels ({_megapixels(width * height)}), "
                f"above the {_megapixels(limit)} safety limit"
            )
        if ImageFile.LOAD_TRUNCATED_IMAGES:  # pragma: no cover - global misconfiguration
            warnings.warn(
                "ImageFile.LOAD_TRUNCATED_IMAGES is set: truncated files load silently",
                RuntimeWarning,
                stacklevel=4,
            )
        try:
            im.load()
            if im.mode in ("P", "PA") and im.palette is None:
                raise ImageReadError(f"{corrupt} (a palette image without its palette)")
            upright = _apply_orientation(im)
            exif = _extract_exif(im)
            return _to_image_data(im, upright, exif, name)
        except ImageReadError:
            raise
        except MemoryError:
            raise ImageReadError(f"not enough memory to load '{name}'") from None
        except (Image.DecompressionBombWarning, Image.DecompressionBombError):
            raise ImageReadError(f"'{name}' is too large to open safely") from None
        except _DECODE_ERRORS as exc:
            raise ImageReadError(f"{corrupt} ({_exc_summary(exc)})") from None


def _apply_orientation(im: Image.Image) -> Image.Image:
    """The image rotated/flipped upright per its EXIF (or XMP) orientation."""
    try:
        orientation = im.getexif().get(_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - unreadable EXIF must not make the image unreadable
        return im
    if orientation in range(2, 9):
        return ImageOps.exif_transpose(im)
    return im


def _extract_exif(im: Image.Image) -> bytes | None:
    """EXIF to carry to the output, with orientation reset to 1; None if absent.

    Raw EXIF is patched in place where possible so maker notes and thumbnails
    (which Pillow drops when re-serialising) survive.
    """
    try:
        # TIFF has no EXIF block: its "EXIF" is the image's own IFD.
        raw = None if im.format == "TIFF" else im.info.get("exif")
        if isinstance(raw, bytes) and raw:
            if not raw.startswith(_EXIF_PREFIX):  # WebP stores it bare
                raw = _EXIF_PREFIX + raw
            patched = _patch_orientation(raw)
            if patched is not None:
                return patched
            exif = Image.Exif()
            exif.load(raw)
        else:
            # TIFF tags, PNG text-chunk EXIF, or an XMP orientation.
            exif = im.getexif()
            for tag in _TIFF_LAYOUT_TAGS & set(exif):
                del exif[tag]
        if not exif:
            return None
        if _ORIENTATION in exif:
            exif[_ORIENTATION] = 1
        return bytes(exif.tobytes())
    except Exception:  # noqa: BLE001 - metadata is best effort; the pixels matter
        return None


def _patch_orientation(exif: bytes) -> bytes | None:
    """``exif`` with IFD0's orientation set to 1, or None if it can't be done in place."""
    tiff = exif[len(_EXIF_PREFIX) :]
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None:
        return None
    try:
        if struct.unpack_from(order + "H", tiff, 2)[0] != 42:
            return None
        ifd = struct.unpack_from(order + "I", tiff, 4)[0]
        (count,) = struct.unpack_from(order + "H", tiff, ifd)
        for i in range(count):
            entry = ifd + 2 + 12 * i
            tag, kind, n = struct.unpack_from(order + "HHI", tiff, entry)
            if tag == _ORIENTATION:
                if kind != 3 or n != 1:  # must be a single SHORT stored inline
                    return None
                buf = bytearray(tiff)
                struct.pack_into(order + "H", buf, entry + 8, 1)
                return _EXIF_PREFIX + bytes(buf)
    except struct.error:
        return None
    return exif


def _to_image_data(src: Image.Image, im: Image.Image, exif: bytes | None, name: str) -> ImageData:
    """Convert a loaded, upright Pillow image to float arrays.

    ``src`` is the file as opened (for format and metadata), ``im`` the
    possibly rotated pixels.
    """
    icc = src.info.get("icc_profile") or None
    alpha: FloatArray | None = None
    grayscale = False
    bit_depth = 8
    mode = im.mode

    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        values = np.asarray(im)
        if mode == "I":  # 32-bit int: assume the 16-bit range it nearly always holds
            values = np.clip(values, 0, 65535)
        rgb = _gray_to_rgb(values.astype(np.float32) / np.float32(65535))
        grayscale, bit_depth = True, 16
    elif mode == "F":
        rgb = _gray_to_rgb(_normalise_float(np.asarray(im, dtype=np.float32)))
        grayscale, bit_depth = True, 16
    elif mode in ("1", "L"):
        rgb = _gray_to_rgb(_u8_to_float(np.asarray(im.convert("L"))))
        grayscale = True
    elif mode in ("LA", "La"):
        la = _u8_to_float(np.asarray(im.convert("LA")))
        rgb, alpha = _gray_to_rgb(la[..., 0]), np.ascontiguousarray(la[..., 1])
        grayscale = True
    elif mode == "CMYK":
        rgb = _u8_to_float(np.asarray(_cmyk_to_srgb(im, icc)))
        icc = None  # the profile described CMYK; the pixels are sRGB now
    elif mode == "LAB":
        rgb = _u8_to_float(np.asarray(_lab_to_srgb(im, name)))
        icc = None
    elif mode in ("RGBA", "RGBa", "PA") or (mode == "P" and im.has_transparency_data):
        rgba = _u8_to_float(np.asarray(im.convert("RGBA")))
        rgb, alpha = np.ascontiguousarray(rgba[..., :3]), np.ascontiguousarray(rgba[..., 3])
    else:  # RGB, RGBX, P, YCbCr, HSV, ...
        rgb = _u8_to_float(np.asarray(im.convert("RGB")))

    fmt = src.format
    return ImageData(
        rgb=rgb,
        alpha=alpha,
        icc_profile=icc if isinstance(icc, bytes) else None,
        exif=exif,
        bit_depth=bit_depth,
        grayscale=grayscale,
        source_format="JPEG" if fmt == "MPO" else fmt,
        dpi=_read_dpi(src.info.get("dpi")),
    )


def _u8_to_float(values: npt.NDArray[Any]) -> FloatArray:
    out = values.astype(np.float32)
    out /= np.float32(255)
    return out


def _gray_to_rgb(gray: FloatArray) -> FloatArray:
    return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))


def _normalise_float(values: FloatArray) -> FloatArray:
    """Map a float image to [0, 1], guessing its range (0-1, 0-255 or 0-65535)."""
    values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(values.max()) if values.size else 0.0
    if peak > 255.0:
        values = values / np.float32(65535)
    elif peak > 1.0:
        values = values / np.float32(255)
    return np.clip(values, 0.0, 1.0).astype(np.float32)


@functools.cache
def _srgb_profile() -> Any:
    assert ImageCms is not None
    return ImageCms.createProfile("sRGB")


def _cmyk_to_srgb(im: Image.Image, icc: bytes | None) -> Image.Image:
    """Colour-manage CMYK through its embedded profile; Pillow's naive formula otherwise."""
    if icc and ImageCms is not None:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(im, source, _srgb_profile(), outputMode="RGB")
            if converted is not None:
                return converted
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            pass  # unusable or mismatched profile
    return im.convert("RGB")


def _lab_to_srgb(im: Image.Image, name: str) -> Image.Image:
    # Pillow's convert("RGB") treats LAB bytes as if they were RGB; only
    # LittleCMS converts them correctly.
    if ImageCms is None:  # pragma: no cover - depends on the Pillow build
        raise ImageReadError(f"cannot read '{name}': LAB images need Pillow with LittleCMS")
    lab = ImageCms.createProfile("LAB")
    transform = ImageCms.buildTransform(lab, _srgb_profile(), "LAB", "RGB")
    result = ImageCms.applyTransform(im, transform)
    assert result is not None
    return result


#: The largest resolution kept: JPEG stores 16 bits, and no scanner or screen comes near it.
MAX_DPI = 65535.0


def _read_dpi(value: object) -> tuple[float, float] | None:
    try:
        x, y = (float(v) for v in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return None
    if not (0 < x <= MAX_DPI and 0 < y <= MAX_DPI):  # also refuses NaN; 4294967295 dpi is a broken header
        return None
    return x, y


def _sniff_format(head: bytes) -> str | None:
    """The format a file claims by its magic bytes, to tell "corrupt" from "not an image"."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    return None


# --------------------------------------------------------------------------- #
# Saving
# --------------------------------------------------------------------------- #


def save_image(
    path: str | os.PathLike[str],
    image: ImageData,
    *,
    format: str | None = None,  # noqa: A002 - mirrors Pillow's keyword
    quality: int = 95,
) -> None:
    """Encode ``image`` and atomically replace ``path`` with it.

    The format comes from ``format`` or the extension: PNG, JPEG, WebP, TIFF.
    Grayscale images are written as L/LA, and as 16-bit when they came from a
    16-bit source and the format allows it (PNG and TIFF, without alpha).
    JPEG has no alpha: transparent images are composited over white. ICC,
    EXIF and DPI are carried where the format holds them (no DPI in WebP; EXIF
    too big for a JPEG marker is dropped). ``quality`` drives JPEG and WebP;
    WebP at 100 is lossless.

    Raises :class:`ImageWriteError`; on failure the existing file is untouched.
    """
    name = display_name(path)
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be between 1 and 100, got {quality}")
    fmt = _save_format(path, format, name)
    check_output_fits(path, image, image.size, fmt)

    try:
        pil = _to_pil(image, fmt)
        params = _save_params(image, pil.mode, fmt, quality)
    except MemoryError:
        raise ImageWriteError(f"not enough memory to save '{name}'") from None
    check_output_path(path, format)
    _encode(path, pil, fmt, params)


def _gather_rows(pixels: npt.NDArray[np.uint8], produce: Callable[[Callable[[], RowWriter]], None]) -> None:
    """Fill ``pixels`` (``H x W x C``) with the rows ``produce`` hands over; colour rows fill the first three channels."""
    height, width, channels = pixels.shape
    filled = 0

    def write_rows(rows: npt.NDArray[np.uint8]) -> None:
        nonlocal filled
        pixels[filled : filled + len(rows), :, : min(channels, 3)] = rows.reshape(len(rows), width, -1)
        filled += len(rows)

    def start() -> RowWriter:
        nonlocal filled
        filled = 0
        return write_rows

    produce(start)
    if filled != height:
        raise RuntimeError(f"produce() wrote {filled} of {height} rows (bug)")


def _encode(path: str | os.PathLike[str], pil: Image.Image, fmt: str, params: dict[str, Any]) -> None:
    """Write ``pil`` atomically; EXIF the format cannot hold as it came is flattened, then dropped."""
    name = display_name(path)

    def write(f: BinaryIO) -> None:
        if fmt == "TIFF":
            _save_tiff(pil, f, name, params)
        else:
            pil.save(f, format=fmt, **params)

    with _pillow_warnings_in_one_line(name):  # "Corrupt EXIF data" when the EXIF carried along is damaged
        _encode_keeping_what_metadata_fits(path, write, fmt, params, name)


def _encode_keeping_what_metadata_fits(
    path: str | os.PathLike[str], write: Callable[[BinaryIO], None], fmt: str, params: dict[str, Any], name: str
) -> None:
    try:
        _write_encoded(path, write)
    except ImageWriteError:
        if "exif" not in params:
            raise
        # Pillow cannot write some EXIF as it came (the Exif and GPS sub-IFDs into TIFF, rationals out of
        # range): keep the pixels, then as much of the metadata as the format takes.
        flat = _without_sub_ifds(params["exif"])
        if flat is not None:
            params["exif"] = flat
            with contextlib.suppress(ImageWriteError):
                _write_encoded(path, write)
                log.warning("saved '%s' without the Exif and GPS sub-IFDs of its EXIF (%s cannot hold them)",
                            name, fmt)
                return
        params.pop("exif")
        _write_encoded(path, write)
        log.warning("saved '%s' without its EXIF metadata, which %s cannot hold as it came", name, fmt)


#: EXIF tags that point to sub-IFDs (Exif, GPS, Interoperability), which some encoders cannot write.
_SUB_IFD_TAGS = (0x8769, 0x8825, 0xA005)


def _without_sub_ifds(exif: bytes) -> bytes | None:
    """``exif`` with the sub-IFD pointers removed (camera, orientation and dates in IFD0 stay), or None."""
    try:
        parsed = Image.Exif()
        parsed.load(exif)
        for tag in _SUB_IFD_TAGS:
            parsed.pop(tag, None)
        return parsed.tobytes()
    except Exception:  # noqa: BLE001 - metadata is a nicety: on any doubt, drop it
        return None


#: A function that takes the next uint8 rows of a result written band by band.
RowWriter = Callable[[npt.NDArray[np.uint8]], None]


def save_image_bands(
    path: str | os.PathLike[str],
    template: ImageData,
    size: tuple[int, int],
    produce: Callable[[Callable[[], RowWriter]], None],
    *,
    quality: int = 95,
) -> None:
    """:func:`save_png_bands` for every save format: the result arrives a band of 8-bit rows at a time.

    A PNG is deflated row by row and never whole in memory. JPEG, WebP and
    TIFF encoders want the whole picture, so their rows are gathered as
    8 bits and encoded at the end, with ``save_image``'s metadata and
    ``quality``. A colour JPEG gathers them as RGBX, which Pillow encodes
    from our buffer without a copy: 4 bytes a pixel in all, where the float
    result alone takes 12. WebP and TIFF take RGB only, so Pillow copies our
    3 bytes a pixel into its own 4.
    """
    name = display_name(path)
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be between 1 and 100, got {quality}")
    fmt = _save_format(path, None, name)
    if fmt == "PNG":
        save_png_bands(path, template, size, produce)
        return
    check_output_path(path, fmt)
    mode = "L" if template.grayscale else "RGBX" if fmt == "JPEG" else "RGB"
    check_output_size(path, size[0], size[1], fmt, bytes_per_pixel=1 if mode == "L" else 3)  # before produce()
    try:
        pixels = np.zeros((size[1], size[0], len(mode)), np.uint8)
    except MemoryError:
        raise ImageWriteError(f"not enough memory to save '{name}'") from None
    _gather_rows(pixels, produce)
    pil = Image.frombuffer(mode, size, pixels, "raw", mode, 0, 1)
    del pixels  # Pillow holds a reference (L, RGBX) or its own copy (RGB)
    if fmt == "WEBP" and mode == "L":  # WebP stores colour only, as save_image writes it
        pil = pil.convert("RGB")
    _encode(path, pil, fmt, _save_params(template, pil.mode, fmt, quality))


def save_png_bands(
    path: str | os.PathLike[str],
    template: ImageData,
    size: tuple[int, int],
    produce: Callable[[Callable[[], RowWriter]], None],
) -> None:
    """Write a PNG of ``size`` atomically from rows handed over a band at a time; nothing whole in memory.

    ``produce(start)`` makes the pixels: it calls ``start()`` to begin (or to
    begin again after a failed attempt, e.g. out of memory in a tile), which
    returns the function taking the next 8-bit rows (``n x width x 3``; one
    channel for a grayscale ``template``). ICC profile, EXIF and DPI come from
    ``template``. An exception from ``produce`` (a cancel, a failed method)
    propagates as it is, and the existing file stays untouched.
    """
    from sr_desk.core.png_stream import PngStreamWriter

    name = display_name(path)
    check_output_path(path, "PNG")
    check_output_size(path, size[0], size[1], "PNG")
    channels = 1 if template.grayscale else 3
    icc = template.icc_profile if template.icc_profile and _icc_matches(template.icc_profile, "L" if channels == 1 else "RGB") else None
    dpi = template.dpi if template.dpi is not None and _read_dpi(template.dpi) is not None else None

    def write(f: BinaryIO) -> None:
        writers: list[PngStreamWriter] = []

        def start() -> RowWriter:
            f.seek(0)
            f.truncate()
            writers[:] = [PngStreamWriter(f, size[0], size[1], channels, icc_profile=icc, exif=template.exif, dpi=dpi)]
            return writers[0].write_rows

        produce(start)
        if not writers:
            raise RuntimeError("produce() never started the file (bug)")
        writers[0].close()

    try:
        atomic_write(path, write)
    except OSError as exc:
        folder = os.path.dirname(os.path.abspath(path))
        raise ImageWriteError(f"cannot save '{name}': {_os_reason(exc, folder)}") from None


def _save_tiff(pil: Image.Image, f: BinaryIO, name: str, params: dict[str, Any]) -> None:
    """``pil.save`` as TIFF, with libtiff's own lines on stderr caught: a failure says why in our one line."""
    said: list[str] = []
    try:
        with _library_messages() as said:
            pil.save(f, format="TIFF", **params)
    except Exception as exc:
        # libtiff's failure reaches Python only as "encoder error -2"; a Python error (memory, an errno) says more.
        if _errors_in(said) or (isinstance(exc, OSError) and exc.errno is None):
            raise _LibraryError(_tiff_write_reason(f, said, exc)) from None
        raise
    if said:
        log.debug("libtiff on '%s': %s", name, "; ".join(said))


def _errors_in(said: list[str]) -> list[str]:
    """libtiff's error lines among ``said`` (its warnings read "Module: Warning, ...")."""
    return [line for line in said if "warning" not in line.lower()]


class _LibraryError(Exception):
    """An encoder failed; ``str()`` is the reason, from what its C library said."""


def _tiff_write_reason(f: BinaryIO, said: list[str], exc: BaseException) -> str:
    """Why libtiff could not write ``f``: a full disk or a file size limit first, else its own first error line.

    libtiff's lines name the failing call, not the cause ("TIFFAppendToStrip: Write error at scanline 84");
    the file and its disk say which it was.
    """
    with contextlib.suppress(OSError, AttributeError):  # no fstatvfs on Windows
        disk = os.fstatvfs(f.fileno())
        if disk.f_blocks and disk.f_frsize and min(disk.f_bavail, disk.f_bfree) * disk.f_frsize < 1 << 20:
            return _ERRNO_REASONS[errno.ENOSPC]
    with contextlib.suppress(ImportError, OSError, ValueError):
        import resource

        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if limit != resource.RLIM_INFINITY and os.fstat(f.fileno()).st_size + (1 << 20) > limit:
            return f"the file would be larger than this process may write (its file size limit is {limit} bytes)"
    errors = _errors_in(said)
    if errors:
        return f"libtiff failed ({errors[0][:200]})"
    return f"encoder failed ({_exc_summary(exc)})"


def _write_encoded(path: str | os.PathLike[str], write: Callable[[BinaryIO], None]) -> None:
    name = display_name(path)
    try:
        atomic_write(path, write)
    except _LibraryError as exc:
        raise ImageWriteError(f"cannot save '{name}': {exc}") from None
    except MemoryError:
        raise ImageWriteError(f"not enough memory to save '{name}'") from None
    except OSError as exc:
        folder = os.path.dirname(os.path.abspath(path))
        raise ImageWriteError(f"cannot save '{name}': {_os_reason(exc, folder)}") from None
    except Exception as exc:  # noqa: BLE001 - Pillow's encoders raise RuntimeError, OverflowError, AssertionError...
        raise ImageWriteError(f"cannot save '{name}': {_encoder_reason(exc)}") from None


#: libwebp's failures that a size or a picture can cause (WebPEncodingError), which Pillow reports by number only.
_WEBP_ERRORS: dict[int, str] = {
    6: "the picture is too large and detailed for lossy WebP (its prediction modes outgrow the format's "
       "512 KB first partition); save it as .png or .tiff, or as lossless WebP (quality 100)",
    7: "the picture is too large and detailed for lossy WebP (a partition outgrows the format's 16 MB); "
       "save it as .png or .tiff, or as lossless WebP (quality 100)",
    9: "the WebP file would be larger than the format's 4 GiB; save it as .png or .tiff",
}


def _encoder_reason(exc: BaseException) -> str:
    """Why an encoder failed, in words where its message is only a number."""
    match = re.match(r"encoding error (\d+)", str(exc))
    if match and int(match[1]) in _WEBP_ERRORS:
        return _WEBP_ERRORS[int(match[1])]
    return f"encoder failed ({_exc_summary(exc)})"


def check_output_path(path: str | os.PathLike[str], format: str | None = None) -> None:  # noqa: A002
    """Raise :class:`ImageWriteError` now if ``path`` cannot be written, so no work is done for nothing.

    Checks the format (from the extension), that the target is not a folder,
    a pipe or a device, that no parent on the way is a file, that the name
    fits the file system (255 bytes), and that the nearest existing folder
    can be written (a read-only mount or a folder without write permission).
    """
    name = display_name(path)
    target = os.path.abspath(os.fspath(path))
    problem = file_problem(target, allow_missing=True)
    if problem is not None:
        raise ImageWriteError(f"cannot save '{name}': {problem}")
    _save_format(path, format, name)
    if len(os.path.basename(target).encode("utf-8", "surrogateescape")) > 255:
        raise ImageWriteError(f"cannot save '{name}': the name is longer than 255 bytes")
    parent = os.path.dirname(target)
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent) if os.path.dirname(parent) != parent else ""
    if parent and not os.path.isdir(parent):
        raise ImageWriteError(f"cannot save '{name}': {parent} is a file, not a folder")
    if parent and not os.access(parent, os.W_OK | os.X_OK):
        raise ImageWriteError(f"cannot save '{name}': {parent} cannot be written (read-only or no permission)")


#: The most pixels a side each save format holds: WebP's own limit; libjpeg's JPEG_MAX_DIMENSION (the JPEG
#: format itself would take 65535); PNG's 31-bit width and height fields. TIFF is bound by its file size instead.
MAX_SIDE: dict[str, int] = {"WEBP": 16383, "JPEG": 65500, "PNG": 2**31 - 1, "TIFF": 2**32 - 1}

#: Classic TIFF addresses its data with 32-bit offsets: no file above 4 GiB. Some room is kept for the tags,
#: the ICC profile and the EXIF block around the pixels.
TIFF_MAX_PIXEL_BYTES = 2**32 - 2**24

_FORMAT_NAMES = {"WEBP": "WebP", "JPEG": "JPEG", "PNG": "PNG", "TIFF": "TIFF"}
_SUFFIXES = {"PNG": ".png", "TIFF": ".tiff"}


def check_output_size(
    path: str | os.PathLike[str],
    width: int,
    height: int,
    format: str | None = None,  # noqa: A002 - mirrors check_output_path
    *,
    bytes_per_pixel: int = 4,
) -> None:
    """Raise :class:`ImageWriteError` now if the format of ``path`` cannot hold a ``width`` x ``height`` image.

    Each encoder finds its limit only when it encodes, which is after the
    whole upscale: WebP holds 16383 pixels a side, JPEG 65500 (libjpeg's
    limit), PNG 2^31 - 1. Pillow writes classic TIFF, whose 32-bit offsets
    end at 4 GiB; the check counts the pixels uncompressed
    (``width * height * bytes_per_pixel``), because how far deflate shrinks
    them is known only once they are encoded, and a refusal after the work
    is what this check exists to prevent. ``bytes_per_pixel`` is the
    written pixel's (1 gray, 2 gray with alpha or 16-bit gray, 3 RGB, 4
    RGBA); the default is the largest sr-desk writes. The message names the
    limit and the formats that would hold the image.
    """
    name = display_name(path)
    fmt = _save_format(path, format, name)
    reason = _size_problem(fmt, width, height, bytes_per_pixel)
    if reason is None:
        return
    fits = [_SUFFIXES[other] for other in ("PNG", "TIFF")  # lossless: no quality given up for the size
            if other != fmt and _size_problem(other, width, height, bytes_per_pixel) is None]
    advice = f"save it as {' or '.join(fits)}" if fits else "no format sr-desk writes holds it"
    raise ImageWriteError(f"cannot save '{name}': {reason}, and the result is {width}x{height}; {advice}")


def check_output_fits(
    path: str | os.PathLike[str],
    template: ImageData,
    size: tuple[int, int],
    format: str | None = None,  # noqa: A002 - mirrors check_output_path
) -> None:
    """:func:`check_output_size` for a ``size`` = (width, height) result laid out as ``template`` is (alpha,
    grey, bit depth): an upscale of ``template``, checked before the work."""
    fmt = _save_format(path, format, display_name(path))
    check_output_size(path, size[0], size[1], fmt, bytes_per_pixel=_written_bytes_per_pixel(template, fmt))


def _size_problem(fmt: str, width: int, height: int, bytes_per_pixel: int) -> str | None:
    """What limit of ``fmt`` a ``width`` x ``height`` image breaks, or None when it fits."""
    side = MAX_SIDE[fmt]
    if width > side or height > side:
        return f"{_FORMAT_NAMES[fmt]} holds at most {side} pixels a side"
    if fmt == "TIFF" and width * height * bytes_per_pixel > TIFF_MAX_PIXEL_BYTES:
        return "a TIFF file holds at most 4 GiB"
    return None


def _written_bytes_per_pixel(image: ImageData, fmt: str) -> int:
    """Bytes a pixel of ``image`` takes in ``fmt``, as :func:`_to_pil` lays it out."""
    alpha = image.alpha is not None and fmt != "JPEG"
    if image.grayscale and fmt != "WEBP":
        return 2 if alpha or (image.bit_depth == 16 and fmt in ("PNG", "TIFF")) else 1
    return 4 if alpha else 3


def _save_format(path: str | os.PathLike[str], format: str | None, name: str) -> str:  # noqa: A002
    if format is not None:
        fmt = format.upper().lstrip(".")
        fmt = {"JPG": "JPEG", "TIF": "TIFF"}.get(fmt, fmt)
        if fmt in SAVE_FORMATS.values():
            return fmt
    else:
        ext = os.path.splitext(os.fspath(path))[1].lower()
        if ext in SAVE_FORMATS:
            return SAVE_FORMATS[ext]
    raise ImageWriteError(
        f"cannot save '{name}': unsupported format; use .png, .jpg, .webp or .tiff"
    )


#: Rows quantised at a time: a 386 MP float result needs no second float copy of itself on the way to 8 bits.
QUANTISE_ROWS = 256


def to_uint8(values: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    """Float [0, 1] -> uint8 with rounding; out-of-range values clip, NaN -> 0."""
    return _quantised(values, 255, np.dtype(np.uint8))


def _to_uint16(values: npt.NDArray[Any]) -> npt.NDArray[np.uint16]:
    return _quantised(values, 65535, np.dtype("<u2"))


def _quantised(values: npt.NDArray[Any], top: int, dtype: np.dtype[Any]) -> npt.NDArray[Any]:
    """``_quantise`` a band of rows at a time into the integer result (memory: the result plus one band)."""
    values = np.asarray(values)
    if values.ndim == 0:
        return _quantised(values.reshape(1), top, dtype).reshape(())
    out = np.empty(values.shape, dtype=dtype)
    for start in range(0, values.shape[0], QUANTISE_ROWS):
        rows = slice(start, start + QUANTISE_ROWS)
        out[rows] = _quantise(values[rows], top)
    return out


def _quantise(values: npt.NDArray[Any], top: int) -> npt.NDArray[np.float32]:
    scaled = np.asarray(values, dtype=np.float32) * np.float32(top)
    scaled += np.float32(0.5)
    np.nan_to_num(scaled, copy=False, nan=0.0)
    np.clip(scaled, 0, top, out=scaled)
    return scaled


def _to_pil(image: ImageData, fmt: str) -> Image.Image:
    rgb: npt.NDArray[np.float32] = image.rgb
    alpha = image.alpha
    if alpha is not None and fmt == "JPEG":
        a = np.clip(alpha, 0.0, 1.0)[:, :, None]
        rgb = rgb * a + (1.0 - a)  # over white
        alpha = None

    size = (image.width, image.height)
    # WebP stores colour only; a gray WebP would be RGB under a GRAY profile.
    if image.grayscale and fmt != "WEBP":
        gray = rgb.mean(axis=2, dtype=np.float32)
        if alpha is not None:
            la = np.dstack([to_uint8(gray), to_uint8(alpha)])
            return Image.frombytes("LA", size, la.tobytes())
        if image.bit_depth == 16 and fmt in ("PNG", "TIFF"):
            return Image.frombytes("I;16", size, _to_uint16(gray).tobytes())
        return Image.frombytes("L", size, to_uint8(gray).tobytes())
    if alpha is not None:
        rgba = np.empty((image.height, image.width, 4), np.uint8)  # no float RGBA copy of a large result
        rgba[..., :3] = to_uint8(rgb)
        rgba[..., 3] = to_uint8(alpha)
        return Image.frombuffer("RGBA", size, rgba, "raw", "RGBA", 0, 1)
    return Image.frombuffer("RGB", size, to_uint8(rgb), "raw", "RGB", 0, 1)


def _save_params(image: ImageData, mode: str, fmt: str, quality: int) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if fmt == "PNG":
        params["compress_level"] = 6
    elif fmt == "JPEG":
        params["quality"] = quality
        if quality >= 90:
            # Pillow defaults to 4:2:0, which halves the chroma detail an
            # upscaler just produced.
            params["subsampling"] = 0
    elif fmt == "WEBP":
        params["quality"] = quality
        params["lossless"] = quality == 100
    elif fmt == "TIFF":
        params["compression"] = "tiff_deflate"

    icc = image.icc_profile
    if icc and _icc_matches(icc, mode):
        params["icc_profile"] = icc
    exif = image.exif
    if exif and not (fmt == "JPEG" and len(exif) > _JPEG_MAX_EXIF):
        params["exif"] = exif
    if image.dpi is not None and fmt != "WEBP" and _read_dpi(image.dpi) is not None:  # JPEG holds 16 bits
        params["dpi"] = image.dpi
    return params


def _icc_matches(icc: bytes, mode: str) -> bool:
    """Whether an ICC profile's colour space (header bytes 16-19) fits ``mode``."""
    if len(icc) < 128:
        return False
    space = icc[16:20]
    if mode in ("L", "LA", "I;16"):
        return space == b"GRAY"
    return space == b"RGB "


# --------------------------------------------------------------------------- #
# Messages
# --------------------------------------------------------------------------- #




def _megapixels(pixels: int) -> str:
    if pixels >= 10_000_000:
        return f"{pixels / 1e6:.0f} MP"
    if pixels >= 1_000_000:
        return f"{pixels / 1e6:.1f} MP"
    return f"{pixels} pixels"


def _exc_summary(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] if text else type(exc).__name__


_ERRNO_REASONS: dict[int, str] = {
    errno.ENOSPC: "the disk is full",
    getattr(errno, "EDQUOT", errno.ENOSPC): "the disk quota is exceeded",
    errno.EROFS: "the disk is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EISDIR: "a folder has that name",
    errno.ENAMETOOLONG: "the name is too long",
}


def _os_reason(exc: OSError, folder: str | None = None) -> str:
    if exc.errno == errno.ENOENT and folder is not None:
        if os.path.isdir(folder):  # the folder is there: what vanished is the file being written
            return "the file being written was removed by another program before it was finished"
        return f"folder '{folder}' does not exist"
    if exc.errno == errno.ENOTDIR and folder is not None:
        return f"'{folder}' is not a folder"
    if exc.errno in _ERRNO_REASONS:
        return _ERRNO_REASONS[exc.errno]
    return _exc_summary(exc) if exc.strerror is None else exc.strerror.lower()

