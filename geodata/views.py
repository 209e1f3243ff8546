"""Photo views: register each photo survey's photos into its site's views, track cracks per view.

Facility managers inspect with photo sets, not orthomosaics; photos of two inspections
share no coordinate frame. A *view* (:class:`~geodata.store.models.PhotoView`) is one place
that is photographed again and again (a wall, a pier face, a joint; for nadir drone photos
a patch of ground). Its frame is the pixel grid of its *reference photo*, the first photo
that showed it.

Registration (:func:`register_survey_photos`, in the pipeline's store transaction). Each
photo of a survey, in file-name order, is

* **refused** when it is unreadable, black (lens cap) or blurred
  (:func:`geodata.registration.photo_quality`): its cracks (none for a black frame) are
  stored but not tracked, and ``reason`` says why;
* the **reference** of a view when it already is one (a re-run), or when it matches no view
  of the site (every candidate refused, each with its figures in ``candidates``): it starts a
  new view; a photo with too few keypoints to ever be matched is refused instead;
* **registered** into the one view that matches (:func:`geodata.registration.register_pair`:
  SIFT, ratio test, MAGSAC++ homography, accepted on inliers and RMS error). Views made by
  photos of the same survey are no candidates (two photos of one inspection are two places
  unless an earlier view links them);
* when two or more views match: registered into the one with the most inliers when it has
  at least :data:`DOMINANCE` times the inliers of each other, or when each other view is a
  *neighbour*: the two views register to each other, overlap by less than half, and map the
  photo's inliers to the same place (within :data:`CONSISTENCY_PX`) -- a photo between two
  overlapping views of one scene, as in a drone flight -- or the two views share no ground
  and the photo's inliers for them lie in different parts of the photo (it spans both).
  Otherwise it is **refused** as ambiguous (look-alike surfaces: two identical panels, or
  two views of the same place), never forced into one;
* each view takes at most one photo of a survey (most inliers first); a photo whose best
  view is taken goes to its next matching view that is a neighbour of the best (above),
  else it is a **duplicate**: stored, not tracked.

GSD of a photo (metres per photo pixel), first that applies: a view scale set by the user
(``crackwatch view set-scale``) carried through the homography; the survey's ``--gsd-m``;
the view scale taken from its reference photo, through the homography; the photo's own
EXIF/XMP GSD (:func:`geodata.photos.ground_sample_distance_m`). Through the homography
``H`` (photo px -> view px) the GSD at a photo point ``p`` is ``view_scale * sqrt(|det
J_H(p)|)``, so each crack is measured with the GSD at its own position
(:meth:`PhotoPlacement.gsd_at`). A photo with none of these is still registered, but its
cracks cannot be measured in mm and are not stored (``reason`` says what to give).

Nadir drone photos with GPS get a ground footprint (:func:`geodata.photos.nadir_footprint`)
and a photo px -> site CRS homography, so their cracks can be drawn on the map, marked
approximate with the assumed GPS error ``position_error_m`` (:data:`DEFAULT_GPS_ERROR_M`).

Tracking (:func:`track_views`, called by :func:`geodata.tracking.track_survey` in its
transaction). Per view, the surveys with a photo in it are taken in tracking order
(``acquired_at``, then id). Each photo's image-space cracks are warped into the view's frame
by its homography and matched with :func:`geodata.matching.match_cracks` against the last
crack of each active track of the view that lies inside the photo's coverage (a track
outside the part of the view the photo shows is not "vanished": it was not looked at). A
crack the matcher calls *new* that lies within the tolerance of a crack of the same photo
belonging to a track is a piece of that crack (the segmentation left a gap where it grew
past its old tip): it is recorded as a split of that track, so a grown crack keeps one
lineage. The
tolerance, in view pixels, is ``tolerance_px`` photo pixels (at the coarser of the two
photos' scales into the view) plus both photos' registration RMS errors -- the photo
counterpart of ``registration_error_m``. Lengths, widths and areas stay those measured on
each photo (m, mm, m^2). Tracks, observations and survey summaries are the same records as
for orthomosaics (``crack_track`` with a ``photo_view_track`` row naming the view), so the
defect history, BRE Digest 251 categories and alert rules work on them unchanged.
Re-tracking from a survey recomputes every view from that survey on; tracks first seen
earlier keep their ids.
"""

from __future__ import annotations

import logging
import math
import os
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from geodata.registration import (
    DEFAULT_PARAMS,
    PairRegistration,
    PhotoFeatures,
    PhotoQuality,
    RegistrationParams,
    load_grey,
    local_scale,
    photo_features,
    register_pair,
    warp_points,
)
from geodata.store.models import (
    Crack,
    CrackTrack,
    PhotoRegistration,
    PhotoView,
    PhotoViewTrack,
    Site,
    Survey,
    SurveySummary,
    TrackObservation,
)
from geodata.store.tracks import write_track_outcomes

__all__ = [
    "CONSISTENCY_PX",
    "DEFAULT_GPS_ERROR_M",
    "DOMINANCE",
    "PhotoPlacement",
    "SurveyPhoto",
    "footprint_to_image_to_map",
    "photo_path",
    "register_survey_photos",
    "set_view_scale",
    "track_views",
    "view_track_ids",
]

log = logging.getLogger(__name__)

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

_TRACKED = ("reference", "registered")
_ALIVE = ("new", "continued", "split")


