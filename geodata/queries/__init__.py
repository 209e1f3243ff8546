"""Read-only queries for the dashboard and exports (same results on SQLite and PostGIS).

Every function takes ``bind`` (an ``Engine`` or a ``Session``) and hashable ids, so a
Streamlit page can cache on ``(site_id, survey_id)``. Frames are returned with their units in
column names; geometries in the site's CRS unless the name says otherwise
(:func:`survey_cracks_geojson` is EPSG:4326 for web maps). Nothing found gives an empty
frame with the same columns, never ``None``.

Modules: :mod:`.sites` (sites map, surveys), :mod:`.cracks` (crack frames, GeoJSON),
:mod:`.tracks` (tracks, summaries, defect history, growth events), :mod:`.alerts` (alerts,
undelivered notifications), :mod:`.runs` (job and inference runs).
"""

from geodata.queries.alerts import all_alerts, site_alerts, undelivered_notifications
from geodata.queries.change import site_surface_change, survey_surface_change
from geodata.queries.cracks import (
    CRACK_FIELDS,
    site_cracks,
    site_unobservable,
    survey_cracks,
    survey_cracks_geojson,
    survey_unobservable,
)
from geodata.queries.runs import inference_runs, job_runs
from geodata.queries.sites import list_surveys, sites_overview
from geodata.queries.tracks import (
    site_defect_history,
    site_survey_summaries,
    site_tracks,
    survey_track_events,
    track_timeseries,
)

__all__ = [
    "CRACK_FIELDS",
    "all_alerts",
    "undelivered_notifications",
    "inference_runs",
    "job_runs",
    "list_surveys",
    "site_alerts",
    "site_cracks",
    "site_defect_history",
    "site_survey_summaries",
    "site_tracks",
    "site_surface_change",
    "site_unobservable",
    "sites_overview",
    "survey_cracks",
    "survey_cracks_geojson",
    "survey_track_events",
    "survey_surface_change",
    "survey_unobservable",
    "track_timeseries",
]
