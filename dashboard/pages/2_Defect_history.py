"""Defect history: every crack track of a site with first seen, last measured, trend and its
alerts; for orthomosaic cracks and per photo view, each crack's width and length over time
with before/after crops."""

from __future__ import annotations

import json

import pandas as pd
import shapely
import streamlit as st

from dashboard import common as c
from dashboard.imagery_loaders import load_view_chip
from dashboard.map_tracks import growth_order, render_map_tracks
from geodata.levels import level_rank

c.page_setup("Defect history")
st.title("Defect history")
url = c.store_url()
sites = c.sites_or_stop(url)
site_id = c.pick_site(sites)
name = sites.set_index("site_id").loc[site_id, "name"]
history = c.load_history(url, site_id)
if history.empty:
    c.empty_state(f"No cracks recorded for {c.md(name)} yet.",
                  "Cracks appear here once a survey of the site has been processed (the "
                  "nightly job, or `crackwatch demo` for a demo site).")
    st.stop()

f1, f2, f3, f4 = st.columns(4)
trends = f1.multiselect("Trend", sorted(history["trend"].unique()), key="dh_trend")
statuses = f2.multiselect("Status", sorted(history["status"].unique()), key="dh_status")
severities = f3.multiselect("Severity", [s for s in history["severity"].unique()],
                            key="dh_severity")
min_length = f4.number_input("Min. last length (m)", min_value=0.0, value=0.0, step=0.1,
                             key="dh_min_length")
shown = history
if trends:
    shown = shown[shown["trend"].isin(trends)]
if statuses:
    shown = shown[shown["status"].isin(statuses)]
if severities:
    shown = shown[shown["severity"].isin(severities)]
shown = shown[shown["last_length_m"] >= min_length]

counts = history["trend"].value_counts()
m = st.columns(4)
m[0].metric("Crack tracks", len(history))
m[1].metric("Growing", int(counts.get("growing", 0)))
m[2].metric("New", int(counts.get("new", 0)))
m[3].metric("Shown", len(shown))

alerts = c.load_alerts(url, site_id)
unresolved = alerts[alerts["state"] != "resolved"].dropna(subset=["track_id"])
worst = {int(t): max(g["level"], key=level_rank) for t, g in unresolved.groupby("track_id")}
shown = growth_order(shown)  # the cracks that grew first
table = shown.assign(
    alert=shown["track_id"].map(lambda t: worst.get(int(t), "")),
    first_seen=shown["first_seen_at"].map(c.when),
    last_measured=shown["last_seen_at"].map(c.when),
    length=shown["last_length_m"].map(c.length_text),
    change_length=shown["change_length_m"].map(lambda v: c.length_text(v, signed=True)),
    width=shown["last_max_width_mm"].map(c.width_text),
    change_width=shown["change_max_width_mm"].map(lambda v: c.width_text(v, signed=True)))
st.dataframe(
    table[["track_id", "alert", "trend", "status", "severity", "width", "change_width",
           "length", "change_length", "max_width_rate_mm_per_day", "first_seen",
           "last_measured", "surveys_measured", "view_id"]],
    hide_index=True, width="stretch",
    column_config={
        "track_id": st.column_config.NumberColumn("track", format="%d", width=60),
        "alert": st.column_config.TextColumn(
            "alert", width=65, help="The highest unresolved alert level on the crack"),
        "trend": st.column_config.TextColumn(width=80),
        "status": st.column_config.TextColumn(width=75),
        "severity": st.column_config.TextColumn(width=95),
        "width": st.column_config.TextColumn("max width", width=80),
        "change_width": st.column_config.TextColumn("width change", width=95),
        "length": st.column_config.TextColumn(width=75),
        "change_length": st.column_config.TextColumn("length change", width=100),
        "max_width_rate_mm_per_day": st.column_config.NumberColumn(
            "mm/day", format="%.3f", width=70, help="Opening rate, first to last survey"),
        "first_seen": st.column_config.TextColumn("first seen (UTC)", width=125),
        "last_measured": st.column_config.TextColumn("last measured (UTC)", width=125),
        "surveys_measured": st.column_config.NumberColumn("surveys", width=65),
        "view_id": st.column_config.NumberColumn(
            "view", format="%d", width=55,
            help="Photo view the crack is tracked in (photo surveys); empty for cracks of "
                 "orthomosaics"),
    },
)

csv = shown.to_csv(index=False).encode()
tracks_fc = json.loads(c.load_tracks_geojson(url, site_id))
keep = set(int(t) for t in shown["track_id"])
tracks_fc["features"] = [f for f in tracks_fc["features"]
                         if int(f["properties"]["track_id"]) in keep]
d1, d2 = st.columns(2)
d1.download_button("Download CSV", csv, file_name=f"{name}_defect_history.csv",
                   mime="text/csv", key="dh_csv")
