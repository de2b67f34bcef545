"""Faces in a photo: where they are, where their eyes are, and the warp that puts one face on another.

Content fusion drops a donor's face into a selection over the base's face.
Pasted by its bounding box, the donor's eyes and mouth land beside the
base's and both show (a double exposure); so the donor is first warped by
the similarity transform (shift, scale, rotation) that puts its eye centres
on the base's, its lower face stretched when its mouth lies much lower or
higher (:func:`lower_face_stretch`), then registered over the whole face
(:func:`refine`). The detector is OpenCV's Viola-Jones cascades, which ship
inside ``opencv-python-headless`` (nothing is downloaded). A face the
frontal cascade misses because it is tilted is looked for again in the
image turned by a few angles; eyes the eye cascade misses are placed where
they sit in an average face box, and :attr:`Face.eyes_found` says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

__all__ = ["Face", "align_to", "eye_distance_after", "face_mask", "face_placement", "find_face", "find_faces", "moved",
           "lower_face_stretch", "own_face", "refine", "shifted", "similarity", "skin_like", "surroundings"]

#: Tilts (degrees) the image is turned by when the upright search finds no face.
TILTS = (15.0, -15.0, 30.0, -30.0)
#: Where the eyes sit in the frontal cascade's face box, as fractions of its side (measured on aligned faces).
EYE_HEIGHT, EYE_OFFSET = 0.38, 0.19
Point = tuple[float, float]
#: The face's own region (brows to chin, cheek to cheek) in eye distances: its centre below the eyes, half its
#: width and half its height. Its edge stays on skin, where a seamless blend has little to even out.
FACE_CENTRE, FACE_HALF_WIDTH, FACE_HALF_HEIGHT = 0.6, 1.0, 1.2
#: The box that holds a face's features (brows, eyes, nose, mouth), around its centre in eye distances: half its
#: width, and how far it reaches up and down (to the region's chin: a long face's mouth lies low). Outside it, on
#: the rim of the face's region, hair, glasses' arms or background may lie over the face.
FEATURES_HALF_WIDTH, FEATURES_UP, FEATURES_DOWN = 0.8, 1.0, FACE_HALF_HEIGHT
#: How far from a face's own skin colour a rim pixel may be and still count as skin: in robust spreads (1.4826
#: median absolute deviations) of L, a and b over the features' box, each at least :data:`SKIN_SPREAD_FLOOR`.
SKIN_DISTANCE = 3.0
SKIN_SPREAD_FLOOR = (6.0, 3.0, 3.0)
#: The registration's passes, coarse to fine: the blur of each, as a fraction of the eye distance.
REGISTRATION_BLURS = (0.12, 0.05, 0.02)
#: How far from a face's centre its own pixels reach, in eye distances: its region (1.2), and what the region's
#: feather and the registration's blur read past it (under 0.4). Work on a face is done in this crop, so a
#: 24 MP photo costs what the face does.
FACE_REACH = 2.0
#: The lower face's registration: where its rows lie below the eye line (nose to chin), in eye distances; how far
#: to either side of the face's middle each row is averaged; and the stretches across the eye line tried (a long
#: face onto a short one, and the other way).
LOWER_FACE_SPAN = (0.45, 1.7)
LOWER_FACE_HALF_WIDTH = 0.4
STRETCHES = tuple(float(s) for s in np.linspace(0.65, 1.5, 86))
#: A stretch within this factor of 1 is not applied: the donor keeps its own proportions (they are part of its
#: look) unless its mouth would land more than about half a mouth's height from the base's.
KEPT_PROPORTIONS = 1.15
#: The eye distance in pixels a face is registered at: a larger face is shrunk to it first (the blur and the
#: pixels ECC works through grow with the face; its accuracy is a fraction of a pixel at this size).
REGISTRATION_EYE_DISTANCE = 128.0


@dataclass(frozen=True)
class Face:
    """A face: its eye centres (the image's left one first) and its box ``(x, y, width, height)``."""

    left_eye: Point
    right_eye: Point
    box: tuple[float, float, float, float]
    #: False when the eye cascade missed and the eyes were placed from the face box.
    eyes_found: bool = True

    @property
    def eye_distance(self) -> float:
        return math.dist(self.left_eye, self.right_eye)

    @property
    def centre(self) -> Point:
        """Below the middle of the eyes (:data:`FACE_CENTRE`): the middle of the brows-to-chin region."""
        (lx, ly), (rx, ry) = self.left_eye, self.right_eye
        d = self.eye_distance
        # perpendicular to the eye line, towards the mouth (image y grows downwards)
        ux, uy = (rx - lx) / d, (ry - ly) / d
        return ((lx + rx) / 2 - uy * FACE_CENTRE * d, (ly + ry) / 2 + ux * FACE_CENTRE * d)


@cache
def _cascade(name: str) -> Any:
    import cv2

    classifier = cv2.CascadeClassifier(cv2.data.haarcascades + name)
    if classifier.empty():
        raise RuntimeError(f"OpenCV's {name} is missing: reinstall opencv-python-headless (a 4.x release)")
    return classifier


def _grey(rgb: np.ndarray) -> np.ndarray:
    y = rgb[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.clip(y * 255 + 0.5, 0, 255).astype(np.uint8)


def _upright_faces(grey: np.ndarray) -> list[Face]:
    import cv2

    side = min(grey.shape)
    boxes = _cascade("haarcascade_frontalface_default.xml").detectMultiScale(
        cv2.equalizeHist(grey), scaleFactor=1.1, minNeighbors=5, minSize=(max(24, side // 12),) * 2)
    return [_with_eyes(grey, tuple(float(v) for v in box)) for box in boxes]


def _with_eyes(grey: np.ndarray, box: tuple[float, float, float, float]) -> Face:
    """The face in ``box`` with its eyes: the cascade's best pair, refined to the pupils, or the box's average."""
    x, y, w, h = box
    x0, y0 = int(x), int(y)
    upper = grey[y0 : y0 + int(h * 0.6), x0 : x0 + int(w)]
    found = _cascade("haarcascade_eye.xml").detectMultiScale(upper, scaleFactor=1.05, minNeighbors=4,
                                                             minSize=(max(8, int(w / 10)),) * 2)
    pair = _eye_pair([(ex + ew / 2, ey + eh / 2, ew) for ex, ey, ew, eh in found], w)
    if pair is None:
        left = (x + (0.5 - EYE_OFFSET) * w, y + EYE_HEIGHT * h)
        right = (x + (0.5 + EYE_OFFSET) * w, y + EYE_HEIGHT * h)
        return Face(left, right, box, eyes_found=False)
    left, right = (_pupil(upper, c) for c in pair)
    return Face((x0 + left[0], y0 + left[1]), (x0 + right[0], y0 + right[1]), box)


def _eye_pair(candidates: Sequence[tuple[float, float, float]], width: float) -> tuple[tuple[float, float, float],
                                                                                         tuple[float, float, float]] | None:
    """Of the eye cascade's hits in a face box, the two most like a pair of eyes: one each side of the middle, at
    about the same height and size, their distance between a quarter and two thirds of the box."""
    best, best_cost = None, math.inf
    for i, a in enumerate(candidates):
        for b in candidates[i + 1 :]:
            left, right = sorted((a, b))
            distance = right[0] - left[0]
            if not (left[0] < width / 2 < right[0] and 0.25 * width < distance < 0.67 * width):
                continue
            cost = abs(left[1] - right[1]) / distance + abs(left[2] - right[2]) / max(left[2], right[2]) \
                + abs((left[0] + right[0]) / 2 - width / 2) / width
            if cost < best_cost:
                best, best_cost = (left, right), cost
    return best


def _pupil(grey: np.ndarray, eye: tuple[float, float, float]) -> Point:
    """The darkest spot of the eye box's middle (smoothed), where the pupil and iris are; the box centre when flat."""
    import cv2

    cx, cy, size = eye
    half = max(2, int(size * 0.3))
    x0, y0 = max(0, int(cx) - half), max(0, int(cy) - half)
    patch = grey[y0 : int(cy) + half + 1, x0 : int(cx) + half + 1].astype(np.float32)
    if patch.size == 0 or float(patch.max() - patch.min()) < 8:
        return cx, cy
    blurred = cv2.GaussianBlur(patch, (0, 0), max(1.0, size / 16))
    dark = np.clip(blurred.min() + 0.25 * (blurred.max() - blurred.min()) - blurred, 0, None)
    total = float(dark.sum())
    if total <= 0:
        return cx, cy
    yy, xx = np.mgrid[: patch.shape[0], : patch.shape[1]]
    return x0 + float((xx * dark).sum()) / total, y0 + float((yy * dark).sum()) / total


def _apply(matrix: np.ndarray, point: Point) -> Point:
    """``point`` moved by the 2 x 3 affine ``matrix``."""
    x, y = matrix[:2] @ np.array([point[0], point[1], 1.0])
    return float(x), float(y)


def moved(face: Face, matrix: np.ndarray) -> Face:
    """``face``'s eyes moved by ``matrix`` (its box stays: callers that need it moved move it themselves)."""
    return Face(_apply(matrix, face.left_eye), _apply(matrix, face.right_eye), face.box, face.eyes_found)


def _turned(face: Face, matrix: np.ndarray) -> Face:
    """``face`` found in a turned image, mapped back by the inverse of ``matrix`` (2 x 3) to the original."""
    inverse = _invert(matrix)
    x, y, w, h = face.box
    corners = [_apply(inverse, c) for c in ((x, y), (x + w, y), (x, y + h), (x + w, y + h))]
    xs, ys = [c[0] for c in corners], [c[1] for c in corners]
    box = (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))
    back = moved(face, inverse)
    left, right = sorted((back.left_eye, back.right_eye))
    return Face(left, right, box, face.eyes_found)


def find_faces(rgb: np.ndarray) -> list[Face]:
    """The frontal faces in an ``H x W x 3`` image in ``[0, 1]``, largest first; tilted ones too (see :data:`TILTS`)."""
    import cv2

    grey = _grey(rgb)
    faces = _upright_faces(grey)
    if not faces:
        h, w = grey.shape
        for tilt in TILTS:
            matrix = cv2.getRotationMatrix2D((w / 2, h / 2), tilt, 1.0)
            turned = cv2.warpAffine(grey, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            faces = [_turned(face, matrix) for face in _upright_faces(turned)]
            if faces:
                break
    return sorted(faces, key=lambda f: -f.box[2] * f.box[3])


def find_face(rgb: np.ndarray, within: np.ndarray | None = None) -> Face | None:
    """The face of ``rgb`` that ``within`` (a mask, ``H x W``) covers most, or the largest; None when there is none."""
    faces = find_faces(rgb)
    if not faces or within is None:
        return faces[0] if faces else None

    def covered(face: Face) -> float:
        x, y, w, h = (int(round(v)) for v in face.box)
        return float(within[max(0, y) : y + h, max(0, x) : x + w].sum())

    best = max(faces, key=covered)
    return best if covered(best) > 0 else None


def similarity(source: Face, target: Face) -> np.ndarray:
    """The 2 x 3 matrix of the shift, scale and rotation that maps ``source``'s eye centres onto ``target``'s."""
    (sx0, sy0), (sx1, sy1) = source.left_eye, source.right_eye
    (tx0, ty0), (tx1, ty1) = target.left_eye, target.right_eye
    s = complex(sx1 - sx0, sy1 - sy0)
    t = complex(tx1 - tx0, ty1 - ty0)
    if abs(s) < 1e-6:
        raise ValueError("the source's eyes coincide")
    a = t / s  # scale and rotation as one complex factor
    shift = complex(tx0, ty0) - a * complex(sx0, sy0)
    return np.array([[a.real, -a.imag, shift.real], [a.imag, a.real, shift.imag]], np.float64)


def _invert(matrix: np.ndarray) -> np.ndarray:
    """The inverse of a 2 x 3 affine map (or of the top of a 3 x 3 one), as 2 x 3."""
    full = np.vstack([matrix[:2], [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def align_to(content: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``content`` warped by ``matrix`` onto a ``(width, height)`` canvas (bicubic), and where it landed (a 0/1 mask)."""
    import cv2

    width, height = size
    warped = cv2.warpAffine(content.astype(np.float32), matrix, (width, height), flags=cv2.INTER_CUBIC,
                            borderMode=cv2.BORDER_REPLICATE)
    inside = cv2.warpAffine(np.ones(content.shape[:2], np.float32), matrix, (width, height), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return np.clip(warped, 0, 1).astype(np.float32), (inside > 0.999).astype(np.float32)


def surroundings(face: Face, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)``: the crop of an image of ``shape`` (``H, W``) that holds all the work on ``face``."""
    height, width = shape
    (cx, cy), reach = face.centre, FACE_REACH * face.eye_distance
    return (max(0, int(cx - reach)), max(0, int(cy - reach)), min(width, int(math.ceil(cx + reach))),
            min(height, int(math.ceil(cy + reach))))


def shifted(dx: float, dy: float, scale: float = 1.0) -> np.ndarray:
    """The 2 x 3 matrix that moves a point by ``(dx, dy)``, then scales it by ``scale``."""
    return np.array([[scale, 0.0, scale * dx], [0.0, scale, scale * dy]])


def _then(second: np.ndarray, first: np.ndarray) -> np.ndarray:
    """The 2 x 3 matrix of ``first``, then ``second``."""
    return second[:2] @ np.vstack([first[:2], [0.0, 0.0, 1.0]])


def lower_face_stretch(base: np.ndarray, donor: np.ndarray, matrix: np.ndarray, base_face: Face) -> np.ndarray:
    """``matrix`` (donor to base, from the eyes) followed by the stretch across the eye line that puts the donor's
    nose, mouth and chin on the base's.

    One similarity puts the eyes in place but not the mouth of a longer or
    shorter face: a long face's lands on the base's chin, outside the
    selection, and the registration (:func:`refine`), starting from there,
    does not move it that far. The stretch found is the one whose luminance
    profile down the middle of the face, nose to chin, best follows the
    base's in its slope (so that light does not count); it is applied only
    beyond :data:`KEPT_PROPORTIONS`. Both images are only sampled along that
    profile, so a large photo costs what a small one does.
    """
    d = base_face.eye_distance
    (lx, ly), (rx, ry) = base_face.left_eye, base_face.right_eye
    along = np.array([rx - lx, ry - ly]) / d
    across = np.array([-along[1], along[0]])  # towards the mouth
    middle = np.array([(lx + rx) / 2, (ly + ry) / 2])
    below = np.linspace(*LOWER_FACE_SPAN, 126)
    beside = np.linspace(-LOWER_FACE_HALF_WIDTH, LOWER_FACE_HALF_WIDTH, 15)
    to_donor = _invert(matrix)

    def profile(image: np.ndarray, points: np.ndarray) -> np.ndarray:
        """The luminance of ``image`` at ``points`` (rows x samples x 2, x and y), averaged along each row."""
        from scipy.ndimage import map_coordinates

        coordinates = [points[..., 1].ravel(), points[..., 0].ravel()]
        channels = [map_coordinates(image[..., c], coordinates, order=1, mode="nearest") for c in range(3)]
        luma = 0.299 * channels[0] + 0.587 * channels[1] + 0.114 * channels[2]
        return np.gradient(luma.reshape(points.shape[:2]).mean(axis=1))

    def rows(distances: np.ndarray) -> np.ndarray:
        return middle + distances[:, None, None] * d * across + beside[None, :, None] * d * along

    target = profile(base, rows(below))
    target = target - target.mean()

    def agreement(stretch: float) -> float:
        points = rows(below / stretch)  # where the stretch brings each base row from, in the base's frame
        source = profile(donor, points @ to_donor[:, :2].T + to_donor[:, 2])
        source = source - source.mean()
        return float((target * source).sum() / (np.sqrt((target**2).sum() * (source**2).sum()) + 1e-12))

    best = max(STRETCHES, key=agreement)
    if abs(math.log(best)) < math.log(KEPT_PROPORTIONS):
        return matrix
    stretch = np.eye(2) + (best - 1.0) * np.outer(across, across)
    return _then(np.hstack([stretch, (middle - stretch @ middle)[:, None]]), matrix)


def refine(base: np.ndarray, donor: np.ndarray, matrix: np.ndarray, base_face: Face) -> np.ndarray:
    """``matrix`` (donor to base, from the eyes) refined by registering the two faces' shading (OpenCV's ECC, affine,
    over the base face's region): the eyes' boxes place them to a few pixels, the whole face to a fraction of one.

    For two different people the registration lines up brows, eyes, nose and mouth as well as one affine map
    can; when it fails to converge, or would move the eyes by more than half their distance (it locked
    onto something else), the eyes' matrix stands.
    """
    import cv2

    # The work happens on the face's surroundings, at most REGISTRATION_EYE_DISTANCE between the eyes.
    x0, y0, x1, y1 = surroundings(base_face, base.shape[:2])
    scale = min(1.0, REGISTRATION_EYE_DISTANCE / base_face.eye_distance)
    to_work = shifted(-x0, -y0, scale)
    size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
    crop = base[y0:y1, x0:x1]
    base_work = crop if scale == 1.0 else cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    face_work = moved(base_face, to_work)
    work_matrix = _then(to_work, matrix)
    warped, inside = align_to(donor, work_matrix, size)
    region = (face_mask(face_work, (size[1], size[0])) * inside > 0).astype(np.uint8)
    if region.sum() < 64:
        return matrix
    warp = np.eye(2, 3, dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-6)
    for blur in REGISTRATION_BLURS:  # coarse first: a start some pixels off still converges
        sigma = blur * face_work.eye_distance
        template = cv2.GaussianBlur(_grey(base_work).astype(np.float32), (0, 0), sigma)
        moving = cv2.GaussianBlur(_grey(warped).astype(np.float32), (0, 0), sigma)
        try:
            _, warp = cv2.findTransformECC(template, moving, warp, cv2.MOTION_AFFINE, criteria, region, 1)
        except cv2.error:
            return matrix
    # ECC's warp maps work pixels into the warped donor; the donor-to-base map is its inverse after ``matrix``,
    # taken from the work's pixels back to the base's.
    refined = _then(_invert(to_work), _then(_invert(warp.astype(np.float64)), work_matrix))
    donor_eyes = moved(base_face, _invert(matrix))  # where ``matrix`` took them from
    if eye_distance_after(refined, donor_eyes, base_face) > 0.5 * base_face.eye_distance:
        return matrix
    return refined


def eye_distance_after(matrix: np.ndarray, source: Face, target: Face) -> float:
    """How far ``source``'s eyes land from ``target``'s under ``matrix``: the larger of the two, in pixels."""
    landed = moved(source, matrix)
    return max(math.dist(landed.left_eye, target.left_eye), math.dist(landed.right_eye, target.right_eye))


def _face_frame(face: Face, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Every pixel's ``(u, v)`` from ``face``'s centre along and across its eye line, in eye distances."""
    height, width = shape
    d = face.eye_distance
    cx, cy = face.centre
    (lx, ly), (rx, ry) = face.left_eye, face.right_eye
    angle = math.atan2(ry - ly, rx - lx)
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    u = (xx - cx) * math.cos(angle) + (yy - cy) * math.sin(angle)
    v = -(xx - cx) * math.sin(angle) + (yy - cy) * math.cos(angle)
    return u / d, v / d


def face_mask(face: Face, shape: tuple[int, int]) -> np.ndarray:
    """An ``H x W`` float mask over ``face``'s own region (brows to chin, cheek to cheek), an ellipse on its eyes.

    What a donor brings into the base: its face, not the hair, the background
    or the shirt around it; the caller feathers it with the selection.
    """
    return _in_region(*_face_frame(face, shape)).astype(np.float32)


def _in_region(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether each ``(u, v)`` of :func:`_face_frame` lies in the face's own region."""
    return (u / FACE_HALF_WIDTH) ** 2 + (v / FACE_HALF_HEIGHT) ** 2 <= 1


def _in_features(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether each ``(u, v)`` of :func:`_face_frame` lies in the box of the face's features."""
    return (np.abs(u) <= FEATURES_HALF_WIDTH) & (v >= -FEATURES_UP) & (v <= FEATURES_DOWN)


def skin_like(rgb: np.ndarray, face: Face) -> np.ndarray:
    """``H x W`` bool: the pixels whose colour is ``face``'s own skin's, measured over its features' box.

    Robust statistics (median and median absolute deviation in Lab), so the
    eyes, brows and mouth in the box do not count: skin is most of it.
    """
    return _skin(rgb, _in_features(*_face_frame(face, rgb.shape[:2])))


def _skin(rgb: np.ndarray, features: np.ndarray) -> np.ndarray:
    """:func:`skin_like` with the features' box (``H x W`` bool) already known."""
    import cv2

    lab = cv2.cvtColor(np.ascontiguousarray(rgb[..., :3], np.float32), cv2.COLOR_RGB2Lab)
    if features.sum() < 16:  # a face too small (or off the image) to measure: everything counts
        return np.ones(lab.shape[:2], bool)
    samples = lab[features]
    median = np.median(samples, axis=0)
    spread = np.maximum(1.4826 * np.median(np.abs(samples - median), axis=0), SKIN_SPREAD_FLOOR)
    return np.sqrt((((lab - median) / spread) ** 2).sum(-1)) <= SKIN_DISTANCE


def own_face(face: Face, base: np.ndarray, donor: np.ndarray) -> np.ndarray:
    """``H x W`` float: where a donor aligned onto ``face`` of ``base`` may come in.

    The box of its features whole (they are not skin-coloured); on the rim
    of its region only where both images show skin, so neither the donor's
    hair or glasses' arms come in nor the base's are covered.
    """
    u, v = _face_frame(face, base.shape[:2])
    features = _in_features(u, v)
    rim_ok = _skin(base, features) & _skin(donor, features)
    return (_in_region(u, v) & (features | rim_ok)).astype(np.float32)


def face_placement(base: np.ndarray, donor: np.ndarray, box: tuple[int, int, int, int],
                   donor_face: Face | None = None) -> tuple[float, float, float, float] | None:
    """Where ``donor`` lies when its face is put on the face in ``box`` (``x, y, width, height`` of ``base``), as an
    upright box in ``base``'s pixels; None when either has no face.

    What an editor shows before the run: the eyes' shift and scale (the turn,
    the lower face's stretch and the registration that fusion adds are left
    out, so the box stays upright). Only ``box`` grown by a quarter is searched, so a large photo
    costs what its selection does; ``donor_face`` saves finding it again.
    """
    x, y, w, h = box
    height, width = base.shape[:2]
    x0, y0 = max(0, int(x - w / 4)), max(0, int(y - h / 4))
    x1, y1 = min(width, int(x + w * 5 / 4) + 1), min(height, int(y + h * 5 / 4) + 1)
    if x1 - x0 < 16 or y1 - y0 < 16:
        return None
    found = find_face(base[y0:y1, x0:x1])
    donor_face = donor_face or find_face(donor)
    if found is None or donor_face is None:
        return None
    base_face = moved(found, np.array([[1.0, 0.0, x0], [0.0, 1.0, y0]]))  # from the crop to the whole base
    matrix = similarity(donor_face, base_face)
    scale = math.hypot(matrix[0, 0], matrix[1, 0])
    dw, dh = donor.shape[1], donor.shape[0]
    cx, cy = _apply(matrix, (dw / 2, dh / 2))
    return float(cx - scale * dw / 2), float(cy - scale * dh / 2), float(scale * dw), float(scale * dh)
