"""What every dashboard page shares: the store URL, cached loaders, site choice, empty states.

Pages stay thin: they call the loaders here, which call :mod:`geodata.queries` (reads) and
:mod:`geodata.alerts_store` (alert writes) and nothing else of the store. Loaders are cached
with ``st.cache_data`` keyed by hashable arguments only (the database URL string and ids),
for :data:`CACHE_TTL_S` seconds, so the nightly job's new surveys show up without a restart;
the sidebar's "Reload data" button clears the caches at once.
Imagery (overviews, chips, photos with cracks) has its cached loaders in
:mod:`dashboard.imagery_loaders`.

The store URL is ``CRACKWATCH_DATABASE_URL`` if set (``crackwatch dashboard --url`` sets
it), else the default of :mod:`jobs.settings` (the SQLite file under the data directory).

Every page starts with :func:`page_setup`, which shows only the sign-in form until someone
signs in (:mod:`dashboard.auth`). Text from users and files goes into Markdown through
:func:`md` / :func:`code` (:mod:`dashboard.text`), so it shows as text.
"""

from __future__ import annotations

import json
import math
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import streamlit as st
from sqlalchemy import Engine

from dashboard import auth
from dashboard.charts import line_charts, one_survey_text, time_chart  # noqa: F401
from dashboard.maps import LEVEL_COLOURS, MapAssets
from dashboard.text import code, md
from dashboard.units import area_text, length_text, width_text  # noqa: F401
from geodata import alerts_store, queries, store, views
from geodata.errors import RecordNotFoundError, StoreError
from geodata.settings import StoreSettings
from geodata.severity import UNRESOLVED
from geodata.store.engine import normalise_url

__all__ = [
    "CACHE_TTL_S",
    "PAGES",
    "ENV_URL",
    "ENV_WEIGHTS",
    "database_url",
    "empty_state",
    "code",
    "map_assets",
    "md",
    "page_setup",
    "show_map",
    "store_url",
]

ENV_URL = "CRACKWATCH_DATABASE_URL"
#: Folder of model cards shown on the Models page (default: the shipped engine/weights).
ENV_WEIGHTS = "CRACKWATCH_WEIGHTS_DIR"
CACHE_TTL_S = 60
#: Which model serves each site profile: the engine's table (``engine.registry.PROFILE_MODELS``)
#: read as data, since the dashboard does not import the engine.
PROFILE_MODELS_FILE = Path(__file__).resolve().parents[1] / "engine" / "profile_models.json"
DEMO_HINT = ("Run `crackwatch demo` to create a demo site with surveys, cracks and alerts, "
             "or ingest your own imagery with the `crackwatch` command line.")
SITE_KEY = "cw_site_id"  # the chosen site, kept across pages (not a widget key)


#: The pages, in sidebar order: (script path relative to app.py, label).
PAGES = (("app.py", "Overview"), ("pages/1_Site.py", "Site"),
         ("pages/2_Defect_history.py", "Defect history"), ("pages/3_Alerts.py", "Alerts"),
         ("pages/4_Runs.py", "Runs"), ("pages/5_Models.py", "Models"))


def page_setup(title: str) -> auth.SignedIn:
    """Page title, wide layout, sign-in, and the sidebar navigation (Streamlit's own, which
    would label the Overview "app", is switched off).

    Until someone signs in the page shows only the sign-in form and stops here
    (:func:`dashboard.auth.require_sign_in`). Returns the signed-in user.
    """
    st.set_page_config(page_title=f"{title} - CrackWatch", layout="wide")
    st.set_option("client.showSidebarNavigation", False)
    user = auth.require_sign_in()
    with st.sidebar:
        st.markdown("### CrackWatch")
        for path, label in PAGES:
            st.page_link(path, label=label)
        st.divider()
    return user


# --------------------------------------------------------------------------- store


def database_url() -> str:
    """``CRACKWATCH_DATABASE_URL``, else the settings' default (SQLite under the data dir)."""
    url = os.environ.get(ENV_URL, "").strip()
    if url:
        return url
    return StoreSettings().resolved_database_url()


def safe_url(url: str) -> str:
    """The URL with any password hidden."""
    try:
        return normalise_url(url).render_as_string(hide_password=True)
    except StoreError:
        return url


@st.cache_resource(show_spinner=False)
def _engine(url: str) -> Engine:
    return store.connect(url, must_exist=True)


def engine(url: str) -> Engine:
    """The (cached) engine of ``url``; raises StoreError for a missing store."""
    return _engine(url)