d2.download_button("Download GeoJSON (WGS 84)", json.dumps(tracks_fc).encode(),
                   file_name=f"{name}_defect_history.geojson",
                   mime="application/geo+json", key="dh_geojson")
st.caption("The CSV holds the rows shown; the GeoJSON the last polygon of each shown track "
           "(RFC 7946, EPSG:4326). For the full site in its own CRS use "
           "`crackwatch export --site NAME --format gpkg`.")
if pd.notna(shown["merged_into_track_id"]).any():
    st.caption("Merged tracks continue in the track named in merged_into_track_id.")

# ---------------------------------------------------------------- orthomosaic cracks
site_row = sites[sites["site_id"] == site_id].iloc[0]
render_map_tracks(url, site_row, shown[shown["view_id"].isna()], alerts)

# ---------------------------------------------------------------- per photo view
site_views = c.load_views(url, site_id)
if len(site_views):
    st.subheader("Photo views: cracks over time")
    st.caption("Photo surveys are registered into views (one per photographed place); each "
               "crack is followed in its view's frame. Widths and lengths are in mm and m "
               "from each photo's GSD; crops show the same part of the view in each photo.")
    vlabels = {int(v.view_id): f"view {int(v.view_id)}: {v.name} ({int(v.photos)} photos, "
                               f"{int(v.tracks)} tracks)" for v in site_views.itertuples()}
    ranked = site_views.sort_values(["tracks", "view_id"], ascending=[False, True])
    view_id = st.selectbox("View", [int(i) for i in ranked["view_id"]],
                           format_func=vlabels.get, key="dh_view")
    vh = c.load_view_history(url, view_id)
    if vh.empty:
        st.info("No crack tracked in this view yet: it needs a registered photo with cracks.")
    else:
        vh = vh.assign(crack=vh["track_id"].map(lambda t: f"track {t}"))
        per_crack = {v: vh.pivot_table(index="acquired_at", columns="crack", values=v,
                                       aggfunc="max") for v in ("max_width_mm", "length_m")}
        c.line_charts(("Max width (mm) per crack", per_crack["max_width_mm"]),
                      ("Length (m) per crack", per_crack["length_m"]))
        per_track = vh.groupby("track_id").agg(
            first=("acquired_at", "min"), last=("acquired_at", "max"),
            photos=("survey_id", "nunique"), first_width=("max_width_mm", "first"),
            last_width=("max_width_mm", "last"), first_length=("length_m", "first"),
            last_length=("length_m", "last"), severity=("severity", "last"),
            status=("status", "last"), parent=("parent_track_id", "first"))
        per_track["width_change_mm"] = per_track["last_width"] - per_track["first_width"]
        per_track["length_change_m"] = per_track["last_length"] - per_track["first_length"]
        per_track = per_track.sort_values(["photos", "last_length", "width_change_mm"],
                                          ascending=False)
        st.dataframe(per_track.reset_index()[[
            "track_id", "status", "severity", "photos", "first_width", "last_width",
            "width_change_mm", "first_length", "last_length", "length_change_m", "parent"]],
            hide_index=True, width="stretch", column_config={
                "track_id": st.column_config.NumberColumn("track", format="%d"),
                "first_width": st.column_config.NumberColumn("first width (mm)",
                                                             format="%.2f"),
                "last_width": st.column_config.NumberColumn("last width (mm)", format="%.2f"),
                "width_change_mm": st.column_config.NumberColumn("width change (mm)",
                                                                 format="%+.2f"),
                "first_length": st.column_config.NumberColumn("first length (m)",
                                                              format="%.3f"),
                "last_length": st.column_config.NumberColumn("last length (m)",
                                                             format="%.3f"),
                "length_change_m": st.column_config.NumberColumn("length change (m)",
                                                                 format="%+.3f"),
                "parent": st.column_config.NumberColumn("split from track", format="%d")})
        tracks = [int(t) for t in per_track.index]
        track_id = st.selectbox("Crack (track) for before / after", tracks,
                                format_func=lambda t: f"track {t}", key="dh_view_track")
        polys = c.load_view_track_polygons(url, track_id)
        if len(polys):
            first, last = polys.iloc[0], polys.iloc[-1]
            box = tuple(float(v) for v in shapely.union_all(
                [first.geometry, last.geometry]).bounds)
            b1, b2 = st.columns(2)
            for col, obs, title in ((b1, first, "before"), (b2, last, "after")):
                with col:
                    label = (f"{title}: {obs['image_name']} of {c.when(obs['acquired_at'])}, "
                             f"{obs['max_width_mm']:.2f} mm wide, {obs['length_m']:.3f} m")
                    chip, problem = load_view_chip(url, int(obs["survey_id"]),
                                                     str(obs["image_name"]), box,
                                                     [int(obs["crack_id"])])
                    if chip is None:
                        st.caption(f"{label}: {problem}")
                    else:
                        st.image(chip, caption=label)
