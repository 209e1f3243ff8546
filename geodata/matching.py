"""Crack matching between two surveys: the pure core of tracking (no store).

:func:`match_cracks` takes two GeoDataFrames (the previous survey's cracks, one per track, and
the current survey's cracks) and returns a :class:`Matching`; :mod:`geodata.tracking` applies it
to the store (issue 17: matching split from its persistence). All geometry work is shapely's,
so SQLite and PostGIS give the same tracks.

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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely

from geodata.errors import CRSError

__all__ = ["MEASURE_COLUMNS", "Matching", "match_cracks", "survey_summary",
           "tracking_tolerance_m"]

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
    _check_frames(previous, current, tolerance_m)
    prev_geoms = np.asarray(previous.geometry.values, dtype=object)
    cur_geoms = np.asarray(current.geometry.values, dtype=object)
    cands_of_prev, cands_of_cur = _touches(prev_geoms, cur_geoms, tolerance_m)
    c_len = current["length_m"].to_numpy(float)
    c_area = current["area_m2"].to_numpy(float)
    seniority = _seniority(previous)
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

    cur = _current_events(previous, current, continues, cands_of_cur, merged_into, rank)
    cur_ids = list(current.index)
    outcomes = [("continued", cur_ids[continued_by[p]]) if p in continued_by else
                ("merged", cur_ids[merged_into[p]]) if p in merged_into else ("vanished", None)
                for p in range(len(previous))]
    prev = pd.DataFrame({"outcome": pd.Series([r[0] for r in outcomes], dtype=object),
                         "into": pd.Series([r[1] for r in outcomes], dtype=object)})
    prev.index = previous.index
    return Matching(current=_with_growth(cur, current, days), previous=prev,
                    tolerance_m=float(tolerance_m), days=None if days is None else float(days))


def _check_frames(previous: gpd.GeoDataFrame, current: gpd.GeoDataFrame,
                  tolerance_m: float) -> None:
    """The checks of :func:`match_cracks` (its Raises)."""
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


def _touches(prev_geoms: np.ndarray, cur_geoms: np.ndarray,
             tolerance_m: float) -> tuple[dict[int, list[int]], dict[int, list[int]]]:
    """The touch graph by position: ``(cands_of_prev, cands_of_cur)``, the current cracks
    within ``tolerance_m`` of each previous track and the tracks within it of each crack."""
    if len(prev_geoms) and len(cur_geoms):
        tree = shapely.STRtree(prev_geoms)
        cur_pos, prev_pos = tree.query(cur_geoms, predicate="dwithin", distance=tolerance_m)
    else:
        cur_pos = prev_pos = np.empty(0, dtype=np.intp)
    cands_of_prev: dict[int, list[int]] = {}
    cands_of_cur: dict[int, list[int]] = {}
    for c, p in zip(cur_pos.tolist(), prev_pos.tolist(), strict=True):
        cands_of_prev.setdefault(p, []).append(c)
        cands_of_cur.setdefault(c, []).append(p)
    return cands_of_prev, cands_of_cur


def _seniority(previous: gpd.GeoDataFrame) -> list[int]:
    """Positions of the previous tracks, oldest first (``first_seen_at``, then longest
    ``length_m``, then smallest id)."""
    p_len = previous["length_m"].to_numpy(float)
    first_seen = (previous["first_seen_at"] if "first_seen_at" in previous.columns
                  else pd.Series(0, index=previous.index))
    prev_ids = list(previous.index)
    return sorted(range(len(previous)), key=lambda p: (_sortable(first_seen.iloc[p]), -p_len[p],
                                                       prev_ids[p]))


def _current_events(previous: gpd.GeoDataFrame, current: gpd.GeoDataFrame,
                    continues: dict[int, int], cands_of_cur: dict[int, list[int]],
                    merged_into: dict[int, int], rank: dict[int, int]) -> pd.DataFrame:
    """:attr:`Matching.current` up to the baselines: per current crack its event, track,
    parent and merged tracks, and the baseline of a continued track (rules 1 to 4)."""
    absorbed: dict[int, list[int]] = {}
    for p, c in merged_into.items():
        absorbed.setdefault(c, []).append(p)
    prev_ids = list(previous.index)
    p_len = previous["length_m"].to_numpy(float)
    p_w = previous["max_width_mm"].to_numpy(float)
    p_area = previous["area_m2"].to_numpy(float)
    cur_rows = []
    for c in range(len(current)):
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
    return cur


def _with_growth(cur: pd.DataFrame, current: gpd.GeoDataFrame,
                 days: float | None) -> pd.DataFrame:
    """``cur`` (from :func:`_current_events`) with the ``delta_*`` columns (current minus
    baseline) and the ``*_per_day`` rates (NaN when ``days`` is None or 0)."""
    cur["delta_length_m"] = current["length_m"].to_numpy(float) - cur["base_length_m"].to_numpy()
    cur["delta_max_width_mm"] = (current["max_width_mm"].to_numpy(float)
                                 - cur["base_max_width_mm"].to_numpy())
    cur["delta_area_m2"] = current["area_m2"].to_numpy(float) - cur["base_area_m2"].to_numpy()
    per_day = (1.0 / days) if days else np.nan
    cur["length_rate_m_per_day"] = cur["delta_length_m"] * per_day
    cur["max_width_rate_mm_per_day"] = cur["delta_max_width_mm"] * per_day
    cur["area_rate_m2_per_day"] = cur["delta_area_m2"] * per_day
    return cur


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
