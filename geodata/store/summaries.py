"""Read-only summaries of the store for the demo and the benchmarks (issue 17: a store
boundary, so ``jobs.demo`` and ``jobs.bench_ray`` need no ORM class): per-site totals, the
stored photo registrations and cracks of a photo-inspection site, crack polygons by source
file, and the step timings of job runs. The dashboard's reading is :mod:`geodata.queries`.

``bind`` is an ``Engine`` (own read transaction) or a ``Session`` (a SAVEPOINT of the
caller's transaction), as in :mod:`geodata.store.api`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from geodata.store.engine import session_scope
from geodata.store.models import (
    Alert,
    Crack,
    CrackTrack,
    JobRun,
    PhotoRegistration,
    PhotoView,
    Site,
    Survey,
)

__all__ = ["PhotoInView", "PhotoInspections", "alert_state", "crack_polygons_by_source",
           "job_run_steps", "photo_inspections", "site_totals"]


def _count(s: Session, model: Any, site_id: int) -> int:
    return s.scalar(select(func.count()).select_from(model).where(model.site_id == site_id))


def site_totals(bind: Engine | Session, names: list[str]) -> list[dict[str, Any]]:
    """Per site named in ``names`` (in that order; unknown names left out): ``site``,
    ``profile``, ``surveys``, ``cracks`` (current runs), ``tracks``, ``alerts`` (each
    with level, rule, message, number of escalations and :func:`alert_state`), oldest
    raised first, and ``refused_photos``: each photo the view registration refused
    (``photo``, ``reason``: e.g. blurred), whose cracks are stored but not tracked."""
    out = []
    with session_scope(bind) as s:
        for name in names:
            site = s.scalar(select(Site).where(Site.name == name))
            if site is None:
                continue
            alerts = s.scalars(select(Alert).where(Alert.site_id == site.id)
                               .order_by(Alert.raised_at)).all()
            out.append({"site": name, "profile": site.profile,
                        "surveys": _count(s, Survey, site.id),
                        "cracks": _count(s, Crack, site.id),
                        "tracks": _count(s, CrackTrack, site.id),
                        "alerts": [{"level": a.level, "rule": a.rule, "message": a.message,
                                    "escalations": len((a.details or {}).get("escalations",
                                                                             [])),
                                    "state": alert_state(a)}
                                   for a in alerts],
                        "refused_photos": _refused_photos(s, site.id)})
    return out


def _refused_photos(s: Session, site_id: int) -> list[dict[str, Any]]:
    rows = s.execute(select(PhotoRegistration.image_name, PhotoRegistration.reason)
                     .where(PhotoRegistration.site_id == site_id,
                            PhotoRegistration.status == "refused")
                     .order_by(PhotoRegistration.id))
    return [{"photo": name, "reason": reason} for name, reason in rows]


def alert_state(alert: Any) -> str:
    """``open``, ``watch`` (unconfirmed, nobody notified), ``acknowledged`` or ``resolved``
    (with the reason when it was resolved automatically, e.g. ``resolved: not_confirmed``)."""
    if alert.resolved_at is not None:
        reason = (alert.details or {}).get("resolved_reason")
        return f"resolved: {reason}" if reason else "resolved"
    if alert.watch:
        return "watch"
    return "acknowledged" if alert.acknowledged_at is not None else "open"


# ------------------------------------------------------------------------ photo inspections


@dataclass
class PhotoInView:
    """One photo of a photo survey as the store holds it (:mod:`geodata.views`).

    Attributes:
        homography: 3x3, the photo's pixels -> its view's pixels.
        view_mm_per_px: the view's scale, mm per view pixel.
        cracks: ``(polygon in the photo's pixels, max width mm, track id or None)`` of
            each stored crack of the photo.
    """

    homography: np.ndarray
    view_mm_per_px: float
    cracks: list[tuple[shapely.Geometry, float, int | None]] = field(default_factory=list)


@dataclass
class PhotoInspections:
    """One photo name across the photo surveys of a site (:func:`photo_inspections`).

    Attributes:
        photos: by the survey's source name (its folder or file name, not the path).
        track_links: every track of the site -> ``(parent track id, merged into track id)``.
    """

    photos: dict[str, PhotoInView]
    track_links: dict[int, tuple[int | None, int | None]]


def photo_inspections(bind: Engine | Session, site: str, image_name: str
                      ) -> PhotoInspections:
    """The registration (homography, view scale) and stored cracks of the photo
    ``image_name`` in each survey of the site named ``site`` that registered it, and the
    lineage links of the site's tracks (split parents, merges)."""
    with session_scope(bind) as s:
        site_id = s.scalar(select(Site.id).where(Site.name == site))
        photos = {}
        for sv, reg, view in s.execute(
                select(Survey, PhotoRegistration, PhotoView)
                .join(PhotoRegistration, PhotoRegistration.survey_id == Survey.id)
                .join(PhotoView, PhotoView.id == PhotoRegistration.view_id)
                .where(Survey.site_id == site_id,
                       PhotoRegistration.image_name == image_name)).all():
            cracks = [(poly, w_mm, track) for poly, w_mm, track in s.execute(
                select(Crack.polygon, Crack.max_width_mm, Crack.track_id)
                .where(Crack.survey_id == sv.id, Crack.image_name == image_name)).all()]
            photos[Path(sv.source_path).name] = PhotoInView(
                np.asarray(reg.homography, dtype=float).reshape(3, 3),
                view.scale_m_per_px * 1000.0, cracks)
        links = {t.id: (t.parent_track_id, t.merged_into_track_id) for t in s.scalars(
            select(CrackTrack).where(CrackTrack.site_id == site_id))}
    return PhotoInspections(photos, links)


# ------------------------------------------------------------------------------ benchmarks


def crack_polygons_by_source(bind: Engine | Session) -> dict[str, list[shapely.Geometry]]:
    """Every stored crack polygon (site CRS or image pixels), by the source name (file or
    folder name) of its survey."""
    with session_scope(bind) as s:
        names = {sv_id: Path(path).name
                 for sv_id, path in s.execute(select(Survey.id, Survey.source_path))}
        out: dict[str, list[shapely.Geometry]] = {}
        for survey_id, polygon in s.execute(select(Crack.survey_id, Crack.polygon)):
            out.setdefault(names[survey_id], []).append(polygon)
    return out


def job_run_steps(bind: Engine | Session, job: str) -> list[tuple[float, dict[str, Any]]]:
    """``(seconds from start to finish, steps)`` of every run of ``job`` (e.g.
    ``process_survey``; each must be finished); ``steps`` is the run's JSON of step
    statuses and details."""
    with session_scope(bind) as s:
        return [((j.finished_at - j.started_at).total_seconds(), dict(j.steps or {}))
                for j in s.scalars(select(JobRun).where(JobRun.job == job))]
