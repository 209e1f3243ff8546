"""Registration of a survey's photos into its site's views, and its ``photo_registration``
and ``photo_view`` rows (rules in :mod:`geodata.views`)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from geodata.registration import DEFAULT_PARAMS, RegistrationParams
from geodata.store.models import PhotoRegistration, PhotoView, Site, Survey
from geodata.views.candidates import Accepted, CandidateViews, choose
from geodata.views.common import (
    DEFAULT_GPS_ERROR_M,
    TRACKED,
    PhotoPlacement,
    SurveyPhoto,
)
from geodata.views.footprints import footprint_to_image_to_map
from geodata.views.scale import photo_gsd

__all__ = ["register_survey_photos"]

log = logging.getLogger(__name__)


def register_survey_photos(
    s: Session,
    survey: Survey,
    photos: Iterable[SurveyPhoto],
    *,
    params: RegistrationParams = DEFAULT_PARAMS,
    gps_error_m: float = DEFAULT_GPS_ERROR_M,
) -> dict[str, PhotoPlacement]:
    """Register a survey's photos into its site's views (rules in :mod:`geodata.views`).

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
    run = _Registration(
        s, site, survey, params, gps_error_m,
        own={v.reference_image: v for v in views if v.reference_survey_id == survey.id},
        candidates=CandidateViews(s, [v for v in views if v.reference_survey_id != survey.id],
                                  params))
    for photo in photos:
        run.place(photo)
    run.register_pending()
    run.mark_duplicates()
    run.explain_missing_gsd()
    s.add_all(run.rows)
    s.flush()
    for name, p in run.placements.items():
        log.info("survey %s photo %s: %s", survey.id, name, p.reason)
    return run.placements


@dataclass
class _Pending:
    """A photo that matched one or more views; which one takes it is decided once every
    photo of the survey has been matched."""

    photo: SurveyPhoto
    base: dict[str, Any]
    tried: list[dict[str, Any]]
    accepted: list[Accepted]
    safe: set[int]