# --------------------------------------------------------------------------- inputs/outputs


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
    """Where one photo went (:func:`register_survey_photos`).

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


# --------------------------------------------------------------------------- helpers


def photo_path(survey: Survey, image_name: str) -> Path:
    """The file of photo ``image_name`` of ``survey`` (its folder, or the photo itself)."""
    src = Path(survey.source_path)
    if src.name == image_name and not src.is_dir():
        return src
    return src / image_name


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


def _mat(values: Sequence[float] | None) -> np.ndarray | None:
    return None if values is None else np.asarray(values, dtype=np.float64).reshape(3, 3)


def _warp_geom(geom: Any, h: np.ndarray) -> Any:
    return shapely.transform(geom, lambda c: warp_points(h, c))


_CACHE: OrderedDict[tuple, PhotoFeatures] = OrderedDict()
_CACHE_SIZE = 64


def _cached_features(path: Path, params: RegistrationParams) -> PhotoFeatures:
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


# --------------------------------------------------------------------------- registration


def register_survey_photos(
    s: Session,
    survey: Survey,
    photos: Iterable[SurveyPhoto],
    *,
    params: RegistrationParams = DEFAULT_PARAMS,
    gps_error_m: float = DEFAULT_GPS_ERROR_M,
) -> dict[str, PhotoPlacement]:
    """Register a survey's photos into its site's views (rules in the module docstring).

    Replaces the survey's earlier registrations (a re-run); views whose reference photo is
    in this survey are kept and their reference stays their reference. Writes
    ``photo_registration`` rows and new ``photo_view`` rows in ``s``'s transaction; never
    raises on image content (each photo gets a status and a reason).

    Returns:
        ``{image_name: PhotoPlacement}`` for every photo given.
    """
    site = s.get(Site, survey.site_id)
    assert site is not None
    photos = sorted(photos, key=lambda p: p.image_name)
    s.execute(delete(PhotoRegistration).where(PhotoRegistration.survey_id == survey.id))
    views = list(s.scalars(select(PhotoView).where(PhotoView.site_id == site.id)
                           .order_by(PhotoView.id)))
    own = {v.reference_image: v for v in views if v.reference_survey_id == survey.id}
    candidates = [v for v in views if v.reference_survey_id != survey.id]
    surveys = {sv.id: sv for sv in s.scalars(select(Survey).where(
        Survey.id.in_({v.reference_survey_id for v in candidates})))}
    ref_feats: dict[int, PhotoFeatures | str] = {}
    pair_cache: dict[tuple[int, int], PairRegistration] = {}

    def reference_features(v: PhotoView) -> PhotoFeatures | str:
        if v.id not in ref_feats:
            path = photo_path(surveys[v.reference_survey_id], v.reference_image)
            try:
                ref_feats[v.id] = _cached_features(path, params)
            except OSError as exc:
                ref_feats[v.id] = (f"its reference photo cannot be read ({exc}); restore "
                                   f"{path} to register photos into view {v.id}")
        return ref_feats[v.id]

    def views_pair(a: PhotoView, b: PhotoView) -> PairRegistration | None:
        key = (a.id, b.id)
        if key not in pair_cache:
            fa, fb = reference_features(a), reference_features(b)
            if isinstance(fa, str) or isinstance(fb, str):
                return None
            pair_cache[key] = register_pair(fa, fb, params=params)
        return pair_cache[key]

    rows: list[PhotoRegistration] = []
    placements: dict[str, PhotoPlacement] = {}
    pending: list[tuple[SurveyPhoto, dict[str, Any], list[dict[str, Any]],
                        list[tuple[PhotoView, PairRegistration]], set[int]]] = []
    for photo in photos:
        quality = {**(photo.quality.to_dict() if photo.quality else {}),
                   "size_px": [photo.width_px, photo.height_px]}
        footprint = photo.footprint
        to_map = (footprint_to_image_to_map(footprint, photo.width_px, photo.height_px)
                  if footprint is not None else None)
        base = {"site_id": site.id, "survey_id": survey.id, "image_name": photo.image_name,
                "quality": quality, "footprint": (shapely.set_srid(footprint, site.crs_epsg)
                                                  if footprint is not None else None),
                "image_to_map": to_map,
                "position_error_m": gps_error_m if footprint is not None else None}
        problem = photo.problem or (photo.quality.reason if photo.quality and
                                    photo.quality.problem else None)
        if problem or photo.features is None:
            gsd, src = photo.own_gsd_m, photo.own_gsd_source
            reason = f"refused: {problem}; its cracks are not tracked"
            rows.append(PhotoRegistration(**base, status="refused", gsd_m=gsd,
                                          gsd_source=src, candidates=[], reason=reason))
            placements[photo.image_name] = PhotoPlacement(photo.image_name, "refused", None,
                                                          None, gsd, src, reason)
            continue
        if photo.image_name in own:  # the reference of a view made by this survey before
            v = own[photo.image_name]
            h = np.eye(3)
            gsd, src, vs = _gsd(photo, v, h)
            reason = f"the reference photo of view {v.id} ({v.name})"
            rows.append(PhotoRegistration(
                **base, view_id=v.id, status="reference", homography=list(h.ravel()),
                matches=photo.features.count, inliers=photo.features.count, rms_px=0.0,
                overlap=1.0, gsd_m=gsd, gsd_source=src, candidates=[], reason=reason))
            placements[photo.image_name] = PhotoPlacement(photo.image_name, "reference", v.id,
                                                          h, gsd, src, reason, vs)
            continue
        tried: list[dict[str, Any]] = []
        accepted: list[tuple[PhotoView, PairRegistration]] = []
        for v in candidates:
            if not _near(footprint, v, gps_error_m):
                tried.append({"view_id": v.id, "accepted": False,
                              "reason": f"more than 2 x {gps_error_m:g} m away by GPS"})
                continue
            fv = reference_features(v)
            if isinstance(fv, str):
                tried.append({"view_id": v.id, "accepted": False, "reason": fv})
                continue
            r = register_pair(photo.features, fv, params=params)
            tried.append({"view_id": v.id, **r.summary()})
            if r.accepted:
                accepted.append((v, r))
        accepted.sort(key=lambda t: (-t[1].inliers, t[1].rms_px or 0.0, t[0].id))
        if not accepted:
            if photo.features.count < params.min_inliers:
                gsd, src = photo.own_gsd_m, photo.own_gsd_source
                reason = (f"refused: featureless, {photo.features.count} keypoints (< "
                          f"{params.min_inliers}): a plain or overexposed surface cannot be "
                          f"registered; its cracks are not tracked")
                rows.append(PhotoRegistration(**base, status="refused", gsd_m=gsd,
                                              gsd_source=src, candidates=tried, reason=reason))
                placements[photo.image_name] = PhotoPlacement(photo.image_name, "refused",
                                                              None, None, gsd, src, reason)
                continue
            v = PhotoView(site_id=site.id, name=_view_name(photo.image_name, survey),
                          reference_survey_id=survey.id, reference_image=photo.image_name,
                          width_px=photo.width_px, height_px=photo.height_px,
                          scale_m_per_px=photo.own_gsd_m,
                          scale_source=(f"reference photo {photo.image_name}: "
                                        f"{photo.own_gsd_source}" if photo.own_gsd_m
                                        else None),
                          image_to_map=to_map,
                          position_error_m=gps_error_m if to_map is not None else None)
            s.add(v)
            s.flush()
            h = np.eye(3)
            gsd, src, vs = _gsd(photo, v, h)
            best = max((t for t in tried if "inliers" in t), key=lambda t: t["inliers"],
                       default=None)
            why = ("the site has no view yet" if not candidates else
                   f"it matches none of the site's {len(candidates)} view(s)"
                   + (f" (best: view {best['view_id']}, {best['reason']})" if best else ""))
            reason = f"new view {v.id} ({v.name}): {why}"
            rows.append(PhotoRegistration(
                **base, view_id=v.id, status="reference", homography=list(h.ravel()),
                matches=photo.features.count, inliers=photo.features.count, rms_px=0.0,
                overlap=1.0, gsd_m=gsd, gsd_source=src, candidates=tried, reason=reason))
            placements[photo.image_name] = PhotoPlacement(photo.image_name, "reference", v.id,
                                                          h, gsd, src, reason, vs)
            continue
        verdict, safe = _choose(accepted, views_pair)
        if verdict is not None:  # ambiguous
            gsd, src = photo.own_gsd_m, photo.own_gsd_source
            reason = f"refused: ambiguous: {verdict}; its cracks are not tracked"
            rows.append(PhotoRegistration(**base, status="refused", gsd_m=gsd, gsd_source=src,
                                          candidates=tried, reason=reason))
            placements[photo.image_name] = PhotoPlacement(photo.image_name, "refused", None,
                                                          None, gsd, src, reason)
            continue
        pending.append((photo, base, tried, accepted, safe))

    # registered photos: each view takes one photo of this survey (most inliers first); a
    # photo whose best view is taken goes to its next view that agrees with the best (a
    # neighbour of the same scene), else it is a duplicate of its best view
    taken = {r.view_id for r in rows if r.view_id is not None and r.status in _TRACKED}
    edges = sorted(((r.inliers, k, i) for k, (_p, _b, _t, acc, safe) in enumerate(pending)
                    for i, (_v, r) in enumerate(acc) if i == 0 or i in safe),
                   key=lambda e: (-e[0], e[1], e[2]))
    chosen: dict[int, int] = {}
    for _n, k, i in edges:
        vid = pending[k][3][i][0].id
        if k in chosen or vid in taken:
            continue
        chosen[k] = i
        taken.add(vid)
    for k, (photo, base, tried, accepted, _safe) in enumerate(pending):
        i = chosen.get(k, 0)
        v, r = accepted[i]
        gsd, src, vs = _gsd(photo, v, r.homography)
        others = [f"view {o.id} ({ro.inliers} inliers)" for j, (o, ro) in enumerate(accepted)
                  if j != i]
        reason = (f"registered into view {v.id} ({v.name}): {r.reason}"
                  + (f"; also matched {', '.join(others)}" if others else "")
                  + (f" (view {accepted[0][0].id} has a photo of this survey with more "
                     f"inliers)" if i else ""))
        rows.append(PhotoRegistration(
            **base, view_id=v.id, status="registered", homography=list(r.homography.ravel()),
            matches=r.matches, inliers=r.inliers, rms_px=r.rms_px, overlap=r.overlap,
            gsd_m=gsd, gsd_source=src, candidates=tried, reason=reason))
        placements[photo.image_name] = PhotoPlacement(photo.image_name, "registered", v.id,
                                                      r.homography, gsd, src, reason, vs)

    # one photo per view and survey is tracked: the reference, else the most inliers
    by_view: dict[int, list[PhotoRegistration]] = {}
    for row in rows:
        if row.view_id is not None and row.status in _TRACKED:
            by_view.setdefault(row.view_id, []).append(row)
    for vid, group in by_view.items():
        group.sort(key=lambda r: (r.status != "reference", -(r.inliers or 0), r.image_name))
        for dup in group[1:]:
            dup.status = "duplicate"
            dup.reason = (f"duplicate: view {vid} has photo {group[0].image_name} of this "
                          f"survey already (it is the reference or has more inliers); "
                          f"{dup.reason}; its cracks are stored but not tracked")
            p = placements[dup.image_name]
            placements[dup.image_name] = PhotoPlacement(
                p.image_name, "duplicate", p.view_id, p.homography, p.gsd_m, p.gsd_source,
                dup.reason, p.view_scale_m_per_px)
    for row in rows:
        if row.gsd_m is None:
            row.reason = (f"{row.reason}. No GSD: {row.gsd_source or 'unknown'}; its cracks "
                          f"are not stored (give the survey --gsd-m, or the view a scale: "
                          f"crackwatch view set-scale VIEW --gsd-m M)")
            p = placements[row.image_name]
            placements[row.image_name] = PhotoPlacement(
                p.image_name, row.status, p.view_id, p.homography, None, p.gsd_source,
                row.reason, p.view_scale_m_per_px)
        placements[row.image_name] = _with_tracked(placements[row.image_name])
    s.add_all(rows)
    s.flush()
    for name, p in placements.items():
        log.info("survey %s photo %s: %s", survey.id, name, p.reason)
    return placements


def _with_tracked(p: PhotoPlacement) -> PhotoPlacement:
    return PhotoPlacement(p.image_name, p.status, p.view_id, p.homography, p.gsd_m,
                          p.gsd_source, p.reason, p.view_scale_m_per_px,
                          tracked=p.status in _TRACKED and p.gsd_m is not None)


def _view_name(image_name: str, survey: Survey) -> str:
    return f"{Path(image_name).stem} ({survey.acquired_at:%Y-%m-%d})"[:200]


def _near(footprint: Any, view: PhotoView, gps_error_m: float) -> bool:
    """False only when both have a map placement and lie more than 2 GPS errors apart."""
    if footprint is None or view.image_to_map is None:
        return True
    corners = np.array([[0, 0], [view.width_px, 0], [view.width_px, view.height_px],
                        [0, view.height_px]], dtype=float)
    quad = shapely.Polygon(warp_points(_mat(view.image_to_map), corners))
    return bool(shapely.distance(footprint, quad) <= 2.0 * gps_error_m)


def _gsd(photo: SurveyPhoto, view: PhotoView, h: np.ndarray
         ) -> tuple[float | None, str, float | None]:
    """(GSD at the photo centre, its source, the view scale it follows or None)."""
    centre = ((photo.width_px - 1) / 2.0, (photo.height_px - 1) / 2.0)
    k = local_scale(h, centre)
    through = "" if abs(k - 1.0) < 1e-9 else f" x homography scale {k:.3f}"
    user = view.scale_m_per_px is not None and (view.scale_source or "").startswith("user")
    if user:
        return (view.scale_m_per_px * k,
                f"view {view.id} scale set by the user ({view.scale_m_per_px * 1000:g} mm/px)"
                f"{through}", view.scale_m_per_px)
    if photo.gsd_given and photo.own_gsd_m:
        return photo.own_gsd_m, photo.own_gsd_source, None
    if view.scale_m_per_px is not None:
        return (view.scale_m_per_px * k,
                f"view {view.id} scale ({view.scale_m_per_px * 1000:g} mm/px, "
                f"{view.scale_source}){through}", view.scale_m_per_px)
    if photo.own_gsd_m:
        return photo.own_gsd_m, photo.own_gsd_source, None
    return None, photo.own_gsd_source or "no GSD", None


def _choose(accepted: list[tuple[PhotoView, PairRegistration]], views_pair: Any
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


def set_view_scale(bind: Any, view_id: int, scale_m_per_px: float | None) -> PhotoView:
    """Set (or with None clear) a view's scale, metres per reference pixel, as given by the
    user (e.g. from a ruler or a known dimension in the reference photo). It wins over every
    other GSD of photos in that view from the next run of their surveys on.

    Raises:
        RecordNotFoundError: no such view. ValueError: not a positive finite number.
    """
    from geodata.errors import RecordNotFoundError
    from geodata.store.engine import session_scope

    if scale_m_per_px is not None and not (isinstance(scale_m_per_px, int | float)
                                           and math.isfinite(scale_m_per_px)
                                           and scale_m_per_px > 0):
        raise ValueError(f"a view scale is a positive number of metres per pixel, got "
                         f"{scale_m_per_px!r} (0.25 mm/px is 0.00025)")
    with session_scope(bind, write=True) as s:
        v = s.get(PhotoView, int(view_id))
        if v is None:
            raise RecordNotFoundError(f"no photo view with id {view_id}; list them with "
                                      f"`crackwatch view list --site NAME`")
        v.scale_m_per_px = None if scale_m_per_px is None else float(scale_m_per_px)
        v.scale_source = None if scale_m_per_px is None else "user"
        s.flush()
        s.expunge(v)
        return v


# --------------------------------------------------------------------------- tracking


def view_track_ids(s: Session, site_id: int) -> dict[int, int]:
    """``{track_id: view_id}`` of the site's photo tracks."""
    return dict(s.execute(select(PhotoViewTrack.track_id, PhotoViewTrack.view_id)
                          .join(PhotoView, PhotoView.id == PhotoViewTrack.view_id)
                          .where(PhotoView.site_id == site_id)).all())


