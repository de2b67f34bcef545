"""Tests for sr_desk.core.imageio and sr_desk.core.atomic (all images made here)."""

from __future__ import annotations

import io
import os
import stat
import struct
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageFile

from sr_desk.core import imageio
from sr_desk.core.atomic import atomic_write, atomic_write_bytes
from sr_desk.core.errors import ImageReadError, ImageWriteError, SrDeskError
from sr_desk.core.imageio import ImageData, load_image, save_image, to_uint8

ORIENTATION = 0x0112
MAKE = 0x010F
SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _rng_u8(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def _exif(make: str = "sr-desk-test", orientation: int | None = None) -> bytes:
    exif = Image.Exif()
    exif[MAKE] = make
    if orientation is not None:
        exif[ORIENTATION] = orientation
    return exif.tobytes()


def _one_line(err: pytest.ExceptionInfo[SrDeskError]) -> str:
    text = str(err.value)
    assert "\n" not in text and "\r" not in text
    assert text
    return text


def _no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def _assert_png_saves_back(tmp_path: Path, img: ImageData, mode: str, pixels: np.ndarray) -> None:
    """``img`` saved as a PNG opens in Pillow's ``mode`` with exactly ``pixels``."""
    out = tmp_path / "out.png"
    save_image(out, img)
    with Image.open(out) as back:
        assert back.mode == mode
        np.testing.assert_array_equal(np.asarray(back), pixels)


def _load_palette_image(path: Path, size: tuple[int, int], fill: int, palette: list[int],
                        dot: tuple[int, int] | None = None, **save) -> ImageData:
    """A palette image filled with index ``fill`` (index 1 at ``dot``), saved to ``path`` with ``save``, loaded."""
    im = Image.new("P", size, fill)
    im.putpalette(palette + [0] * (768 - len(palette)))
    if dot is not None:
        im.putpixel(dot, 1)
    im.save(path, **save)
    return load_image(path)


# --------------------------------------------------------------------------- #
# Loading: modes
# --------------------------------------------------------------------------- #


def test_rgb_png_round_trip_is_exact(tmp_path: Path) -> None:
    pixels = _rng_u8(17, 23, 3)
    src = tmp_path / "in.png"
    Image.fromarray(pixels).save(src)

    img = load_image(src)
    assert img.rgb.dtype == np.float32 and img.rgb.flags.c_contiguous
    assert img.rgb.shape == (17, 23, 3)
    assert (img.width, img.height, img.size) == (23, 17, (23, 17))
    assert img.alpha is None and not img.grayscale and img.bit_depth == 8
    assert img.source_format == "PNG"
    assert 0.0 <= img.rgb.min() and img.rgb.max() <= 1.0
    np.testing.assert_array_equal(to_uint8(img.rgb), pixels)

    _assert_png_saves_back(tmp_path, img, "RGB", pixels)


def test_rgba_png_keeps_alpha_exactly(tmp_path: Path) -> None:
    pixels = _rng_u8(9, 11, 4, seed=1)
    src = tmp_path / "in.png"
    Image.fromarray(pixels).save(src)

    img = load_image(src)
    assert img.alpha is not None and img.alpha.shape == (9, 11)
    np.testing.assert_array_equal(to_uint8(img.alpha), pixels[..., 3])
    np.testing.assert_array_equal(to_uint8(img.rgb), pixels[..., :3])

    _assert_png_saves_back(tmp_path, img, "RGBA", pixels)


def test_la_png_is_grayscale_with_alpha(tmp_path: Path) -> None:
    pixels = _rng_u8(6, 5, 2, seed=2)
    src = tmp_path / "la.png"
    Image.frombytes("LA", (5, 6), pixels.tobytes()).save(src)

    img = load_image(src)
    assert img.grayscale and img.alpha is not None
    for c in range(3):
        np.testing.assert_array_equal(to_uint8(img.rgb[..., c]), pixels[..., 0])
    np.testing.assert_array_equal(to_uint8(img.alpha), pixels[..., 1])

    _assert_png_saves_back(tmp_path, img, "LA", pixels)


def test_palette_with_transparency_gets_alpha(tmp_path: Path) -> None:
    img = _load_palette_image(tmp_path / "p.png", (4, 3), 0, [255, 0, 0, 0, 255, 0], dot=(1, 1), transparency=0)
    assert img.alpha is not None
    assert img.alpha[1, 1] == 1.0 and img.alpha[0, 0] == 0.0
    np.testing.assert_array_equal(to_uint8(img.rgb[1, 1]), [0, 255, 0])


def test_palette_without_transparency_has_no_alpha(tmp_path: Path) -> None:
    img = _load_palette_image(tmp_path / "p.png", (4, 3), 1, [255, 0, 0, 10, 20, 30])
    assert img.alpha is None and not img.grayscale
    np.testing.assert_array_equal(to_uint8(img.rgb[2, 3]), [10, 20, 30])


def test_gif_transparency_is_alpha(tmp_path: Path) -> None:
    img = _load_palette_image(tmp_path / "t.gif", (4, 4), 0, [0, 0, 0, 200, 100, 50], dot=(2, 2), transparency=0)
    assert img.source_format == "GIF"
    assert img.alpha is not None and img.alpha[0, 0] == 0.0 and img.alpha[2, 2] == 1.0
    np.testing.assert_array_equal(to_uint8(img.rgb[2, 2]), [200, 100, 50])


def test_bilevel_image_loads_as_grayscale(tmp_path: Path) -> None:
    im = Image.new("1", (8, 4), 0)
    im.putpixel((3, 2), 1)
    src = tmp_path / "bw.png"
    im.save(src)

    img = load_image(src)
    assert img.grayscale and img.bit_depth == 8 and img.alpha is None
    assert img.rgb[2, 3].tolist() == [1.0, 1.0, 1.0]
    assert img.rgb[0, 0].tolist() == [0.0, 0.0, 0.0]

    out = tmp_path / "out.png"
    save_image(out, img)
    with Image.open(out) as back:
        assert back.mode == "L"


@pytest.mark.parametrize("ext", [".jpg", ".tif"])
def test_cmyk_loads_as_rgb(tmp_path: Path, ext: str) -> None:
    src = tmp_path / f"cmyk{ext}"
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(src)  # pure red in naive CMYK

    img = load_image(src)
    assert img.rgb.shape == (8, 8, 3) and img.alpha is None
    assert img.icc_profile is None
    red = to_uint8(img.rgb[4, 4]).astype(int)
    assert red[0] > 230 and red[1] < 25 and red[2] < 25


def test_cmyk_with_unusable_profile_falls_back_and_drops_it(tmp_path: Path) -> None:
    # An RGB profile on CMYK pixels cannot build a transform: naive conversion.
    src = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(src, icc_profile=SRGB_ICC)

    img = load_image(src)
    assert img.icc_profile is None
    assert to_uint8(img.rgb[0, 0])[0] > 230


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16bit_grayscale_round_trips_with_full_precision(tmp_path: Path, ext: str) -> None:
    values = (np.arange(7 * 9, dtype=np.uint16).reshape(7, 9) * 1000 + 3).astype(np.uint16)
    assert np.any(values % 257 != 0)  # not representable in 8 bits
    src = tmp_path / f"g16{ext}"
    Image.frombytes("I;16", (9, 7), values.astype("<u2").tobytes()).save(src)

    img = load_image(src)
    assert img.grayscale and img.bit_depth == 16
    back16 = np.round(img.rgb[..., 1] * 65535).astype(np.uint16)
    np.testing.assert_array_equal(back16, values)

    out = tmp_path / f"out{ext}"
    save_image(out, img)
    with Image.open(out) as back:
        assert back.mode.startswith("I;16")
        np.testing.assert_array_equal(np.asarray(back).astype(np.uint16), values)


def _png_rgb16(path: Path, values: np.ndarray) -> None:
    """Write a 16-bit RGB PNG by hand (Pillow cannot create one)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    h, w, _ = values.shape
    big = values.astype(">u2")
    raw = b"".join(b"\x00" + big[y].tobytes() for y in range(h))
    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def test_16bit_rgb_png_loads_as_8bit(tmp_path: Path) -> None:
    # Documented limitation: Pillow has no 16-bit colour mode and keeps the high byte.
    values = (np.arange(2 * 3 * 3).reshape(2, 3, 3) * 3001 + 7).astype(np.uint16)
    src = tmp_path / "rgb16.png"
    _png_rgb16(src, values)

    img = load_image(src)
    assert img.bit_depth == 8 and not img.grayscale
    np.testing.assert_array_equal(to_uint8(img.rgb), (values >> 8).astype(np.uint8))


def test_32bit_int_tiff_is_clipped_to_16bit_range(tmp_path: Path) -> None:
    src = tmp_path / "i.tif"
    Image.fromarray(np.array([[0, 70000, -5, 300]], np.int32)).save(src)

    img = load_image(src)
    assert img.bit_depth == 16 and img.grayscale
    np.testing.assert_allclose(img.rgb[0, :, 0] * 65535, [0, 65535, 0, 300], atol=1e-2)


def test_lab_tiff_is_converted_to_srgb(tmp_path: Path) -> None:
    src = tmp_path / "lab.tif"
    Image.new("LAB", (4, 4), (128, 128, 128)).save(src)  # L=50%, a=b=0: mid gray

    img = load_image(src)
    r, g, b = to_uint8(img.rgb[0, 0]).astype(int)
    assert r == g == b and 110 < r < 130


def test_mpo_loads_first_frame_as_jpeg(tmp_path: Path) -> None:
    src = tmp_path / "phone.mpo"
    first, second = Image.new("RGB", (8, 6), (255, 0, 0)), Image.new("RGB", (8, 6), (0, 0, 255))
    first.save(src, format="MPO", save_all=True, append_images=[second])

    img = load_image(src)
    assert img.source_format == "JPEG" and img.size == (8, 6)
    r, g, b = to_uint8(img.rgb[0, 0]).astype(int)
    assert r > 240 and g < 15 and b < 15


def test_16bit_grayscale_saved_as_jpeg_is_8bit(tmp_path: Path) -> None:
    img = ImageData(rgb=np.full((4, 4, 3), 0.5, np.float32), bit_depth=16, grayscale=True)
    out = tmp_path / "g.jpg"
    save_image(out, img)
    with Image.open(out) as back:
        assert back.mode == "L"


def test_float_tiff_loads(tmp_path: Path) -> None:
    values = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    src = tmp_path / "f.tif"
    Image.frombytes("F", (4, 3), values.tobytes()).save(src)

    img = load_image(src)
    assert img.grayscale
    np.testing.assert_allclose(img.rgb[..., 0], values, atol=1e-6)


def test_grayscale_webp_saves_as_colour(tmp_path: Path) -> None:
    # WebP has no gray mode; an RGB profile then fits the RGB data written.
    img = ImageData(rgb=np.full((4, 4, 3), 0.25, np.float32), grayscale=True, icc_profile=SRGB_ICC)
    out = tmp_path / "g.webp"
    save_image(out, img, quality=100)
    with Image.open(out) as back:
        assert back.mode == "RGB"
        assert back.info.get("icc_profile") == SRGB_ICC
        assert np.asarray(back)[0, 0].tolist() == [64, 64, 64]


# --------------------------------------------------------------------------- #
# Metadata
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_orientation_is_applied_and_reset(tmp_path: Path, orientation: int) -> None:
    # Stored 40 wide x 20 high, white marker in the stored top-left corner.
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:8, :8] = 255
    src = tmp_path / "rot.jpg"
    Image.fromarray(stored).save(src, exif=_exif(orientation=orientation), quality=95)

    img = load_image(src)
    assert (img.width, img.height) == (20, 40)
    marker = to_uint8(img.rgb[..., 0]) > 128
    ys, xs = np.nonzero(marker)
    # 6 = rotate 90 clockwise for display: top-left goes to top-right.
    # 8 = rotate 90 counter-clockwise: top-left goes to bottom-left.
    if orientation == 6:
        assert ys.max() < 10 and xs.min() >= 10
    else:
        assert ys.min() >= 30 and xs.max() < 10

    assert img.exif is not None
    parsed = Image.Exif()
    parsed.load(img.exif)
    assert parsed[ORIENTATION] == 1
    assert parsed[MAKE] == "sr-desk-test"

    # Saved output must not be rotated a second time by viewers.
    out = tmp_path / "out.jpg"
    save_image(out, img)
    again = load_image(out)
    assert (again.width, again.height) == (20, 40)


def test_exif_without_orientation_is_kept_byte_for_byte(tmp_path: Path) -> None:
    src = tmp_path / "plain.jpg"
    exif = _exif()
    Image.new("RGB", (4, 4)).save(src, exif=exif)
    assert load_image(src).exif == exif


@pytest.mark.parametrize("ext", [".png", ".jpg", ".webp", ".tif"])
def test_icc_and_exif_are_carried_to_output(tmp_path: Path, ext: str) -> None:
    src = tmp_path / "src.png"
    Image.fromarray(_rng_u8(8, 8, 3)).save(src, icc_profile=SRGB_ICC, exif=_exif())
    img = load_image(src)
    assert img.icc_profile == SRGB_ICC
    assert img.exif is not None

    out = tmp_path / f"out{ext}"
    save_image(out, img)
    with Image.open(out) as back:
        back.load()
        assert back.info.get("icc_profile") == SRGB_ICC
        assert back.getexif().get(MAKE) == "sr-desk-test"

    # And through load_image again (TIFF's IFD layout tags must not leak in).
    reloaded = load_image(out)
    assert reloaded.icc_profile == SRGB_ICC
    assert reloaded.exif is not None
    parsed = Image.Exif()
    parsed.load(reloaded.exif)
    assert parsed[MAKE] == "sr-desk-test"
    assert 256 not in parsed and 273 not in parsed  # ImageWidth, StripOffsets


def test_icc_profile_of_wrong_colour_space_is_not_written(tmp_path: Path) -> None:
    img = ImageData(rgb=np.zeros((4, 4, 3), np.float32), grayscale=True, icc_profile=SRGB_ICC)
    out = tmp_path / "g.png"
    save_image(out, img)
    with Image.open(out) as back:
        assert back.mode == "L"
        assert "icc_profile" not in back.info


@pytest.mark.parametrize("ext", [".png", ".jpg", ".tif"])
def test_dpi_is_carried(tmp_path: Path, ext: str) -> None:
    img = ImageData(rgb=np.zeros((4, 4, 3), np.float32), dpi=(300.0, 300.0))
    out = tmp_path / f"d{ext}"
    save_image(out, img)
    dpi = load_image(out).dpi
    assert dpi is not None and dpi[0] == pytest.approx(300, abs=0.01)


# --------------------------------------------------------------------------- #
# Saving
# --------------------------------------------------------------------------- #


def test_jpeg_save_flattens_alpha_over_white(tmp_path: Path) -> None:
    rgb = np.zeros((16, 16, 3), np.float32)
    alpha = np.zeros((16, 16), np.float32)
    alpha[:, 8:] = 1.0
    out = tmp_path / "flat.jpg"
    save_image(out, ImageData(rgb=rgb, alpha=alpha))
    with Image.open(out) as back:
        assert back.mode == "RGB"
        arr = np.asarray(back).astype(int)
    assert arr[8, 2].min() > 245  # transparent black -> white
    assert arr[8, 13].max() < 10  # opaque black stays black


@pytest.mark.parametrize("ext", [".webp", ".tif"])
def test_alpha_kept_in_webp_and_tiff(tmp_path: Path, ext: str) -> None:
    pixels = _rng_u8(8, 8, 4, seed=3)
    img = ImageData(rgb=pixels[..., :3] / 255.0, alpha=pixels[..., 3] / 255.0)
    out = tmp_path / f"a{ext}"
    save_image(out, img, quality=100)
    with Image.open(out) as back:
        assert back.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(back)[..., 3], pixels[..., 3])


def test_webp_quality_100_is_lossless(tmp_path: Path) -> None:
    pixels = _rng_u8(16, 16, 3, seed=4)
    out = tmp_path / "l.webp"
    save_image(out, ImageData(rgb=pixels / 255.0), quality=100)
    with Image.open(out) as back:
        np.testing.assert_array_equal(np.asarray(back.convert("RGB")), pixels)


def test_jpeg_quality_changes_size(tmp_path: Path) -> None:
    img = ImageData(rgb=_rng_u8(64, 64, 3, seed=5) / 255.0)
    save_image(tmp_path / "lo.jpg", img, quality=20)
    save_image(tmp_path / "hi.jpg", img, quality=95)
    assert (tmp_path / "lo.jpg").stat().st_size < (tmp_path / "hi.jpg").stat().st_size


def test_explicit_format_overrides_extension(tmp_path: Path) -> None:
    out = tmp_path / "noext"
    save_image(out, ImageData(rgb=np.zeros((2, 2, 3), np.float32)), format="jpg")
    with Image.open(out) as back:
        assert back.format == "JPEG"


def test_to_uint8_rounds_and_clips() -> None:
    values = np.array([-0.5, 0.0, 0.5 / 255, 0.4 / 255, 1.0, 7.0, np.nan], np.float32)
    assert to_uint8(values).tolist() == [0, 0, 1, 0, 255, 255, 0]


def test_quantising_band_by_band_equals_quantising_at_once(monkeypatch) -> None:
    """Large results are quantised a band of rows at a time (no float copy of the whole): the same bytes."""
    from sr_desk.core import imageio

    values = np.random.default_rng(0).normal(0.5, 0.6, (50, 9, 3)).astype(np.float32)
    values[3, 4, 1], values[20, 0, 2] = np.nan, -np.inf
    at_once = to_uint8(values)
    monkeypatch.setattr(imageio, "QUANTISE_ROWS", 7)  # 50 rows: seven full bands and a short one
    np.testing.assert_array_equal(to_uint8(values), at_once)
    np.testing.assert_array_equal(imageio._to_uint16(values), np.clip(np.nan_to_num(values * 65535 + 0.5, nan=0), 0, 65535).astype("<u2"))


def test_with_pixels_keeps_metadata() -> None:
    img = ImageData(
        rgb=np.zeros((2, 3, 3), np.float32), icc_profile=b"x", exif=b"y", dpi=(72.0, 72.0)
    )
    big = img.with_pixels(np.ones((4, 6, 3), np.float32), None)
    assert big.size == (6, 4)
    assert (big.icc_profile, big.exif, big.dpi) == (b"x", b"y", (72.0, 72.0))
    assert img.size == (3, 2)
    with pytest.raises(ValueError):
        img.with_pixels(np.ones((4, 6, 3), np.float32), np.ones((2, 2), np.float32))


def test_unsupported_save_extension(tmp_path: Path) -> None:
    out = tmp_path / "x.bmp"
    with pytest.raises(ImageWriteError) as err:
        save_image(out, ImageData(rgb=np.zeros((2, 2, 3), np.float32)))
    assert _one_line(err) == (
        "cannot save 'x.bmp': unsupported format; use .png, .jpg, .webp or .tiff"
    )
    assert not out.exists()


def test_save_into_missing_folder(tmp_path: Path) -> None:
    out = tmp_path / "nope" / "x.png"
    with pytest.raises(ImageWriteError) as err:
        save_image(out, ImageData(rgb=np.zeros((2, 2, 3), np.float32)))
    text = _one_line(err)
    assert "x.png" in text and "does not exist" in text


def test_save_onto_folder_fails_cleanly(tmp_path: Path) -> None:
    target = tmp_path / "dir.png"
    target.mkdir()
    with pytest.raises(ImageWriteError) as err:
        save_image(target, ImageData(rgb=np.zeros((2, 2, 3), np.float32)))
    assert "dir.png" in _one_line(err)
    assert target.is_dir() and _no_temp_files(tmp_path)


def test_failed_encode_leaves_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "keep.png"
    target.write_bytes(b"old contents")

    def broken_save(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        fp.write(b"half an image")  # type: ignore[attr-defined]
        raise OSError("encoder error -2")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(ImageWriteError) as err:
        save_image(target, ImageData(rgb=np.zeros((2, 2, 3), np.float32)))
    assert "keep.png" in _one_line(err)
    assert target.read_bytes() == b"old contents"
    assert _no_temp_files(tmp_path)


# --------------------------------------------------------------------------- #
# Reading errors
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_truncated_file(tmp_path: Path, ext: str) -> None:
    path = tmp_path / f"cut{ext}"
    Image.fromarray(_rng_u8(64, 64, 3)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])

    with pytest.raises(ImageReadError) as err:
        load_image(path)
    text = _one_line(err)
    assert f"cut{ext}" in text and "truncated or corrupt" in text


def test_header_only_fragment_is_corrupt_not_foreign(tmp_path: Path) -> None:
    path = tmp_path / "stub.png"
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, "PNG")
    path.write_bytes(buf.getvalue()[:12])
    with pytest.raises(ImageReadError) as err:
        load_image(path)
    assert "truncated or corrupt" in _one_line(err)


def test_garbage_is_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "junk.png"
    path.write_bytes(b"this is not an image at all, just some text\n" * 20)
    with pytest.raises(ImageReadError) as err:
        load_image(path)
    text = _one_line(err)
    assert text.startswith("'junk.png' is not an image sr-desk can read")


def test_format_outside_the_allow_list_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "icon.png"
    Image.new("RGB", (16, 16)).save(path, format="ICO")
    with pytest.raises(ImageReadError) as err:
        load_image(path)
    assert "not an image sr-desk can read" in _one_line(err)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError) as err:
        load_image(tmp_path / "x.png")
    assert _one_line(err) == "cannot open 'x.png': no such file"


def test_folder(tmp_path: Path) -> None:
    folder = tmp_path / "pics.png"
    folder.mkdir()
    with pytest.raises(ImageReadError) as err:
        load_image(folder)
    assert "folder" in _one_line(err)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageReadError) as err:
        load_image(path)
    assert _one_line(err) == "cannot open 'empty.jpg': the file is empty"


def test_newline_in_file_name_stays_one_line(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError) as err:
        load_image(tmp_path / "a\nb.png")
    assert "a?b.png" in _one_line(err)


def test_sr_desk_error_str_is_one_line() -> None:
    assert str(SrDeskError("first\nsecond\r\nthird")) == "first second third"


def test_max_pixels_refuses_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big.png"
    Image.new("RGB", (200, 200)).save(path)

    def must_not_decode(self: Image.Image) -> None:
        raise AssertionError("pixels decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", must_not_decode)
    with pytest.raises(ImageReadError) as err:
        load_image(path, max_pixels=1000)
    text = _one_line(err)
    assert "big.png" in text and "200x200" in text and "1000 pixels" in text and "limit" in text


def test_max_pixels_default_is_module_constant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big.png"
    Image.new("RGB", (200, 200)).save(path)
    monkeypatch.setattr(imageio, "MAX_PIXELS", 39_999)
    with pytest.raises(ImageReadError):
        load_image(path)
    monkeypatch.setattr(imageio, "MAX_PIXELS", 40_000)
    assert load_image(path).size == (200, 200)


@pytest.mark.parametrize("pillow_limit", [30_000, 1_000])  # warning level, error level
def test_pillow_decompression_bomb_check_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pillow_limit: int
) -> None:
    path = tmp_path / "bomb.png"
    Image.new("RGB", (200, 200)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pillow_limit)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ImageReadError) as err:
            load_image(path)
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    text = _one_line(err)
    assert "bomb.png" in text and "limit" in text


# --------------------------------------------------------------------------- #
# atomic_write
# --------------------------------------------------------------------------- #


def test_atomic_write_failure_leaves_target_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "data.bin"
    target.write_bytes(b"original")

    def write(f: io.BufferedIOBase) -> None:
        f.write(b"partial new conte")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        atomic_write(target, write)  # type: ignore[arg-type]
    assert target.read_bytes() == b"original"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.bin"]


def test_atomic_write_bytes_creates_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    atomic_write_bytes(target, b"one")
    assert target.read_bytes() == b"one"
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")
def test_atomic_write_keeps_permissions(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    target.write_bytes(b"old")
    os.chmod(target, 0o640)
    atomic_write_bytes(target, b"new")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640

    fresh = tmp_path / "g.txt"
    atomic_write_bytes(fresh, b"x")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~umask


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges")
def test_atomic_write_follows_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real.txt"
    real.write_bytes(b"old")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    atomic_write_bytes(link, b"new")
    assert link.is_symlink() and real.read_bytes() == b"new"


def _camera_exif_with_sub_ifds() -> bytes:
    from PIL import Image as PILImage

    exif = PILImage.Exif()
    exif[0x010F] = "Camera"
    exif.get_ifd(0x8825)[1] = "N"  # GPS
    exif.get_ifd(0x8825)[2] = (1.0, 2.0, 3.0)
    exif.get_ifd(0x8769)[0x9003] = "2020:01:01 00:00:00"  # Exif sub-IFD
    return b"Exif\x00\x00" + exif.tobytes()


def test_tiff_output_of_a_camera_photo_keeps_the_pixels_and_what_exif_it_can(tmp_path, caplog):
    """Issue 18: EXIF with Exif or GPS sub-IFDs crashed TIFF output after the whole upscale."""
    from PIL import Image as PILImage

    image = ImageData(rgb=np.full((8, 8, 3), 0.5, np.float32), exif=_camera_exif_with_sub_ifds())
    save_image(tmp_path / "photo.tiff", image)
    back = load_image(tmp_path / "photo.tiff")
    assert back.size == (8, 8) and back.exif is not None
    exif = PILImage.Exif()
    exif.load(back.exif)
    assert exif[0x010F] == "Camera"
    assert "without the Exif and GPS sub-IFDs" in caplog.text


def test_output_paths_are_checked_before_any_work(tmp_path):
    from sr_desk.core.imageio import check_output_path

    (tmp_path / "file").write_text("x")
    with pytest.raises(ImageWriteError, match="unsupported format"):
        check_output_path(tmp_path / "out.gif")
    with pytest.raises(ImageWriteError, match="is a file, not a folder"):
        check_output_path(tmp_path / "file" / "deeper" / "out.png")
    with pytest.raises(ImageWriteError, match="it is a folder"):
        check_output_path(tmp_path)
    with pytest.raises(ImageWriteError, match="longer than 255 bytes"):
        check_output_path(tmp_path / ("x" * 252 + ".png"))
    check_output_path(tmp_path / "new" / "folder" / "out.png")  # created when written


def test_an_output_under_a_folder_that_cannot_be_written_is_refused_before_any_work(tmp_path, monkeypatch):
    """Issue 18: a new folder on a read-only mount failed with a traceback after the whole upscale."""
    from sr_desk.core.imageio import check_output_path

    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    # What a read-only mount answers (root passes chmod, so the mount is imitated): access() says no.
    monkeypatch.setattr(os, "access", lambda path, mode: False if str(path) == str(locked) else real_access(path, mode))
    with pytest.raises(ImageWriteError, match="cannot be written"):
        check_output_path(locked / "new" / "out.png")
    check_output_path(tmp_path / "out.png")


def test_a_name_of_255_bytes_can_be_written(tmp_path):
    """Issue 18: names of 242-255 bytes were refused because the temporary name was longer."""
    path = tmp_path / ("x" * 251 + ".png")
    save_image(path, ImageData(rgb=np.zeros((4, 4, 3), np.float32)))
    assert load_image(path).size == (4, 4) and [p.name for p in tmp_path.iterdir()] == [path.name]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_neither_read_forever_nor_replaced(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(ImageReadError, match=r"^cannot open 'pipe.png': it is a pipe \(FIFO\), not a file$"):
        load_image(fifo)
    with pytest.raises(ImageWriteError, match=r"^cannot save 'pipe.png': it is a pipe \(FIFO\), not a file$"):
        save_image(fifo, ImageData(rgb=np.zeros((4, 4, 3), np.float32)))
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_broken_link_or_a_device_as_input_says_what_it_is(tmp_path):
    """Issue 30: every path goes through one check (sr_desk.core.special_files) before it is opened."""
    (tmp_path / "gone.png").symlink_to(tmp_path / "nowhere.png")
    with pytest.raises(ImageReadError, match=r"^cannot open 'gone.png': it is a broken link \(to '.*nowhere.png'"):
        load_image(tmp_path / "gone.png")
    if os.path.exists("/dev/zero"):
        with pytest.raises(ImageReadError, match=r"^cannot open 'zero': it is a device, not a file$"):
            load_image("/dev/zero")


def test_temporary_files_of_a_killed_process_are_removed_at_the_next_start(tmp_path):
    """Issue 18: a process killed while saving left a hidden temporary file (up to 65 MB) behind."""
    from sr_desk.core import atomic

    journal = tmp_path / "cache" / "pending-writes.txt"
    folder = tmp_path / "pictures"
    folder.mkdir()
    seen_while_writing = []
    atomic.set_journal(journal)
    try:
        atomic_write(folder / "a.png", lambda f: seen_while_writing.append(journal.read_text()))
        assert ".a.png." in seen_while_writing[0] and journal.read_text() == ""  # listed only while it exists
    finally:
        atomic.set_journal(None)
    stale, fresh = folder / ".photo.png.k1ll3d.tmp", folder / ".other.png.busy.tmp"
    stale.write_bytes(b"x" * 1000)
    fresh.write_bytes(b"y")
    os.utime(stale, (0, 0))  # a dead process's file; the fresh one may be another sr-desk's, still writing
    journal.write_text(f"{stale}\n{fresh}\n{folder / 'a.png'}\n")
    assert atomic.start_journal(journal) == [str(stale)]
    atomic.set_journal(None)
    assert not stale.exists() and fresh.exists() and (folder / "a.png").exists()  # never anything but our temps
    assert journal.read_text() == f"{fresh}\n"


def test_a_palette_png_without_its_palette_is_a_one_line_error(tmp_path: Path) -> None:
    """Pillow asserts on it (AssertionError); the user gets the loader's own message."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 4, 4, 8, 3, 0, 0, 0)  # 8-bit palette, no PLTE chunk follows
    pixels = zlib.compress(b"".join(b"\x00" + bytes([0, 1, 2, 3]) for _ in range(4)))
    path = tmp_path / "no-plte.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))
    with pytest.raises(ImageReadError, match="palette image without its palette"):
        load_image(path)


def test_pillow_warnings_about_a_damaged_file_become_one_logged_line(tmp_path, caplog, recwarn):
    """Issue 18: a TIFF tag pointing past the end printed four lines of Pillow warnings on stderr."""
    import logging
    import struct

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), 90).save(buffer, format="TIFF")
    data = bytearray(buffer.getvalue())
    ifd = struct.unpack("<I", data[4:8])[0]
    last = ifd + 2 + (struct.unpack("<H", data[ifd : ifd + 2])[0] - 1) * 12
    data[last + 4 : last + 8] = struct.pack("<I", 100_000)  # the last tag claims 100,000 values
    path = tmp_path / "damaged.tif"
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="sr_desk.core.imageio"):
        assert load_image(path).size == (8, 8)
    assert len(recwarn) == 0  # nothing reaches Python's warning printer
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "damaged.tif" in lines[0] and "Skipping tag" in lines[0] and "\n" not in lines[0]