def stop_with_store_error(exc: Exception, url: str) -> None:
    """Explain why the store cannot be read, and stop the page."""
    text = str(exc)
    if "no store at" in text:
        st.info(f"**There is no CrackWatch store yet** at {code(safe_url(url))}.\n\n"
                f"{DEMO_HINT}\n\nTo open another store, start the dashboard with "
                f"`crackwatch dashboard --url DB_URL` (or set `{ENV_URL}`).")
    elif "schema" in text:
        st.warning(f"**The store has no CrackWatch tables yet.** Run "
                   f"{code(f'crackwatch db upgrade --url {safe_url(url)}')}, then "
                   f"`crackwatch demo`.\n\n{md(text)}")
    else:
        st.error(f"Cannot read the store {code(safe_url(url))}: {md(text)}")
    st.stop()


def store_url() -> str:
    """The store URL of this session after checking that the store can be opened.

    Shows the sidebar; stops the page with an explanation if the store is missing.
    """
    url = database_url()
    sidebar(url)
    try:
        engine(url)
        load_sites(url)  # also proves the schema is there
    except StoreError as exc:
        stop_with_store_error(exc, url)
    return url


def sidebar(url: str) -> None:
    """Store URL, reload button and the offline note."""
    with st.sidebar:
        st.caption(f"Store: {code(safe_url(url))}")
        if st.button("Reload data", help=f"Data is cached for {CACHE_TTL_S} s; reload now."):
            st.cache_data.clear()
        st.caption("Works offline: maps use the bundled Leaflet and the survey imagery; "
                   "no online basemap unless you switch it on.")


# --------------------------------------------------------------------------- loaders


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_sites(url: str) -> pd.DataFrame:
    """:func:`geodata.queries.sites_overview`."""
    return queries.sites_overview(engine(url))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_alerts(url: str, site_id: int | None = None, open_only: bool = False) -> pd.DataFrame:
    """:func:`geodata.queries.all_alerts` (all sites when ``site_id`` is None)."""
    return queries.all_alerts(engine(url), site=site_id, open_only=open_only)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_surveys(url: str, site_id: int) -> gpd.GeoDataFrame:
    """:func:`geodata.queries.list_surveys` plus ``footprint_wgs84`` (GeoJSON dict or None)."""
    surveys = queries.list_surveys(engine(url), site_id)
    wgs = surveys.geometry.to_crs(4326) if len(surveys) else surveys.geometry
    surveys["footprint_wgs84"] = [None if g is None or g.is_empty else g.__geo_interface__
                                  for g in wgs]
    return surveys


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_summaries(url: str, site_id: int) -> pd.DataFrame:
    """:func:`geodata.queries.site_survey_summaries`."""
    return queries.site_survey_summaries(engine(url), site_id)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_survey_cracks(url: str, survey_id: int, coordinate_space: str = "map"
                       ) -> gpd.GeoDataFrame:
    """:func:`geodata.queries.survey_cracks` joined with the survey's growth events."""
    cracks = queries.survey_cracks(engine(url), survey_id, coordinate_space=coordinate_space)
    events = queries.survey_track_events(engine(url), survey_id)
    merged = cracks.merge(events.drop(columns=["track_id"]), on="crack_id", how="left")
    return gpd.GeoDataFrame(merged, geometry="geometry", crs=cracks.crs)


def growth_text(event: Any, delta_length_m: Any, delta_max_width_mm: Any, days: Any) -> str:
    """One line of a crack's growth since the previous survey of its track."""
    if event is None or (not isinstance(event, str) and pd.isna(event)):
        return "not tracked"
    if event in ("new", "split") or pd.isna(delta_length_m):
        return "new crack" if event == "new" else f"{event} (no earlier measurement)"
    span = f" in {days:.0f} d" if isinstance(days, float) and math.isfinite(days) else ""
    return (f"{length_text(delta_length_m, signed=True)} length, "
            f"{width_text(delta_max_width_mm, signed=True)} max width{span}")


def _round_coords(c: Any, nd: int) -> Any:
    if c and isinstance(c[0], (int, float)):
        return [round(v, nd) for v in c]
    return [_round_coords(part, nd) for part in c]


def _width(p: dict[str, Any]) -> str:
    """A crack's max width for its popup; "not resolved" on pixels too coarse for one."""
    if p.get("severity") == UNRESOLVED:
        return "not resolved (pixels too coarse)"
    return width_text(p.get("max_width_mm"))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False, max_entries=16)
