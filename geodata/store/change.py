"""Store functions of the per-site surface-change layer (issue 29): site baselines and each
later survey's layer (:mod:`geodata.store.models.change`; used by :mod:`jobs.site_baseline`).
Each takes a Session; the caller owns the transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from geodata.store.lookup import _site
from geodata.store.models import InferenceRun, Site, SiteBaseline, SurfaceChange, Survey

__all__ = ["BaselineSource", "SurveyToCompare", "add_site_baseline", "baseline_sources",
           "current_baseline", "has_site_baseline", "later_orthomosaics", "replace_surface_change",
           "survey_to_compare"]


@dataclass(frozen=True)
class BaselineSource:
    """A baseline survey: id, file, type, acquisition time."""

    survey_id: int
    path: str
    source_type: str
    acquired_at: datetime


@dataclass(frozen=True)
class SurveyToCompare:
    """What comparing one survey with its site's current baseline needs."""

    survey_id: int
    path: str
    site_epsg: int
    unobservable: Any
    baseline_id: int
    threshold: float
    card: dict
    features_path: str
    features_sha256: str


def baseline_sources(s: Session, site: int | str,
                     survey_ids: list[int] | None) -> tuple[int, str, list[BaselineSource],
                                                            list[int]]:
    """``(site_id, site_name, chosen surveys, ids asked for but not of this site)``: the
    surveys ``survey_ids`` of ``site`` (default its first), oldest first.

    Raises:
        RecordNotFoundError: no such site.
    """
    site_row = _site(s, site)
    surveys = s.scalars(select(Survey).where(Survey.site_id == site_row.id)
                        .order_by(Survey.acquired_at, Survey.id)).all()
    chosen = [sv for sv in surveys if sv.id in set(survey_ids)] if survey_ids else surveys[:1]
    missing = sorted(set(survey_ids or []) - {sv.id for sv in chosen})
    return site_row.id, site_row.name, [
        BaselineSource(sv.id, sv.source_path, sv.source_type, sv.acquired_at)
        for sv in chosen], missing


def add_site_baseline(s: Session, site_id: int, survey_ids: list[int], features_path: str,
                      features_sha256: str, threshold: float, card: dict) -> int:
    """Record a site baseline (the site's current one from now on); returns its id."""
    row = SiteBaseline(site_id=site_id, survey_ids=survey_ids, features_path=features_path,
                       features_sha256=features_sha256, threshold=threshold, card=card)
    s.add(row)
    s.flush()
    return row.id


def current_baseline(s: Session, site_id: int) -> SiteBaseline | None:
    """The site's newest baseline, or None."""
    return s.scalar(select(SiteBaseline).where(SiteBaseline.site_id == site_id)
                    .order_by(SiteBaseline.id.desc()).limit(1))


def has_site_baseline(s: Session, site: int | str) -> bool:
    """Whether the site has a baseline.

    Raises:
        RecordNotFoundError: no such site.
    """
    return current_baseline(s, _site(s, site).id) is not None


def later_orthomosaics(s: Session, site_id: int, after: datetime) -> list[int]:
    """Ids of the site's orthomosaic surveys acquired after ``after``, oldest first."""
    return list(s.scalars(select(Survey.id).where(
        Survey.site_id == site_id, Survey.acquired_at > after,
        Survey.source_type == "orthomosaic").order_by(Survey.acquired_at, Survey.id)))


def survey_to_compare(s: Session, survey_id: int) -> SurveyToCompare | None:
    """What comparing the survey with its site's current baseline needs; None when there is
    nothing to compare: no such survey, not an orthomosaic, no baseline, or the survey is part
    of the baseline or not later than it."""
    survey = s.get(Survey, survey_id)
    if survey is None or survey.source_type != "orthomosaic":
        return None
    base = current_baseline(s, survey.site_id)
    if base is None or survey.id in base.survey_ids:
        return None
    first = min(s.get(Survey, i).acquired_at for i in base.survey_ids)
    if survey.acquired_at <= first:
        return None
    unobservable = s.scalar(select(InferenceRun.unobservable).where(
        InferenceRun.survey_id == survey_id, InferenceRun.status == "succeeded")
        .order_by(InferenceRun.id.desc()).limit(1))
    return SurveyToCompare(survey.id, survey.source_path, s.get(Site, survey.site_id).crs_epsg,
                           unobservable, base.id, base.threshold, dict(base.card),
                           base.features_path, base.features_sha256)


def replace_surface_change(s: Session, survey_id: int, baseline_id: int, raster_path: str,
                           geometry: Any, compared_m2: float, changed_m2: float,
                           details: dict) -> None:
    """Store the survey's layer against the baseline, replacing an earlier one. ``geometry``:
    a shapely geometry in the site CRS with its SRID, or None (nothing changed)."""
    old = s.scalars(select(SurfaceChange).where(SurfaceChange.survey_id == survey_id,
                                                SurfaceChange.baseline_id == baseline_id))
    for row in old:
        s.delete(row)
    s.flush()
    s.add(SurfaceChange(survey_id=survey_id, baseline_id=baseline_id, raster_path=raster_path,
                        geometry=geometry, compared_m2=compared_m2, changed_m2=changed_m2,
                        details=details))
