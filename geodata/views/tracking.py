"""Tracking of photo cracks per view: each photo's cracks warped into its view's frame and
matched against the view's tracks (rules in :mod:`geodata.views`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from geodata.photos import PHOTO_SOURCE_TYPES
from geodata.registration import local_scale, warp_points
from geodata.store.models import (
    Crack,
    CrackTrack,
    PhotoRegistration,
    PhotoView,
    PhotoViewTrack,
    Survey,
    SurveySummary,
    TrackObservation,
)
from geodata.store.tracks import write_track_outcomes
from geodata.views.common import (
    ALIVE,
    COVERAGE_FRACTION,
    TRACKED,
    matrix,
    view_track_ids,
    warp_geom,
)

__all__ = ["track_views"]


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
    (None: from the start), in ``s``'s transaction. Rules: :mod:`geodata.views`.

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
        PhotoRegistration.site_id == site_id, PhotoRegistration.status.in_(TRACKED),
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
    h = matrix(reg.homography)
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
                    TrackObservation.event.in_(ALIVE)))
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
    geoms = [warp_geom(g, entry.h) for g in frame["geometry"]]
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
               TrackObservation.event.in_(ALIVE))
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
        geoms.append(warp_geom(r.polygon, h))
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
        Survey.id.in_(todo), Survey.source_type.in_(PHOTO_SOURCE_TYPES)))]
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