# --------------------------------------------------------------------------- #
# Issue 30 item 9: what a format cannot hold is refused before the work
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(("name", "size", "limit"), [
    ("big.webp", (16384, 10), "WebP holds at most 16383 pixels a side"),
    ("big.jpg", (10, 65501), "JPEG holds at most 65500 pixels a side"),
    ("big.png", (2**31, 1), "PNG holds at most 2147483647 pixels a side"),
    ("big.tiff", (40_000, 40_000), "a TIFF file holds at most 4 GiB"),
])
def test_a_size_the_format_cannot_hold_is_refused_in_one_line(tmp_path, name, size, limit):
    from sr_desk.core.imageio import check_output_size

    with pytest.raises(ImageWriteError) as err:
        check_output_size(tmp_path / name, *size)
    message = str(err.value)
    assert message.startswith(f"cannot save '{name}': {limit}, and the result is {size[0]}x{size[1]}; ")
    advice = {"big.webp": "save it as .png or .tiff", "big.jpg": "save it as .png or .tiff",
              "big.png": "no format sr-desk writes holds it", "big.tiff": "save it as .png"}[name]
    assert message.endswith(advice)


def test_the_largest_size_each_format_holds_passes(tmp_path):
    from sr_desk.core.imageio import check_output_size

    check_output_size(tmp_path / "a.webp", 16383, 16383)
    check_output_size(tmp_path / "a.jpg", 65500, 65500)
    check_output_size(tmp_path / "a.tiff", 30_000, 30_000)  # RGBA uncompressed: 3.6 GB
    check_output_size(tmp_path / "a.tiff", 40_000, 40_000, bytes_per_pixel=2)
    check_output_size(tmp_path / "a.png", 2**31 - 1, 1)
    with pytest.raises(ImageWriteError, match="WebP holds at most"):
        check_output_size(tmp_path / "a.out", 20_000, 20, "webp")  # the format named, as check_output_path takes it