@dataclass
class _Entry:
    survey: Survey
    reg: PhotoRegistration
    h: np.ndarray
    scale: float  # view px per photo px at the photo centre
    coverage: Any  # the photo's quad in the view frame


def track_views(s: Session, site_id: int, survey_ids: Iterable[int] | None = None, *,
                tolerance_px: float = 3.0) -> dict[str, int]:
    """(Re)track the cracks of every view of a site from the earliest of ``survey_ids`` on
    (None: from the start), in ``s``'s transaction. Rules: module docstring.

    Returns:
        Counts over all views: ``views``, ``photos_tracked``, and the events ``new``,
        ``continued``, ``split``, ``merged``, ``vanished``.
    """
    from geodata.store.lookup import tracked_surveys

    ordered = tracked_surveys(s, site_id)
    rank = {sv.id: k for k, sv in enumerate(ordered)}
    by_id = {sv.id: sv for sv in ordered}
    given = list(rank) if survey_ids is None else [i for i in survey_ids if i in rank]
    counts = dict.fromkeys(("views", "photos_tracked", "new", "continued", "split", "merged",
                            "vanished"), 0)
    if not given:
        return counts
    first = min(rank[i] for i in given)
    todo = [sv.id for sv in ordered[first:]]
    views = list(s.scalars(select(PhotoView).where(PhotoView.site_id == site_id)
                           .order_by(PhotoView.id)))
    if not views:
        return counts
    # forget this span's photo tracking (cracks of photos in no view included)
    tracks_of_view: dict[int, list[int]] = {}
    for t, v in view_track_ids(s, site_id).items():
        tracks_of_view.setdefault(v, []).append(t)
    all_view_tracks = [t for ts in tracks_of_view.values() for t in ts]
    if all_view_tracks:
        s.execute(delete(TrackObservation).where(TrackObservation.track_id.in_(all_view_tracks),
                                                 TrackObservation.survey_id.in_(todo)))
        s.execute(delete(CrackTrack).where(CrackTrack.id.in_(all_view_tracks),
                                           CrackTrack.first_survey_id.in_(todo)))
    s.execute(update(Crack).where(Crack.survey_id.in_(todo), Crack.coordinate_space == "image")
              .values(track_id=None))
    regs = list(s.scalars(select(PhotoRegistration).where(
        PhotoRegistration.site_id == site_id, PhotoRegistration.status.in_(_TRACKED),
        PhotoRegistration.view_id.is_not(None), PhotoRegistration.gsd_m.is_not(None))))
    per_view: dict[int, list[PhotoRegistration]] = {}
    for r in regs:
        if r.survey_id in rank:
            per_view.setdefault(r.view_id, []).append(r)
    per_survey: dict[int, dict[str, int]] = {sid: dict.fromkeys(
        ("new", "continued", "split", "merged", "vanished"), 0) for sid in todo}
    for view in views:
        entries = [_entry(by_id[r.survey_id], r, view)
                   for r in sorted(per_view.get(view.id, []), key=lambda r: rank[r.survey_id])]
        start = next((k for k, e in enumerate(entries) if rank[e.survey.id] >= first),
                     len(entries))
        _revive(s, tracks_of_view.get(view.id, []), entries[start - 1] if start else None)
        if start == len(entries):
            continue
        counts["views"] += 1
        for k in range(start, len(entries)):
            step = _track_entry(s, view, entries[k], entries[:k], tolerance_px)
            counts["photos_tracked"] += 1
            for ev, n in step.items():
                counts[ev] += n
                if ev != "new" or k > 0:  # a view's first photo has nothing to be new against
                    per_survey[entries[k].survey.id][ev] += n
    _update_summaries(s, site_id, todo, per_survey, rank)
    return counts


