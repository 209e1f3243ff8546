"""SQLAlchemy 2 models of the crack store; one model set for SQLite and PostgreSQL/PostGIS.

Tables (all ids are integer surrogate keys, all timestamps aware UTC):

* ``site``: a monitored slope or structure, with its projected CRS (``crs_epsg``).
* ``survey``: one acquisition (an orthomosaic or a photo set) of a site; unique per
  ``(site_id, sha256)`` so ingesting the same file twice gives the same survey.
* ``inference_run``: one model run over a survey. Only one run per survey is ``current``
  (``status == "succeeded"``); earlier ones become ``"superseded"`` and their cracks are
  deleted when a survey is re-run. ``"failed"`` runs keep their error text.
* ``crack``: a crack polygon of a run, in the site CRS (``coordinate_space == "map"``) or,
  for site photos without georeferencing, in image pixel coordinates of ``image_name``
  (``coordinate_space == "image"``, no SRID).
* ``crack_track``: one physical crack followed over surveys (see :mod:`geodata.tracking`).
* ``track_observation``: a track in one survey: its measurements and growth since the
  previous survey (deltas and rates per day).
* ``survey_summary``: per site and survey: crack count, total length, new cracks...
* ``alert``: a warning level raised for a site (optionally a track) by a rule.
* ``job_run``: one run of a scheduled/CLI job with its step statuses.
* ``site_lock``: the site whose pipeline a process is running, with owner and heartbeat
  (:mod:`geodata.store.locks`).
* ``notification``: the outbox: one row per (alert, channel, level, sequence) to deliver,
  written in the alert's transaction, marked delivered or failed by the sender
  (:mod:`jobs.outbox`); ``sequence`` > 0 are the escalation notices of an unacknowledged
  alert (:mod:`jobs.escalation`).
* ``audit_event``: the audit trail: every alert state change, notification and setting
  change with who (``actor``), when (UTC) and details (:mod:`geodata.audit`).
* ``site_alerting``: per site, the overdue-survey and escalation settings
  (:mod:`geodata.alert_settings`); no row: the defaults.
* ``photo_view``: one place of a site that inspectors photograph (a wall, a pier; one patch
  of ground for nadir drone photos), in the pixel grid of its reference photo.
* ``photo_registration``: how one photo of a photo survey maps into a view (homography,
  inliers, RMS error, GSD used) or why it does not.
* ``photo_view_track``: which crack tracks are followed in a view's frame (photo tracks).
* ``site_baseline``, ``surface_change``: a site's baseline survey(s) and each later survey's
  unsupervised "surface change" layer (:mod:`.change`, :mod:`engine.site_change`).

Geometry columns use :class:`~geodata.store.types.GeometryType` (PostGIS ``geometry`` with a
GiST index on PostgreSQL, EWKB on SQLite). The schema is owned by the Alembic migrations in
``geodata/store/migrations``; a test checks that they match these models.

Modules: :mod:`.base` (declarative base, value sets, ``utcnow``), :mod:`.surveys` (sites,
surveys, runs, cracks, tracks), :mod:`.alerting` (alerts, outbox, audit, alert settings),
:mod:`.operations` (job runs, site locks), :mod:`.photos` (photo views), :mod:`.change`
(site baselines, surface change); every name is
importable from here.
"""

from geodata.store.models.alerting import Alert, AuditEvent, Notification, SiteAlerting
from geodata.store.models.base import (
    ALERT_LEVELS,
    COORDINATE_SPACES,
    JOB_STATUSES,
    LEVEL_COLOURS,
    NAMING_CONVENTION,
    NOTIFICATION_STATUSES,
    PROFILES,
    REGISTRATION_STATUSES,
    RUN_STATUSES,
    SOURCE_TYPES,
    TRACK_EVENTS,
    TRACK_STATUSES,
    Base,
    JSONType,
    utcnow,
)
from geodata.store.models.change import SiteBaseline, SurfaceChange
from geodata.store.models.operations import JobRun, SiteLock
from geodata.store.models.photos import PhotoRegistration, PhotoView, PhotoViewTrack
from geodata.store.models.surveys import (
    Crack,
    CrackTrack,
    InferenceRun,
    Site,
    Survey,
    SurveySummary,
    TrackObservation,
)

__all__ = [
    "ALERT_LEVELS",
    "COORDINATE_SPACES",
    "JOB_STATUSES",
    "LEVEL_COLOURS",
    "NAMING_CONVENTION",
    "NOTIFICATION_STATUSES",
    "PROFILES",
    "REGISTRATION_STATUSES",
    "RUN_STATUSES",
    "SOURCE_TYPES",
    "TRACK_EVENTS",
    "TRACK_STATUSES",
    "Alert",
    "AuditEvent",
    "Base",
    "Crack",
    "CrackTrack",
    "InferenceRun",
    "JSONType",
    "JobRun",
    "Notification",
    "PhotoRegistration",
    "PhotoView",
    "PhotoViewTrack",
    "SiteAlerting",
    "SiteBaseline",
    "SiteLock",
    "Site",
    "SurfaceChange",
    "Survey",
    "SurveySummary",
    "TrackObservation",
    "utcnow",
]