def test_a_jpeg_too_wide_for_libjpeg_is_refused_by_save_image_itself(tmp_path):
    """libjpeg stops at 65500 pixels a side with "broken data stream"; save_image says the limit instead."""
    wide = ImageData(rgb=np.zeros((1, 65501, 3), np.float32))
    with pytest.raises(ImageWriteError, match=r"^cannot save 'wide.jpg': JPEG holds at most 65500 pixels a side"):
        save_image(tmp_path / "wide.jpg", wide)
    assert not list(tmp_path.iterdir())


def test_a_streamed_webp_too_large_for_the_format_is_refused_before_any_row_is_made(tmp_path):
    """Issue 30: a 16,000 px WebP failed only after the whole upscale."""
    from sr_desk.core.imageio import save_image_bands

    produced = []
    with pytest.raises(ImageWriteError, match="WebP holds at most 16383 pixels a side.*save it as .png or .tiff"):
        save_image_bands(tmp_path / "big.webp", ImageData(rgb=np.zeros((1, 1, 3), np.float32)), (16384, 8),
                         produced.append)
    assert produced == [] and not list(tmp_path.iterdir())


def test_webp_failures_reported_by_number_are_said_in_words(tmp_path):
    from sr_desk.core import imageio

    def overflow(f):
        raise ValueError("encoding error 6")

    with pytest.raises(ImageWriteError) as err:
        imageio._write_encoded(tmp_path / "big.webp", overflow)
    assert str(err.value).startswith("cannot save 'big.webp': the picture is too large and detailed for lossy WebP")
    assert "lossless WebP (quality 100)" in str(err.value)


