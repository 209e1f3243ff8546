"""Nadir drone photos on the map: a footprint's photo px -> map homography, and whether a
photo can show a view at all by GPS (see :mod:`geodata.views`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely

from geodata.registration import warp_points
from geodata.store.models import PhotoView
from geodata.views.common import matrix

__all__ = ["footprint_to_image_to_map", "near"]


def footprint_to_image_to_map(footprint: shapely.Polygon, width_px: int,
                              height_px: int) -> list[float]:
    """The 3x3 homography (row-major list) photo px -> map of a nadir footprint as
    :func:`geodata.photos.nadir_footprint` builds it (corners: image bottom-left,
    bottom-right, top-right, top-left)."""
    import cv2

    corners = np.asarray(footprint.exterior.coords[:4], dtype=np.float64)
    w, h = float(width_px), float(height_px)
    src = np.array([[-0.5, h - 0.5], [w - 0.5, h - 0.5], [w - 0.5, -0.5], [-0.5, -0.5]])
    # fit in local coordinates: map coordinates are large, keep the solve well conditioned
    origin = corners.mean(axis=0)
    m = cv2.getPerspectiveTransform(src.astype(np.float32),
                                    (corners - origin).astype(np.float32)).astype(np.float64)
    shift = np.array([[1.0, 0.0, origin[0]], [0.0, 1.0, origin[1]], [0.0, 0.0, 1.0]])
    return [float(v) for v in (shift @ m).ravel()]


def near(footprint: Any, view: PhotoView, gps_error_m: float) -> bool:
    """False only when both have a map placement and lie more than 2 GPS errors apart."""
    if footprint is None or view.image_to_map is None:
        return True
    corners = np.array([[0, 0], [view.width_px, 0], [view.width_px, view.height_px],
                        [0, view.height_px]], dtype=float)
    quad = shapely.Polygon(warp_points(matrix(view.image_to_map), corners))
    return bool(shapely.distance(footprint, quad) <= 2.0 * gps_error_m)