def load_unobservable(url: str, survey_id: int) -> tuple[dict[str, Any] | None, float]:
    """``(geometry, area_m2)``: the survey's not-observable ground as a GeoJSON geometry in
    EPSG:4326 (7 decimals), or None; and its area in m2."""
    series = queries.survey_unobservable(engine(url), survey_id)
    if series.empty:
        return None, 0.0
    geom = json.loads(series.to_crs(4326).to_json(drop_id=True))["features"][0]["geometry"]
    return {"type": geom["type"], "coordinates": _round_coords(geom["coordinates"], 7)}, \
        series.attrs["area_m2"]


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False, max_entries=16)
def load_surface_change(url: str, survey_id: int) -> dict[str, Any] | None:
    """The survey's unsupervised surface-change layer (:func:`geodata.queries.
    survey_surface_change`): ``{"geometry"`` (GeoJSON in EPSG:4326, 7 decimals, or None when
    nothing changed), ``"changed_m2"``, ``"compared_m2"``, ``"changed_pct"``,
    ``"baseline_id"}``; None when the survey was not compared with a site baseline."""
    frame = queries.survey_surface_change(engine(url), survey_id)
    if frame.empty:
        return None
    row = frame.iloc[0]
    geom = None
    if row.geometry is not None and not row.geometry.is_empty:
        g = json.loads(frame.geometry.to_crs(4326).to_json(drop_id=True))["features"][0][
            "geometry"]
        geom = {"type": g["type"], "coordinates": _round_coords(g["coordinates"], 7)}
    return {"geometry": geom, "changed_m2": float(row["changed_m2"]),
            "compared_m2": float(row["compared_m2"]), "changed_pct": float(row["changed_pct"]),
            "baseline_id": int(row["baseline_id"])}


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False, max_entries=16)
def load_survey_geojson(url: str, survey_id: int, simplify_m: float | None = None
                        ) -> dict[str, Any]:
    """A survey's cracks for the map: simplified, EPSG:4326, 7 decimals (~1 cm), with the
    popup's properties only: ``crack_id``, ``track``, ``length``, ``max_width`` (text with
    units), ``severity``, ``growth`` (text)."""
    fc = queries.survey_cracks_geojson(engine(url), survey_id, simplify_m=simplify_m)
    ev = queries.survey_track_events(engine(url), survey_id)
    growth = {int(c): growth_text(e, dl, dw, d) for c, e, dl, dw, d in zip(
        ev["crack_id"], ev["event"], ev["delta_length_m"], ev["delta_max_width_mm"],
        ev["days_since_previous"], strict=True)}
    for f in fc["features"]:
        p = f["properties"]
        f["properties"] = {  # only what the popup shows: 10k features stay small
            "crack_id": p.get("crack_id"),
            "track": "-" if p.get("track_id") is None else str(p["track_id"]),
            "length": length_text(p.get("length_m")),
            "max_width": _width(p),
            "severity": p.get("severity"),
            "growth": growth.get(p.get("crack_id"), "not tracked"),
        }
        if f.get("geometry"):
            f["geometry"]["coordinates"] = _round_coords(f["geometry"]["coordinates"], 7)
        f["properties"]["position"] = "site CRS"
    # photo cracks of nadir photos with GPS: placed through the photo footprint, approximate
    placed = views.survey_photo_cracks_on_map(engine(url), survey_id)
    if len(placed):
        for f in json.loads(placed.to_crs(4326).to_json(drop_id=True, na="null"))["features"]:
            p = f["properties"]
            f["properties"] = {
                "crack_id": p.get("crack_id"),
                "track": "-" if p.get("track_id") is None else str(p["track_id"]),
                "length": length_text(p.get("length_m")),
                "max_width": _width(p),
                "severity": p.get("severity"),
                "growth": growth.get(p.get("crack_id"), "not tracked"),
                "position": (f"APPROXIMATE: photo {p.get('image_name')} placed by its GPS "
                             f"footprint, +/- {p.get('position_error_m') or 0:g} m"),
            }
            if f.get("geometry"):
                f["geometry"]["coordinates"] = _round_coords(f["geometry"]["coordinates"], 7)
            fc["features"].append(f)
        fc["approximate_photo_cracks"] = len(placed)
    return fc


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_history(url: str, site_id: int) -> pd.DataFrame:
    """:func:`geodata.queries.site_defect_history`."""
    return queries.site_defect_history(engine(url), site_id)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_tracks_geojson(url: str, site_id: int) -> str:
    """The site's tracks (last polygon each) as RFC 7946 GeoJSON text (EPSG:4326)."""
    tracks = queries.site_tracks(engine(url), site_id)
    tracks = tracks[tracks.geometry.notna()]
    for c in tracks.columns:
        if c != "geometry" and pd.api.types.is_datetime64_any_dtype(tracks[c]):
            tracks[c] = tracks[c].map(lambda t: t.isoformat() if pd.notna(t) else None)
    return tracks.to_crs(4326).to_json(drop_id=True, na="null")


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_track(url: str, track_id: int) -> pd.DataFrame:
    """:func:`geodata.queries.track_timeseries`."""
    return queries.track_timeseries(engine(url), track_id)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_views(url: str, site_id: int) -> pd.DataFrame:
    """:func:`geodata.views.site_views`."""
    return views.site_views(engine(url), site_id)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_registrations(url: str, survey_id: int) -> pd.DataFrame:
    """:func:`geodata.views.survey_registrations`."""
    return views.survey_registrations(engine(url), survey_id)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_view_history(url: str, view_id: int) -> pd.DataFrame:
    """:func:`geodata.views.view_history`."""
    return views.view_history(engine(url), view_id)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_view_track_polygons(url: str, track_id: int) -> gpd.GeoDataFrame:
    """:func:`geodata.views.view_track_polygons`."""
    return views.view_track_polygons(engine(url), track_id)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_job_runs(url: str) -> pd.DataFrame:
    """:func:`geodata.queries.job_runs`."""
    return queries.job_runs(engine(url))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_undelivered_notifications(url: str) -> pd.DataFrame:
    """:func:`geodata.queries.undelivered_notifications`."""
    return queries.undelivered_notifications(engine(url))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_inference_runs(url: str) -> pd.DataFrame:
    """:func:`geodata.queries.inference_runs`."""
    return queries.inference_runs(engine(url))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_audit(url: str, site_id: int | None = None, limit: int = 2000) -> pd.DataFrame:
    """:func:`geodata.audit.audit_events` (newest first, at most ``limit`` rows)."""
    from geodata.audit import audit_events

    return audit_events(engine(url), site=site_id, limit=limit)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_data_age(url: str) -> pd.DataFrame:
    """:func:`geodata.alert_settings.data_age_overview` (each site's data age, overdue)."""
    from geodata.alert_settings import data_age_overview

    return data_age_overview(engine(url))


