"""Training photos held on the training device, and batched random LR/HR patches cut from them.

The photo set is decoded once and stored as one flat ``uint8`` tensor on the
device (68 photos at 1536 px are about 400 MB). A batch of patches is then a
single gather: the photo, the corner and one of the eight flips/turns of every
patch are drawn as tensors, turned into flat indices and read at once, so no
Python runs per patch and nothing is copied from the host (Real-ESRGAN's
``feed_data`` does its degradations on the GPU the same way). The MATLAB
bicubic degradation follows on the same device, for the whole batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from sr_desk.training.data import degrade

__all__ = ["CropPlan", "PhotoBank", "dihedral_maps", "reference_crops"]

#: The eight symmetries of a square: (turns by 90 degrees counter-clockwise, then mirror left-right).
DIHEDRAL = tuple((turns, mirror) for mirror in (False, True) for turns in range(4))


def dihedral_maps(patch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Source ``(row, col)`` inside a ``patch``-sided crop for each output pixel, per symmetry: two ``(8, P, P)``.

    Entry ``k`` reproduces ``np.rot90(crop, turns)`` followed by ``crop[:, ::-1]``
    when ``mirror`` (``DIHEDRAL[k]``): it is built by applying those very numpy
    operations to a grid of coordinates, so the two cannot disagree.
    """
    rows, cols = np.meshgrid(np.arange(patch), np.arange(patch), indexing="ij")
    grid = np.stack([rows, cols], axis=-1)
    maps = []
    for turns, mirror in DIHEDRAL:
        g = np.rot90(grid, k=turns)
        if mirror:
            g = g[:, ::-1]
        maps.append(np.ascontiguousarray(g))
    stacked = torch.from_numpy(np.stack(maps)).long()
    return stacked[..., 0].contiguous(), stacked[..., 1].contiguous()


@dataclass(frozen=True)
class CropPlan:
    """The random choices behind one batch: photo, top-left corner and symmetry of every patch (``(B,)`` each)."""

    photo: torch.Tensor
    y: torch.Tensor
    x: torch.Tensor
    symmetry: torch.Tensor


class PhotoBank:
    """Photos on one device as a flat ``uint8`` buffer, cut into batches of random square patches.

    Photos smaller than ``patch`` on either side are left out. Photos are
    drawn in proportion to their area, so every pixel of the set is equally
    likely to be seen. All randomness comes from the ``generator`` passed to
    :meth:`plan`, which lives on the same device: a seed reproduces a run.
    """

    def __init__(self, photos: Sequence[np.ndarray], patch: int, scale: int, device: torch.device | str = "cpu"):
        if patch % scale:
            raise ValueError(f"patch {patch} must be a multiple of the scale {scale}")
        usable = [p for p in photos if p.ndim == 3 and p.shape[2] == 3 and min(p.shape[:2]) >= patch]
        if not usable:
            raise ValueError(f"no RGB photo is at least {patch} px on both sides")
        self.patch, self.scale = patch, scale
        self.device = torch.device(device)
        self.photos = usable
        sizes = [p.size for p in usable]
        self.flat = torch.empty(sum(sizes), dtype=torch.uint8, device=self.device)
        offset = 0
        for photo, size in zip(usable, sizes):
            self.flat[offset : offset + size] = torch.from_numpy(np.ascontiguousarray(photo).reshape(-1)).to(self.device)
            offset += size
        self.offsets = torch.tensor(np.cumsum([0, *sizes[:-1]]), dtype=torch.long, device=self.device)
        self.heights = torch.tensor([p.shape[0] for p in usable], dtype=torch.long, device=self.device)
        self.widths = torch.tensor([p.shape[1] for p in usable], dtype=torch.long, device=self.device)
        areas = torch.tensor([p.shape[0] * p.shape[1] for p in usable], dtype=torch.float64)
        self.weights = (areas / areas.sum()).to(self.device)
        rows, cols = dihedral_maps(patch)
        self.map_rows, self.map_cols = rows.to(self.device), cols.to(self.device)
        self.channel = torch.arange(3, device=self.device)

    @property
    def nbytes(self) -> int:
        return self.flat.numel()

    def plan(self, size: int, generator: torch.Generator) -> CropPlan:
        """Draw photo, corner and symmetry for ``size`` patches."""
        photo = torch.multinomial(self.weights, size, replacement=True, generator=generator)
        room_y = (self.heights[photo] - self.patch + 1).double()
        room_x = (self.widths[photo] - self.patch + 1).double()
        uniform = torch.rand(2, size, generator=generator, device=self.device, dtype=torch.float64)
        y = (uniform[0] * room_y).long()
        x = (uniform[1] * room_x).long()
        symmetry = torch.randint(0, len(DIHEDRAL), (size,), generator=generator, device=self.device)
        return CropPlan(photo=photo, y=y, x=x, symmetry=symmetry)

    def crops(self, plan: CropPlan) -> torch.Tensor:
        """The planned patches as ``uint8`` ``(B, P, P, 3)``: one gather, flips and turns included."""
        width = self.widths[plan.photo].view(-1, 1, 1)
        rows = plan.y.view(-1, 1, 1) + self.map_rows[plan.symmetry]
        cols = plan.x.view(-1, 1, 1) + self.map_cols[plan.symmetry]
        pixel = self.offsets[plan.photo].view(-1, 1, 1) + (rows * width + cols) * 3
        index = pixel.unsqueeze(-1) + self.channel
        return self.flat[index]

    def batch(self, size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``(lr, hr)`` float32 in ``[0, 1]``: ``(B, 3, P/s, P/s)`` and ``(B, 3, P, P)``, on the bank's device."""
        hr = self.crops(self.plan(size, generator)).permute(0, 3, 1, 2).float().div_(255)
        return degrade(hr, self.scale), hr


def reference_crops(photos: Sequence[np.ndarray], patch: int, plan: CropPlan) -> np.ndarray:
    """The same patches as :meth:`PhotoBank.crops`, cut one by one with numpy slicing (the test's reference)."""
    out = []
    for i, y, x, k in zip(*(t.cpu().tolist() for t in (plan.photo, plan.y, plan.x, plan.symmetry))):
        turns, mirror = DIHEDRAL[k]
        crop = np.rot90(photos[i][y : y + patch, x : x + patch], k=turns)
        out.append(crop[:, ::-1] if mirror else crop)
    return np.stack(out)