# --------------------------------------------------------------------------- #
# Issue 30 item 9: libtiff's own lines on stderr become our one line
# --------------------------------------------------------------------------- #

_FULL_DISK_SAVE = """
import resource, signal, sys
import numpy as np
from sr_desk.core.errors import SrDeskError
from sr_desk.core.imageio import ImageData, save_image

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as on a full disk
rgb = np.random.default_rng(0).random((512, 512, 3), dtype=np.float32)  # deflate cannot shrink noise
resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
try:
    save_image(sys.argv[1], ImageData(rgb=rgb))
except SrDeskError as exc:
    print(exc, file=sys.stderr)
    sys.exit(1)
"""

_DAMAGED_LOAD = """
import sys
from sr_desk.core.errors import SrDeskError
from sr_desk.core.imageio import load_image

try:
    load_image(sys.argv[1])
except SrDeskError as exc:
    print(exc, file=sys.stderr)
    sys.exit(1)
"""


def _stderr_of(script: str, path: Path) -> tuple[int, list[str]]:
    import subprocess

    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=300)
    return done.returncode, done.stderr.splitlines()


@pytest.mark.skipif(not hasattr(os, "fstatvfs") or sys.platform == "win32", reason="needs RLIMIT_FSIZE")
def test_a_tiff_write_that_fails_in_libtiff_says_one_line_of_ours(tmp_path):
    """libtiff printed "TIFFAppendToStrip: Write error at scanline 84." and more to fd 2 before our line."""
    code, lines = _stderr_of(_FULL_DISK_SAVE, tmp_path / "out.tiff")
    assert code == 1
    assert lines == ["cannot save 'out.tiff': the file would be larger than this process may write "
                     "(its file size limit is 65536 bytes)"]
    assert not list(tmp_path.iterdir())


