"""Per-site "what changed": PatchCore memory of a site's own baseline ground, compared place by
place with every later survey (issue 29, item 3).

A global PatchCore bank (:mod:`engine.patchcore`) answers "does this patch look like anything
in the baseline?". On a site that already has cracks that is the wrong question: a new crack
looks like the old ones and would not be flagged. The site baseline keeps the memory bank
*where it was seen*: the locally aware patch features (152 values per 8 x 8 px patch, the
ImageNet EfficientNet-Lite0 of :func:`engine.patchcore.patch_features`) of each baseline
image on its own pixel grid. A later survey's patch is compared with the baseline patches
within :data:`SEARCH_RADIUS_PATCHES` of the same ground (the registration mapping: the site
CRS for orthomosaics, the view homography for photos), and its score is the nearest-neighbour
distance among them (PatchCore's score, Roth et al. 2022 Sect. 3.3, with the bank restricted
to the neighbourhood). The radius absorbs registration error and the patch grid's 8 px
quantisation.

Score map: the patch distances upsampled bilinearly to the survey's pixels and smoothed with
a Gaussian of sigma 4 px, as PatchCore does; NaN where the baseline did not see the ground
(outside its footprint) and where the ground is not observable.

Threshold rule (:func:`fit_baseline`): the :data:`THRESHOLD_QUANTILE` quantile of the
distances that unchanged ground reaches between two baseline acquisitions of the same ground
(or, with one baseline image, the baseline against itself with each patch's own cell left
out), times :data:`THRESHOLD_FACTOR`. The probability-like
layer is ``score / (2 * threshold)`` clipped to [0, 1] (0.5 at the threshold). These are
CrackWatch's choices, measured on the SIMULATED growth site and two registered
brighton_beach photos (``crackwatch evaluate --suite site-change``), not from a paper.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms.functional import gaussian_blur

from engine.patchcore import SMOOTHING_SIGMA, imagenet_backbone, patch_features

#: Patch size of the feature grid, px.
PATCH_PX = 8
#: Neighbourhood searched in the baseline, patches (each side): 2 = +-16 px.
SEARCH_RADIUS_PATCHES = 2
#: Ground this close to the edge of a warped later image is not compared, px.
BORDER_PX = 16
#: Quantile of the baseline's self-comparison distances ...
THRESHOLD_QUANTILE = 0.999
#: ... times this factor is the threshold.
THRESHOLD_FACTOR = 1.0


@dataclass
class BaselineImage:
    """One baseline image's patch features on its own grid: ``features`` ``(h, w, 152)``
    float16, ``shape`` the image's ``(rows, cols)`` px, ``key`` what it is (survey id and
    file name) for the mapping of later images onto it."""

    key: str
    features: torch.Tensor
    shape: tuple[int, int]


@dataclass
class SiteBaseline:
    """A site's baseline: its images' patch features and the score threshold."""

    images: list[BaselineImage] = field(default_factory=list)
    threshold: float | None = None
    card: dict = field(default_factory=dict)


def feature_grid(rgb: np.ndarray, backbone=None) -> torch.Tensor:
    """``(h, w, 152)`` float32 patch features of ``rgb`` ``(rows, cols, 3)`` uint8, one cell
    per 8 x 8 px."""
    f, (h, w) = patch_features(backbone or imagenet_backbone(), rgb)
    return f.view(h, w, -1)


def _shifted_min_distance(later: torch.Tensor, base: torch.Tensor, valid: torch.Tensor,
                          radius: int, exclude_centre: bool = False) -> torch.Tensor:
    """Per cell of ``later`` ``(h, w, D)``: the smallest L2 distance to ``base`` ``(h, w, D)``
    (the baseline resampled onto the later grid, ``valid`` ``(h, w)`` where it exists) at
    offsets up to ``radius`` cells; inf where no valid neighbour."""
    h, w, _ = later.shape
    best = torch.full((h, w), float("inf"))
    pad_b = F.pad(base.permute(2, 0, 1), (radius,) * 4)
    pad_v = F.pad(valid.float()[None], (radius,) * 4)[0] > 0
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if exclude_centre and dy == 0 and dx == 0:
                continue
            b = pad_b[:, radius + dy:radius + dy + h, radius + dx:radius + dx + w]
            v = pad_v[radius + dy:radius + dy + h, radius + dx:radius + dx + w]
            d = (later - b.permute(1, 2, 0)).pow(2).sum(-1).sqrt()
            best = torch.where(v, torch.minimum(best, d), best)
    return best


def _to_pixels(cells: torch.Tensor, shape: tuple[int, int]) -> np.ndarray:
    """``(h, w)`` patch scores (inf/NaN: not compared) -> ``(rows, cols)`` float32 px,
    upsampled, smoothed (PatchCore's sigma 4 px), NaN where not compared."""
    rows, cols = shape
    h, w = cells.shape
    ok = torch.isfinite(cells)
    filled = torch.where(ok, cells, torch.zeros_like(cells))
    m = F.interpolate(filled[None, None], size=(h * PATCH_PX, w * PATCH_PX), mode="bilinear",
                      align_corners=False)
    side = 2 * int(4 * SMOOTHING_SIGMA) + 1
    m = gaussian_blur(m, [side, side], [SMOOTHING_SIGMA])[0, 0, :rows, :cols]
    okp = F.interpolate(ok.float()[None, None], scale_factor=PATCH_PX, mode="nearest")[
        0, 0, :rows, :cols] > 0
    return torch.where(okp, m, torch.full_like(m, float("nan"))).numpy().astype(np.float32)


def grid_change_scores(later_rgb: np.ndarray, bases: list[BaselineImage],
                       seen: np.ndarray | None = None, backbone=None,
                       radius: int = SEARCH_RADIUS_PATCHES) -> np.ndarray:
    """Surface-change score per pixel of ``later_rgb`` ``(rows, cols, 3)`` uint8, already on
    the baseline images' pixel grid (an orthomosaic reprojected onto it, a photo warped into
    it): ``(rows, cols)`` float32, the smallest distance over ``bases``; NaN where ``seen``
    ``(rows, cols)`` bool is False (no data, not observable) for any pixel of the patch."""
    rows, cols = later_rgb.shape[:2]
    later = feature_grid(later_rgb, backbone)
    gh, gw = later.shape[:2]
    d = torch.full((gh, gw), float("inf"))
    for base in bases:
        if base.features.shape[:2] != (gh, gw):
            raise ValueError(f"baseline {base.key} has a {tuple(base.features.shape[:2])} "
                             f"patch grid, the later image {(gh, gw)}: put it on the "
                             f"baseline's pixel grid first.")
        d = torch.minimum(d, _shifted_min_distance(
            later, base.features.float(), torch.ones(gh, gw, dtype=torch.bool), radius))
    if seen is not None:
        cells = np.pad(seen, ((0, gh * PATCH_PX - rows), (0, gw * PATCH_PX - cols)))
        ok = torch.from_numpy(cells.reshape(gh, PATCH_PX, gw, PATCH_PX).all((1, 3)))
        d = torch.where(ok, d, torch.full_like(d, float("inf")))
    return _to_pixels(d, (rows, cols))


def change_scores(later_rgb: np.ndarray, base: BaselineImage, later_to_base: np.ndarray,
                  backbone=None, radius: int = SEARCH_RADIUS_PATCHES) -> np.ndarray:
    """Surface-change score per pixel of ``later_rgb`` ``(rows, cols, 3)`` uint8 against one
    baseline image: ``(rows, cols)`` float32, NaN where the baseline did not see the ground.

    The later image is first warped into the baseline's pixel grid (``later_to_base``, 3x3,
    later px -> baseline px; ``cv2.warpPerspective``), so that both feature grids share
    orientation and scale (CNN features are neither rotation- nor scale-invariant); the
    scores are computed there (:func:`grid_change_scores`) and warped back. Ground within
    :data:`BORDER_PX` of the warped image's edge is not compared (the features there see the
    blank outside)."""
    import cv2

    rows, cols = later_rgb.shape[:2]
    bh, bw = base.shape
    h = np.asarray(later_to_base, np.float64)
    if np.allclose(h, np.eye(3)) and (rows, cols) == (bh, bw):
        return grid_change_scores(later_rgb, [base], None, backbone, radius)
    warped = cv2.warpPerspective(np.ascontiguousarray(later_rgb), h, (bw, bh),
                                 flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    seen = cv2.warpPerspective(np.ones((rows, cols), np.uint8), h, (bw, bh),
                               flags=cv2.INTER_NEAREST, borderValue=0)
    seen = cv2.erode(seen, np.ones((3, 3), np.uint8), iterations=BORDER_PX) > 0
    in_base = grid_change_scores(warped, [base], seen, backbone, radius)
    return cv2.warpPerspective(in_base, h, (cols, rows), flags=cv2.INTER_LINEAR
                               | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                               borderValue=float("nan"))


def self_distances(base: BaselineImage, radius: int = SEARCH_RADIUS_PATCHES) -> np.ndarray:
    """Each baseline patch's distance to its neighbourhood with its own cell left out: what
    unchanged ground of this texture reaches under a registration error of up to ``radius``
    patches. ``(N,)`` float32, finite values only."""
    f = base.features.float()
    valid = torch.ones(f.shape[:2], dtype=torch.bool)
    d = _shifted_min_distance(f, f, valid, radius, exclude_centre=True)
    return d[torch.isfinite(d)].numpy()


def fit_baseline(images: list[tuple[str, np.ndarray]], backbone=None,
                 pairs: list[tuple[int, int, np.ndarray]] | None = None,
                 quantile: float = THRESHOLD_QUANTILE,
                 factor: float = THRESHOLD_FACTOR) -> SiteBaseline:
    """A :class:`SiteBaseline` of ``[(key, rgb), ...]`` (``(rows, cols, 3)`` uint8) and its
    threshold.

    Threshold rule: with ``pairs`` ``[(i, j, H), ...]`` (baseline image ``i`` registered to
    image ``j`` by the 3x3 mapping ``H``, ``i`` px -> ``j`` px; the identity for
    orthomosaics on one grid), the distances between baseline images of the same ground
    (:func:`change_scores`): what unchanged ground reaches between two acquisitions
    (lighting, parallax, registration error). Without pairs (one baseline image), the
    baseline against itself with each patch's own cell left out (:func:`self_distances`),
    which sees no lighting or viewpoint change: a more sensitive layer, said in the card.
    The threshold is ``factor`` x the ``quantile`` quantile of those distances.

    Raises:
        ValueError: no image.
    """
    if not images:
        raise ValueError("a site baseline needs at least one image of the baseline survey(s).")
    backbone = backbone or imagenet_backbone()
    out = SiteBaseline()
    for key, rgb in images:
        out.images.append(BaselineImage(key, feature_grid(rgb, backbone).half(),
                                        tuple(rgb.shape[:2])))
    if pairs:
        dists = []
        for i, j, h in pairs:
            s = change_scores(images[i][1], out.images[j], h, backbone)
            dists.append(s[np.isfinite(s)][::7])
        source = f"{len(pairs)} registered pair(s) of baseline images of the same ground"
    else:
        dists = [self_distances(b) for b in out.images]
        source = ("the baseline against itself, own patch left out (one baseline image: no "
                  "lighting or viewpoint change measured, so the layer is more sensitive)")
    d = np.concatenate(dists)
    if d.size == 0:
        raise ValueError("the baseline images do not overlap: no ground to set the threshold "
                         "on.")
    out.threshold = float(factor * np.quantile(d, quantile))
    out.card = {"method": "PatchCore memory of the site's baseline, compared place by place",
                "backbone": "EfficientNet-Lite0 ImageNet, stride 8 + 16 features",
                "search_radius_px": SEARCH_RADIUS_PATCHES * PATCH_PX,
                "threshold": out.threshold,
                "threshold_rule": f"{factor} x the {quantile} quantile of the patch distances "
                                  f"of {source}",
                "images": [k for k, _ in images]}
    return out


def change_probability(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Probability-like layer: ``scores / (2 * threshold)`` clipped to [0, 1], NaN kept."""
    return np.clip(scores / (2 * threshold), 0, 1).astype(np.float32)


__all__ = ["BaselineImage", "SiteBaseline", "change_probability", "change_scores",
           "feature_grid", "fit_baseline", "grid_change_scores",
           "self_distances"]