def _entry(survey: Survey, reg: PhotoRegistration, view: PhotoView) -> _Entry:
    h = _mat(reg.homography)
    assert h is not None
    size = (reg.quality or {}).get("size_px") or [view.width_px, view.height_px]
    w, hh = int(size[0]), int(size[1])
    corners = np.array([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, hh - 0.5], [-0.5, hh - 0.5]])
    coverage = shapely.Polygon(warp_points(h, corners))
    return _Entry(survey, reg, h, local_scale(h, ((w - 1) / 2.0, (hh - 1) / 2.0)), coverage)


def _revive(s: Session, track_ids: list[int], previous: _Entry | None) -> None:
    """Tracks alive at ``previous`` (the view's last photo before the rebuilt span) become
    active again, last seen there; every other track of the view keeps its state."""
    if previous is None or not track_ids:
        return
    alive = (select(TrackObservation.track_id)
             .where(TrackObservation.survey_id == previous.survey.id,
                    TrackObservation.track_id.in_(track_ids),
                    TrackObservation.event.in_(_ALIVE)))
    s.execute(update(CrackTrack).where(CrackTrack.id.in_(alive))
              .values(status="active", merged_into_track_id=None,
                      last_survey_id=previous.survey.id,
                      last_seen_at=previous.survey.acquired_at))