def test_a_damaged_tiff_says_one_line_of_ours(tmp_path):
    """libtiff printed "ZIPDecode: Decoding error at scanline 0, incorrect data check." before our line."""
    pixels = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    good = tmp_path / "good.tiff"
    Image.fromarray(pixels).save(good, compression="tiff_deflate")
    data = bytearray(good.read_bytes())
    for i in range(200, 2000, 7):  # inside the deflated strip: the header and the tags stay whole
        data[i] ^= 0x55
    (tmp_path / "bad.tiff").write_bytes(bytes(data))
    code, lines = _stderr_of(_DAMAGED_LOAD, tmp_path / "bad.tiff")
    assert code == 1
    assert len(lines) == 1 and lines[0].startswith("'bad.tiff' is truncated or corrupt"), lines


def test_library_lines_are_caught_and_everything_else_on_stderr_is_kept(capfd):
    """The capture takes fd 2 from the whole process: another thread's lines in that time must not be lost."""
    with imageio._library_messages() as said:
        os.write(2, b"TIFFAppendToStrip: Write error at scanline 84.\n")
        os.write(2, b"upscaling 50%\n")
        print("from Python", file=sys.stderr)
        os.write(2, b"_TIFFVSetField: out.tiff: Bad value 0 for \"ResolutionUnit\" tag.\n")
    assert said == ["TIFFAppendToStrip: Write error at scanline 84.",
                    "_TIFFVSetField: out.tiff: Bad value 0 for \"ResolutionUnit\" tag."]
    assert sorted(capfd.readouterr().err.splitlines()) == ["from Python", "upscaling 50%"]
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"  # fd 2 is back where it was


