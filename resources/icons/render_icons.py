"""Render the application icon ``sr-desk.svg`` to PNGs (and a Windows .ico).

Run it after editing the SVG::

    python resources/icons/render_icons.py

It writes ``sr-desk-<N>.png`` for every size in :data:`SIZES` (straight RGBA,
transparent outside the rounded square), ``sr-desk.ico`` (16-256 px, for
Windows) and ``sr-desk.icns`` (16-1024 px, for macOS) next to the SVG. It
needs only PySide6 (QtSvg) and Pillow, and no screen.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

# Qt must not look for a display: set before anything from Qt is imported.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QRectF, Qt  # noqa: E402
from PySide6.QtGui import QGuiApplication, QImage, QPainter  # noqa: E402
from PySide6.QtSvg import QSvgRenderer  # noqa: E402

HERE = Path(__file__).resolve().parent
SVG = HERE / "sr-desk.svg"
SIZES = (16, 32, 48, 64, 128, 256, 512)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
ICNS_SIZES = (16, 32, 64, 128, 256, 512, 1024)
#: Small sizes are drawn larger and scaled down: smoother edges than Qt's own anti-aliasing.
SUPERSAMPLE = 4


def render(renderer: QSvgRenderer, size: int) -> QImage:
    """The SVG drawn into a ``size`` x ``size`` image with a transparent background."""
    big = size * SUPERSAMPLE if size < 256 else size
    image = QImage(big, big, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    renderer.render(painter, QRectF(0, 0, big, big))
    painter.end()
    if big != size:
        image = image.scaled(
            size, size, Qt.AspectRatioMode.IgnoreAspectRatio, Qt.TransformationMode.SmoothTransformation
        )
    return image.convertToFormat(QImage.Format.Format_RGBA8888)


def png_bytes(image: QImage) -> bytes:
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buffer, "PNG"):
        raise RuntimeError("Qt could not encode a PNG")
    buffer.close()
    return bytes(data)


def main() -> int:
    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841 - keeps Qt alive
    renderer = QSvgRenderer(str(SVG))
    if not renderer.isValid():
        print(f"render_icons: cannot parse {SVG}", file=sys.stderr)
        return 1
    pngs: dict[int, bytes] = {}
    for size in sorted(set(SIZES) | set(ICO_SIZES) | set(ICNS_SIZES)):
        pngs[size] = png_bytes(render(renderer, size))
    for size in SIZES:
        path = HERE / f"sr-desk-{size}.png"
        path.write_bytes(pngs[size])
        print(path.relative_to(HERE.parent.parent))

    from PIL import Image

    def frames(sizes: tuple[int, ...]) -> tuple[Image.Image, list[Image.Image]]:
        # Pillow takes each entry from the image of that size when it is given
        # one: hand it the crisp renders instead of letting it shrink the largest.
        images = [Image.open(io.BytesIO(pngs[s])).convert("RGBA") for s in sorted(sizes)]
        return images[-1], images[:-1]

    ico = HERE / "sr-desk.ico"
    largest, rest = frames(ICO_SIZES)
    largest.save(ico, format="ICO", sizes=[(s, s) for s in ICO_SIZES], append_images=rest)
    print(ico.relative_to(HERE.parent.parent))
    icns = HERE / "sr-desk.icns"
    largest, rest = frames(ICNS_SIZES)
    largest.save(icns, format="ICNS", append_images=rest)
    print(icns.relative_to(HERE.parent.parent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