def _photo_cracks(s: Session, entry: _Entry) -> gpd.GeoDataFrame:
    rows = s.execute(
        select(Crack.id, Crack.polygon, Crack.length_m, Crack.mean_width_mm,
               Crack.max_width_mm, Crack.area_m2)
        .where(Crack.survey_id == entry.survey.id, Crack.coordinate_space == "image",
               Crack.image_name == entry.reg.image_name)
        .order_by(Crack.id)).all()
    frame = pd.DataFrame(rows, columns=["id", "geometry", "length_m", "mean_width_mm",
                                        "max_width_mm", "area_m2"])
    geoms = [_warp_geom(g, entry.h) for g in frame["geometry"]]
    gdf = gpd.GeoDataFrame(frame.drop(columns="geometry"), geometry=gpd.GeoSeries(geoms))
    return gdf.set_index("id")


def _previous_tracks(s: Session, view: PhotoView, earlier: list[_Entry]) -> gpd.GeoDataFrame:
    """Active tracks of the view with their last crack (warped into the view), indexed by
    track id; ``first_seen_at`` and ``baseline_at`` (that crack's survey time) columns."""
    cols = ["length_m", "mean_width_mm", "max_width_mm", "area_m2", "first_seen_at",
            "baseline_at"]
    empty = gpd.GeoDataFrame({c: pd.Series([], dtype=float) for c in cols},
                             geometry=gpd.GeoSeries([]))
    if not earlier:
        return empty
    h_of = {(e.survey.id, e.reg.image_name): e.h for e in earlier}
    active = list(s.execute(
        select(CrackTrack.id, CrackTrack.first_seen_at)
        .join(PhotoViewTrack, PhotoViewTrack.track_id == CrackTrack.id)
        .where(PhotoViewTrack.view_id == view.id, CrackTrack.status == "active")).all())
    if not active:
        return empty
    first_seen = dict(active)
    rows = s.execute(
        select(TrackObservation.track_id, TrackObservation.acquired_at, Crack.survey_id,
               Crack.image_name, Crack.polygon, Crack.length_m, Crack.mean_width_mm,
               Crack.max_width_mm, Crack.area_m2)
        .join(Crack, Crack.id == TrackObservation.crack_id)
        .where(TrackObservation.track_id.in_(list(first_seen)),
               TrackObservation.event.in_(_ALIVE))
        .order_by(TrackObservation.track_id, TrackObservation.acquired_at)).all()
    last: dict[int, Any] = {}
    for r in rows:
        last[r.track_id] = r  # ordered: the latest wins
    data, geoms, index = [], [], []
    for t, r in last.items():
        h = h_of.get((r.survey_id, r.image_name))
        if h is None:
            continue
        index.append(int(t))
        geoms.append(_warp_geom(r.polygon, h))
        data.append({"length_m": r.length_m, "mean_width_mm": r.mean_width_mm,
                     "max_width_mm": r.max_width_mm, "area_m2": r.area_m2,
                     "first_seen_at": first_seen[t], "baseline_at": r.acquired_at})
    if not index:
        return empty
    return gpd.GeoDataFrame(pd.DataFrame(data, index=index), geometry=gpd.GeoSeries(
        geoms, index=index))


