"""Face finding and alignment for content fusion (sr_desk.core.faces), and tone matching (sr_desk.core.color)."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from sr_desk.core.color import match_tone
from sr_desk.core.faces import (Face, align_to, eye_distance_after, face_mask, face_placement, find_face,
                                lower_face_stretch, own_face, refine, similarity)

FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"
needs_faces = pytest.mark.skipif(not (FACES / "gfpgan_crop_Adele.png").exists(), reason="no ../shared faces")


def test_the_similarity_puts_one_pair_of_eyes_exactly_on_another():
    source = Face((10.0, 20.0), (30.0, 20.0), (0, 0, 40, 40))
    # the target: turned by 30 degrees, twice the size, moved
    angle = math.radians(30)
    right = (100 + 40 * math.cos(angle), 50 + 40 * math.sin(angle))
    target = Face((100.0, 50.0), right, (0, 0, 80, 80))
    matrix = similarity(source, target)
    assert eye_distance_after(matrix, source, target) < 1e-9
    scale, rotation = math.hypot(matrix[0, 0], matrix[1, 0]), math.atan2(matrix[1, 0], matrix[0, 0])
    assert scale == pytest.approx(2.0) and rotation == pytest.approx(angle)


def test_a_warped_image_lands_where_the_matrix_says_and_marks_where_it_is():
    content = np.zeros((20, 20, 3), np.float32)
    content[5, 5] = 1.0
    matrix = np.array([[1.0, 0.0, 7.0], [0.0, 1.0, 3.0]])
    warped, inside = align_to(content, matrix, (40, 30))
    assert warped.shape == (30, 40, 3) and np.unravel_index(warped[..., 0].argmax(), (30, 40)) == (8, 12)
    assert inside[3:23, 7:27].all() and inside.sum() == 20 * 20


def test_the_face_region_is_an_ellipse_below_the_eyes_turned_with_them():
    level = face_mask(Face((40.0, 40.0), (60.0, 40.0), (0, 0, 100, 100)), (100, 100))
    ys, xs = np.nonzero(level)
    assert xs.mean() == pytest.approx(50, abs=0.5) and ys.mean() > 45  # centred, below the eye line
    assert xs.max() - xs.min() < ys.max() - ys.min()  # taller than wide
    tilted = face_mask(Face((40.0, 40.0), (60.0, 60.0), (0, 0, 100, 100)), (100, 100))
    ys, xs = np.nonzero(tilted)
    spread, axes = np.linalg.eigh(np.cov(np.stack([xs, ys])))
    long_axis = axes[:, spread.argmax()]
    # The long axis turns with the eyes: perpendicular to the eye line (1, 1), along (-1, 1).
    assert abs(long_axis @ np.array([1.0, 1.0])) / math.sqrt(2) < 0.05


def test_on_its_rim_a_face_brings_in_only_skin_both_faces_show_and_its_features_always():
    """Issue 33: a donor's hair across its cheek came in as dark strands on the base's face."""
    face = Face(left_eye=(80.0, 80.0), right_eye=(120.0, 80.0), box=(60.0, 60.0, 80.0, 80.0))  # centre (100, 104)
    rng = np.random.default_rng(33)

    def portrait(hair_columns: slice) -> np.ndarray:
        image = np.clip(np.array([0.85, 0.65, 0.55], np.float32) + rng.normal(0, 0.01, (200, 200, 3)), 0, 1)
        image[76:84, 74:86] = image[76:84, 114:126] = 0.1  # the eyes: dark, inside the core
        image[:, hair_columns] = (0.25, 0.15, 0.1)  # hair over the rim
        return image.astype(np.float32)

    donor, base = portrait(slice(61, 67)), portrait(slice(134, 140))  # on the rim, outside the features' box
    region = own_face(face, base, donor)
    assert region[104, 63] == 0  # the donor's hair on the rim stays out
    assert region[104, 136] == 0  # and does not cover the base's
    assert region[80, 80] == 1 and region[80, 120] == 1  # dark features in the core come in
    assert region[130, 67] == 1 and region[80, 67] == 1  # skin on the rim (the cheeks), in both, comes in
    assert region[104, 30] == 0  # outside the face's region: nothing
    hair = np.isin(np.arange(200), [*range(61, 67), *range(134, 140)])
    assert np.array_equal(region > 0, (face_mask(face, (200, 200)) > 0) & ~hair)


def test_no_face_is_none():
    flat = np.full((64, 64, 3), 0.5, np.float32)
    assert find_face(flat) is None


def test_tone_matching_gives_a_grey_donor_the_reference_s_colour_and_keeps_its_contrast():
    rng = np.random.default_rng(0)
    grey = np.repeat(rng.uniform(0.2, 0.6, (32, 32, 1)).astype(np.float32), 3, axis=2)
    skin = np.empty((32, 32, 3), np.float32)
    skin[:] = (0.85, 0.62, 0.5)
    skin += rng.normal(0, 0.02, skin.shape).astype(np.float32)
    everywhere = np.ones((32, 32), bool)
    matched = match_tone(grey, skin, everywhere, everywhere)
    lab = cv2.cvtColor(matched, cv2.COLOR_RGB2Lab)
    skin_lab = cv2.cvtColor(skin, cv2.COLOR_RGB2Lab)
    assert np.abs(lab.mean(axis=(0, 1)) - skin_lab.mean(axis=(0, 1))).max() < 2.5  # the skin's light and colour
    grey_lightness = cv2.cvtColor(grey, cv2.COLOR_RGB2Lab)[..., 0]
    assert lab[..., 0].std() == pytest.approx(grey_lightness.std(), rel=0.1)  # its own shading, not the skin's
    assert np.array_equal(match_tone(grey, skin, ~everywhere, everywhere), grey)  # nothing to measure: unchanged


def _photo(name: str, side: int = 256) -> np.ndarray:
    with Image.open(FACES / name) as image:
        return np.asarray(image.convert("RGB").resize((side, side), Image.LANCZOS), np.float32) / 255



@needs_faces
@pytest.mark.parametrize("longer", [1.25, 0.8])
def test_a_longer_or_shorter_lower_face_is_stretched_back_so_its_mouth_lands_on_the_base_s(longer):
    """The eyes' similarity leaves a long face's mouth on the base's chin; the stretch across the eye line undoes it."""
    base = _photo("gfpgan_crop_Adele.png")
    height, width = base.shape[:2]
    base_face = find_face(base)
    assert base_face is not None and base_face.eyes_found
    # The donor: the same face with everything below its eyes stretched by ``longer`` (the eyes stay put).
    (lx, ly), (rx, ry) = base_face.left_eye, base_face.right_eye
    across = np.array([-(ry - ly), rx - lx]) / base_face.eye_distance
    middle = np.array([(lx + rx) / 2, (ly + ry) / 2])
    stretch = np.eye(2) + (longer - 1) * np.outer(across, across)
    made = np.hstack([stretch, (middle - stretch @ middle)[:, None]])
    donor = np.clip(cv2.warpAffine(base, made, (width, height), flags=cv2.INTER_CUBIC,
                                   borderMode=cv2.BORDER_REFLECT), 0, 1)
    eyes = np.hstack([np.eye(2), np.zeros((2, 1))])  # the eyes already coincide
    matrix = lower_face_stretch(base, donor, eyes, base_face)
    # A point on the base's mouth, taken into the donor by the inverse of ``matrix``, must be where ``made`` put it.
    mouth = middle + 1.1 * base_face.eye_distance * across
    found = np.linalg.solve(matrix[:, :2], mouth - matrix[:, 2])
    assert np.linalg.norm(found - made[:, :2] @ mouth - made[:, 2]) < 0.04 * base_face.eye_distance
    np.testing.assert_allclose(matrix @ [lx, ly, 1.0], [lx, ly], atol=1e-6)  # the eyes do not move
    # A face as long as the base's keeps its proportions: the eyes' matrix stands.
    assert np.array_equal(lower_face_stretch(base, base, eyes, base_face), eyes)