def clear_caches() -> None:
    """Forget every cached read (after a write)."""
    st.cache_data.clear()


# --------------------------------------------------------------------------- alert writes


def _may_act() -> str | None:
    """None if the signed-in user may acknowledge/resolve alerts, else why not."""
    user = auth.current_user()
    if user is None or not user.can_act:
        return ("acknowledging and resolving alerts needs the operator or admin role (ask an "
                "admin: crackwatch user add NAME --role operator)")
    return None


def acknowledge(url: str, alert_id: int, by: str, note: str) -> str | None:
    """Acknowledge an alert as ``by`` (the signed-in user); returns an error message, or
    None on success. Refused unless the signed-in user is an operator or admin."""
    if (refused := _may_act()) is not None:
        return refused
    try:
        alerts_store.acknowledge_alert(engine(url), alert_id, by=by, note=note)
    except (StoreError, RecordNotFoundError, ValueError) as exc:
        return str(exc)
    clear_caches()
    return None


def resolve(url: str, alert_id: int, by: str, note: str) -> str | None:
    """Resolve an alert with a note as ``by`` (the signed-in user); returns an error
    message, or None on success. Refused unless the signed-in user is an operator or admin."""
    if (refused := _may_act()) is not None:
        return refused
    try:
        alerts_store.resolve_alert(engine(url), alert_id, by=by, note=note)
    except (StoreError, RecordNotFoundError, ValueError) as exc:
        return str(exc)
    clear_caches()
    return None


# --------------------------------------------------------------------------- UI helpers


def map_assets() -> MapAssets:
    """Leaflet from Streamlit's static serving when it is on, else inlined in the map."""
    if st.get_option("server.enableStaticServing"):
        base = (st.get_option("server.baseUrlPath") or "").strip("/")
        return MapAssets("static", f"/{base}/app/static/" if base else "/app/static/")
    return MapAssets("inline")


def show_map(html: str, height: int = 520, alt: str = "map") -> None:
    """Show a rendered folium map (its own document) in an iframe."""
    st.iframe(html, height=height, alt=alt)


def sites_or_stop(url: str, message: str = "No sites in the store yet.") -> pd.DataFrame:
    """The store's sites (:func:`load_sites`); with none, an :func:`empty_state` saying
    ``message`` and the page stops there."""
    sites = load_sites(url)
    if sites.empty:
        empty_state(message)
        st.stop()
    return sites


def empty_state(message: str, hint: str = DEMO_HINT) -> None:
    """An info box saying what is missing and what to do next (``message`` and ``hint``
    are Markdown: escape user text in them with :func:`md`)."""
    st.info(f"**{message}**\n\n{hint}")


