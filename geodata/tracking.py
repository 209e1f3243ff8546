"""Follow cracks from survey to survey: matching, track ids, growth per track and per site.

The core, :func:`match_cracks`, is a pure function on two GeoDataFrames (the previous
survey's cracks, one per track, and the current survey's cracks); :func:`track_survey`
applies it to the store. All geometry work is shapely's, so SQLite and PostGIS give the
same tracks.

Matching. A current crack *touches* a previous track when their polygons come within the
tolerance of each other (``distance <= tolerance_m``, i.e. they overlap once buffered by
the tolerance; shapely ``STRtree.query(..., predicate="dwithin")``). The tolerance is
``tolerance_px`` pixels (default 3: vectorising and simplifying move outlines by about a
pixel) times the coarser of the two surveys' pixel sizes, plus the current survey's
registration error (how far it may be shifted against earlier surveys).

Track ids (deterministic rules, applied to the touch graph):

1. *Continue*: previous tracks, oldest first (``first_seen_at``, then longest ``length_m``,
   then smallest id), each take the largest (``length_m``, then ``area_m2``) touching current
   crack that no older track has taken. One track continues with at most one crack and a
   crack continues at most one track, so ids stay stable and unique per survey.
2. *Split* (one-to-many): a touching current crack left over starts a new track whose
   ``parent_track_id`` is the oldest track it touches; the parent continues with its
   largest piece (rule 1).
3. *Merge* (many-to-one): a touching previous track left over (all its cracks were taken by
   older tracks) is marked ``merged`` into the track of the current crack it overlaps most
   (area of its polygon buffered by the tolerance intersected with the crack); the merged
   crack continues the oldest track (rule 1).
4. *New*: a current crack touching nothing starts a track. *Vanished*: a previous track
   touching nothing is marked ``vanished``. Only the previous survey is compared: a crack
   missed in one survey and found again later starts a new track.

Growth. For a crack continuing a track the baseline is the previous crack of that track,
together with the cracks of any tracks merged into it (lengths and areas summed, the
maximum width taken), so a merge does not read as sudden growth. ``delta_* = current -
baseline``; rates are deltas per day between the surveys' ``acquired_at``. Split-off and
new cracks have no baseline (NaN). Units follow the names: ``_m``, ``_mm``, ``_m2``,
``_per_day``.

Cracks in image coordinates (site photos without georeferencing) are not matched here: the
photos of two surveys do not share a coordinate frame. :func:`track_survey` hands them to
:func:`geodata.views.track_views`, which warps them into the frames of the views their
photos were registered into (by the pipeline) and calls :func:`match_cracks` the same way.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.orm import Session

from geodata.alerts_store import open_alert_anchors, reattach_alerts
from geodata.errors import CRSError, StoreError
from geodata.store.engine import session_scope
from geodata.store.models import (
    Crack,
    CrackTrack,
    InferenceRun,
    Site,
    Survey,
    SurveySummary,
    TrackObservation,
)

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

#: Columns :func:`match_cracks` reads from both frames (plus the geometry).
MEASURE_COLUMNS = ("length_m", "max_width_mm", "area_m2")


@dataclass(frozen=True)
class Matching:
    """Result of :func:`match_cracks`.

    ``current``: one row per current crack (the current frame's index), columns
        ``event`` ("continued" | "split" | "new"), ``track_id`` (Int64: the continued
        track, <NA> for split/new), ``parent_track_id`` (Int64, split only),
        ``merged_track_ids`` (tuple of previous tracks merged into this crack),
        ``base_length_m``, ``base_max_width_mm``, ``base_area_m2`` (baseline, NaN without
        one), ``delta_length_m``, ``delta_max_width_mm``, ``delta_area_m2``,
        ``length_rate_m_per_day``, ``max_width_rate_mm_per_day``, ``area_rate_m2_per_day``
        (NaN when ``days`` was not given or is 0).
    ``previous``: one row per previous track (the previous frame's index), columns
        ``outcome`` ("continued" | "merged" | "vanished") and ``into`` (the current crack's
        index label it continues / merged into; missing (None/NaN) when vanished).
    ``tolerance_m``: the matching tolerance used (m). ``days``: time between the surveys.
    """

    current: pd.DataFrame
    previous: pd.DataFrame
    tolerance_m: float
    days: float | None


def tracking_tolerance_m(
    pixel_size_m: float | None,
    registration_error_m: float = 0.0,
    tolerance_px: float = 3.0,
) -> float:
    """Matching tolerance in metres: ``tolerance_px * pixel_size_m + registration_error_m``.

    ``pixel_size_m`` None (unknown) counts as 0, i.e. only the registration error.
    """
    if tolerance_px < 0 or registration_error_m < 0:
        raise ValueError(f"tolerance_px and registration_error_m must be >= 0, got "
                         f"{tolerance_px}, {registration_error_m}")
    return float(tolerance_px * (pixel_size_m or 0.0) + registration_error_m)


def match_cracks(
    previous: gpd.GeoDataFrame,
    current: gpd.GeoDataFrame,
    *,
    tolerance_m: float,
    days: float | None = None,
) -> Matching:
    """Match the current survey's cracks to the previous survey's crack tracks.

    Args:
        previous: one row per track alive in the previous survey; index = track id (unique
            ints); columns :data:`MEASURE_COLUMNS`, optionally ``first_seen_at`` (sortable,
            for seniority); (Multi)Polygon geometry.
        current: one row per crack of the current survey; index = any unique labels;
            columns :data:`MEASURE_COLUMNS`; (Multi)Polygon geometry.
        tolerance_m: max distance (m, CRS units) between polygons that still match
            (see :func:`tracking_tolerance_m`).
        days: days between the surveys' acquisitions, for rates (None: no rates).

    Returns:
        A :class:`Matching` (rules in the module docstring).

    Raises:
        CRSError: the frames' CRSs differ (reproject one; never done silently here).
        ValueError: missing columns, duplicate index labels, negative tolerance.
    """
    if not (tolerance_m >= 0 and math.isfinite(tolerance_m)):
        raise ValueError(f"tolerance_m must be a finite number >= 0, got {tolerance_m}")
    for name, frame in (("previous", previous), ("current", current)):
        missing = [c for c in MEASURE_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"{name} frame lacks columns {missing}; needs "
                             f"{list(MEASURE_COLUMNS)} and a geometry")
        if not frame.index.is_unique:
            raise ValueError(f"{name} frame index must be unique (track ids / crack ids)")
        missing_geom = frame.geometry.isna() | frame.geometry.is_empty
        if missing_geom.any():
            raise ValueError(f"{name} frame has rows without geometry: "
                             f"{list(frame.index[missing_geom])[:5]}; every crack needs its "
                             f"polygon (check that the GeoSeries index matches the frame's)")
    if (previous.crs is not None and current.crs is not None
            and not pyproj.CRS(previous.crs).equals(current.crs, ignore_axis_order=True)):
        raise CRSError(
            f"previous cracks are in {previous.crs.to_string()} but current ones in "
            f"{current.crs.to_string()}; both must be in the site CRS (reproject with to_crs)"
        )

    n_prev, n_cur = len(previous), len(current)
    prev_geoms = np.asarray(previous.geometry.values, dtype=object)
    cur_geoms = np.asarray(current.geometry.values, dtype=object)
    if n_prev and n_cur:
        tree = shapely.STRtree(prev_geoms)
        cur_pos, prev_pos = tree.query(cur_geoms, predicate="dwithin", distance=tolerance_m)
    else:
        cur_pos = prev_pos = np.empty(0, dtype=np.intp)
    cands_of_prev: dict[int, list[int]] = {}
    cands_of_cur: dict[int, list[int]] = {}
    for c, p in zip(cur_pos.tolist(), prev_pos.tolist(), strict=True):
        cands_of_prev.setdefault(p, []).append(c)
        cands_of_cur.setdefault(c, []).append(p)

    p_len = previous["length_m"].to_numpy(float)
    c_len = current["length_m"].to_numpy(float)
    c_area = current["area_m2"].to_numpy(float)
    first_seen = (previous["first_seen_at"] if "first_seen_at" in previous.columns
                  else pd.Series(0, index=previous.index))
    prev_ids = list(previous.index)
    seniority = sorted(range(n_prev), key=lambda p: (_sortable(first_seen.iloc[p]), -p_len[p],
                                                     prev_ids[p]))
    rank = {p: r for r, p in enumerate(seniority)}

    def size_key(c: int) -> tuple[float, float, int]:
        return (-c_len[c], -c_area[c], c)

    continues: dict[int, int] = {}  # current pos -> previous pos
    continued_by: dict[int, int] = {}  # previous pos -> current pos
    for p in seniority:  # rule 1
        free = [c for c in cands_of_prev.get(p, []) if c not in continues]
        if free:
            c = min(free, key=size_key)
            continues[c] = p
            continued_by[p] = c

    merged_into: dict[int, int] = {}  # previous pos -> current pos (rule 3)
    for p, cands in cands_of_prev.items():
        if p in continued_by:
            continue
        buffered = shapely.buffer(prev_geoms[p], tolerance_m) if tolerance_m > 0 else prev_geoms[p]
        overlaps = [(shapely.area(shapely.intersection(buffered, cur_geoms[c])), c)
                    for c in cands]
        merged_into[p] = max(overlaps, key=lambda t: (t[0], -c_len[t[1]], -t[1]))[1]

    absorbed: dict[int, list[int]] = {}
    for p, c in merged_into.items():
        absorbed.setdefault(c, []).append(p)

    p_w = previous["max_width_mm"].to_numpy(float)
    p_area = previous["area_m2"].to_numpy(float)
    c_w = current["max_width_mm"].to_numpy(float)

    cur_rows = []
    for c in range(n_cur):
        row: dict[str, Any] = {"track_id": pd.NA, "parent_track_id": pd.NA,
                               "merged_track_ids": (), "base_length_m": np.nan,
                               "base_max_width_mm": np.nan, "base_area_m2": np.nan}
        if c in continues:
            p = continues[c]
            group = [p] + sorted(absorbed.get(c, []), key=rank.__getitem__)
            row.update(event="continued", track_id=prev_ids[p],
                       merged_track_ids=tuple(prev_ids[q] for q in group[1:]),
                       base_length_m=float(p_len[group].sum()),
                       base_max_width_mm=float(p_w[group].max()),
                       base_area_m2=float(p_area[group].sum()))
        elif c in cands_of_cur:
            parent = min(cands_of_cur[c], key=rank.__getitem__)
            row.update(event="split", parent_track_id=prev_ids[parent])
            # a split-off piece cannot absorb tracks: rule 1 would have given it to them
            assert c not in absorbed
        else:
            row["event"] = "new"
        cur_rows.append(row)

    cur = pd.DataFrame(cur_rows, index=current.index,
                       columns=["event", "track_id", "parent_track_id", "merged_track_ids",
                                "base_length_m", "base_max_width_mm", "base_area_m2"])
    cur["track_id"] = cur["track_id"].astype("Int64")
    cur["parent_track_id"] = cur["parent_track_id"].astype("Int64")
    for col in ("base_length_m", "base_max_width_mm", "base_area_m2"):
        cur[col] = cur[col].astype(float)
    cur["delta_length_m"] = c_len - cur["base_length_m"].to_numpy()
    cur["delta_max_width_mm"] = c_w - cur["base_max_width_mm"].to_numpy()
    cur["delta_area_m2"] = c_area - cur["base_area_m2"].to_numpy()
    per_day = (1.0 / days) if days else np.nan
    cur["length_rate_m_per_day"] = cur["delta_length_m"] * per_day
    cur["max_width_rate_mm_per_day"] = cur["delta_max_width_mm"] * per_day
    cur["area_rate_m2_per_day"] = cur["delta_area_m2"] * per_day

    cur_ids = list(current.index)
    prev_rows = []
    for p in range(n_prev):
        if p in continued_by:
            prev_rows.append(("continued", cur_ids[continued_by[p]]))
        elif p in merged_into:
            prev_rows.append(("merged", cur_ids[merged_into[p]]))
        else:
            prev_rows.append(("vanished", None))
    prev = pd.DataFrame({"outcome": pd.Series([r[0] for r in prev_rows], dtype=object),
                         "into": pd.Series([r[1] for r in prev_rows], dtype=object)})
    prev.index = previous.index
    return Matching(current=cur, previous=prev, tolerance_m=float(tolerance_m),
                    days=None if days is None else float(days))


def _sortable(value: Any) -> float:
    """A float sort key for a first-seen time (datetime or number); unknown sorts last."""
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return math.inf
    if isinstance(value, datetime):  # includes pd.Timestamp
        return value.timestamp()
    return float(value)


def survey_summary(matching: Matching, current: gpd.GeoDataFrame) -> dict[str, Any]:
    """Per-survey figures: ``crack_count``, ``total_length_m``, ``total_area_m2``,
    ``max_width_mm`` (None without cracks), ``new_count``, ``continued_count``,
    ``split_count``, ``merged_count`` (previous tracks merged away), ``vanished_count``."""
    ev = matching.current["event"]
    out = matching.previous["outcome"]
    return {
        "crack_count": int(len(current)),
        "total_length_m": float(current["length_m"].sum()) if len(current) else 0.0,
        "total_area_m2": float(current["area_m2"].sum()) if len(current) else 0.0,
        "max_width_mm": float(current["max_width_mm"].max()) if len(current) else None,
        "new_count": int((ev == "new").sum()),
        "continued_count": int((ev == "continued").sum()),
        "split_count": int((ev == "split").sum()),
        "merged_count": int((out == "merged").sum()),
        "vanished_count": int((out == "vanished").sum()),
    }


# --------------------------------------------------------------------------- store


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
    from geodata.store.api import _survey

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


def tracked_surveys(s: Session, site_id: int) -> list[Survey]:
    """The site's surveys with a current (succeeded) run, in tracking order
    (``acquired_at``, then id)."""
    return _tracked_surveys(s, site_id)


def _tracked_surveys(s: Session, site_id: int) -> list[Survey]:
    has_run = (select(InferenceRun.id)
               .where(InferenceRun.survey_id == Survey.id, InferenceRun.status == "succeeded")
               .exists())
    return list(s.scalars(select(Survey).where(Survey.site_id == site_id, has_run)
                          .order_by(Survey.acquired_at, Survey.id)))


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

    # tracks for new and split-off cracks (one flush: ids come back in one batch)
    track_of: dict[int, int] = {}
    started: dict[int, CrackTrack] = {}
    for crack_id, row in m.current.iterrows():
        if row["event"] == "continued":
            track_of[crack_id] = int(row["track_id"])
            continue
        parent = None if pd.isna(row["parent_track_id"]) else int(row["parent_track_id"])
        started[crack_id] = CrackTrack(
            site_id=site.id, first_survey_id=survey.id, first_seen_at=when,
            last_survey_id=survey.id, last_seen_at=when, status="active",
            parent_track_id=parent)
    s.add_all(started.values())
    s.flush()
    track_of.update({crack_id: t.id for crack_id, t in started.items()})
    continued = [track_of[c] for c in m.current.index[m.current["event"] == "continued"]]
    if continued:
        s.execute(update(CrackTrack).where(CrackTrack.id.in_(continued))
                  .values(last_survey_id=survey.id, last_seen_at=when, status="active",
                          merged_into_track_id=None))
    for track_id, row in m.previous.iterrows():
        if row["outcome"] == "merged":
            s.execute(update(CrackTrack).where(CrackTrack.id == int(track_id))
                      .values(status="merged", merged_into_track_id=track_of[row["into"]]))
        elif row["outcome"] == "vanished":
            s.execute(update(CrackTrack).where(CrackTrack.id == int(track_id))
                      .values(status="vanished"))
    if track_of:
        s.execute(update(Crack), [{"id": int(c), "track_id": t} for c, t in track_of.items()])

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
