"""The crack store: SQLite by default, PostgreSQL + PostGIS for teams; one model set for both.

Typical use (``url`` is explicit here; ``jobs.settings`` resolves the default)::

    from geodata import store

    store.upgrade(url)                       # create / migrate the schema (Alembic)
    engine = store.connect(url)
    site = store.add_site(engine, "north-slope", profile="slope", crs_epsg=32633)
    survey = store.ingest_survey(engine, site.id, "ortho.tif", acquired_at=when)
    run = store.store_run(engine, survey.id, cracks, skeletons, {"model_name": "unet"})

Modules: :mod:`.models` (tables, by concern), :mod:`.types` (geometry/timestamp columns),
:mod:`.engine` (connect, transactions), :mod:`.migrate` (Alembic), :mod:`.api` (writes, with
:mod:`.checks` and :mod:`.crack_rows`). The store boundary (issue 17: nothing above
``geodata`` uses an ORM class) is functions taking a Session or an Engine: :mod:`.lookup`,
:mod:`.surveys`, :mod:`.jobruns`, :mod:`.schedules`, :mod:`.tracks`, :mod:`.alert_rows`,
:mod:`.alert_state`, :mod:`.outbox`, :mod:`.summaries`, :mod:`.locks`.
Tracking is :mod:`geodata.tracking`, reading for the dashboard :mod:`geodata.queries`,
export :mod:`geodata.export`.
"""

from geodata.store.api import (
    SEVERITY_CLASSES,
    RunInfo,
    add_site,
    crack_severity,
    delete_site,
    get_site,
    get_survey,
    ingest_survey,
    record_failed_run,
    set_site_model,
    set_site_tile_gate,
    site_crs,
    source_sha256,
    store_run,
)
from geodata.store.engine import connect, session_scope, sqlite_url
from geodata.store.migrate import current_revision, head_revision, upgrade
from geodata.store.models import (
    ALERT_LEVELS,
    LEVEL_COLOURS,
    REGISTRATION_STATUSES,
    Alert,
    Base,
    Crack,
    CrackTrack,
    InferenceRun,
    JobRun,
    Site,
    Survey,
    SurveySummary,
    TrackObservation,
)

__all__ = [
    "ALERT_LEVELS",
    "LEVEL_COLOURS",
    "REGISTRATION_STATUSES",
    "SEVERITY_CLASSES",
    "Alert",
    "Base",
    "Crack",
    "CrackTrack",
    "InferenceRun",
    "JobRun",
    "RunInfo",
    "Site",
    "Survey",
    "SurveySummary",
    "TrackObservation",
    "add_site",
    "connect",
    "crack_severity",
    "current_revision",
    "delete_site",
    "get_site",
    "get_survey",
    "head_revision",
    "ingest_survey",
    "record_failed_run",
    "session_scope",
    "set_site_model",
    "set_site_tile_gate",
    "site_crs",
    "source_sha256",
    "sqlite_url",
    "store_run",
    "upgrade",
]
