"""Defect history: every crack track of a site with first seen, last measured and trend."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from dashboard import common as c

c.page_setup("Defect history")
st.title("Defect history")
url = c.store_url()
sites = c.load_sites(url)
if sites.empty:
    c.empty_state("No sites in the store yet.")
    st.stop()
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

table = shown.assign(first_seen=shown["first_seen_at"].map(c.when),
                     last_measured=shown["last_seen_at"].map(c.when))
st.dataframe(
    table[["track_id", "status", "trend", "severity", "first_seen", "last_measured",
           "surveys_measured", "last_length_m", "change_length_m", "last_max_width_mm",
           "change_max_width_mm", "length_rate_m_per_day", "max_width_rate_mm_per_day"]],
    hide_index=True, width="stretch",
    column_config={
        "track_id": st.column_config.NumberColumn("track", format="%d"),
        "first_seen": "first seen (UTC)", "last_measured": "last measured (UTC)",
        "surveys_measured": "surveys",
        "last_length_m": st.column_config.NumberColumn("length (m)", format="%.3f"),
        "change_length_m": st.column_config.NumberColumn("change length (m)", format="%+.3f"),
        "last_max_width_mm": st.column_config.NumberColumn("max width (mm)", format="%.2f"),
        "change_max_width_mm": st.column_config.NumberColumn("change width (mm)",
                                                             format="%+.2f"),
        "length_rate_m_per_day": st.column_config.NumberColumn("m/day", format="%.4f"),
        "max_width_rate_mm_per_day": st.column_config.NumberColumn("mm/day", format="%.3f"),
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
