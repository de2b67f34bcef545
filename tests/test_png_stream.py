"""The band-by-band PNG writer (sr_desk.core.png_stream): Pillow reads back exactly what was written."""

import io

import numpy as np
import pytest
from PIL import Image

from sr_desk.core import png_stream
from sr_desk.core.png_stream import PngStreamWriter


@pytest.mark.parametrize("channels, mode", [(3, "RGB"), (4, "RGBA"), (1, "L"), (2, "LA")])
def test_bands_of_any_height_read_back_exactly(channels, mode, monkeypatch):
    monkeypatch.setattr(png_stream, "FILTER_ROWS", 5)  # filter bands that cross the writer's bands
    monkeypatch.setattr(png_stream, "IDAT_BYTES", 100)  # many IDAT chunks
    rng = np.random.default_rng(channels)
    smooth = np.cumsum(rng.integers(0, 9, (37, 23, channels)), axis=1)  # photo-like: neighbours predict
    pixels = (smooth % 256).astype(np.uint8)
    if channels == 1:
        pixels = pixels[..., 0]
    buffer = io.BytesIO()
    writer = PngStreamWriter(buffer, 23, 37, channels)
    for start, stop in ((0, 1), (1, 12), (12, 13), (13, 37)):
        writer.write_rows(pixels[start:stop])
    writer.close()
    with Image.open(io.BytesIO(buffer.getvalue())) as im:
        assert im.mode == mode and im.size == (23, 37)
        np.testing.assert_array_equal(np.asarray(im), pixels)


def test_icc_exif_and_dpi_are_written():
    icc = bytes(range(256)) * 3
    exif = Image.Exif()
    exif[0x010F] = "sr-desk test camera"
    buffer = io.BytesIO()
    writer = PngStreamWriter(buffer, 4, 2, icc_profile=icc, exif=exif.tobytes(), dpi=(300.0, 300.0))
    writer.write_rows(np.zeros((2, 4, 3), np.uint8))
    writer.close()
    with Image.open(io.BytesIO(buffer.getvalue())) as im:
        assert im.info["icc_profile"] == icc
        assert round(im.info["dpi"][0]) == 300
        assert im.getexif()[0x010F] == "sr-desk test camera"


def test_photos_compress_like_pillow():
    rng = np.random.default_rng(0)
    pixels = (np.kron(rng.random((24, 32, 3)), np.ones((8, 8, 1))) * 255).astype(np.uint8)
    ours, theirs = io.BytesIO(), io.BytesIO()
    writer = PngStreamWriter(ours, 256, 192)
    writer.write_rows(pixels)
    writer.close()
    Image.fromarray(pixels).save(theirs, "PNG", compress_level=6)
    assert len(ours.getvalue()) < 1.5 * len(theirs.getvalue())


def test_wrong_rows_and_missing_rows_are_refused():
    writer = PngStreamWriter(io.BytesIO(), 4, 3)
    with pytest.raises(ValueError, match="uint8 rows"):
        writer.write_rows(np.zeros((1, 4, 3), np.float32))
    with pytest.raises(ValueError, match="uint8 rows"):
        writer.write_rows(np.zeros((1, 5, 3), np.uint8))
    writer.write_rows(np.zeros((2, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="more than 3 rows"):
        writer.write_rows(np.zeros((2, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="2 of 3 rows"):
        writer.close()
