"""Site: a survey's cracks over its own imagery, growth per crack and per site, chips."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import common as c
from dashboard.alert_view import alert_action_form, crack_name, rule_chart_of, show_alerts
from dashboard.imagery_loaders import imagery_path, load_chip, load_overview, load_photo_with_cracks
from dashboard.maps import SEVERITY_COLOURS, MapAssets, render_html, survey_map
from geodata.photos import PHOTO_SOURCE_TYPES
from geodata.severity import UNRESOLVED

POPUP_FIELDS = [("crack_id", "crack"), ("track", "track"), ("length", "length"),
                ("max_width", "max width"), ("severity", "severity"),
                ("growth", "growth since previous survey"), ("position", "position")]
MAX_CRACK_CHOICES = 1000


@st.cache_data(ttl=c.CACHE_TTL_S, show_spinner=False, max_entries=8)
def _map_html(url: str, site_id: int, survey_id: int, imagery: str | None, basemap: bool,
              highlight: int | None, mode: str, prefix: str) -> tuple[str, str | None]:
    """The survey map's HTML (cached per survey and options) and an imagery problem, if any."""
    fc = c.load_survey_geojson(url, survey_id)
    surveys = c.load_surveys(url, site_id)
    footprint = surveys.set_index("survey_id").loc[survey_id, "footprint_wgs84"]
    overlay, problem = None, None
    if imagery:
        ov, problem = load_overview(Path(imagery))
        if ov is not None:
            overlay = (ov.data_uri(), ov.bounds)
    unobservable, _area = c.load_unobservable(url, survey_id)
    change = c.load_surface_change(url, survey_id)
    m = survey_map(fc, assets=MapAssets(mode, prefix), overlay=overlay, footprint=footprint,
                   basemap=basemap, highlight_crack_id=highlight, popup_fields=POPUP_FIELDS,
                   unobservable=unobservable,
                   surface_change=change["geometry"] if change else None)
    return render_html(m), problem


user = c.page_setup("Site")
st.title("Site")
url = c.store_url()
sites = c.sites_or_stop(url)
top_left, top_right = st.columns([1, 2])
with top_left:
    site_id = c.pick_site(sites)
site = sites.set_index("site_id").loc[site_id]
surveys = c.load_surveys(url, site_id)
if surveys.empty:
    c.empty_state(f"Site {c.md(site['name'])} has no surveys yet.",
                  "Ingest an orthomosaic or photo set for it (the nightly job does this from "
                  "the site's inbox), or run `crackwatch demo` for a demo site.")
    st.stop()

# ---------------------------------------------------------------- survey choice (date slider)
labels = {int(r.survey_id): f"{c.when(r.acquired_at)} (#{int(r.survey_id)})"
          for r in surveys.itertuples()}
ids = list(labels)
site_alerts = c.load_alerts(url, site_id)
link = c.link_params(("survey", "track", "alert"))  # an alert's link: its survey and crack
if link and st.session_state.get("site_link_applied") != (site_id, link):
    # apply a link once, so that the user can move on from it
    st.session_state["site_link_applied"] = (site_id, link)
    if link.get("survey") in ids:
        st.session_state["site_survey"] = link["survey"]
    st.session_state["site_track_wanted"] = link.get("track")
if st.session_state.get("site_survey") not in ids:
    st.session_state.pop("site_survey", None)  # another site's survey
linked = site_alerts[site_alerts["alert_id"] == link["alert"]] if "alert" in link else None
if linked is not None and len(linked):
    a = linked.iloc[0]
    st.info(f"Opened from alert #{int(a['alert_id'])}: {a['level'].upper()} "
            f"{c.md(a['rule'])} on {crack_name(a['track_id'])} ({a['state']}).")
if len(ids) > 1:
    survey_id = top_right.select_slider(
        "Survey date (UTC)", options=ids, format_func=labels.get, key="site_survey",
        **({} if "site_survey" in st.session_state else {"value": ids[-1]}))
else:
    survey_id = ids[0]
    top_right.markdown(f"**Survey date (UTC):** {labels[survey_id]} (the only survey)")
row = surveys.set_index("survey_id").loc[survey_id]
position = ids.index(survey_id)
previous_id = ids[position - 1] if position > 0 else None