@needs_faces
@pytest.mark.parametrize("turn, zoom, shift", [(10.0, 0.8, (15, -10)), (-12.0, 1.2, (-20, 12)), (5.0, 0.6, (30, 30))])
def test_a_shifted_scaled_and_turned_donor_is_aligned_to_within_3_px_at_the_eyes(turn, zoom, shift):
    base = _photo("gfpgan_crop_Adele.png")
    height, width = base.shape[:2]
    moved = cv2.getRotationMatrix2D((width / 2, height / 2), turn, zoom)
    moved[:, 2] += shift
    donor = np.clip(cv2.warpAffine(base, moved, (width, height), flags=cv2.INTER_CUBIC,
                                   borderMode=cv2.BORDER_REFLECT), 0, 1)
    base_face, donor_face = find_face(base), find_face(donor)
    assert base_face is not None and donor_face is not None and base_face.eyes_found
    matrix = refine(base, donor, similarity(donor_face, base_face), base_face)
    # The donor's true eyes are the base's moved by ``moved``: aligned, they must come back onto the base's.
    donor_eyes = Face(*(tuple(moved @ np.array([*eye, 1.0])) for eye in (base_face.left_eye, base_face.right_eye)),
                      base_face.box)
    assert eye_distance_after(matrix, donor_eyes, base_face) < 3.0


