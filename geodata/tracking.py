"""Follow cracks from survey to survey in the store: track ids, growth per track and site.

The matching itself is :mod:`geodata.matching` (a pure function on two GeoDataFrames, with the
rules for continue / split / merge / new / vanished and growth); :func:`track_survey` applies it
to the store: it reads each survey's cracks and the previous survey's tracks, writes track
ids, observations and per-survey summaries, and re-attaches open alerts to their lineage.

Cracks in image coordinates (site photos without georeferencing) are not matched here: the
photos of two surveys do not share a coordinate frame. :func:`track_survey` hands them to
:func:`geodata.views.track_views`, which warps them into the frames of the views their
photos were registered into (by the pipeline) and calls :func:`match_cracks` the same way.
"""

from __future__ import annotations

import logging
from typing import Any

import geopandas as gpd
import pandas as pd
from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.orm import Session

from geodata.alerts_store import open_alert_anchors, reattach_alerts
from geodata.errors import StoreError
from geodata.matching import (
    MEASURE_COLUMNS,
    Matching,
    match_cracks,
    survey_summary,
    tracking_tolerance_m,
)
from geodata.store.engine import session_scope
from geodata.store.lookup import _tracked_surveys, tracked_surveys
from geodata.store.models import (
    Crack,
    CrackTrack,
    Site,
    Survey,
    SurveySummary,
    TrackObservation,
)
from geodata.store.tracks import write_track_outcomes

__all__ = [
    "Matching",
    "tracked_surveys",
    "match_cracks",
    "survey_summary",
    "track_site",
    "track_survey",
    "tracking_tolerance_m",
]

log = logging.getLogger(__name__)


def track_survey(
    bind: Engine | Session, survey_id: int, *, tolerance_px: float = 3.0
) -> dict[str, Any]:
    """Track one survey's map cracks against the previous survey of its site, in the store.

    Surveys count in ``acquired_at`` order (then id) and only with a current (succeeded)
    run. Tracking results of this survey and of every later survey of the site are
    recomputed (so re-running an old survey keeps the history consistent); tracks first
    seen in those surveys get new ids, older tracks keep theirs. Open alerts on tracks
    follow the crack they were raised on to its track now, are resolved with the reason when
    that crack is gone, and are never left duplicated
    (:func:`geodata.alerts_store.reattach_alerts`). One transaction.

    Returns:
        The :func:`survey_summary` of ``survey_id`` plus ``survey_id``,
        ``previous_survey_id``, ``tolerance_m`` and ``surveys_tracked`` (how many surveys
        were (re)computed); ``alerts`` (counts from ``reattach_alerts``) when the site had
        open track alerts.

    Raises:
        RecordNotFoundError: no such survey. StoreError: the survey has no stored run.
    """
    from geodata.store.lookup import _survey

    with session_scope(bind, write=True) as s:
        survey = _survey(s, survey_id)
        s.scalar(select(Site).where(Site.id == survey.site_id).with_for_update())
        ordered = _tracked_surveys(s, survey.site_id)
        ids = [sv.id for sv in ordered]
        if survey.id not in ids:
            raise StoreError(
                f"survey {survey.id} has no succeeded inference run; store its cracks with "
                f"geodata.store.store_run before tracking it"
            )
        i = ids.index(survey.id)
        todo = ordered[i:]
        previous = ordered[i - 1] if i > 0 else None
        anchors = open_alert_anchors(s, survey.site_id)  # before the tracks are rebuilt
        _reset(s, survey.site_id, [sv.id for sv in todo], previous)
        summary: dict[str, Any] = {}
        for sv in todo:
            result = _track_one(s, sv, previous, tolerance_px)
            if sv.id == survey.id:
                summary = result
            previous = sv
        summary["surveys_tracked"] = len(todo)
        from geodata.views import track_views  # photo cracks, per view (geodata.views)

        summary["views"] = track_views(s, survey.site_id, [sv.id for sv in todo],
                                       tolerance_px=tolerance_px)
        if anchors:
            summary["alerts"] = reattach_alerts(
                s, survey.site_id, anchors,
                reason=f"tracks were rebuilt from survey {survey.id} "
                       f"({survey.acquired_at:%Y-%m-%d %H:%M} UTC)")
        return summary


def track_site(bind: Engine | Session, site_id: int, *, tolerance_px: float = 3.0) -> int:
    """Recompute all tracking of a site from its first survey; returns surveys tracked."""
    with session_scope(bind, write=True) as s:
        ordered = _tracked_surveys(s, site_id)
        if not ordered:
            return 0
        return int(track_survey(s, ordered[0].id, tolerance_px=tolerance_px)["surveys_tracked"])


def _reset(s: Session, site_id: int, survey_ids: list[int], previous: Survey | None) -> None:
    """Forget tracking results of ``survey_ids``; tracks alive at ``previous`` become active."""
    s.execute(delete(SurveySummary).where(SurveySummary.survey_id.in_(survey_ids)))
    s.execute(delete(TrackObservation).where(TrackObservation.survey_id.in_(survey_ids)))
    s.execute(update(Crack).where(Crack.survey_id.in_(survey_ids)).values(track_id=None))
    # children first is not needed: parent/merged_into links are ON DELETE SET NULL
    s.execute(delete(CrackTrack).where(CrackTrack.site_id == site_id,
                                       CrackTrack.first_survey_id.in_(survey_ids)))
    if previous is not None:
        alive = (select(TrackObservation.track_id)
                 .where(TrackObservation.survey_id == previous.id,
                        TrackObservation.event.in_(("new", "continued", "split"))))
        s.execute(update(CrackTrack).where(CrackTrack.id.in_(alive))
                  .values(status="active", merged_into_track_id=None,
                          last_survey_id=previous.id, last_seen_at=previous.acquired_at))