cracks = c.load_survey_cracks(url, survey_id) if not pd.isna(row["run_id"]) else None
photo_cracks = (c.load_survey_cracks(url, survey_id, "image")
                if not pd.isna(row["run_id"]) else None)
registrations = c.load_registrations(url, survey_id) if row["source_type"] in \
    PHOTO_SOURCE_TYPES and not pd.isna(row["run_id"]) else None
# photo cracks are tracked per view (geodata.views) when their photo was registered
tracked = (cracks is not None and len(cracks) > 0) or (
    photo_cracks is not None and bool(photo_cracks["track_id"].notna().any()))
total_length_m = sum(float(f["length_m"].sum()) for f in (cracks, photo_cracks)
                     if f is not None)
warnings = list(row.get("warnings") or [])
cols = st.columns(4)
cols[0].metric("Cracks (untrusted)" if warnings else "Cracks",
               "-" if pd.isna(row["crack_count"]) else int(row["crack_count"]))
cols[1].metric("Total length", "-" if cracks is None else f"{total_length_m:.2f} m")
cols[2].metric("New cracks", int(row["new_count"]) if tracked and pd.notna(row["new_count"])
               else "-")
cols[3].metric("Vanished cracks", int(row["vanished_count"])
               if tracked and pd.notna(row["vanished_count"]) else "-")
st.caption(f"{c.md(row['source_type'])} {c.code(row['source_path'])}"
           + ("" if pd.isna(row["pixel_size_m"])
              else f", {row['pixel_size_m'] * 1000:.1f} mm pixels")
           + (f", model {c.md(row['model_name'])}" if pd.notna(row["model_name"]) else "")
           + (" - simulated demo survey" if row["simulated"] else ""))
for w in warnings:
    st.warning(c.md(w))
if pd.isna(row["run_id"]):
    state = row.get("state")
    why = f" Last error: {c.md(row['last_error'])}." if pd.notna(row.get("last_error")) else ""
    todo = f" {c.code(row['action'])}." if pd.notna(row.get("action")) else ""
    if state == "parked":
        st.warning(f"Survey #{survey_id} is **parked** after {int(row['failures'])} failed "
                   f"runs: runs leave it alone until you decide.{why}{todo}")
    elif state == "waiting":
        st.warning(f"Survey #{survey_id} **failed** {int(row['failures'])} time(s) and is "
                   f"waiting for its retry.{why}{todo}")
    elif state == "skipped":
        st.info(f"Survey #{survey_id} is **skipped**: runs leave it out.{why}{todo}")
    else:
        st.info("No successful inference run for this survey yet: there are no cracks to "
                "show (the next run of the site processes it). See the Runs page for runs.")
held = surveys[surveys["state"].isin(["parked", "waiting", "skipped"])] \
    if "state" in surveys.columns else surveys.iloc[:0]
if len(held):
    with st.expander(f"Surveys not processed: {len(held)} parked, waiting or skipped",
                     expanded=bool((held["state"] == "parked").any())):
        st.dataframe(held[["survey_id", "acquired_at", "source_path", "state", "failures",
                           "last_error", "action"]], hide_index=True, width="stretch")

# ---------------------------------------------------------------- crack choice, map options
chosen_crack = None
pick, opt1, opt2 = st.columns([3, 1, 1], vertical_alignment="bottom")
if cracks is not None and len(cracks):
    ranked = cracks.sort_values(["max_width_mm", "length_m"], ascending=False)
    ranked = ranked.head(MAX_CRACK_CHOICES)
    options = [int(i) for i in ranked["crack_id"]]
    wanted = st.session_state.pop("site_track_wanted", None)
    by_track = cracks.dropna(subset=["track_id"]).set_index("track_id")["crack_id"]
    if wanted is not None and wanted in by_track.index:
        st.session_state["site_crack"] = int(by_track.loc[wanted])
    elif wanted is not None:
        st.warning(f"Crack track {wanted} has no crack in this survey (it merged or "
                   f"vanished); pick another survey on the slider.")
    if st.session_state.get("site_crack") not in options:
        st.session_state.pop("site_crack", None)
    info = {int(r.crack_id): (f"track {int(r.track_id)} (crack #{int(r.crack_id)} of this "
                              f"survey)" if pd.notna(r.track_id) else crack_name(None, r.crack_id))
                             + f": {c.length_text(r.length_m)}, "
                             + ("width not resolved" if r.severity == UNRESOLVED
                                else f"{r.max_width_mm:.1f} mm, {r.severity}")
            for r in ranked.itertuples()}
    chosen_crack = pick.selectbox(
        "Crack (widest first; outlined white on the map)"
        + (f"; the {MAX_CRACK_CHOICES} widest of {len(cracks)}"
           if len(cracks) > MAX_CRACK_CHOICES else ""),
        options, format_func=info.get, key="site_crack")