def _track_entry(s: Session, view: PhotoView, entry: _Entry, earlier: list[_Entry],
                 tolerance_px: float) -> dict[str, int]:
    from geodata.matching import match_cracks

    cur = _photo_cracks(s, entry)
    prev_all = _previous_tracks(s, view, earlier)
    coverage = entry.coverage
    if len(prev_all):
        inside = np.array([
            (g.intersection(coverage).area / g.area if g.area > 0 else
             float(coverage.contains(g.representative_point())))
            for g in prev_all.geometry]) >= COVERAGE_FRACTION
        prev = prev_all[inside]
    else:
        prev = prev_all
    prev_entry = earlier[-1] if earlier else None
    scale_prev = prev_entry.scale if prev_entry is not None else entry.scale
    rms_prev = (prev_entry.reg.rms_px or 0.0) if prev_entry is not None else 0.0
    tol = tolerance_px * max(entry.scale, scale_prev) + (entry.reg.rms_px or 0.0) + rms_prev
    m = match_cracks(prev, cur, tolerance_m=tol, days=None)
    current = _attach_pieces(m.current, cur, tol) if len(prev) else m.current
    when = entry.survey.acquired_at

    track_of, started = write_track_outcomes(s, site_id=view.site_id,
                                             survey_id=entry.survey.id, when=when,
                                             current=current, previous=m.previous)
    if started:
        s.execute(insert(PhotoViewTrack), [{"track_id": t.id, "view_id": view.id}
                                           for t in started.values()])

    observations = []
    for crack_id, row in current.iterrows():
        c = cur.loc[crack_id]
        has_base = row["event"] == "continued"
        days = None
        if has_base:
            base_at = prev.loc[int(row["track_id"]), "baseline_at"]
            days = (when - base_at).total_seconds() / 86400.0
        per_day = (1.0 / days) if days else None
        obs = {"track_id": track_of[crack_id], "survey_id": entry.survey.id,
               "crack_id": int(crack_id), "event": row["event"], "acquired_at": when,
               "length_m": float(c["length_m"]), "mean_width_mm": float(c["mean_width_mm"]),
               "max_width_mm": float(c["max_width_mm"]), "area_m2": float(c["area_m2"]),
               "days_since_previous": days}
        for delta, rate in (("delta_length_m", "length_rate_m_per_day"),
                            ("delta_max_width_mm", "max_width_rate_mm_per_day"),
                            ("delta_area_m2", "area_rate_m2_per_day")):
            d = row[delta]
            obs[delta] = None if pd.isna(d) else float(d)
            obs[rate] = None if obs[delta] is None or per_day is None else obs[delta] * per_day
        observations.append(obs)
    for track_id, row in m.previous.iterrows():
        if row["outcome"] == "continued":
            continue
        into = row["into"]
        observations.append({"track_id": int(track_id), "survey_id": entry.survey.id,
                             "crack_id": None if pd.isna(into) else int(into),
                             "event": row["outcome"], "acquired_at": when})
    if observations:
        keys = {k for o in observations for k in o}
        s.execute(insert(TrackObservation), [{k: o.get(k) for k in keys} for o in observations])
    s.flush()
    ev = current["event"]
    out = m.previous["outcome"]
    return {"new": int((ev == "new").sum()), "continued": int((ev == "continued").sum()),
            "split": int((ev == "split").sum()), "merged": int((out == "merged").sum()),
            "vanished": int((out == "vanished").sum())}


def _attach_pieces(current: pd.DataFrame, cracks: gpd.GeoDataFrame, tol: float
                   ) -> pd.DataFrame:
    """A *new* crack within ``tol`` of a crack of this photo that belongs to a track
    (continued or split, or attached here before) is a piece of that crack: the
    segmentation left a gap where the crack grew past its old tip. It becomes a ``split``
    whose parent is that track (the nearest piece's), so the grown crack keeps one lineage.
    Applied until nothing changes (a chain of pieces)."""
    out = current.copy()
    geoms = {i: g for i, g in zip(cracks.index, cracks.geometry.values, strict=True)}

    def lineage(i: Any) -> int:
        row = out.loc[i]
        return int(row["track_id"]) if row["event"] == "continued" else int(
            row["parent_track_id"])

    changed = True
    while changed:
        changed = False
        linked = [i for i in out.index if out.loc[i, "event"] == "continued"
                  or (out.loc[i, "event"] == "split" and pd.notna(out.loc[i, "parent_track_id"]))]
        fresh = [i for i in out.index if out.loc[i, "event"] == "new"]
        if not linked or not fresh:
            break
        for i in fresh:
            near = [(shapely.distance(geoms[i], geoms[j]), j) for j in linked]
            d, j = min(near, key=lambda t: (t[0], str(t[1])))
            if d <= tol:
                out.loc[i, "event"] = "split"
                out.loc[i, "parent_track_id"] = lineage(j)
                changed = True
    out["parent_track_id"] = out["parent_track_id"].astype("Int64")
    return out


