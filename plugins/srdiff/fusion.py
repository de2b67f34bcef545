"""SRDiff content fusion (paper Algorithm 3, and a seamless blend): a donor's content into the selection.

A face dropped onto a face is first put where the base's face is: the
donor is warped so that its eyes land on the base's, its lower face
stretched when its mouth would land well off the base's, then registered
(:mod:`sr_desk.core.faces`); only its face region is brought in (not its
hair or background; on the region's rim only where both faces show skin),
and its tone and colour are moved to the base face's.
Then it is cloned in seamlessly and SRDiff redraws the region. A donor the
user placed on the canvas stays where it was put.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from sr_desk.api import Context, ImageInput, Request
from sr_desk.core.blend import poisson_blend
from sr_desk.core.color import match_colors, match_tone
from sr_desk.core.errors import SrDeskError
from sr_desk.core.faces import (
    REGISTRATION_EYE_DISTANCE,
    Face,
    align_to,
    find_face,
    lower_face_stretch,
    moved,
    own_face,
    refine,
    shifted,
    similarity,
    surroundings,
)
from sr_desk.core.masks import composite, mask_bbox
from sr_desk.core.placement import cover_box, place_image
from sr_desk.diffusion.imresize import imresize
from sr_desk.diffusion.noise import SeededNoise
from sr_desk.diffusion.runtime import image_to_tensor
from sr_desk_plugins.srdiff import DEFAULT_STRENGTH, FUSION_MODES
from sr_desk_plugins.srdiff.methods import LoadedModel, condition, denoise, loaded_model, to_image
from sr_desk_plugins.srdiff.network import pad_to_multiple

NO_SELECTION = (
    "content fusion works on a selection: select the region to fuse into first "
    "(on the command line: --region X,Y,W,H)"
)


#: The feather of the donor's face region, as a fraction of its eye distance.
FACE_FEATHER = 0.08
#: The largest difference of light between base and an aligned face (0-1) that the blend evens out at its edge.
EDGE_SHADING = 0.12


@dataclass(frozen=True)
class PlacedDonor:
    """The donor on the base's pixel grid, the part of it to bring in, and how it got there (for the status line)."""

    rgb: np.ndarray
    #: ``H x W`` in ``[0, 1]``: the donor's face region, feathered; None: the whole selection.
    region: np.ndarray | None = None
    note: str = ""


def place_donor(donor: ImageInput, base: np.ndarray, mask: np.ndarray) -> PlacedDonor:
    """Where the user placed the donor; else its face on the selection's face; else covering the selection.

    The editor's starting box (``ImageInput.fitted``) is not the user's
    choice: a face found in both images wins over it. A donor of the base's
    own size in which no face is found is taken as already aligned (an
    edited copy of the same photo, say).
    """
    h, w = base.shape[:2]
    if donor.placement is not None and not donor.fitted:
        return PlacedDonor(_placed(base, donor, donor.placement))
    aligned = _aligned_by_face(donor.rgb, base, mask)
    if isinstance(aligned, PlacedDonor):
        return aligned
    if donor.placement is not None:  # the editor's starting box, where the user sees the donor
        return PlacedDonor(_placed(base, donor, donor.placement), note=f"{aligned}: the donor lies where it is shown")
    if donor.size == (w, h):
        return PlacedDonor(donor.rgb, note=f"{aligned}: the donor is used as it lies")
    box = mask_bbox(mask, threshold=0.5) or mask_bbox(mask)
    if box is None:
        raise SrDeskError(NO_SELECTION)
    return PlacedDonor(_placed(base, donor, cover_box(donor.size, box)),
                       note=f"{aligned}: the donor covers the selection; drag it on the canvas to place it")


def _placed(base: np.ndarray, donor: ImageInput, placement: tuple[float, float, float, float]) -> np.ndarray:
    try:
        return place_image(base, donor.rgb, placement)
    except ValueError as exc:
        raise SrDeskError(f"{exc}: move the donor over the selection") from None