def level_style(df: pd.DataFrame, column: str = "level"):
    """A pandas Styler colouring the alert level column."""
    def colour(v: Any) -> str:
        c = LEVEL_COLOURS.get(v)
        return f"background-color: {c}; color: white; font-weight: 600" if c else ""

    return df.style.map(colour, subset=[column])


def with_unit(value: Any, unit: Any) -> str:
    """``0.067 mm/day`` (``-`` for no value; 4 significant digits)."""
    if value is None or pd.isna(value):
        return "-"
    u = "" if unit is None or pd.isna(unit) else f" {unit}"
    return f"{value:.4g}{u}"


#: Data older than this (days) is flagged on a site without an expected survey interval
#: (issue 28, item 8: ages of 184 and 431 days read as normal). A display choice: a month
#: without imagery is stale for the monthly-or-faster surveys CrackWatch watches.
UNSET_INTERVAL_FLAG_DAYS = 30.0


def data_age_text(age: pd.DataFrame, site_id: Any) -> str:
    """``"3.2 h (expected every 24 h)"``, ``"9.1 days OVERDUE (expected every 1 day)"``,
    ``"184.0 days OLD (no survey interval set)"`` (past :data:`UNSET_INTERVAL_FLAG_DAYS`
    without an interval) or ``"no survey yet"``, from :func:`load_data_age` rows indexed by
    ``site_id``."""
    if site_id not in age.index:
        return "-"
    r = age.loc[site_id]

    def hours(h: float) -> str:
        return f"{h / 24:.1f} days" if h >= 48 else f"{h:.1f} h"

    text = "no survey yet" if r["latest_survey_at"] is None or \
        pd.isna(r["latest_survey_at"]) else hours(float(r["data_age_h"]))
    if bool(r["overdue"]):
        text += " OVERDUE"
    interval = r["expected_interval_h"]
    if interval is not None and not pd.isna(interval):
        text += f" (expected every {hours(float(interval))})"
    elif pd.notna(r["data_age_h"]) and float(r["data_age_h"]) > 24 * UNSET_INTERVAL_FLAG_DAYS:
        text += " OLD (no survey interval set)"
    return text


def when(value: Any) -> str:
    """A UTC timestamp as ``YYYY-MM-DD HH:MM`` (``-`` for none)."""
    if value is None or value is pd.NaT or (not isinstance(value, datetime)
                                            and pd.isna(value)):
        return "-"
    return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")


def link_params(names: tuple[str, ...]) -> dict[str, int]:
    """The whole-number query parameters of a link (``?survey=12&track=37``) among
    ``names``; anything else (missing, text, negative) is left out."""
    found = {}
    for name in names:
        value = st.query_params.get(name)
        if value is not None and str(value).isdigit():
            found[name] = int(value)
    return found


def pick_site(sites: pd.DataFrame, *, label: str = "Site") -> int:
    """A site selectbox whose choice is kept across pages (and ``?site=`` in the URL)."""
    ids = [int(i) for i in sites["site_id"]]
    names = dict(zip(ids, sites["name"], strict=True))
    wanted = st.query_params.get("site")
    current = st.session_state.get(SITE_KEY)
    if wanted is not None:
        by_name = {str(v): k for k, v in names.items()}
        current = by_name.get(wanted, int(wanted) if str(wanted).isdigit() else current)
    if current not in names:
        current = ids[0]
    chosen = int(st.selectbox(label, ids, index=ids.index(current),
                              format_func=lambda i: names[i], key=f"site_select_{label}"))
    st.session_state[SITE_KEY] = chosen
    if wanted is not None and wanted != str(chosen):
        st.query_params["site"] = str(chosen)
    return chosen


def json_text(value: Any) -> str:
    """Pretty JSON for display."""
    return json.dumps(value, indent=2, sort_keys=False, default=str)


def profile_models() -> dict[str, str]:
    """``{site profile: model name}`` (:data:`PROFILE_MODELS_FILE`, a few bytes: not cached);
    ``{}`` if unreadable."""
    try:
        table = json.loads(PROFILE_MODELS_FILE.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    if not isinstance(table, dict):
        return {}
    return {str(k): v for k, v in table.items() if isinstance(v, str)}


def model_label(profile: Any, model_name: Any, defaults: dict[str, str]) -> str:
    """The model a site uses: its own, or ``profile default: NAME``."""
    if isinstance(model_name, str) and model_name:
        return model_name
    return f"profile default: {defaults.get(str(profile), '?')}"
