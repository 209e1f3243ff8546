"""geodata.tracking.match_cracks on constructed sequences: growth, split, merge, new, vanished."""

from __future__ import annotations

from datetime import UTC, datetime

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from geodata.errors import CRSError
from geodata.matching import match_cracks, survey_summary, tracking_tolerance_m

EPSG = 32633
X0, Y0 = 500_000.0, 5_100_000.0


def strip(x0: float, x1: float, y: float = 0.0, width_m: float = 0.004) -> shapely.Geometry:
    """A horizontal crack from x0 to x1 (m, relative) at height y, ``width_m`` wide."""
    return shapely.MultiPolygon([shapely.box(X0 + x0, Y0 + y, X0 + x1, Y0 + y + width_m)])


def cracks(geoms: list, index=None, widths_mm=None, first_seen=None, crs=EPSG) -> gpd.GeoDataFrame:
    """A crack frame with metrics derived from the strips (length = x extent)."""
    lengths = [g.bounds[2] - g.bounds[0] for g in geoms]
    widths = widths_mm or [(g.bounds[3] - g.bounds[1]) * 1000 for g in geoms]
    data = {"length_m": lengths, "max_width_mm": widths,
            "area_m2": [g.area for g in geoms]}
    if first_seen is not None:
        data["first_seen_at"] = first_seen
    idx = pd.Index(index if index is not None else range(len(geoms)))
    return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(geoms, index=idx, crs=crs), crs=crs,
                            index=idx)


def test_tolerance_formula():
    assert tracking_tolerance_m(0.01, 0.05, tolerance_px=3) == pytest.approx(0.08)
    assert tracking_tolerance_m(None, 0.2) == pytest.approx(0.2)
    with pytest.raises(ValueError):
        tracking_tolerance_m(0.01, -1.0)


def test_growth_continues_track_with_deltas_and_rates():
    prev = cracks([strip(0, 1.0, width_m=0.004)], index=[7])
    cur = cracks([strip(0, 1.5, width_m=0.006)], index=["c1"])
    m = match_cracks(prev, cur, tolerance_m=0.01, days=10.0)
    row = m.current.loc["c1"]
    assert row["event"] == "continued" and row["track_id"] == 7
    assert row["delta_length_m"] == pytest.approx(0.5)
    assert row["delta_max_width_mm"] == pytest.approx(2.0)
    assert row["delta_area_m2"] == pytest.approx(1.5 * 0.006 - 1.0 * 0.004)
    assert row["length_rate_m_per_day"] == pytest.approx(0.05)
    assert row["max_width_rate_mm_per_day"] == pytest.approx(0.2)
    assert m.previous.loc[7, "outcome"] == "continued" and m.previous.loc[7, "into"] == "c1"
    s = survey_summary(m, cur)
    assert s["crack_count"] == 1 and s["continued_count"] == 1 and s["new_count"] == 0
    assert s["total_length_m"] == pytest.approx(1.5)


def test_no_rates_without_days():
    m = match_cracks(cracks([strip(0, 1)], index=[1]), cracks([strip(0, 2)]), tolerance_m=0.0)
    assert m.current.loc[0, "delta_length_m"] == pytest.approx(1.0)
    assert np.isnan(m.current.loc[0, "length_rate_m_per_day"])


def test_new_and_vanished():
    prev = cracks([strip(0, 1), strip(0, 1, y=5.0)], index=[1, 2])
    cur = cracks([strip(0, 1.2), strip(0, 1, y=10.0)], index=[10, 11])
    m = match_cracks(prev, cur, tolerance_m=0.01, days=1.0)
    assert m.current.loc[10, "event"] == "continued" and m.current.loc[10, "track_id"] == 1
    assert m.current.loc[11, "event"] == "new" and pd.isna(m.current.loc[11, "track_id"])
    assert np.isnan(m.current.loc[11, "delta_length_m"])
    assert m.previous.loc[2, "outcome"] == "vanished" and pd.isna(m.previous.loc[2, "into"])
    s = survey_summary(m, cur)
    assert (s["new_count"], s["vanished_count"], s["continued_count"]) == (1, 1, 1)


def test_split_keeps_parent_track_for_largest_piece():
    prev = cracks([strip(0, 3.0)], index=[5])
    # a gap opens at 1.0-1.2: pieces of 1.0 m and 1.8 m
    cur = cracks([strip(0, 1.0), strip(1.2, 3.0)], index=["small", "large"])
    m = match_cracks(prev, cur, tolerance_m=0.01, days=2.0)
    assert m.current.loc["large", "event"] == "continued"
    assert m.current.loc["large", "track_id"] == 5
    assert m.current.loc["large", "delta_length_m"] == pytest.approx(-1.2)
    assert m.current.loc["small", "event"] == "split"
    assert m.current.loc["small", "parent_track_id"] == 5
    assert pd.isna(m.current.loc["small", "track_id"])
    assert m.previous.loc[5, "outcome"] == "continued"
    assert survey_summary(m, cur)["split_count"] == 1