@pytest.mark.skipif(not hasattr(os, "fstatvfs"), reason="no statvfs here")
def test_a_tiff_write_on_a_full_disk_says_the_disk_is_full(tmp_path, monkeypatch):
    """libtiff says only "Write error" (then Pillow "encoder error -2"); the disk under the file says why."""
    full = os.statvfs_result((4096, 4096, 1000, 0, 0, 100, 0, 0, 0, 255))
    monkeypatch.setattr(os, "fstatvfs", lambda fd: full)
    with open(tmp_path / "x.tiff", "wb") as f:
        reason = imageio._tiff_write_reason(f, ["TIFFAppendToStrip: Write error at scanline 84."], OSError("-2"))
    assert reason == "the disk is full"


def test_a_damaged_lzw_tiff_is_refused_without_libtiffs_own_line(tmp_path, capfd):
    """libtiff names the file, not a function, in some lines ("tempfile.tif: Using code not yet in table.")."""
    buffer = io.BytesIO()
    Image.fromarray(np.arange(24 * 16, dtype=np.uint8).reshape(16, 24)).save(buffer, format="TIFF",
                                                                               compression="tiff_lzw")
    data = bytearray(buffer.getvalue())
    data[8] ^= 0xFF
    path = tmp_path / "lzw.tiff"
    path.write_bytes(bytes(data))
    try:
        load_image(path)
    except ImageReadError:
        pass
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""


def test_saving_damaged_exif_warns_in_one_logged_line_not_on_the_terminal(tmp_path, capfd, caplog):
    image = ImageData(rgb=np.full((1, 1, 3), 0.5, np.float32), exif=b"Exif\x00\x00II*\x00\x00\x00\x00\x00")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an escaping warning fails the test
        save_image(tmp_path / "r.tif", image)
    assert load_image(tmp_path / "r.tif").size == (1, 1)
    assert capfd.readouterr().err == ""
    assert [r.getMessage() for r in caplog.records if "Corrupt EXIF" in r.getMessage()]


def test_a_temporary_file_removed_mid_save_is_not_blamed_on_the_folder(tmp_path):
    def write_then_lose(f):
        f.write(b"half")
        os.unlink(f.name)  # another program (an old sr-desk's cleanup) removes it

    with pytest.raises(ImageWriteError) as refused:
        imageio._write_encoded(tmp_path / "out.png", write_then_lose)
    assert "removed by another program" in str(refused.value) and "does not exist" not in str(refused.value)