class _Registration:
    """One survey's registration: the rows and placements built so far."""

    def __init__(self, s: Session, site: Site, survey: Survey, params: RegistrationParams,
                 gps_error_m: float, *, own: dict[str, PhotoView],
                 candidates: CandidateViews) -> None:
        self.s, self.site, self.survey = s, site, survey
        self.params, self.gps_error_m = params, gps_error_m
        self.own, self.candidates = own, candidates
        self.rows: list[PhotoRegistration] = []
        self.placements: dict[str, PhotoPlacement] = {}
        self.pending: list[_Pending] = []

    # ------------------------------------------------------------------ one photo

    def place(self, photo: SurveyPhoto) -> None:
        """Refuse ``photo``, make it a view's reference, or queue it for registration."""
        base = self._base_row(photo)
        problem = photo.problem or (photo.quality.reason if photo.quality and
                                    photo.quality.problem else None)
        if problem or photo.features is None:
            self._refuse(photo, base, f"refused: {problem}; its cracks are not tracked", [])
            return
        if photo.image_name in self.own:  # the reference of a view made by this survey before
            v = self.own[photo.image_name]
            self._reference(photo, base, v, f"the reference photo of view {v.id} ({v.name})",
                            [])
            return
        tried, accepted = self.candidates.match(photo, self.gps_error_m)
        if not accepted:
            self._unmatched(photo, base, tried)
            return
        verdict, safe = choose(accepted, self.candidates.pair)
        if verdict is not None:  # ambiguous
            self._refuse(photo, base, f"refused: ambiguous: {verdict}; its cracks are not "
                                      f"tracked", tried)
            return
        self.pending.append(_Pending(photo, base, tried, accepted, safe))

    def _base_row(self, photo: SurveyPhoto) -> dict[str, Any]:
        """The ``photo_registration`` fields every status has."""
        quality = {**(photo.quality.to_dict() if photo.quality else {}),
                   "size_px": [photo.width_px, photo.height_px]}
        footprint = photo.footprint
        placed = footprint is not None
        return {"site_id": self.site.id, "survey_id": self.survey.id,
                "image_name": photo.image_name, "quality": quality,
                "footprint": shapely.set_srid(footprint, self.site.crs_epsg) if placed else None,
                "image_to_map": (footprint_to_image_to_map(footprint, photo.width_px,
                                                           photo.height_px)
                                 if placed else None),
                "position_error_m": self.gps_error_m if placed else None}

    def _refuse(self, photo: SurveyPhoto, base: dict[str, Any], reason: str,
                tried: list[dict[str, Any]]) -> None:
        gsd, src = photo.own_gsd_m, photo.own_gsd_source
        self.rows.append(PhotoRegistration(**base, status="refused", gsd_m=gsd,
                                           gsd_source=src, candidates=tried, reason=reason))
        self.placements[photo.image_name] = PhotoPlacement(photo.image_name, "refused", None,
                                                           None, gsd, src, reason)

    def _reference(self, photo: SurveyPhoto, base: dict[str, Any], v: PhotoView,
                   reason: str, tried: list[dict[str, Any]]) -> None:
        h = np.eye(3)
        gsd, src, vs = photo_gsd(photo, v, h)
        self.rows.append(PhotoRegistration(
            **base, view_id=v.id, status="reference", homography=list(h.ravel()),
            matches=photo.features.count, inliers=photo.features.count, rms_px=0.0,
            overlap=1.0, gsd_m=gsd, gsd_source=src, candidates=tried, reason=reason))
        self.placements[photo.image_name] = PhotoPlacement(photo.image_name, "reference",
                                                           v.id, h, gsd, src, reason, vs)

    def _unmatched(self, photo: SurveyPhoto, base: dict[str, Any],
                   tried: list[dict[str, Any]]) -> None:
        """A photo no view accepts starts a new view, unless it is featureless."""
        if photo.features.count < self.params.min_inliers:
            self._refuse(photo, base,
                         f"refused: featureless, {photo.features.count} keypoints (< "
                         f"{self.params.min_inliers}): a plain or overexposed surface cannot "
                         f"be registered; its cracks are not tracked", tried)
            return
        to_map = base["image_to_map"]
        v = PhotoView(site_id=self.site.id, name=_view_name(photo.image_name, self.survey),
                      reference_survey_id=self.survey.id, reference_image=photo.image_name,
                      width_px=photo.width_px, height_px=photo.height_px,
                      scale_m_per_px=photo.own_gsd_m,
                      scale_source=(f"reference photo {photo.image_name}: "
                                    f"{photo.own_gsd_source}" if photo.own_gsd_m else None),
                      image_to_map=to_map,
                      position_error_m=self.gps_error_m if to_map is not None else None)
        self.s.add(v)
        self.s.flush()
        n = len(self.candidates.views)
        best = max((t for t in tried if "inliers" in t), key=lambda t: t["inliers"],
                   default=None)
        why = ("the site has no view yet" if not n else
               f"it matches none of the site's {n} view(s)"
               + (f" (best: view {best['view_id']}, {best['reason']})" if best else ""))
        self._reference(photo, base, v, f"new view {v.id} ({v.name}): {why}", tried)

    # ------------------------------------------------------------------ the survey

    def register_pending(self) -> None:
        """Each view takes one photo of this survey (most inliers first); a photo whose
        best view is taken goes to its next view that agrees with the best (a neighbour
        of the same scene), else it is a duplicate of its best view."""
        taken = {r.view_id for r in self.rows if r.view_id is not None and r.status in TRACKED}
        edges = sorted(((r.inliers, k, i) for k, p in enumerate(self.pending)
                        for i, (_v, r) in enumerate(p.accepted) if i == 0 or i in p.safe),
                       key=lambda e: (-e[0], e[1], e[2]))
        chosen: dict[int, int] = {}
        for _n, k, i in edges:
            vid = self.pending[k].accepted[i][0].id
            if k in chosen or vid in taken:
                continue
            chosen[k] = i
            taken.add(vid)
        for k, p in enumerate(self.pending):
            self._register(p, chosen.get(k, 0))

    def _register(self, p: _Pending, i: int) -> None:
        photo, accepted = p.photo, p.accepted
        v, r = accepted[i]
        gsd, src, vs = photo_gsd(photo, v, r.homography)
        others = [f"view {o.id} ({ro.inliers} inliers)" for j, (o, ro) in enumerate(accepted)
                  if j != i]
        reason = (f"registered into view {v.id} ({v.name}): {r.reason}"
                  + (f"; also matched {', '.join(others)}" if others else "")
                  + (f" (view {accepted[0][0].id} has a photo of this survey with more "
                     f"inliers)" if i else ""))
        self.rows.append(PhotoRegistration(
            **p.base, view_id=v.id, status="registered", homography=list(r.homography.ravel()),
            matches=r.matches, inliers=r.inliers, rms_px=r.rms_px, overlap=r.overlap,
            gsd_m=gsd, gsd_source=src, candidates=p.tried, reason=reason))
        self.placements[photo.image_name] = PhotoPlacement(
            photo.image_name, "registered", v.id, r.homography, gsd, src, reason, vs)

    def mark_duplicates(self) -> None:
        """One photo per view and survey is tracked: the reference, else the most inliers."""
        by_view: dict[int, list[PhotoRegistration]] = {}
        for row in self.rows:
            if row.view_id is not None and row.status in TRACKED:
                by_view.setdefault(row.view_id, []).append(row)
        for vid, group in by_view.items():
            group.sort(key=lambda r: (r.status != "reference", -(r.inliers or 0),
                                      r.image_name))
            for dup in group[1:]:
                dup.status = "duplicate"
                dup.reason = (f"duplicate: view {vid} has photo {group[0].image_name} of this "
                              f"survey already (it is the reference or has more inliers); "
                              f"{dup.reason}; its cracks are stored but not tracked")
                self.placements[dup.image_name] = replace(
                    self.placements[dup.image_name], status="duplicate", reason=dup.reason)

    def explain_missing_gsd(self) -> None:
        """Say what to give for photos without a GSD, and mark which photos are tracked."""
        for row in self.rows:
            p = self.placements[row.image_name]
            if row.gsd_m is None:
                row.reason = (f"{row.reason}. No GSD: {row.gsd_source or 'unknown'}; its "
                              f"cracks are not stored (give the survey --gsd-m, or the view a "
                              f"scale: crackwatch view set-scale VIEW --gsd-m M)")
                p = replace(p, status=row.status, gsd_m=None, reason=row.reason)
            self.placements[row.image_name] = replace(
                p, tracked=p.status in TRACKED and p.gsd_m is not None)


def _view_name(image_name: str, survey: Survey) -> str:
    return f"{Path(image_name).stem} ({survey.acquired_at:%Y-%m-%d})"[:200]
