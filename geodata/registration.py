"""Photo-to-photo registration with local features: SIFT, ratio test, RANSAC homography.

Site photos of repeat inspections do not share a coordinate frame. This module finds the
plane-to-plane mapping (a 3x3 *homography*) between two photos of the same planar surface
(a wall, a pier face, a deck soffit; a patch of ground seen from a nadir drone photo), so
cracks of one can be drawn and tracked in the pixel grid of the other
(:mod:`geodata.views`). Everything here is pure (arrays in, arrays out); the feature
detection, matching and robust estimation are OpenCV's.

Frames and units. Points are ``(x, y)`` = (column, row) pixels of the *full-resolution*
stored image, origin at the top-left corner of the top-left pixel. A homography ``H`` maps
a photo's pixels to its reference's: ``[x', y', w']^T = H [x, y, 1]^T``, ``(x'/w', y'/w')``.
Reprojection errors (``rms_px``) are in reference pixels.

Method (standard since Lowe 2004 and Brown & Lowe 2007):

1. *Quality* (:func:`photo_quality`): a black frame (lens cap on; mean grey level <
   :data:`BLACK_MEAN_GREY` and grey-level spread < :data:`BLACK_STD_GREY`) or a blurred one
   (no-reference blur metric of Crete, Dolmiere, Ladret & Nicolas 2007, "The blur effect:
   perception and estimation with a new no-reference perceptual blur metric", SPIE 6492,
   above :data:`BLUR_METRIC_MAX`, on the full-resolution pixels) is refused with the
   measured figures: a blurred photo registers badly and widens its cracks, so its
   measurements would read as growth.
2. *Features* (:func:`photo_features`): SIFT keypoints and descriptors (Lowe 2004,
   "Distinctive image features from scale-invariant keypoints", IJCV 60(2)) on a grey copy
   whose long side is at most ``max_side_px``, as RootSIFT (Arandjelovic & Zisserman 2012,
   "Three things everyone should know to improve object retrieval", CVPR: L1-normalise,
   square root), keypoints scaled back to full-resolution pixels.
3. *Matching* (:func:`register_pair`): brute-force nearest two neighbours; a match is kept
   when its distance is below ``ratio`` times the second's (Lowe's ratio test, 0.8 in the
   paper).
4. *Robust homography*: OpenCV ``findHomography`` with MAGSAC++ (Barath et al. 2020, CVPR),
   threshold ``ransac_px`` full-resolution pixels, then a least-squares refit on the
   inliers; ``rms_px`` is the root mean square reprojection error of those inliers.
5. *Acceptance*: at least ``min_inliers`` inliers, ``rms_px <= max_rms_px``, a homography
   that keeps the photo convex and its orientation (no mirror, no fold), a linear scale
   within ``1/max_scale .. max_scale``, at least ``min_overlap`` of the reference covered,
   and inliers spread over at least ``min_inlier_spread`` of the overlap (a cluster of
   inliers fits any homography). Anything else is refused with the reason; pairs without
   common ground are refused, never forced.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "BLACK_MEAN_GREY",
    "BLACK_STD_GREY",
    "BLUR_METRIC_MAX",
    "PairRegistration",
    "PhotoFeatures",
    "PhotoQuality",
    "RegistrationParams",
    "blur_metric",
    "homography_error_px",
    "load_grey",
    "local_scale",
    "photo_features",
    "photo_quality",
    "register_pair",
    "warp_points",
]

#: A frame whose mean grey level (0..255) is below this ... (with BLACK_STD_GREY) is black.
BLACK_MEAN_GREY = 12.0
#: ... and whose grey-level standard deviation is below this: a lens-cap or night frame.
BLACK_STD_GREY = 8.0
#: Crete et al. (2007) blur metric (0 sharp .. 1 fully blurred) above which a photo is too
#: blurred to register and measure. Measured here at full resolution: the real Brighton
#: Beach, UAV75 and Lund photos 0.18-0.25, the Mt Agung "POOR_SHARPNESS" frame 0.77; a
#: Gaussian blur of sigma 2 px takes sharp photos to 0.44-0.56 (tests/unit/test_registration.py).
BLUR_METRIC_MAX = 0.5
#: Long side (px) of the grey copy the black-frame figures are measured on.
QUALITY_SIDE_PX = 1024


@dataclass(frozen=True)
class RegistrationParams:
    """Thresholds of :func:`photo_features` and :func:`register_pair` (defaults documented
    in the module docstring; the Brighton Beach and SIMULATED figures of the README were
    measured with these).

    Attributes:
        max_side_px: features are found on a copy whose long side is at most this (px).
        max_features: SIFT keypoints kept per photo (strongest first; 0 = all).
        ratio: Lowe's ratio test bound (nearest / second-nearest descriptor distance).
        ransac_px: MAGSAC++ inlier threshold, full-resolution reference pixels.
        min_inliers: fewer inliers is no registration.
        max_rms_px: a larger RMS reprojection error of the inliers is no registration.
        max_scale: the homography's area scale at the photo centre must lie in
            ``[1/max_scale**2, max_scale**2]`` (a linear scale within ``1/max_scale ..
            max_scale``).
        min_inlier_spread: the inliers' convex hull must cover at least this fraction of
            the overlap (in the reference frame).
        min_overlap: the warped photo must cover at least this fraction of the reference
            frame (a sliver of common ground is too little to track cracks in, and is where
            chance matches end up).
    """

    max_side_px: int = 2000
    max_features: int = 0
    ratio: float = 0.8
    ransac_px: float = 3.0
    min_inliers: int = 25
    max_rms_px: float = 2.0
    max_scale: float = 3.0
    min_inlier_spread: float = 0.02
    min_overlap: float = 0.1


DEFAULT_PARAMS = RegistrationParams()


@dataclass(frozen=True)
class PhotoQuality:
    """Figures of :func:`photo_quality` and the verdict.

    ``mean_grey``/``std_grey``: grey level 0..255 (on the :data:`QUALITY_SIDE_PX` copy).
    ``blur``: the Crete et al. blur metric at full resolution, 0 (sharp) .. 1 (flat).
    ``problem``: ``None``, ``"black"`` or ``"blurred"``; ``reason``: a sentence with the
    figures and the thresholds.
    """

    mean_grey: float
    std_grey: float
    blur: float
    problem: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"mean_grey": round(self.mean_grey, 2), "std_grey": round(self.std_grey, 2),
                "blur": round(self.blur, 3), "problem": self.problem}


@dataclass(frozen=True)
class PhotoFeatures:
    """Keypoints of one photo: ``points`` (N, 2) float32 full-resolution ``(x, y)`` px,
    ``descriptors`` (N, 128) float32 RootSIFT; ``width_px``/``height_px`` the full image
    size; ``quality`` its :class:`PhotoQuality`."""

    width_px: int
    height_px: int
    points: np.ndarray
    descriptors: np.ndarray
    quality: PhotoQuality
    name: str = ""

    @property
    def count(self) -> int:
        return int(len(self.points))


@dataclass(frozen=True)
class PairRegistration:
    """Result of :func:`register_pair` (photo -> reference).

    ``accepted``: the homography passed every check. ``homography``: 3x3 float64 photo px ->
    reference px (the least-squares refit on the inliers; ``None`` when none was found).
    ``matches``: ratio-test matches; ``inliers``: MAGSAC++ inliers after the refit;
    ``rms_px``: RMS reprojection error of the inliers (reference px; None without a
    homography); ``overlap``: fraction of the reference frame the warped photo covers;
    ``reason``: why it was refused, or a summary when accepted. ``inlier_points``: (K, 2)
    photo px of the inliers (for consistency checks between views).
    """

    accepted: bool
    homography: np.ndarray | None
    matches: int
    inliers: int
    rms_px: float | None
    overlap: float
    reason: str
    inlier_points: np.ndarray = field(default_factory=lambda: np.empty((0, 2), np.float32),
                                      repr=False)

    def summary(self) -> dict[str, Any]:
        """JSON-able figures (no arrays)."""
        return {"accepted": self.accepted, "matches": self.matches, "inliers": self.inliers,
                "rms_px": None if self.rms_px is None else round(self.rms_px, 3),
                "overlap": round(self.overlap, 4), "reason": self.reason}


# --------------------------------------------------------------------------- reading


def load_grey(path: str | os.PathLike[str]) -> np.ndarray:
    """A photo as a 2-D uint8 grey image (the stored pixel grid: no EXIF rotation applied,
    like :mod:`geodata.photos`).

    Raises:
        OSError: the file is missing or not a readable image.
    """
    import cv2

    p = Path(path)
    data = np.fromfile(p, dtype=np.uint8) if p.is_file() else None
    if data is None:
        raise OSError(f"photo {p} does not exist or is not a file")
    grey = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE | cv2.IMREAD_IGNORE_ORIENTATION)
    if grey is None:
        raise OSError(f"photo {p} is not a readable image (OpenCV could not decode it)")
    return grey


def _as_grey(image: np.ndarray) -> np.ndarray:
    import cv2

    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] in (3, 4):
        a = cv2.cvtColor(a[..., :3].astype(np.uint8), cv2.COLOR_RGB2GRAY)
    if a.ndim != 2:
        raise ValueError(f"expected a (H, W) grey or (H, W, 3) RGB image, got shape {a.shape}")
    if a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8)
    return a


def _resized(grey: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    import cv2

    h, w = grey.shape
    s = min(1.0, float(max_side) / max(h, w))
    if s >= 1.0:
        return grey, 1.0
    return cv2.resize(grey, (max(1, round(w * s)), max(1, round(h * s))),
                      interpolation=cv2.INTER_AREA), s


# --------------------------------------------------------------------------- quality


def blur_metric(grey: np.ndarray) -> float:
    """No-reference blur of a grey image, 0 (sharp) .. 1 (no detail left).

    Crete, Dolmiere, Ladret & Nicolas 2007 ("The blur effect: perception and estimation
    with a new no-reference perceptual blur metric", Proc. SPIE 6492): blur the image again
    with a 9-tap horizontal / vertical mean filter and measure how much of its neighbour
    grey-level variation that removes; a blurred image loses little. The larger of the
    vertical and horizontal values. A flat image gives 1.
    """
    import cv2

    f = np.asarray(grey, dtype=np.float32)
    kernel = np.full((1, 9), 1.0 / 9.0, np.float32)
    out = []
    for axis, k in ((0, kernel.T), (1, kernel)):
        blurred = cv2.filter2D(f, -1, k, borderType=cv2.BORDER_REFLECT)
        d_f = np.abs(np.diff(f, axis=axis))
        d_b = np.abs(np.diff(blurred, axis=axis))
        total = float(d_f.sum(dtype=np.float64))
        if total <= 0:
            out.append(1.0)
            continue
        kept = float(np.maximum(0.0, d_f - d_b).sum(dtype=np.float64))
        out.append((total - kept) / total)
    return float(max(out))


def photo_quality(image: np.ndarray) -> PhotoQuality:
    """Black and blur check of one photo (grey or RGB uint8, any size).

    Black: mean and standard deviation of the grey level on a copy with long side
    :data:`QUALITY_SIDE_PX` (area interpolation). Blur: :func:`blur_metric` on the
    full-resolution pixels (blur is measured in the pixels the cracks are measured in).

    Returns:
        A :class:`PhotoQuality`; ``problem`` ``"black"`` (mean < :data:`BLACK_MEAN_GREY` and
        std < :data:`BLACK_STD_GREY`), ``"blurred"`` (blur > :data:`BLUR_METRIC_MAX`) or
        ``None``.
    """
    grey_full = _as_grey(image)
    grey, _ = _resized(grey_full, QUALITY_SIDE_PX)
    mean, std = float(grey.mean()), float(grey.std())
    if mean < BLACK_MEAN_GREY and std < BLACK_STD_GREY:
        return PhotoQuality(mean, std, 1.0, "black",
                            f"black frame (mean grey {mean:.1f}, spread {std:.1f} of 255; "
                            f"below {BLACK_MEAN_GREY:g} and {BLACK_STD_GREY:g}): lens cap on "
                            f"or no exposure; nothing to register or measure")
    blur = blur_metric(grey_full)
    if blur > BLUR_METRIC_MAX:
        return PhotoQuality(mean, std, blur, "blurred",
                            f"blurred (blur metric {blur:.2f} > {BLUR_METRIC_MAX:g}, Crete et "
                            f"al. 2007, 0 sharp .. 1 flat): it would register badly and its "
                            f"crack widths would read too wide; retake the photo")
    return PhotoQuality(mean, std, blur)


# --------------------------------------------------------------------------- features


def photo_features(
    image: np.ndarray, *, params: RegistrationParams = DEFAULT_PARAMS, name: str = "",
    quality: PhotoQuality | None = None,
) -> PhotoFeatures:
    """SIFT keypoints (as RootSIFT) of a grey or RGB uint8 image, in full-resolution px.

    Deterministic for the same pixels. A black photo gets no keypoints (its quality says
    why). ``quality`` (from :func:`photo_quality`) is computed when not given.
    """
    import cv2

    grey = _as_grey(image)
    q = quality or photo_quality(grey)
    h, w = grey.shape
    if q.problem == "black":
        return PhotoFeatures(w, h, np.empty((0, 2), np.float32),
                             np.empty((0, 128), np.float32), q, name)
    small, s = _resized(grey, params.max_side_px)
    sift = cv2.SIFT_create(nfeatures=int(params.max_features))
    kps, des = sift.detectAndCompute(small, None)
    if des is None or not len(kps):
        return PhotoFeatures(w, h, np.empty((0, 2), np.float32),
                             np.empty((0, 128), np.float32), q, name)
    des = des.astype(np.float32)
    des /= des.sum(axis=1, keepdims=True) + 1e-7  # RootSIFT: L1 normalise, square root
    des = np.sqrt(des, dtype=np.float32)
    # keypoint (x, y) of the copy -> full resolution: pixel centres scale about the corner
    pts = (np.array([k.pt for k in kps], np.float32) + 0.5) / s - 0.5
    return PhotoFeatures(w, h, pts.astype(np.float32), des, q, name)


# --------------------------------------------------------------------------- geometry


def warp_points(h: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``points`` (N, 2) ``(x, y)`` mapped by the 3x3 homography ``h``; (N, 2) float64."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    hom = np.c_[pts, np.ones(len(pts))] @ np.asarray(h, dtype=np.float64).T
    return hom[:, :2] / hom[:, 2:3]


def local_scale(h: np.ndarray, point: tuple[float, float]) -> float:
    """Linear scale of the homography ``h`` at ``point`` (x, y): ``sqrt(|det J|)``, J the
    2x2 Jacobian of the mapping there (target px per source px)."""
    hh = np.asarray(h, dtype=np.float64)
    x, y = float(point[0]), float(point[1])
    w = hh[2, 0] * x + hh[2, 1] * y + hh[2, 2]
    u = hh[0, 0] * x + hh[0, 1] * y + hh[0, 2]
    v = hh[1, 0] * x + hh[1, 1] * y + hh[1, 2]
    j = np.array([[hh[0, 0] * w - u * hh[2, 0], hh[0, 1] * w - u * hh[2, 1]],
                  [hh[1, 0] * w - v * hh[2, 0], hh[1, 1] * w - v * hh[2, 1]]]) / (w * w)
    return float(math.sqrt(abs(np.linalg.det(j))))


def homography_error_px(h_est: np.ndarray, h_true: np.ndarray, width_px: int, height_px: int,
                        step_px: int = 16) -> float:
    """RMS distance (target px) between two homographies' images of a grid of points
    ``step_px`` apart over a ``width_px`` x ``height_px`` source frame."""
    xs, ys = np.meshgrid(np.arange(0, width_px, step_px, dtype=float),
                         np.arange(0, height_px, step_px, dtype=float))
    pts = np.c_[xs.ravel(), ys.ravel()]
    d = warp_points(h_est, pts) - warp_points(h_true, pts)
    return float(np.sqrt((d ** 2).sum(axis=1).mean()))


def _corners(w: int, h: int) -> np.ndarray:
    return np.array([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]])


def _geometry_problem(h: np.ndarray, src: PhotoFeatures, dst: PhotoFeatures,
                      params: RegistrationParams) -> tuple[str | None, float, Any]:
    """(problem or None, overlap fraction of the reference, overlap polygon)."""
    import shapely

    if not np.all(np.isfinite(h)) or abs(h[2, 2]) < 1e-12:
        return "degenerate homography", 0.0, None
    corners = _corners(src.width_px, src.height_px)
    w = np.c_[corners, np.ones(4)] @ h.T
    if np.any(w[:, 2] <= 0):
        return ("the homography sends part of the photo behind the camera (a wrong "
                "match)"), 0.0, None
    quad = w[:, :2] / w[:, 2:3]
    poly = shapely.Polygon(quad)
    if not poly.is_valid or poly.area <= 0:
        return "the homography folds the photo (a wrong match)", 0.0, None
    # orientation: a mirror flips the corner order (signed area sign)
    signed = 0.5 * np.sum(quad[:, 0] * np.roll(quad[:, 1], -1)
                          - np.roll(quad[:, 0], -1) * quad[:, 1])
    if signed <= 0:
        return "the homography mirrors the photo (a wrong match)", 0.0, None
    if shapely.convex_hull(poly).area - poly.area > 1e-6 * poly.area:
        return "the homography makes the photo non-convex (a wrong match)", 0.0, None
    scale = local_scale(h, ((src.width_px - 1) / 2.0, (src.height_px - 1) / 2.0))
    if not (1.0 / params.max_scale <= scale <= params.max_scale):
        return (f"scale {scale:.2f} between the photos is outside 1/{params.max_scale:g} .. "
                f"{params.max_scale:g}"), 0.0, None
    ref = shapely.box(-0.5, -0.5, dst.width_px - 0.5, dst.height_px - 0.5)
    inter = shapely.intersection(poly, ref)
    overlap = float(inter.area / ref.area) if not inter.is_empty else 0.0
    return None, overlap, inter


def register_pair(
    photo: PhotoFeatures, reference: PhotoFeatures, *,
    params: RegistrationParams = DEFAULT_PARAMS,
) -> PairRegistration:
    """Register ``photo`` to ``reference``: the homography photo px -> reference px.

    Steps and acceptance rules: module docstring. Never raises on image content: a pair that
    cannot be registered is a refused :class:`PairRegistration` with the reason.
    """
    import cv2
    import shapely

    empty = np.empty((0, 2), np.float32)
    for what, f in (("photo", photo), ("reference", reference)):
        if f.quality.problem is not None:
            return PairRegistration(False, None, 0, 0, None, 0.0,
                                    f"the {what} is unusable: {f.quality.reason}", empty)
        if f.count < 4:
            return PairRegistration(False, None, 0, 0, None, 0.0,
                                    f"the {what} has {f.count} keypoints: a featureless "
                                    f"surface (plain, overexposed) cannot be registered", empty)
    matcher = cv2.BFMatcher(cv2.NORM_L2)
    knn = matcher.knnMatch(photo.descriptors, reference.descriptors, k=2)
    good = [pair[0] for pair in knn
            if len(pair) == 2 and pair[0].distance < params.ratio * pair[1].distance]
    n_good = len(good)
    if n_good < max(params.min_inliers, 4):
        return PairRegistration(False, None, n_good, 0, None, 0.0,
                                f"only {n_good} feature matches pass the ratio test (< "
                                f"{params.min_inliers}): no common surface", empty)
    src = photo.points[[g.queryIdx for g in good]].astype(np.float64)
    dst = reference.points[[g.trainIdx for g in good]].astype(np.float64)
    h, mask = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, params.ransac_px,
                                 maxIters=10000, confidence=0.9999)
    if h is None or mask is None or int(mask.sum()) < 4:
        return PairRegistration(False, None, n_good, 0, None, 0.0,
                                f"no homography fits the {n_good} matches (MAGSAC++): no "
                                f"common plane", empty)
    inl = mask.ravel().astype(bool)
    refit, _ = cv2.findHomography(src[inl], dst[inl], 0)  # least squares on the inliers
    if refit is not None and np.all(np.isfinite(refit)):
        err_refit = np.linalg.norm(warp_points(refit, src) - dst, axis=1)
        if int((err_refit <= params.ransac_px).sum()) >= int(inl.sum()):
            h = refit
    err = np.linalg.norm(warp_points(h, src) - dst, axis=1)
    inl = err <= params.ransac_px
    n_in = int(inl.sum())
    rms = float(np.sqrt(np.mean(err[inl] ** 2))) if n_in else None
    h = h / h[2, 2] if abs(h[2, 2]) > 1e-12 else h
    pts_in = src[inl].astype(np.float32)

    def refused(why: str, overlap: float = 0.0) -> PairRegistration:
        return PairRegistration(False, h, n_good, n_in, rms, overlap, why, pts_in)

    if n_in < params.min_inliers:
        return refused(f"{n_in} inliers of {n_good} matches (< {params.min_inliers}): no "
                       f"common surface, or too little of it")
    problem, overlap, inter = _geometry_problem(h, photo, reference, params)
    if problem:
        return refused(f"{problem} ({n_in} inliers)")
    if overlap < params.min_overlap:
        return refused(f"the photo covers {100 * overlap:.1f} % of the reference (< "
                       f"{100 * params.min_overlap:g} %): too little common ground "
                       f"({n_in} inliers)", overlap)
    if rms is None or rms > params.max_rms_px:
        return refused(f"RMS reprojection error {rms:.2f} px > {params.max_rms_px:g} px "
                       f"({n_in} inliers): the surface is not planar or the match is wrong",
                       overlap)
    hull = shapely.convex_hull(shapely.MultiPoint(warp_points(h, pts_in)))
    spread = float(hull.area / inter.area) if inter is not None and inter.area > 0 else 0.0
    if spread < params.min_inlier_spread:
        return refused(f"the {n_in} inliers cluster in {100 * spread:.1f} % of the overlap "
                       f"(< {100 * params.min_inlier_spread:g} %): not enough to fix a "
                       f"homography", overlap)
    return PairRegistration(True, h, n_good, n_in, rms, overlap,
                            f"{n_in} inliers of {n_good} matches, RMS {rms:.2f} px, overlap "
                            f"{100 * overlap:.0f} %", pts_in)