# ---------------------------------------------------------------- map
ortho = imagery_path(row["source_path"]) if row["source_type"] == "orthomosaic" else None
ortho_found = ortho is not None and ortho.is_file()
has_map = (cracks is not None and len(cracks)) or row["footprint_wgs84"] is not None \
    or ortho_found
# the map's options only where there is a map (issue 28, item 7: photo sites showed them)
show_imagery = has_map and ortho_found and opt1.toggle("Survey imagery", value=True,
                                                       key="site_imagery")
basemap = bool(has_map) and opt2.toggle(
    "Online basemap", value=False, key="site_basemap",
    help="OpenStreetMap tiles: needs internet. Off: the map uses only the survey's own "
         "imagery and works offline.")
imagery = ortho if show_imagery else None
imagery_for_map = str(imagery) if imagery is not None else None
assets = c.map_assets()
if cracks is not None and len(cracks) == 0 and (photo_cracks is None or not len(photo_cracks)):
    st.success("No cracks were found in this survey.")
if has_map:
    with st.spinner("Drawing the map..."):
        html, problem = _map_html(url, site_id, survey_id, imagery_for_map, basemap,
                                  chosen_crack, assets.mode, assets.static_prefix)
    c.show_map(html, height=600, alt="crack map of the survey")
    notes = []
    if cracks is not None and len(cracks):
        notes.append(f"{len(cracks)} crack polygons, simplified by one pixel for display; "
                     f"click a crack for its measurements and growth.")
    if registrations is not None and photo_cracks is not None and len(photo_cracks):
        placed = set(registrations.loc[registrations["on_map"], "image_name"])
        n_placed = int(photo_cracks["image_name"].isin(placed).sum())
        if n_placed:
            err = registrations.loc[registrations["on_map"], "position_error_m"].max()
            notes.append(f"{n_placed} photo cracks are placed APPROXIMATELY, through their "
                         f"photo's GPS footprint (nadir camera assumed; +/- {err:g} m GPS "
                         f"error); measure them on the photo below.")
    _unobservable, unobservable_m2 = c.load_unobservable(url, survey_id)
    if _unobservable is not None:
        seen = row.get("observable_fraction")
        notes.append(f"Grey: ground the model could not see (vegetation, "
                     f"{unobservable_m2:,.0f} m2"
                     + (f"; {100 * seen:.0f} % of the survey was observable" if pd.notna(seen)
                        else "")
                     + "): no crack drawn there means no data, not no crack.")
    change = c.load_surface_change(url, survey_id)
    if change is not None:
        notes.append(f"Blue dashed: surface change (unsupervised) since the site baseline "
                     f"({change['changed_m2']:,.2f} m2, {change['changed_pct']:.2f} % of "
                     f"{change['compared_m2']:,.1f} m2 compared): ground that no longer looks "
                     f"like the baseline's at the same place. Not a crack map; never sets "
                     f"alert levels.")
    if problem:
        notes.append(c.md(problem))
    elif row["source_type"] == "orthomosaic" and not ortho_found:
        notes.append(f"Imagery not found on this machine ({c.code(row['source_path'])}); "
                     f"cracks are drawn without it.")
    st.caption(" ".join(notes))