def _aligned_by_face(donor: np.ndarray, base: np.ndarray, mask: np.ndarray) -> PlacedDonor | str:
    """The donor warped so that its face lies on the face in the selection, or why it could not be."""
    base_face = find_face(base, within=mask > 0.5)
    if base_face is None:
        return "no face found in the selection"
    donor_face = find_face(donor)
    if donor_face is None:
        return "no face found in the donor"
    height, width = base.shape[:2]
    eyes = similarity(donor_face, base_face)
    matrix = refine(base, donor, lower_face_stretch(base, donor, eyes, base_face), base_face)
    rgb, inside = align_to(donor, matrix, (width, height))
    region = np.zeros((height, width), np.float32)
    x0, y0, x1, y1 = surroundings(base_face, (height, width))  # the region and its feather lie inside
    crop = (slice(y0, y1), slice(x0, x1))
    region[crop] = _feathered_face(moved(base_face, shifted(-x0, -y0)), inside[crop], base[crop], rgb[crop])
    return PlacedDonor(rgb, region, note="the donor's face is aligned to the selection's")


def _feathered_face(face: Face, inside: np.ndarray, base: np.ndarray, donor: np.ndarray) -> np.ndarray:
    """The face's own region where the donor lies (``inside``), feathered: on its rim only where both ``base`` and
    the aligned ``donor`` show skin (:func:`own_face`: not the donor's hair or glasses' arms, nor over the base's).
    Computed with the eyes at most ``REGISTRATION_EYE_DISTANCE`` apart and enlarged (it is smooth), so that a face
    filling a 24 MP photo costs what a small one does, not a blur some 80 px wide over millions of pixels."""
    height, width = inside.shape
    scale = min(1.0, REGISTRATION_EYE_DISTANCE / face.eye_distance)
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        inside, base, donor = (cv2.resize(np.ascontiguousarray(image), size, interpolation=cv2.INTER_AREA)
                               for image in (inside, base, donor))
        face = moved(face, shifted(0.0, 0.0, scale))
    region = gaussian_filter(own_face(face, base, donor) * inside, FACE_FEATHER * face.eye_distance)
    if scale < 1.0:
        region = np.clip(cv2.resize(region, (width, height), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
    return region.astype(np.float32)


def _fusion_window(mask: np.ndarray, multiple: int, margin: int = 16) -> tuple[int, int, int, int]:
    """A box around the selection, grown by a margin and to multiples of ``multiple``, inside the image."""
    box = mask_bbox(mask)
    if box is None:
        raise SrDeskError(NO_SELECTION)
    h, w = mask.shape
    x, y, bw, bh = box
    x0, y0 = max(0, x - margin), max(0, y - margin)
    x1, y1 = min(w, x + bw + margin), min(h, y + bh + margin)
    grow_w, grow_h = (-(x1 - x0)) % multiple, (-(y1 - y0)) % multiple
    x0, x1 = _grow(x0, x1, grow_w, w)
    y0, y1 = _grow(y0, y1, grow_h, h)
    return x0, y0, x1, y1


def _grow(lo: int, hi: int, extra: int, limit: int) -> tuple[int, int]:
    hi_extra = min(extra, limit - hi)
    lo_extra = min(extra - hi_extra, lo)
    return lo - lo_extra, hi + hi_extra


#: The paper's fusion model: the official SRDiff checkpoint trained on CelebA faces, at 8x.
FACE_PRIOR = "the official SRDiff CelebA checkpoint (8x)"


def trained_on_faces(loaded: LoadedModel) -> bool:
    """Whether the weights learnt faces: their metadata says so, or they are the official 8x ones (CelebA's)."""
    data = loaded.training_data.lower()
    return any(word in data for word in ("face", "celeba", "ffhq")) or (loaded.official_quirk
                                                                        and loaded.config.scale == 8)


def prior_note(loaded: LoadedModel) -> str:
    """Which prior redraws the face, with a warning when it has never seen one."""
    if trained_on_faces(loaded):
        return f"prior {loaded.source} (trained on faces)"
    return (f"prior {loaded.source} was not trained on faces; for faces give {FACE_PRIOR} with --weights or in "
            "Preferences")


#: The gain of the redraw's last fresh draw (blend mode) at strength 100. It is 1 (the sampler as trained) up to
#: the default strength, where the region's structure must still follow the donor, and rises above it, so that a
#: high strength redraws the region's grain from more noise (:func:`_regrained` then brings it to the photo's
#: amount) instead of keeping the blend's: the LR condition pins everything coarser.
TOP_REDRAW_GAIN = 4.5


def redraw_noise_gain(strength: int) -> float:
    """The last fresh draw's gain (``Sampler.sample(last_noise_gain=...)``) of a blend-mode redraw at ``strength``."""
    return float(np.interp(strength, (0, DEFAULT_STRENGTH, 100), (1.0, 1.0, TOP_REDRAW_GAIN)))


#: The blur that splits an image into its smooth part and its fine detail (grain, pores, sharp edges), in pixels.
DETAIL_BLUR = 1.5
#: The most :func:`match_sharpness` scales a donor's fine detail, either way.
MAX_SHARPNESS_GAIN = 3.0
#: Width of the band around the selection where the base's own fine detail is measured, in pixels.
SURROUNDING = 12


def match_sharpness(donor: np.ndarray, base: np.ndarray, mask: np.ndarray, amount: float) -> np.ndarray:
    """``donor`` with its fine detail scaled towards the amount the base shows around the selection.

    A donor softer than the photo stays soft under a redraw that keeps its
    structure, and a sharper one stays crisp: the fine detail (what a
    :data:`DETAIL_BLUR` blur takes away) inside the selection is scaled by
    ``(base's / donor's) ** amount``, its root-mean-square measured on a band
    just outside the selection and inside it. ``amount`` 0 leaves the donor
    as it is; 1 matches fully (within :data:`MAX_SHARPNESS_GAIN`).
    """
    inside = mask > 0.5
    band = (gaussian_filter(inside.astype(np.float32), SURROUNDING / 2) > 0.02) & (mask < 0.01)
    if amount <= 0 or inside.sum() < 16 or band.sum() < 16:
        return donor

    def detail(image: np.ndarray) -> np.ndarray:
        return image - gaussian_filter(image, (DETAIL_BLUR, DETAIL_BLUR, 0))

    donor_detail = detail(donor)
    base_rms = float(np.sqrt((detail(base)[band] ** 2).mean()))
    donor_rms = float(np.sqrt((donor_detail[inside] ** 2).mean()))
    gain = float(np.clip(base_rms / max(donor_rms, 1e-4), 1 / MAX_SHARPNESS_GAIN, MAX_SHARPNESS_GAIN)) ** amount
    return np.clip(donor + (gain - 1) * donor_detail, 0, 1).astype(np.float32)


#: How far around the fusion window the donor's tone and detail are measured and corrected: every pixel
#: :func:`match_sharpness` reads (its band reaches 1.4 ``SURROUNDING`` past the selection, its blur 2 more) lies
#: inside, so the crop computes what the whole image would, at the cost of the selection's size.
ANALYSIS_MARGIN = 4 * SURROUNDING


def _analysis_area(window: tuple[int, int, int, int], shape: tuple[int, int]) -> tuple[tuple[slice, slice],
                                                                                  tuple[slice, slice]]:
    """``window`` (``x0, y0, x1, y1``) grown by ``ANALYSIS_MARGIN`` inside an image of ``shape``, and where the
    window lies within it: the two slices' pairs."""
    x0, y0, x1, y1 = window
    height, width = shape
    ax0, ay0 = max(0, x0 - ANALYSIS_MARGIN), max(0, y0 - ANALYSIS_MARGIN)
    ax1, ay1 = min(width, x1 + ANALYSIS_MARGIN), min(height, y1 + ANALYSIS_MARGIN)
    return (slice(ay0, ay1), slice(ax0, ax1)), (slice(y0 - ay0, y1 - ay0), slice(x0 - ax0, x1 - ax0))


def _prepared_donor(placed: PlacedDonor, base: np.ndarray, mask: np.ndarray, window: tuple[int, int, int, int],
                    params: dict[str, Any], blend_mode: bool) -> np.ndarray:
    """The donor inside ``window`` (``x0, y0, x1, y1``) ready to blend: a face in the base face's tone, its fine
    detail moved towards the photo's (blend); or the paper mode's optional colour match."""
    area, inner = _analysis_area(window, mask.shape)
    donor, base, mask = placed.rgb[area], base[area], mask[area]
    if blend_mode:
        if placed.region is not None:  # a face takes the base face's tone and colour
            donor = match_tone(donor, base, mask > 0.5, mask > 0.5)
        donor = match_sharpness(donor, base, mask, int(params["strength"]) / 100)
    elif params.get("match_colors"):  # the blend matches tone and colour at the edge by itself
        donor = match_colors(donor, base, mask)
    return donor[inner]


def _regrained(redrawn: np.ndarray, base: np.ndarray, mask: np.ndarray, window: tuple[int, int, int, int],
               amount: float) -> np.ndarray:
    """The redrawn window with its fine detail moved towards the photo's around the selection (by ``amount``)."""
    area, inner = _analysis_area(window, mask.shape)
    whole = base[area].copy()
    whole[inner] = redrawn
    return match_sharpness(whole, base[area], mask[area], amount)[inner]


@torch.no_grad()
def fuse(request: Request, context: Context) -> np.ndarray:
    """Content fusion with a feathered mask: only the selection changes.

    ``blend`` (the default): the donor (aligned by its face, its tone moved
    to the base's) is cloned into the base with a gradient-domain blend (its
    features, the base's shading at the edge), and SRDiff re-synthesises the
    window from that fused image's own LR, SDEdit-style from step
    ``strength``: low keeps the blend as it is, high lets the model redraw
    its texture, and the redrawn region's fine detail is then moved towards
    the photo's around the selection by as much (:func:`_regrained`).
    ``paper``: the paper's Algorithm 3 (spec 5.2): the base's LR stays the
    condition and the donor enters only through the noised residual.
    """
    if request.mask is None:
        raise SrDeskError(NO_SELECTION)
    loaded = loaded_model(context)
    scale = loaded.config.scale
    base = request.image
    placed = place_donor(request.params["donor"], base, request.mask)
    context.report(0, 1, message="; ".join(filter(None, [f"Fusion: {placed.note}" if placed.note else "",
                                                          prior_note(loaded)])))
    mask = request.mask if placed.region is None else request.mask * placed.region
    blend_mode = request.params.get("mode", FUSION_MODES[0]) == FUSION_MODES[0]
    multiple = math.lcm(loaded.config.size_multiple, scale)
    x0, y0, x1, y1 = _fusion_window(mask, multiple)
    window = (slice(y0, y1), slice(x0, x1))
    base_w, mask_w = base[window], mask[window]
    donor_w = _prepared_donor(placed, base, mask, (x0, y0, x1, y1), request.params, blend_mode)
    # The edge's mismatch is evened out up to a shading difference: beyond it, it is other content (hair).
    max_difference = EDGE_SHADING if placed.region is not None else None
    if blend_mode:
        donor_w = poisson_blend(base_w, donor_w, mask_w, max_difference=max_difference)
    fused_w = composite(base_w, donor_w, mask_w)

    device = context.device
    # Padding is needed only when the image itself is smaller than one aligned window.
    hr_base, _ = pad_to_multiple(image_to_tensor(base_w, device), multiple, min_size=loaded.config.min_side)
    fused, _ = pad_to_multiple(image_to_tensor(fused_w, device), multiple, min_size=loaded.config.min_side)
    # The condition: the fused image's own LR (blend), or the base's (the paper's Algorithm 3).
    lr = torch.round(imresize(fused if blend_mode else hr_base, scale=1.0 / scale).clamp(0, 1) * 255) / 255
    cond = condition(loaded, lr, context=context, edge_margin=False)  # the window's margin keeps the U-Net's edge off the selection
    residual = ((fused * 2 - 1) - cond.up).mul(2).clamp(-1, 1)
    strength = int(request.params["strength"])
    start = strength - 1
    noise = SeededNoise(request.seed)
    x = loaded.schedule.q_sample(residual, start, noise(residual.shape, device=residual.device, dtype=residual.dtype))
    mask_t = torch.from_numpy(np.ascontiguousarray(mask_w)).to(device)[None, None]
    base_t = hr_base[..., : base_w.shape[0], : base_w.shape[1]] * 2 - 1

    def preview(sr: torch.Tensor) -> torch.Tensor:
        sr = sr[..., : base_w.shape[0], : base_w.shape[1]]
        return mask_t * sr + (1 - mask_t) * base_t

    box = (x0, y0, x1 - x0, y1 - y0)
    gain = redraw_noise_gain(strength) if blend_mode else 1.0
    out = denoise(loaded, cond, x, request.params, noise, context, start=start, preview=preview, preview_box=box,
                  last_noise_gain=gain)
    fused_hr = to_image((out.clamp(-1, 1) / 2 + cond.up)[..., : base_w.shape[0], : base_w.shape[1]])
    if blend_mode:
        fused_hr = _regrained(fused_hr, base, mask, (x0, y0, x1, y1), strength / 100)
    result = base.copy()
    result[window] = composite(base_w, fused_hr, mask_w)
    return result
