"""Matching one photo against a site's views: which views accept it, and whether the best
of several may take it or the photo is ambiguous (rules in :mod:`geodata.views`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import shapely
from sqlalchemy import select
from sqlalchemy.orm import Session

from geodata.registration import (
    PairRegistration,
    PhotoFeatures,
    RegistrationParams,
    register_pair,
    warp_points,
)
from geodata.store.models import PhotoView, Survey
from geodata.views.common import (
    CONSISTENCY_PX,
    DOMINANCE,
    SAME_PLACE_OVERLAP,
    SurveyPhoto,
    cached_features,
    photo_path,
)
from geodata.views.footprints import near

__all__ = ["CandidateViews", "choose"]

#: A view that accepted a photo, with the registration that accepted it.
Accepted = tuple[PhotoView, PairRegistration]


class CandidateViews:
    """The views of a site a survey's photos may register into (views made by photos of
    the same survey are no candidates), with their reference photos' features and the
    view-to-view registrations, each computed once."""

    def __init__(self, s: Session, views: list[PhotoView], params: RegistrationParams
                 ) -> None:
        self.views = views
        self.params = params
        self._surveys = {sv.id: sv for sv in s.scalars(select(Survey).where(
            Survey.id.in_({v.reference_survey_id for v in views})))}
        self._features: dict[int, PhotoFeatures | str] = {}
        self._pairs: dict[tuple[int, int], PairRegistration] = {}

    def reference_features(self, v: PhotoView) -> PhotoFeatures | str:
        """The features of ``v``'s reference photo, or why they cannot be read."""
        if v.id not in self._features:
            path = photo_path(self._surveys[v.reference_survey_id], v.reference_image)
            try:
                self._features[v.id] = cached_features(path, self.params)
            except OSError as exc:
                self._features[v.id] = (f"its reference photo cannot be read ({exc}); "
                                        f"restore {path} to register photos into view {v.id}")
        return self._features[v.id]

    def pair(self, a: PhotoView, b: PhotoView) -> PairRegistration | None:
        """View ``a``'s reference registered onto ``b``'s (None: a reference unreadable)."""
        key = (a.id, b.id)
        if key not in self._pairs:
            fa, fb = self.reference_features(a), self.reference_features(b)
            if isinstance(fa, str) or isinstance(fb, str):
                return None
            self._pairs[key] = register_pair(fa, fb, params=self.params)
        return self._pairs[key]

    def match(self, photo: SurveyPhoto, gps_error_m: float
              ) -> tuple[list[dict[str, Any]], list[Accepted]]:
        """(what each view said, with its figures; the views that accepted the photo, most
        inliers first)."""
        tried: list[dict[str, Any]] = []
        accepted: list[Accepted] = []
        for v in self.views:
            if not near(photo.footprint, v, gps_error_m):
                tried.append({"view_id": v.id, "accepted": False,
                              "reason": f"more than 2 x {gps_error_m:g} m away by GPS"})
                continue
            fv = self.reference_features(v)
            if isinstance(fv, str):
                tried.append({"view_id": v.id, "accepted": False, "reason": fv})
                continue
            r = register_pair(photo.features, fv, params=self.params)
            tried.append({"view_id": v.id, **r.summary()})
            if r.accepted:
                accepted.append((v, r))
        accepted.sort(key=lambda t: (-t[1].inliers, t[1].rms_px or 0.0, t[0].id))
        return tried, accepted


def choose(accepted: list[Accepted],
           views_pair: Callable[[PhotoView, PhotoView], PairRegistration | None]
           ) -> tuple[str | None, set[int]]:
    """(None, the indices of the other views the photo may go to when the best is taken)
    when the best (first) view may be taken, else (why the photo is ambiguous, empty)."""
    best_v, best = accepted[0]
    safe: set[int] = set()
    for i, (other_v, other) in enumerate(accepted[1:], start=1):
        pair = views_pair(best_v, other_v)
        if pair is not None and pair.accepted:
            pts = best.inlier_points
            via = warp_points(pair.homography, warp_points(best.homography, pts))
            direct = warp_points(other.homography, pts)
            gap = float(np.median(np.linalg.norm(via - direct, axis=1))) if len(pts) else 0.0
            if gap <= CONSISTENCY_PX and pair.overlap < SAME_PLACE_OVERLAP:
                safe.add(i)  # neighbouring views of one scene: either is right
                continue
            if best.inliers >= DOMINANCE * other.inliers:
                continue
            if gap > CONSISTENCY_PX:
                return (f"views {best_v.id} ({best.inliers} inliers) and {other_v.id} "
                        f"({other.inliers} inliers) both match it but place it {gap:.0f} px "
                        f"apart (look-alike surfaces)"), set()
            return (f"views {best_v.id} ({best.inliers} inliers) and {other_v.id} "
                    f"({other.inliers} inliers) both match it about equally and show "
                    f"the same place or look-alike ones ({100 * pair.overlap:.0f} % "
                    f"overlap)"), set()
        a = shapely.convex_hull(shapely.MultiPoint(best.inlier_points))
        b = shapely.convex_hull(shapely.MultiPoint(other.inlier_points))
        small = min(a.area, b.area)
        shared = a.intersection(b).area / small if small > 0 else 1.0
        if shared < 0.2:
            safe.add(i)  # the photo spans two views that share no ground
            continue
        if best.inliers >= DOMINANCE * other.inliers:
            continue
        return (f"views {best_v.id} ({best.inliers} inliers) and {other_v.id} "
                f"({other.inliers} inliers) both match the same part of it but not "
                f"each other (look-alike surfaces)"), set()
    return None, safe
