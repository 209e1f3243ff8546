"""CrackWatch dashboard, Overview page: every site by alert level, and the open alerts.

Start it with ``crackwatch dashboard`` (or ``streamlit run dashboard/app.py
--server.enableStaticServing true``). A Streamlit multipage app: this script is the
Overview, ``pages/`` holds Site, Defect history, Alerts, Runs and Models. Pages stay thin:
they read the store through :mod:`dashboard.common` (cached calls of
:mod:`geodata.queries`). The store is ``CRACKWATCH_DATABASE_URL`` or the default SQLite file
(see :mod:`jobs.settings`).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import common as c
from dashboard.alert_view import show_alerts
from dashboard.maps import render_html
from dashboard.sites_map import sites_map
from geodata.levels import level_rank


@st.cache_data(ttl=c.CACHE_TTL_S, show_spinner=False)
def _map_html(url: str, basemap: bool, mode: str, prefix: str) -> str:
    from dashboard.maps import MapAssets

    return render_html(sites_map(c.load_sites(url), assets=MapAssets(mode, prefix),
                                 basemap=basemap))


c.page_setup("Overview")
st.title("Sites overview")
url = c.store_url()
sites = c.sites_or_stop(url)

open_alerts = c.load_alerts(url, None, True)
age = c.load_data_age(url).set_index("site_id")
ages = [c.data_age_text(age, sid) for sid in sites["site_id"]]
overdue = ["OVERDUE" in a for a in ages]
cols = st.columns(7)
cols[0].metric("Sites", len(sites))
cols[1].metric("Open alerts", len(open_alerts))
for col, level in zip(cols[2:5], ("red", "orange", "yellow"), strict=True):
    col.metric(f"Sites at {level}", int((sites["alert_level"] == level).sum()))
cols[5].metric("Sites on watch", int((sites["watch_alerts"] > 0).sum()))
cols[6].metric("Sites overdue", sum(overdue))

basemap = st.toggle("Online basemap (OpenStreetMap; needs internet)", value=False,
                    key="overview_basemap")
assets = c.map_assets()
placed = sites.dropna(subset=["lon", "lat"])
if placed.empty:
    st.info("No site has a location (lon/lat) yet, so the map is empty. Give sites a "
            "location when creating them (`geodata.store.add_site(..., lon=, lat=)`).")
else:
    c.show_map(_map_html(url, basemap, assets.mode, assets.static_prefix), height=460,
               alt="map of the sites coloured by alert level")
unplaced = sites[sites["lon"].isna() | sites["lat"].isna()]
if len(unplaced) and len(placed):
    st.caption("Not on the map (no location): " + ", ".join(map(c.md, unplaced["name"])))

st.subheader("Sites, worst first")
# cracks of each site's latest processed survey (map and photo cracks: the survey summary
# counts map cracks only)
runs = c.load_inference_runs(url)
done = runs[runs["status"] == "succeeded"].sort_values(["acquired_at", "run_id"])
latest_cracks = done.groupby("site_id")["crack_count"].last()
defaults = c.profile_models()
# key columns first, at widths that fit a 1440 px window with the sidebar (issue 28, item 5)
table = pd.DataFrame({
    "site": sites["name"],
    "level": sites["alert_level"],
    "open": [f"Site?site={int(i)}" for i in sites["site_id"]],
    "open alerts": sites["open_alerts"],
    "watch": sites["watch_alerts"],
    "data age": ages,
    "trust": ["UNTRUSTED: see below" if w else "" for w in sites["warnings"]],
    "latest survey (UTC)": sites["latest_survey_at"].map(c.when),
    "cracks in latest survey": sites["site_id"].map(latest_cracks).astype("Int64"),
    "surveys": sites["survey_count"],
    "profile": sites["profile"],
    "model": [c.model_label(p, n, defaults)
              for p, n in zip(sites["profile"], sites["model_name"], strict=True)],
})
# triage order (issue 28): red, orange, yellow, then watch, overdue, green; names within
order = sorted(range(len(table)), key=lambda i: (
    -level_rank(table["level"].iloc[i]), -int(table["watch"].iloc[i] > 0), not overdue[i],
    str(table["site"].iloc[i]).lower()))
table = table.iloc[order].reset_index(drop=True)
st.dataframe(c.level_style(table), hide_index=True, width="stretch", column_config={
    "site": st.column_config.TextColumn(width=210),
    "level": st.column_config.TextColumn(width=65),
    "open": st.column_config.LinkColumn("open", display_text="open site", width=80,
                                        help="The site's map, cracks and growth"),
    "open alerts": st.column_config.NumberColumn(width=80),
    "watch": st.column_config.NumberColumn(width=60),
    "data age": st.column_config.TextColumn(width=250),
    "trust": st.column_config.TextColumn(width=150),
    "latest survey (UTC)": st.column_config.TextColumn(width=125),
})
untrusted = sites[sites["warnings"].map(bool)]
for r in untrusted.itertuples():
    st.warning(f"**{c.md(r.name)}**: the cracks of its latest survey are not to be trusted as "
               f"they stand. " + " ".join(c.md(w) for w in r.warnings))
st.caption("Data age: time since the newest survey was acquired (OVERDUE past the site's "
           "expected interval plus grace; OLD past 30 days on a site without one: set it "
           "with `crackwatch site overdue`). Watch: unconfirmed slope exceedances (no "
           "notification until confirmed).")

st.subheader("Open alerts")
if open_alerts.empty:
    st.success("No open alerts: every site is green.")
else:
    show_alerts(open_alerts)
    st.page_link("pages/3_Alerts.py", label="Acknowledge or resolve alerts on the Alerts page",
                 icon=":material/arrow_forward:")
