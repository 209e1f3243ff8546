"""Defect history of an orthomosaic site's cracks (issue 28, item 6: the page was a table
only for orthomosaic and slope sites): the widths and lengths of the growing cracks over
time, one crack's series with the threshold lines of its alerts, before / after crops of its
first and last measurement, and a link to it on the Site page's map."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard import common as c
from dashboard.alert_view import rule_chart_of
from dashboard.imagery_loaders import imagery_path, load_chip

#: Cracks drawn together in the per-crack charts (the most grown first).
MAX_CHART_TRACKS = 8


def growth_order(tracks: pd.DataFrame) -> pd.DataFrame:
    """``tracks`` (rows of :func:`geodata.queries.site_defect_history`) most grown first:
    growing before the rest, then by width change, length change and last length, so that
    the crack a page opens on is one that grew (issue 28: before/after opened on a crack
    that did not)."""
    key = tracks.assign(
        _growing=(tracks["trend"] == "growing").astype(int),
        _dw=tracks["change_max_width_mm"].fillna(0.0),
        _dl=tracks["change_length_m"].fillna(0.0),
        _len=tracks["last_length_m"].fillna(0.0))
    key = key.sort_values(["_growing", "_dw", "_dl", "_len", "track_id"],
                          ascending=[False, False, False, False, True])
    return tracks.loc[key.index]


def render_map_tracks(url: str, site: pd.Series, tracks: pd.DataFrame,
                      alerts: pd.DataFrame) -> None:
    """The orthomosaic cracks section of Defect history for ``tracks`` (map tracks of the
    site, filtered as the page shows them); ``alerts`` the site's alerts."""
    if tracks.empty:
        return
    st.subheader("Map cracks over time")
    ordered = growth_order(tracks)
    top = [int(t) for t in ordered["track_id"].head(MAX_CHART_TRACKS)]
    series = {t: c.load_track(url, t) for t in top}
    per_crack = {}
    for v in ("max_width_mm", "length_m"):
        cols = {f"track {t}": s.dropna(subset=[v]).set_index("acquired_at")[v]
                for t, s in series.items() if len(s)}
        per_crack[v] = pd.DataFrame(cols) if cols else pd.DataFrame()
    st.caption(f"The {len(top)} most grown of the {len(tracks)} cracks shown (growing first, "
               f"then by width and length change); widths and lengths from each survey's "
               f"pixel size.")
    if not per_crack["max_width_mm"].empty:
        c.line_charts(("Max width (mm) per crack", per_crack["max_width_mm"]),
                      ("Length (m) per crack", per_crack["length_m"]))
    labels = {int(r.track_id): (f"track {int(r.track_id)}: {r.trend}, "
                                f"{c.width_text(r.last_max_width_mm)} "
                                f"({_signed(r.change_max_width_mm, 'mm')}), "
                                f"{c.length_text(r.last_length_m)}")
              for r in ordered.itertuples()}
    track_id = st.selectbox("Crack (track) for its series and before / after",
                            list(labels), format_func=labels.get, key="dh_map_track")
    one = series[track_id] if track_id in series else c.load_track(url, track_id)
    measured = one.dropna(subset=["length_m"])
    on_track = alerts[alerts["track_id"] == track_id]
    spec = rule_chart_of(on_track)
    if len(on_track):
        worst = ", ".join(f"#{int(r.alert_id)} {r.level} {r.rule} ({r.state})"
                          for r in on_track.itertuples())
        st.markdown(f"**Alerts on this crack:** {c.md(worst)}")
    if len(measured):
        last = measured.iloc[-1]
        st.link_button("Open this crack on the site map",
                       f"Site?site={int(site['site_id'])}&survey={int(last['survey_id'])}"
                       f"&track={track_id}")
        by_time = measured.set_index("acquired_at")
        charts: list[tuple[Any, ...]] = [
            ("Max width (mm)", by_time[["max_width_mm"]],
             spec["lines"] if spec and spec["series"] == "max_width_mm" else None),
            ("Length (m)", by_time[["length_m"]])]
        if spec and spec["series"] != "max_width_mm" and spec["series"] in one.columns:
            rate = one.dropna(subset=[spec["series"]]).set_index("acquired_at")
            charts.append((f"{spec['title']}, the rule that fired", rate[[spec["series"]]],
                           spec["lines"]))
        c.line_charts(*charts)
        _before_after(url, site, measured)


def _signed(value: Any, unit: str) -> str:
    if value is None or pd.isna(value):
        return "-"
    return f"{float(value):+.2f} {unit}"


def _before_after(url: str, site: pd.Series, measured: pd.DataFrame) -> None:
    """Crops of the track's first and last measured survey, the crack outlined in each."""
    import shapely

    first, last = measured.iloc[0], measured.iloc[-1]
    if int(first["survey_id"]) == int(last["survey_id"]):
        st.caption("Measured in one survey only: before / after needs a second one.")
        return
    surveys = c.load_surveys(url, int(site["site_id"])).set_index("survey_id")
    geoms = {}
    for obs in (first, last):
        cracks = c.load_survey_cracks(url, int(obs["survey_id"]))
        hit = cracks[cracks["crack_id"] == int(obs["crack_id"])]
        geoms[int(obs["survey_id"])] = hit.geometry.iloc[0] if len(hit) else None
    present = [g for g in geoms.values() if g is not None]
    if not present:
        return
    box = shapely.union_all(present).bounds
    st.caption("Before / after: the crack's first and last measured survey, the same ground "
               "cropped from each orthomosaic (outline in red).")
    for col, obs, title in zip(st.columns(2), (first, last), ("before", "after"),
                               strict=True):
        with col:
            sid = int(obs["survey_id"])
            srow = surveys.loc[sid]
            label = (f"{title}: survey of {c.when(obs['acquired_at'])}, "
                     f"{c.width_text(obs['max_width_mm'])} wide, "
                     f"{c.length_text(obs['length_m'])} long")
            path = imagery_path(srow["source_path"])
            if srow["source_type"] != "orthomosaic" or path is None or not path.is_file():
                st.caption(f"{label}: imagery not found on this machine "
                           f"({c.code(srow['source_path'])})")
                continue
            chip, problem = load_chip(path, box, int(site["crs_epsg"]),
                                      [geoms[sid]] if geoms[sid] is not None else [])
            if chip is None:
                st.caption(f"{label}: {c.md(problem)}")
            else:
                st.image(chip, caption=label)