def test_merge_continues_oldest_track_and_uses_combined_baseline():
    old, young = datetime(2023, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC)
    # the younger track is longer: seniority is by first_seen_at, not length
    prev = cracks([strip(0, 1.0), strip(1.1, 3.0)], index=[1, 2], first_seen=[old, young])
    cur = cracks([strip(0, 3.2)], index=[99])
    m = match_cracks(prev, cur, tolerance_m=0.06, days=4.0)
    row = m.current.loc[99]
    assert row["event"] == "continued" and row["track_id"] == 1
    assert row["merged_track_ids"] == (2,)
    assert row["base_length_m"] == pytest.approx(1.0 + 1.9)
    assert row["delta_length_m"] == pytest.approx(3.2 - 2.9)
    assert row["length_rate_m_per_day"] == pytest.approx(0.3 / 4)
    assert m.previous.loc[2, "outcome"] == "merged" and m.previous.loc[2, "into"] == 99
    assert m.previous.loc[1, "outcome"] == "continued"
    s = survey_summary(m, cur)
    assert (s["merged_count"], s["continued_count"], s["vanished_count"]) == (1, 1, 0)


def test_merge_without_first_seen_prefers_longest():
    prev = cracks([strip(0, 1.0), strip(1.1, 3.0)], index=[1, 2])
    m = match_cracks(prev, cracks([strip(0, 3.2)], index=[0]), tolerance_m=0.06)
    assert m.current.loc[0, "track_id"] == 2
    assert m.previous.loc[1, "outcome"] == "merged"


def test_many_to_many_gives_each_track_a_crack():
    """Track 1 splits; its smaller piece touches track 2, which continues with it."""
    t = datetime(2024, 1, 1, tzinfo=UTC)
    prev = cracks([strip(0, 3.0), strip(3.05, 4.0)], index=[1, 2], first_seen=[t, t])
    cur = cracks([strip(0, 2.0), strip(2.2, 4.0)], index=["a", "b"])
    m = match_cracks(prev, cur, tolerance_m=0.1)
    # track 1 (older by length tie-break: longer) takes the largest crack it touches ("a" 2.0 m)
    assert m.current.loc["a", "track_id"] == 1
    assert m.current.loc["b", "track_id"] == 2
    assert set(m.previous["outcome"]) == {"continued"}


def test_registration_error_tolerance_decides_match():
    prev = cracks([strip(0, 1.0)], index=[1])
    shifted = cracks([strip(0, 1.0, y=0.05)], index=[0])  # 4.6 cm gap after a 5 cm shift
    tight = match_cracks(prev, shifted, tolerance_m=tracking_tolerance_m(0.002, 0.0))
    assert tight.current.loc[0, "event"] == "new"
    assert tight.previous.loc[1, "outcome"] == "vanished"
    loose = match_cracks(prev, shifted, tolerance_m=tracking_tolerance_m(0.002, 0.05))
    assert loose.current.loc[0, "event"] == "continued"


def test_first_survey_everything_new_and_empty_current_all_vanished():
    empty = cracks([], index=[])
    cur = cracks([strip(0, 1), strip(0, 1, y=3)])
    m = match_cracks(empty, cur, tolerance_m=0.01)
    assert list(m.current["event"]) == ["new", "new"]
    m2 = match_cracks(cracks([strip(0, 1)], index=[4]), empty, tolerance_m=0.01)
    assert len(m2.current) == 0 and m2.previous.loc[4, "outcome"] == "vanished"
    s = survey_summary(m2, empty)
    assert s["crack_count"] == 0 and s["max_width_mm"] is None and s["vanished_count"] == 1


def test_crs_mismatch_raises():
    prev = cracks([strip(0, 1)], index=[1])
    cur = cracks([strip(0, 1)], crs=32632)
    with pytest.raises(CRSError, match="32633.*32632|32632.*32633"):
        match_cracks(prev, cur, tolerance_m=0.01)


def test_bad_inputs():
    prev = cracks([strip(0, 1)], index=[1])
    with pytest.raises(ValueError, match="tolerance_m"):
        match_cracks(prev, prev, tolerance_m=-1)
    with pytest.raises(ValueError, match="lacks columns"):
        match_cracks(prev.drop(columns="area_m2"), prev, tolerance_m=0)
    dup = cracks([strip(0, 1), strip(0, 1, y=2)], index=[1, 1])
    with pytest.raises(ValueError, match="unique"):
        match_cracks(dup, prev, tolerance_m=0)
    missing = prev.copy()
    missing.loc[1, "geometry"] = None
    with pytest.raises(ValueError, match="geometry"):
        match_cracks(missing, prev, tolerance_m=0)


def test_matching_is_deterministic_under_row_order():
    prev = cracks([strip(0, 3.0), strip(0, 1, y=2)], index=[1, 2])
    cur = cracks([strip(0, 1.0), strip(1.2, 3.0), strip(0, 1.1, y=2)], index=["a", "b", "c"])
    m1 = match_cracks(prev, cur, tolerance_m=0.01)
    m2 = match_cracks(prev.iloc[::-1], cur.iloc[::-1], tolerance_m=0.01)
    pd.testing.assert_frame_equal(m1.current.sort_index(), m2.current.sort_index())
    pd.testing.assert_frame_equal(m1.previous.sort_index(), m2.previous.sort_index())
