"""What the photo-view modules share: the rules' constants, the photo and placement records,
photo files and their cached features, homography helpers (see :mod:`geodata.views`)."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from sqlalchemy import select
from sqlalchemy.orm import Session

from geodata.registration import (
    PhotoFeatures,
    PhotoQuality,
    RegistrationParams,
    load_grey,
    local_scale,
    photo_features,
    warp_points,
)
from geodata.store.models import PhotoView, PhotoViewTrack, Survey

__all__ = [
    "ALIVE",
    "CONSISTENCY_PX",
    "COVERAGE_FRACTION",
    "DEFAULT_GPS_ERROR_M",
    "DOMINANCE",
    "SAME_PLACE_OVERLAP",
    "TRACKED",
    "PhotoPlacement",
    "SurveyPhoto",
    "cached_features",
    "matrix",
    "photo_path",
    "view_track_ids",
    "warp_geom",
]

#: Assumed horizontal error (m) of a drone photo's GPS position without RTK: GPS.gov gives
#: "typically accurate to within a 4.9 m radius under open sky" for GPS-enabled
#: smartphones (gps.gov/systems/gps/performance/accuracy), the class of receiver consumer
#: drones carry. Photo cracks placed on the map through a footprint are this approximate.
DEFAULT_GPS_ERROR_M = 5.0
#: With several matching views, the best is taken outright when it has this many times the
#: inliers of each other one.
DOMINANCE = 2.0
#: Two views "agree" on a photo when mapping its inliers through one view and on to the
#: other lands within this many view pixels (median) of mapping them into the other directly.
CONSISTENCY_PX = 10.0
#: Views that overlap each other by at least this fraction show (or look like) one place.
SAME_PLACE_OVERLAP = 0.5
#: A previous track takes part in matching when at least this fraction of its polygon lies
#: inside the current photo's coverage of the view.
COVERAGE_FRACTION = 0.5

#: Registration statuses whose photo is tracked in its view.
TRACKED = ("reference", "registered")
#: Track events that leave the track alive.
ALIVE = ("new", "continued", "split")


@dataclass
class SurveyPhoto:
    """One photo of a survey as the pipeline's infer step saw it (no database involved).

    Attributes:
        image_name: file name (as stored on its cracks).
        path: the file.
        width_px, height_px: stored image size.
        features: its :class:`~geodata.registration.PhotoFeatures` (None: unreadable).
        quality: its :class:`~geodata.registration.PhotoQuality` (None: unreadable).
        own_gsd_m: its own GSD, m/px (the survey's ``--gsd-m``, else EXIF/XMP), or None.
        own_gsd_source: where ``own_gsd_m`` comes from, or why there is none.
        gsd_given: ``own_gsd_m`` is the survey's ``--gsd-m``.
        footprint: nadir ground footprint in the site CRS (GPS + GSD), or None.
        problem: why it could not be read (then nothing else is set).
    """

    image_name: str
    path: Path
    width_px: int = 0
    height_px: int = 0
    features: PhotoFeatures | None = None
    quality: PhotoQuality | None = None
    own_gsd_m: float | None = None
    own_gsd_source: str = ""
    gsd_given: bool = False
    footprint: Any = None
    problem: str | None = None


@dataclass(frozen=True)
class PhotoPlacement:
    """Where one photo went (:func:`geodata.views.register_survey_photos`).

    ``status`` as :data:`geodata.store.models.REGISTRATION_STATUSES`; ``view_id`` None when
    refused; ``homography`` photo px -> view px (None when refused); ``gsd_m`` the GSD at
    the photo centre (None: not measurable); ``reason`` what happened, in words.
    """

    image_name: str
    status: str
    view_id: int | None
    homography: np.ndarray | None
    gsd_m: float | None
    gsd_source: str | None
    reason: str
    view_scale_m_per_px: float | None = None
    tracked: bool = field(default=False)

    def gsd_at(self, x: float, y: float) -> float | None:
        """GSD (m per photo px) at photo point ``(x, y)``: through the homography when it
        comes from a view scale, else :attr:`gsd_m`."""
        if self.view_scale_m_per_px is not None and self.homography is not None:
            return self.view_scale_m_per_px * local_scale(self.homography, (x, y))
        return self.gsd_m


def photo_path(survey: Survey, image_name: str) -> Path:
    """The file of photo ``image_name`` of ``survey`` (its folder, or the photo itself)."""
    src = Path(survey.source_path)
    if src.name == image_name and not src.is_dir():
        return src
    return src / image_name


def matrix(values: Sequence[float] | None) -> np.ndarray | None:
    """A stored row-major homography (9 numbers) as a 3x3 array; None stays None."""
    return None if values is None else np.asarray(values, dtype=np.float64).reshape(3, 3)


def warp_geom(geom: Any, h: np.ndarray) -> Any:
    """A shapely geometry mapped through the 3x3 homography ``h``."""
    return shapely.transform(geom, lambda c: warp_points(h, c))


def view_track_ids(s: Session, site_id: int) -> dict[int, int]:
    """``{track_id: view_id}`` of the site's photo tracks."""
    return dict(s.execute(select(PhotoViewTrack.track_id, PhotoViewTrack.view_id)
                          .join(PhotoView, PhotoView.id == PhotoViewTrack.view_id)
                          .where(PhotoView.site_id == site_id)).all())


_CACHE: OrderedDict[tuple, PhotoFeatures] = OrderedDict()
_CACHE_SIZE = 64


def cached_features(path: Path, params: RegistrationParams) -> PhotoFeatures:
    """Features of a photo file, cached in this process by (path, size, mtime, params).

    Raises:
        OSError: missing or unreadable file.
    """
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns, params)
    hit = _CACHE.get(key)
    if hit is not None:
        _CACHE.move_to_end(key)
        return hit
    feats = photo_features(load_grey(path), params=params, name=Path(path).name)
    _CACHE[key] = feats
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return feats