# photo surveys: cracks in image coordinates, drawn on the photo itself
if photo_cracks is not None and len(photo_cracks):
    st.subheader("Cracks on the photos")
    names = sorted(photo_cracks["image_name"].dropna().unique())
    name = st.selectbox("Photo", names, key="site_photo")
    path = imagery_path(row["source_path"], name)
    n = int((photo_cracks["image_name"] == name).sum())
    if path is None:
        st.caption(f"{n} cracks; photo {c.md(name)} not found on this machine.")
    else:
        st.image(load_photo_with_cracks(path, url, survey_id, name),
                 caption=f"{name}: {n} cracks outlined in their severity colour, as on the map")
        # a legend of our own constants only (no user text in this HTML)
        st.markdown("Severity (BRE Digest 251): " + " ".join(
            f'<span style="color:{colour};font-size:1.2em">&#9632;</span>&nbsp;{level}'
            for level, colour in SEVERITY_COLOURS.items()), unsafe_allow_html=True)
    on_photo = photo_cracks[photo_cracks["image_name"] == name]
    st.dataframe(pd.DataFrame({
        "track": on_photo["track_id"], "crack": on_photo["crack_id"],
        "length": on_photo["length_m"].map(c.length_text),
        "mean width": on_photo["mean_width_mm"].map(c.width_text),
        "max width": on_photo["max_width_mm"].map(c.width_text),
        "area": on_photo["area_m2"].map(c.area_text), "severity": on_photo["severity"]}),
        hide_index=True, width="stretch")
    st.caption("Photo cracks are tracked per view: each photo is registered into the view "
               "of the place it shows (SIFT features, RANSAC homography) and its cracks are "
               "followed in that view's frame; see Defect history. A photo that could not be "
               "registered (refused below) keeps untracked cracks.")

# photo surveys: how each photo was registered into the site's views
if registrations is not None and len(registrations):
    st.subheader("Photo registration")
    reg_counts = registrations["status"].value_counts()
    st.caption(", ".join(f"{int(n)} {s}" for s, n in reg_counts.items())
               + ". RMS: reprojection error of the matched features, in view pixels; GSD: "
               "millimetres per photo pixel used to measure its cracks.")
    st.dataframe(registrations[["image_name", "status", "view_id", "view_name", "inliers",
                                "rms_px", "gsd_mm_per_px", "reason"]],
                 hide_index=True, width="stretch", column_config={
                     "view_id": st.column_config.NumberColumn("view", format="%d"),
                     "rms_px": st.column_config.NumberColumn("RMS (px)", format="%.2f"),
                     "gsd_mm_per_px": st.column_config.NumberColumn("GSD (mm/px)",
                                                                    format="%.3f")})

# ---------------------------------------------------------------- views of the site
site_views = c.load_views(url, site_id)
if len(site_views):
    st.subheader(f"Views ({len(site_views)})")
    st.caption("A view is one place the inspections photograph (a wall, a pier, a patch of "
               "ground); its frame is its first photo's. Cracks are tracked per view: "
               "Defect history shows each view's cracks over time.")
    st.dataframe(site_views[["view_id", "name", "reference_image", "photos", "surveys",
                             "last_photo_at", "tracks", "median_rms_px", "scale_mm_per_px",
                             "scale_source", "on_map"]],
                 hide_index=True, width="stretch", column_config={
                     "view_id": st.column_config.NumberColumn("view", format="%d"),
                     "median_rms_px": st.column_config.NumberColumn("median RMS (px)",
                                                                    format="%.2f"),
                     "scale_mm_per_px": st.column_config.NumberColumn("scale (mm/px)",
                                                                      format="%.3f")})

# ---------------------------------------------------------------- site totals over time
st.subheader("Site totals over time")
summaries = c.load_summaries(url, site_id)
if summaries.empty:
    st.info("No tracked surveys yet: totals appear once a survey's cracks are stored.")
else:
    totals = summaries.set_index("acquired_at")[["crack_count", "total_length_m",
                                                 "max_width_mm"]]
    c.line_charts(("Cracks per survey", totals[["crack_count"]]),
                  ("Total crack length (m)", totals[["total_length_m"]]))