def test_fusion_names_its_prior_and_warns_when_it_never_saw_a_face():
    from dataclasses import replace

    from sr_desk_plugins.srdiff.config import SRDiffConfig
    from sr_desk_plugins.srdiff.fusion import prior_note, trained_on_faces
    from sr_desk_plugins.srdiff.methods import LoadedModel

    ours = LoadedModel(encoder=None, unet=None, config=SRDiffConfig(scale=4), schedule=None, official_quirk=False,
                       source="srdiff-x4.safetensors", training_data="landscapes, plants and objects")
    assert not trained_on_faces(ours)
    assert prior_note(ours).startswith("prior srdiff-x4.safetensors was not trained on faces; for faces give the "
                                       "official SRDiff CelebA checkpoint (8x)")
    official_8x = replace(ours, config=SRDiffConfig(scale=8), official_quirk=True, source="celeba.ckpt",
                          training_data="unknown")
    assert trained_on_faces(official_8x) and prior_note(official_8x) == "prior celeba.ckpt (trained on faces)"
    assert not trained_on_faces(replace(official_8x, config=SRDiffConfig(scale=4)))  # the official 4x is DIV2K's
    assert trained_on_faces(replace(ours, training_data="FFHQ faces, 70,000 photos"))


def test_a_soft_donor_takes_the_fine_detail_of_the_photo_around_the_selection_as_strength_rises():
    from scipy.ndimage import gaussian_filter

    from sr_desk_plugins.srdiff.fusion import match_sharpness

    rng = np.random.default_rng(1)
    base = np.clip(0.5 + rng.normal(0, 0.05, (64, 64, 3)), 0, 1).astype(np.float32)  # grainy
    donor = gaussian_filter(base, (2, 2, 0)).astype(np.float32)  # the same, soft
    mask = np.zeros((64, 64), np.float32)
    mask[16:48, 16:48] = 1

    def fine(image: np.ndarray) -> float:
        return float((image - gaussian_filter(image, (1.5, 1.5, 0)))[20:44, 20:44].std())

    assert np.array_equal(match_sharpness(donor, base, mask, 0.0), donor)
    amounts = [fine(match_sharpness(donor, base, mask, a)) for a in (0.1, 0.5, 0.9)]
    assert fine(donor) < amounts[0] < amounts[1] < amounts[2]  # more strength, more of the photo's grain