def _update_summaries(s: Session, site_id: int, todo: list[int],
                      per_survey: dict[int, dict[str, int]], rank: dict[int, int]) -> None:
    """Photo surveys' summaries: counts and totals of all their cracks, events from views."""
    photo_surveys = [sv for sv in s.scalars(select(Survey).where(
        Survey.id.in_(todo), Survey.source_type.in_(("photo", "photos"))))]
    ordered = sorted(rank, key=rank.__getitem__)
    for sv in photo_surveys:
        cracks = s.execute(select(Crack.length_m, Crack.area_m2, Crack.max_width_mm)
                           .where(Crack.survey_id == sv.id)).all()
        ev = per_survey.get(sv.id, {})
        values = {
            "crack_count": len(cracks),
            "total_length_m": float(sum(c[0] for c in cracks)),
            "total_area_m2": float(sum(c[1] for c in cracks)),
            "max_width_mm": max((c[2] for c in cracks), default=None),
            "new_count": ev.get("new", 0), "continued_count": ev.get("continued", 0),
            "split_count": ev.get("split", 0), "merged_count": ev.get("merged", 0),
            "vanished_count": ev.get("vanished", 0),
        }
        row = s.get(SurveySummary, sv.id)
        if row is None:
            k = rank[sv.id]
            row = SurveySummary(survey_id=sv.id, site_id=site_id, acquired_at=sv.acquired_at,
                                previous_survey_id=ordered[k - 1] if k else None,
                                tolerance_m=None, **values)
            s.add(row)
        else:
            for key, value in values.items():
                setattr(row, key, value)
    s.flush()


# --------------------------------------------------------------------------- reads


def site_views(bind: Any, site: int | str) -> pd.DataFrame:
    """A site's photo views, oldest first.

    Returns:
        One row per view: ``view_id``, ``name``, ``reference_image``,
        ``reference_survey_id``, ``created_at`` (UTC), ``photos`` (reference + registered
        photos), ``surveys`` (with a photo in it), ``first_photo_at``, ``last_photo_at``
        (UTC acquisition times), ``tracks``, ``median_rms_px`` / ``max_rms_px`` (of the
        registered photos; NaN with none yet), ``scale_mm_per_px``, ``scale_source``,
        ``on_map`` (reference placed through a GPS footprint), ``position_error_m``.
    """
    from geodata.store.engine import session_scope
    from geodata.store.lookup import _site

    cols = ["view_id", "name", "reference_image", "reference_survey_id", "created_at",
            "photos", "surveys", "first_photo_at", "last_photo_at", "tracks",
            "median_rms_px", "max_rms_px", "scale_mm_per_px", "scale_source", "on_map",
            "position_error_m"]
    with session_scope(bind) as s:
        site_row = _site(s, site)
        views = list(s.scalars(select(PhotoView).where(PhotoView.site_id == site_row.id)
                               .order_by(PhotoView.id)))
        regs = s.execute(select(PhotoRegistration.view_id, PhotoRegistration.status,
                                PhotoRegistration.rms_px, PhotoRegistration.survey_id,
                                Survey.acquired_at)
                         .join(Survey, Survey.id == PhotoRegistration.survey_id)
                         .where(PhotoRegistration.site_id == site_row.id,
                                PhotoRegistration.status.in_(_TRACKED))).all()
        tracks = view_track_ids(s, site_row.id)
    rows = []
    for v in views:
        mine = [r for r in regs if r.view_id == v.id]
        rms = [r.rms_px for r in mine if r.status == "registered" and r.rms_px is not None]
        times = [r.acquired_at for r in mine]
        rows.append({
            "view_id": v.id, "name": v.name, "reference_image": v.reference_image,
            "reference_survey_id": v.reference_survey_id, "created_at": v.created_at,
            "photos": len(mine), "surveys": len({r.survey_id for r in mine}),
            "first_photo_at": min(times, default=None), "last_photo_at": max(times, default=None),
            "tracks": sum(1 for t in tracks.values() if t == v.id),
            "median_rms_px": float(np.median(rms)) if rms else np.nan,
            "max_rms_px": float(max(rms)) if rms else np.nan,
            "scale_mm_per_px": (v.scale_m_per_px * 1000.0 if v.scale_m_per_px else np.nan),
            "scale_source": v.scale_source, "on_map": v.image_to_map is not None,
            "position_error_m": v.position_error_m,
        })
    return pd.DataFrame(rows, columns=cols)


def survey_registrations(bind: Any, survey_id: int) -> pd.DataFrame:
    """How each photo of a survey was registered (one row per photo, by name).

    Returns:
        ``image_name``, ``status``, ``view_id`` (Int64), ``view_name``, ``matches``,
        ``inliers``, ``rms_px`` (view px), ``overlap`` (fraction of the view), ``gsd_mm_per_px``
        (at the photo centre), ``gsd_source``, ``blur``, ``on_map``, ``position_error_m``,
        ``reason``.
    """
    from geodata.store.engine import session_scope

    cols = ["image_name", "status", "view_id", "view_name", "matches", "inliers", "rms_px",
            "overlap", "gsd_mm_per_px", "gsd_source", "blur", "on_map", "position_error_m",
            "reason"]
    with session_scope(bind) as s:
        rows = s.execute(select(PhotoRegistration, PhotoView.name)
                         .outerjoin(PhotoView, PhotoView.id == PhotoRegistration.view_id)
                         .where(PhotoRegistration.survey_id == survey_id)
                         .order_by(PhotoRegistration.image_name)).all()
        out = [{"image_name": r.image_name, "status": r.status, "view_id": r.view_id,
                "view_name": name, "matches": r.matches, "inliers": r.inliers,
                "rms_px": r.rms_px, "overlap": r.overlap,
                "gsd_mm_per_px": r.gsd_m * 1000.0 if r.gsd_m else np.nan,
                "gsd_source": r.gsd_source, "blur": (r.quality or {}).get("blur"),
                "on_map": r.image_to_map is not None, "position_error_m": r.position_error_m,
                "reason": r.reason} for r, name in rows]
    frame = pd.DataFrame(out, columns=cols)
    for c in ("view_id", "matches", "inliers"):
        frame[c] = frame[c].astype("Int64")
    return frame


