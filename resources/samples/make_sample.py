"""Draws resources/samples/sample.png: a small synthetic landscape with fine detail.

The sample is generated rather than taken from a photo collection so that
it carries no third-party licence. Rerun with ``python resources/samples/make_sample.py``.
"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def draw_sample(width: int = 256, height: int = 192, seed: int = 7) -> Image.Image:
    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, height)[:, None, None]
    sky = (1 - y) * np.array([0.98, 0.62, 0.35]) + y * np.array([0.30, 0.35, 0.62])
    pixels = np.broadcast_to(sky, (height, width, 3)).copy()
    xs = np.arange(width)
    for layer, (base, amp, colour) in enumerate(
        [(0.55, 18, (0.35, 0.42, 0.55)), (0.68, 14, (0.22, 0.36, 0.30)), (0.82, 10, (0.14, 0.26, 0.16))]
    ):
        phase = rng.uniform(0, 6.28, 3)
        ridge = base * height + amp * (
            np.sin(xs / 23 + phase[0]) + 0.5 * np.sin(xs / 9 + phase[1]) + 0.25 * np.sin(xs / 4 + phase[2])
        )
        below = np.arange(height)[:, None] > ridge[None, :]
        texture = rng.normal(0, 0.035 + 0.01 * layer, (height, width, 1))
        pixels = np.where(below[..., None], np.clip(np.array(colour) + texture, 0, 1), pixels)
    image = Image.fromarray((pixels * 255 + 0.5).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.ellipse((168, 30, 204, 66), fill=(255, 236, 180))
    for i in range(9):  # a fence: thin high-contrast lines that bicubic blurs
        x = 20 + i * 9
        draw.line((x, 150, x, 178), fill=(245, 240, 230), width=1)
    draw.line((16, 156, 96, 156), fill=(245, 240, 230), width=1)
    draw.line((16, 170, 96, 170), fill=(245, 240, 230), width=1)
    font = ImageFont.load_default()
    draw.text((150, 160), "sr-desk", fill=(255, 255, 255), font=font)
    return image


if __name__ == "__main__":
    target = Path(__file__).with_name("sample.png")
    draw_sample().save(target, optimize=True)
    print(f"wrote {target}")