def _map_cracks(s: Session, survey_id: int, srid: int) -> gpd.GeoDataFrame:
    rows = s.execute(
        select(Crack.id, Crack.track_id, Crack.polygon, Crack.length_m, Crack.mean_width_mm,
               Crack.max_width_mm, Crack.area_m2)
        .where(Crack.survey_id == survey_id, Crack.coordinate_space == "map")
        .order_by(Crack.id)
    ).all()
    frame = pd.DataFrame(rows, columns=["id", "track_id", "geometry", "length_m",
                                        "mean_width_mm", "max_width_mm", "area_m2"])
    gdf = gpd.GeoDataFrame(frame.drop(columns="geometry"),
                           geometry=gpd.GeoSeries(list(frame["geometry"]), crs=srid), crs=srid)
    gdf["track_id"] = gdf["track_id"].astype("Int64")
    return gdf.set_index("id")


def _track_one(
    s: Session, survey: Survey, previous: Survey | None, tolerance_px: float
) -> dict[str, Any]:
    site = s.get(Site, survey.site_id)
    assert site is not None
    cur = _map_cracks(s, survey.id, site.crs_epsg)
    if previous is not None:
        prev_all = _map_cracks(s, previous.id, site.crs_epsg)
        prev = prev_all[prev_all["track_id"].notna()].reset_index().set_index("track_id")
        firsts = dict(s.execute(select(CrackTrack.id, CrackTrack.first_seen_at)
                                .where(CrackTrack.id.in_([int(t) for t in prev.index]))).all())
        prev["first_seen_at"] = [firsts[int(t)] for t in prev.index]
        prev.index = prev.index.astype(int)
        pixel = max((p for p in (survey.pixel_size_m, previous.pixel_size_m) if p), default=None)
        days = (survey.acquired_at - previous.acquired_at).total_seconds() / 86400.0
    else:
        prev = gpd.GeoDataFrame({c: pd.Series([], dtype=float) for c in MEASURE_COLUMNS},
                                geometry=gpd.GeoSeries([], crs=site.crs_epsg))
        pixel, days = survey.pixel_size_m, None
    if pixel is None and len(cur):
        log.warning("survey %s has no pixel size: tracking tolerance is only its registration "
                    "error (%s m)", survey.id, survey.registration_error_m)
    tol = tracking_tolerance_m(pixel, survey.registration_error_m, tolerance_px)
    m = match_cracks(prev, cur, tolerance_m=tol, days=days)
    when = survey.acquired_at

    track_of, _started = write_track_outcomes(s, site_id=site.id, survey_id=survey.id,
                                              when=when, current=m.current,
                                              previous=m.previous)

    observations = []
    for crack_id, row in m.current.iterrows():
        c = cur.loc[crack_id]
        has_base = row["event"] == "continued"
        observations.append({
            "track_id": track_of[crack_id], "survey_id": survey.id, "crack_id": int(crack_id),
            "event": row["event"], "acquired_at": when,
            "length_m": float(c["length_m"]), "mean_width_mm": float(c["mean_width_mm"]),
            "max_width_mm": float(c["max_width_mm"]), "area_m2": float(c["area_m2"]),
            "days_since_previous": days if has_base else None,
            "delta_length_m": _num(row["delta_length_m"]),
            "delta_max_width_mm": _num(row["delta_max_width_mm"]),
            "delta_area_m2": _num(row["delta_area_m2"]),
            "length_rate_m_per_day": _num(row["length_rate_m_per_day"]),
            "max_width_rate_mm_per_day": _num(row["max_width_rate_mm_per_day"]),
            "area_rate_m2_per_day": _num(row["area_rate_m2_per_day"]),
        })
    for track_id, row in m.previous.iterrows():
        if row["outcome"] == "continued":
            continue
        into = row["into"]
        observations.append({
            "track_id": int(track_id), "survey_id": survey.id,
            "crack_id": None if pd.isna(into) else int(into), "event": row["outcome"],
            "acquired_at": when,
        })
    if observations:
        s.execute(insert(TrackObservation), _uniform(observations))

    summary = survey_summary(m, cur)
    s.add(SurveySummary(survey_id=survey.id, site_id=site.id, acquired_at=when,
                        previous_survey_id=previous.id if previous else None,
                        tolerance_m=tol, **summary))
    s.flush()
    summary.update(survey_id=survey.id, previous_survey_id=previous.id if previous else None,
                   tolerance_m=tol)
    return summary


def _num(x: Any) -> float | None:
    return None if x is None or pd.isna(x) else float(x)


def _uniform(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give every row the same keys (None where missing) for one executemany."""
    keys = {k for r in rows for k in r}
    return [{k: r.get(k) for k in keys} for r in rows]