def view_history(bind: Any, view_id: int) -> pd.DataFrame:
    """Every measurement of every track of a view, oldest first.

    Returns:
        One row per observation with a crack: ``track_id``, ``survey_id``, ``acquired_at``
        (UTC), ``event``, ``crack_id``, ``image_name``, ``length_m``, ``mean_width_mm``,
        ``max_width_mm``, ``severity`` (BRE Digest 251 of the width), ``status`` (of the
        track now), ``parent_track_id``, ``merged_into_track_id``.
    """
    from geodata.store.engine import session_scope

    cols = ["track_id", "survey_id", "acquired_at", "event", "crack_id", "image_name",
            "length_m", "mean_width_mm", "max_width_mm", "severity", "status",
            "parent_track_id", "merged_into_track_id"]
    with session_scope(bind) as s:
        rows = s.execute(
            select(TrackObservation.track_id, TrackObservation.survey_id,
                   TrackObservation.acquired_at, TrackObservation.event,
                   TrackObservation.crack_id, Crack.image_name, TrackObservation.length_m,
                   TrackObservation.mean_width_mm, TrackObservation.max_width_mm,
                   Crack.severity, CrackTrack.status, CrackTrack.parent_track_id,
                   CrackTrack.merged_into_track_id)
            .join(PhotoViewTrack, PhotoViewTrack.track_id == TrackObservation.track_id)
            .join(CrackTrack, CrackTrack.id == TrackObservation.track_id)
            .join(Crack, Crack.id == TrackObservation.crack_id)
            .where(PhotoViewTrack.view_id == int(view_id),
                   TrackObservation.length_m.is_not(None))
            .order_by(TrackObservation.acquired_at, TrackObservation.track_id)).all()
    frame = pd.DataFrame(rows, columns=cols)
    for c in ("track_id", "survey_id", "crack_id", "parent_track_id", "merged_into_track_id"):
        frame[c] = frame[c].astype("Int64")
    return frame


def photo_in_view(bind: Any, survey_id: int, image_name: str
                  ) -> tuple[Path, np.ndarray, Any] | None:
    """(photo file, homography photo px -> view px, the crack polygons of that photo in
    the view frame by crack id) of a registered photo, or None when it is in no view."""
    from geodata.store.engine import session_scope

    with session_scope(bind) as s:
        reg = s.scalar(select(PhotoRegistration).where(
            PhotoRegistration.survey_id == survey_id,
            PhotoRegistration.image_name == image_name))
        if reg is None or reg.homography is None:
            return None
        survey = s.get(Survey, survey_id)
        h = _mat(reg.homography)
        polys = {int(i): _warp_geom(g, h) for i, g in s.execute(
            select(Crack.id, Crack.polygon).where(Crack.survey_id == survey_id,
                                                  Crack.image_name == image_name)).all()}
        return photo_path(survey, image_name), h, polys


def survey_photo_cracks_on_map(bind: Any, survey_id: int) -> gpd.GeoDataFrame:
    """A photo survey's cracks placed on the map through each photo's nadir footprint
    (site CRS), APPROXIMATE: ``position_error_m`` is the assumed GPS error (m).

    Columns: ``crack_id``, ``track_id``, ``image_name``, ``length_m``, ``max_width_mm``,
    ``severity``, ``position_error_m``, geometry. Photos without GPS are left out.
    """
    from geodata.store.engine import session_scope

    with session_scope(bind) as s:
        survey = s.get(Survey, survey_id)
        epsg = s.get(Site, survey.site_id).crs_epsg if survey else None
        placed = {r.image_name: (r.image_to_map, r.position_error_m) for r in s.scalars(
            select(PhotoRegistration).where(PhotoRegistration.survey_id == survey_id,
                                            PhotoRegistration.image_to_map.is_not(None)))}
        rows = s.execute(select(Crack.id, Crack.track_id, Crack.image_name, Crack.length_m,
                                Crack.max_width_mm, Crack.severity, Crack.polygon)
                         .where(Crack.survey_id == survey_id,
                                Crack.coordinate_space == "image",
                                Crack.image_name.in_(list(placed)))
                         .order_by(Crack.id)).all() if placed else []
    data, geoms = [], []
    for cid, track, name, length, width, severity, poly in rows:
        to_map, err = placed[name]
        geoms.append(shapely.set_srid(_warp_geom(poly, _mat(to_map)), 0))
        data.append({"crack_id": cid, "track_id": track, "image_name": name,
                     "length_m": length, "max_width_mm": width, "severity": severity,
                     "position_error_m": err})
    frame = pd.DataFrame(data, columns=["crack_id", "track_id", "image_name", "length_m",
                                        "max_width_mm", "severity", "position_error_m"])
    frame["track_id"] = frame["track_id"].astype("Int64")
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, crs=epsg), crs=epsg)


def view_track_polygons(bind: Any, track_id: int) -> gpd.GeoDataFrame:
    """The cracks of a photo track in its view's frame (view px, no CRS), oldest first:
    ``survey_id``, ``acquired_at``, ``image_name``, ``crack_id``, ``max_width_mm``,
    ``length_m``, geometry."""
    from geodata.store.engine import session_scope

    with session_scope(bind) as s:
        rows = s.execute(
            select(TrackObservation.survey_id, TrackObservation.acquired_at, Crack.image_name,
                   Crack.id, Crack.max_width_mm, Crack.length_m, Crack.polygon,
                   PhotoRegistration.homography)
            .join(Crack, Crack.id == TrackObservation.crack_id)
            .join(PhotoRegistration, (PhotoRegistration.survey_id == Crack.survey_id)
                  & (PhotoRegistration.image_name == Crack.image_name))
            .where(TrackObservation.track_id == int(track_id),
                   TrackObservation.event.in_(_ALIVE))
            .order_by(TrackObservation.acquired_at)).all()
    data = [{"survey_id": r[0], "acquired_at": r[1], "image_name": r[2], "crack_id": r[3],
             "max_width_mm": r[4], "length_m": r[5]} for r in rows]
    geoms = [_warp_geom(r[6], _mat(r[7])) for r in rows]
    frame = pd.DataFrame(data, columns=["survey_id", "acquired_at", "image_name", "crack_id",
                                        "max_width_mm", "length_m"])
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms))