# ---------------------------------------------------------------- one crack: growth + chips
if chosen_crack is not None:
    crow = cracks.set_index("crack_id").loc[chosen_crack]
    track_id = crow["track_id"]
    st.subheader(f"Crack track {int(track_id)} (crack #{chosen_crack} of this survey)"
                 if pd.notna(track_id) else f"Crack #{chosen_crack} (not tracked)")
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Length", c.length_text(crow["length_m"]))
    resolved = crow["severity"] != UNRESOLVED
    m2.metric("Max width", c.width_text(crow["max_width_mm"]) if resolved else "not resolved")
    m3.metric("Mean width", c.width_text(crow["mean_width_mm"]) if resolved
              else "not resolved")
    m4.metric("Severity", crow["severity"] or "-")
    st.markdown("**Growth since the previous survey:** " + c.growth_text(
        crow.get("event"), crow.get("delta_length_m"), crow.get("delta_max_width_mm"),
        crow.get("days_since_previous")))
    # the alerts on this crack: what fired, who acknowledged it and when; act right here
    on_track = site_alerts[site_alerts["track_id"] == track_id] if pd.notna(track_id) \
        else site_alerts.iloc[:0]
    flash = st.session_state.pop("site_alert_flash", None)
    if flash:
        st.success(flash)
    if len(on_track):
        st.markdown(f"**Alerts on this crack ({len(on_track)})**")
        show_alerts(on_track, details_limit=3)
        alert_action_form(url, user, on_track[on_track["state"] != "resolved"],
                          key="site_alert", flash_key="site_alert_flash")
    series = c.load_track(url, int(track_id)) if not pd.isna(track_id) else pd.DataFrame()
    if len(series):
        measured = series.dropna(subset=["length_m"]).set_index("acquired_at")
        spec = rule_chart_of(on_track)
        charts = [("Length (m) of this crack's track", measured[["length_m"]]),
                  ("Max width (mm) of this crack's track", measured[["max_width_mm"]],
                   spec["lines"] if spec and spec["series"] == "max_width_mm" else None)]
        if spec and spec["series"] != "max_width_mm" and spec["series"] in series.columns:
            rate = series.dropna(subset=[spec["series"]]).set_index("acquired_at")
            charts.append((f"{spec['title']}, the rule that fired", rate[[spec["series"]]],
                           spec["lines"]))
        c.line_charts(*charts)
    # before / after chips: the track's last earlier crack (else the previous survey's
    # ground at the same place) and this one
    before, before_id = None, previous_id
    if len(series):
        earlier = series[(series["acquired_at"] < row["acquired_at"])
                         & series["crack_id"].notna()]
        if len(earlier):
            before_id = int(earlier["survey_id"].iloc[-1])
            prev_cracks = c.load_survey_cracks(url, before_id)
            pc = prev_cracks[prev_cracks["crack_id"] == int(earlier["crack_id"].iloc[-1])]
            if len(pc):
                before = pc.geometry.iloc[0]
    after = crow["geometry"]
    box = after.bounds if before is None else before.union(after).bounds
    st.caption("Before / after: the same ground around the crack in the previous and this "
               "survey (crack outlines in red).")
    b1, b2 = st.columns(2)
    for col, sid, geom, title in ((b1, before_id, before, "before"),
                                  (b2, survey_id, after, "after")):
        with col:
            if sid is None:
                st.caption(f"{title}: this is the site's first survey")
                continue
            srow = surveys.set_index("survey_id").loc[sid]
            path = imagery_path(srow["source_path"])
            label = f"{title}: survey of {c.when(srow['acquired_at'])}"
            if srow["source_type"] != "orthomosaic":
                st.caption(f"{label}: a {c.md(srow['source_type'])} survey, no orthomosaic "
                           f"to crop")
                continue
            if path is None or not path.is_file():
                st.caption(f"{label}: imagery not found on this machine "
                           f"({c.code(srow['source_path'])})")
                continue
            chip, problem = load_chip(path, box, int(site["crs_epsg"]),
                                        [geom] if geom is not None else [])
            if chip is None:
                st.caption(f"{label}: {c.md(problem)}")
            else:
                st.image(chip, caption=label + ("" if geom is not None
                                                else " (the crack was not seen yet)"))
elif cracks is not None and not len(cracks) and not (photo_cracks is not None
                                                      and len(photo_cracks)):
    st.caption("Growth charts appear for surveys with cracks.")
