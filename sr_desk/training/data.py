"""Training and evaluation data for SR models: a fixed hold-out split, photo loading, the degradation.

Photos are read at run time from a folder (``../shared/data/train`` or a
pack made by ``make-train-pack``); nothing here is committed. The hold-out
split depends on file names only, so every trainer and benchmark agrees on
which photos were never trained on. Training patches are cut on the device by
``sr_desk.training.photos``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sr_desk.diffusion.imresize import imresize

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")
HOLDOUT_FRACTION = 0.10


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _name_rank(path: Path) -> str:
    return hashlib.sha1(path.name.encode("utf-8")).hexdigest()


def split_holdout(paths: Sequence[Path], fraction: float = HOLDOUT_FRACTION) -> tuple[list[Path], list[Path]]:
    """``(train, validation)``: the ``fraction`` of names with the smallest SHA-1 are held out.

    Hashing names (rather than taking every tenth file) keeps a photo on the
    same side when others are added to the folder.
    """
    ranked = sorted(paths, key=_name_rank)
    count = max(1, math.ceil(len(ranked) * fraction)) if len(ranked) > 1 else 0
    held = set(ranked[:count])
    return [p for p in paths if p not in held], [p for p in paths if p in held]


def load_photo(path: Path, max_side: int | None = 1536) -> np.ndarray:
    """An RGB uint8 array, shrunk (Lanczos) so its longer side is at most ``max_side``.

    1536 px matches ``make-train-pack``, so CPU and GPU runs see the same pictures.
    """
    with Image.open(path) as im:
        im = im.convert("RGB")
        if max_side and max(im.size) > max_side:
            factor = max_side / max(im.size)
            im = im.resize((round(im.width * factor), round(im.height * factor)), Image.Resampling.LANCZOS)
        return np.asarray(im, dtype=np.uint8).copy()


def degrade(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """The LR image of an HR batch in ``[0, 1]``: MATLAB-style bicubic down, quantised to 8 bits like a real file."""
    lr = imresize(hr, scale=1.0 / scale)
    return torch.round(lr.clamp(0, 1) * 255) / 255


class ScaleMix:
    """The LR scales a training batch is drawn at, each with its share: one draw per batch from the run's
    generator, so that one network learns several scales (DoSSR, LDDPM)."""

    def __init__(self, shares: Mapping[int, float]):
        self.scales = torch.tensor(list(shares))
        self.shares = torch.tensor(list(shares.values()), dtype=torch.float32)

    def draw(self, generator: torch.Generator) -> int:
        index = torch.multinomial(self.shares.to(generator.device), 1, generator=generator)
        return int(self.scales[int(index)])

    def lr_for(self, lr: torch.Tensor, hr: torch.Tensor, native: int, generator: torch.Generator) -> torch.Tensor:
        """The batch's LR at a drawn scale: ``lr`` itself where that is ``native`` (the batch's own), else ``hr``
        degraded to it."""
        scale = self.draw(generator)
        return lr if scale == native else degrade(hr, scale)


def centre_crops(photos: Sequence[np.ndarray], size: int, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One fixed central HR crop per photo (and its LR): a deterministic validation batch.

    The crop side is ``size``, or the smallest photo's side when that is
    smaller, rounded down to a multiple of 8 and of the scale.
    """
    if not photos:
        raise ValueError("no photos to crop")
    multiple = math.lcm(8, scale)
    side = min(size, *(min(p.shape[:2]) for p in photos))
    side -= side % multiple
    if side < multiple:
        raise ValueError(f"photos are too small for {multiple}-pixel validation crops")
    crops = []
    for photo in photos:
        h, w = photo.shape[:2]
        y, x = (h - side) // 2, (w - side) // 2
        crops.append(photo[y : y + side, x : x + side])
    hr = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255
    return degrade(hr, scale), hr
