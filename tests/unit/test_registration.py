"""geodata.registration: black/blur checks and pairwise registration, on the real demo photos
(jobs/demo_data) re-projected through known homographies."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import shapely
from PIL import Image

from geodata.registration import (
    BLUR_METRIC_MAX,
    PhotoQuality,
    blur_metric,
    homography_error_px,
    load_grey,
    local_scale,
    photo_features,
    photo_quality,
    register_pair,
    warp_points,
)
from jobs.demo import DEMO_DATA

UAV = DEMO_DATA / "uav75"
AGUNG = DEMO_DATA / "agung_dji" / "DJI_20251001132715_0396_D_POOR_SHARPNESS.JPG"


def _rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _view(image: np.ndarray, quad, size=448, gain=1.0, gamma=1.0):
    """``image`` seen through the perspective that sends ``quad`` (source px) to the
    ``size`` x ``size`` photo; returns (photo, source->photo homography)."""
    n = size - 1
    h = cv2.getPerspectiveTransform(np.float32(quad),
                                    np.float32([[0, 0], [n, 0], [n, n], [0, n]]))
    photo = cv2.warpPerspective(image, h, (size, size), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REFLECT)
    photo = np.clip(255.0 * gain * (photo / 255.0) ** gamma, 0, 255).astype(np.uint8)
    return photo, h.astype(float)


def test_black_and_blurred_photos_are_refused_with_their_figures():
    rng = np.random.default_rng(1)
    cap = np.clip(rng.normal(3, 1.5, (300, 400, 3)), 0, 255).astype(np.uint8)
    q = photo_quality(cap)
    assert q.problem == "black" and "lens cap" in q.reason and q.mean_grey < 5
    # the real Mt Agung frame its publisher flags POOR_SHARPNESS (jobs/demo_data/agung_dji)
    q = photo_quality(load_grey(AGUNG))
    assert q.problem == "blurred" and q.blur > 0.7 and "retake" in q.reason
    for name in ("DSC00550", "DSC00564", "DSC00573"):  # real, sharp UAV75 photos
        q = photo_quality(load_grey(UAV / "photos" / f"{name}.jpg"))
        assert q.problem is None and q.blur < 0.3, (name, q)
    sharp = load_grey(UAV / "photos" / "DSC00564.jpg")
    assert blur_metric(cv2.GaussianBlur(sharp, (0, 0), 3.0)) > BLUR_METRIC_MAX
    assert blur_metric(np.full((50, 50), 128, np.uint8)) == 1.0  # flat: nothing sharp left
    # a refused photo has no keypoints to offer and registers to nothing
    black = photo_features(cap)
    assert black.count == 0
    good = photo_features(_rgb(UAV / "photos" / "DSC00564.jpg"))
    r = register_pair(black, good)
    assert not r.accepted and "unusable" in r.reason and "black" in r.reason


def test_known_warp_with_exposure_change_is_recovered_to_a_tenth_of_a_pixel():
    src = _rgb(UAV / "growth_source" / "DSC00555b.jpg")
    ref, h_ref = _view(src, [(40, 36), (468, 44), (472, 470), (36, 462)])
    photo, h_photo = _view(src, [(58, 30), (480, 52), (462, 486), (30, 470)],
                           gain=0.85, gamma=1.15)
    r = register_pair(photo_features(photo), photo_features(ref))
    assert r.accepted, r.reason
    truth = h_ref @ np.linalg.inv(h_photo)  # photo px -> reference px
    assert homography_error_px(r.homography, truth, 448, 448) < 0.1
    assert r.inliers >= 200 and r.rms_px < 0.5 and r.overlap > 0.9
    assert r.summary()["accepted"] is True and len(r.inlier_points) == r.inliers


def test_unrelated_and_featureless_photos_are_refused_never_forced():
    a = photo_features(_rgb(UAV / "photos" / "DSC00550.jpg"))
    b = photo_features(_rgb(UAV / "photos" / "DSC00573.jpg"))
    r = register_pair(a, b)
    assert not r.accepted and ("no common surface" in r.reason or "inliers" in r.reason)
    plain = np.full((200, 200, 3), 140, np.uint8)
    assert photo_quality(plain).problem == "blurred"  # nothing sharp in it
    # even when its quality is let through, a plain surface has nothing to match
    flat = photo_features(plain, quality=PhotoQuality(140.0, 0.0, 0.2))
    r = register_pair(flat, a)
    assert flat.count == 0 and not r.accepted and "featureless" in r.reason


def test_homography_helpers():
    h = np.array([[2.0, 0.0, 10.0], [0.0, 2.0, -4.0], [0.0, 0.0, 1.0]])
    assert warp_points(h, [[1.0, 2.0]]).tolist() == [[12.0, 0.0]]
    assert local_scale(h, (5.0, 5.0)) == pytest.approx(2.0)
    assert homography_error_px(h, h, 32, 32) == 0.0
    shifted = h.copy()
    shifted[0, 2] += 3.0
    assert homography_error_px(shifted, h, 32, 32) == pytest.approx(3.0)


def test_nadir_footprint_corners_map_the_image_corners():
    from geodata.views import footprint_to_image_to_map

    # footprint corners as geodata.photos.nadir_footprint builds them (yaw 0: north up):
    # bottom-left, bottom-right, top-right, top-left of the image
    fp = shapely.Polygon([(1000, 2000), (1040, 2000), (1040, 2030), (1000, 2030)])
    h = np.asarray(footprint_to_image_to_map(fp, 400, 300)).reshape(3, 3)
    got = warp_points(h, [[-0.5, -0.5], [399.5, 299.5], [199.5, 149.5]])
    assert got[0] == pytest.approx([1000, 2030])  # image top-left -> north-west
    assert got[1] == pytest.approx([1040, 2000])  # image bottom-right -> south-east
    assert got[2] == pytest.approx([1020, 2015])