def test_after_the_redraw_the_region_takes_the_grain_of_the_photo_around_it_as_strength_rises():
    """A high strength redraws the region from the fused image's LR, where the donor's matched detail is lost:
    the redrawn window's fine detail is moved towards the photo's, up or down, as much as the strength says."""
    from scipy.ndimage import gaussian_filter

    from sr_desk_plugins.srdiff.fusion import _regrained

    rng = np.random.default_rng(2)
    base = np.clip(0.5 + rng.normal(0, 0.03, (128, 128, 3)), 0, 1).astype(np.float32)
    mask = np.zeros((128, 128), np.float32)
    mask[40:88, 40:88] = 1
    window = (32, 32, 96, 96)

    def fine(image: np.ndarray) -> float:
        return float((image - gaussian_filter(image, (1.5, 1.5, 0)))[12:52, 12:52].std())  # the selection's core

    soft = gaussian_filter(base[32:96, 32:96], (2, 2, 0)).astype(np.float32)
    crisp = np.clip(0.5 + rng.normal(0, 0.09, (64, 64, 3)), 0, 1).astype(np.float32)
    assert np.array_equal(_regrained(soft, base, mask, window, 0.0), soft)
    rising = [fine(_regrained(soft, base, mask, window, a)) for a in (0.1, 0.5, 0.9)]
    falling = [fine(_regrained(crisp, base, mask, window, a)) for a in (0.1, 0.5, 0.9)]
    photo = fine(base[32:96, 32:96])
    assert fine(soft) < rising[0] < rising[1] < rising[2] <= photo * 1.05
    assert fine(crisp) > falling[0] > falling[1] > falling[2] >= photo * 0.95


@needs_faces
def test_the_editor_is_shown_the_donor_where_its_face_will_land():
    from sr_desk.core.placement import place_image

    base, donor = _photo("gfpgan_crop_Adele.png", 192), _photo("gfpgan_crop_Justin_Timberlake.png", 128)
    box = face_placement(base, donor, (40, 40, 112, 120))
    assert box is not None
    base_face = find_face(base)
    shown = find_face(place_image(base, donor, box))  # the donor drawn in its box over the base
    assert shown is not None and shown.eyes_found
    # Upright and unregistered, so not exact: the eyes land within a tenth of their distance.
    assert eye_distance_after(np.eye(2, 3), shown, base_face) < 0.1 * base_face.eye_distance
    assert face_placement(np.full((192, 192, 3), 0.5, np.float32), donor, (40, 40, 112, 120)) is None


@needs_faces
def test_a_face_filling_a_large_photo_is_registered_and_feathered_at_a_bounded_size(monkeypatch):
    """A 24 MP photo took minutes: ECC and the region's 80 px feather ran over every pixel. They now work with the
    eyes at most REGISTRATION_EYE_DISTANCE apart: the registration still lands within 3 px, and the feathered
    region is the one computed at full size, within two hundredths of its weight (measured: 0.014)."""
    from sr_desk.core import faces
    from sr_desk_plugins.srdiff import fusion

    base = cv2.resize(_photo("gfpgan_crop_Adele.png", 256), (1024, 1024), interpolation=cv2.INTER_CUBIC)
    moved_by = cv2.getRotationMatrix2D((512, 512), 10.0, 0.8)
    moved_by[:, 2] += (60, -40)
    donor = np.clip(cv2.warpAffine(base, moved_by, (1024, 1024), flags=cv2.INTER_CUBIC,
                                   borderMode=cv2.BORDER_REFLECT), 0, 1)
    base_face, donor_face = find_face(base), find_face(donor)
    assert base_face.eye_distance > 2 * faces.REGISTRATION_EYE_DISTANCE  # the bounded path runs
    matrix = refine(base, donor, similarity(donor_face, base_face), base_face)
    donor_eyes = Face(*(tuple(moved_by @ np.array([*eye, 1.0])) for eye in (base_face.left_eye, base_face.right_eye)),
                      base_face.box)
    assert eye_distance_after(matrix, donor_eyes, base_face) < 3.0

    inside = np.ones((1024, 1024), np.float32)
    inside[:, :300] = 0  # where the donor did not reach
    bounded = fusion._feathered_face(base_face, inside, base, donor)
    monkeypatch.setattr(fusion, "REGISTRATION_EYE_DISTANCE", 1e9)
    full = fusion._feathered_face(base_face, inside, base, donor)
    assert np.abs(bounded - full).max() < 0.02 and 0.0 <= bounded.min() and bounded.max() <= 1.0
