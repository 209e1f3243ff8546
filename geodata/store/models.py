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

Geometry columns use :class:`~geodata.store.types.GeometryType` (PostGIS ``geometry`` with a
GiST index on PostgreSQL, EWKB on SQLite). The schema is owned by the Alembic migrations in
``geodata/store/migrations``; a test checks that they match these models.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from geodata.levels import ALERT_LEVELS, LEVEL_COLOURS  # the levels the alert table checks
from geodata.store.types import GeometryType, UTCDateTime, spatial_index

__all__ = [
    "ALERT_LEVELS",
    "COORDINATE_SPACES",
    "LEVEL_COLOURS",
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
    "JobRun",
    "Notification",
    "PhotoRegistration",
    "PhotoView",
    "PhotoViewTrack",
    "SiteAlerting",
    "SiteLock",
    "Site",
    "Survey",
    "SurveySummary",
    "TrackObservation",
]

#: Site profiles: which alert rules apply.
PROFILES = ("slope", "structure")
#: Survey source types.
SOURCE_TYPES = ("orthomosaic", "photos", "photo", "other")
#: Inference run statuses (``succeeded`` = the survey's current run).
RUN_STATUSES = ("running", "succeeded", "failed", "superseded")
#: Where a crack's geometry lives: the site's projected CRS or a photo's pixel grid.
COORDINATE_SPACES = ("map", "image")
#: Crack track statuses (see :mod:`geodata.tracking`).
TRACK_STATUSES = ("active", "vanished", "merged")
#: What happened to a track in a survey (see :mod:`geodata.tracking`).
TRACK_EVENTS = ("new", "continued", "split", "merged", "vanished")
#: Job run statuses.
#: ``abandoned``: the process running it is gone (killed, crashed); set by the next run.
JOB_STATUSES = ("running", "succeeded", "failed", "skipped", "abandoned")
#: Outbox notification statuses: ``pending`` (never tried), ``sending`` (claimed by a
#: sender), ``delivered``, ``failed`` (last try failed; sent again later).
NOTIFICATION_STATUSES = ("pending", "sending", "delivered", "failed")
#: How a photo relates to its site's views (see :mod:`geodata.views`): the ``reference``
#: of a view, ``registered`` into one, a ``duplicate`` (another photo of the same survey
#: shows that view better; not tracked) or ``refused`` (black, blurred, featureless,
#: ambiguous, unreadable: ``reason`` says which).
REGISTRATION_STATUSES = ("reference", "registered", "duplicate", "refused")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: JSON on SQLite, JSONB on PostgreSQL.
JSONType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    """Declarative base of all CrackWatch tables (constraint naming convention set)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Site(Base):
    """A monitored slope or structure.

    ``crs_epsg`` is the EPSG code of a *projected* CRS in metres; every map geometry of the
    site is stored in it. ``lon``/``lat`` are WGS 84 degrees (EPSG:4326) of the site's
    marker. ``schedule`` is a 5-field cron string in the site's ``timezone`` (IANA name).
    ``thresholds`` holds the alert rule thresholds (JSON object). ``model_name`` is the model
    the pipeline runs on the site's surveys; ``None``: the model of the site's ``profile``
    (``engine.registry.PROFILE_MODELS``).
    """

    __tablename__ = "site"
    __table_args__ = (
        CheckConstraint(_in("profile", PROFILES), name="profile"),
        CheckConstraint("crs_epsg > 0", name="crs_epsg_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    profile: Mapped[str] = mapped_column(String(20))
    crs_epsg: Mapped[int] = mapped_column(Integer)
    lon: Mapped[float | None] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    inbox: Mapped[str | None] = mapped_column(Text)
    schedule: Mapped[str | None] = mapped_column(String(100))
    thresholds: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    model_name: Mapped[str | None] = mapped_column(String(200))

    surveys: Mapped[list[Survey]] = relationship(
        back_populates="site", cascade="all, delete-orphan", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"Site(id={self.id}, name={self.name!r}, EPSG:{self.crs_epsg})"


class Survey(Base):
    """One acquisition of a site: an orthomosaic or a photo set.

    ``acquired_at`` is aware UTC; ``sha256`` the hex digest of the source file (of the
    sorted photo digests for a photo set), unique per site. ``pixel_size_m`` is the ground
    size of one pixel (m). ``footprint`` is the covered area in the site CRS.
    ``registration_error_m`` is the expected misalignment against earlier surveys (m),
    added to the tracking tolerance. ``meta`` (column ``metadata``) holds free JSON, e.g.
    ``{"simulated": true}``.
    """

    __tablename__ = "survey"
    __table_args__ = (
        UniqueConstraint("site_id", "sha256", name="uq_survey_site_id_sha256"),
        CheckConstraint(_in("source_type", SOURCE_TYPES), name="source_type"),
        CheckConstraint("pixel_size_m IS NULL OR pixel_size_m > 0", name="pixel_size_positive"),
        CheckConstraint("registration_error_m >= 0", name="registration_error_nonnegative"),
        Index("ix_survey_site_id_acquired_at", "site_id", "acquired_at"),
        spatial_index("ix_survey_footprint_gist", "footprint"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id", ondelete="CASCADE"))
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime)
    source_type: Mapped[str] = mapped_column(String(20))
    source_path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    pixel_size_m: Mapped[float | None] = mapped_column(Float)
    footprint: Mapped[Any | None] = mapped_column(GeometryType)
    registration_error_m: Mapped[float] = mapped_column(Float, default=0.0)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    site: Mapped[Site] = relationship(back_populates="surveys")

    def __repr__(self) -> str:
        return (f"Survey(id={self.id}, site_id={self.site_id}, "
                f"acquired_at={self.acquired_at.isoformat()}, sha256={self.sha256[:12]}...)")


class InferenceRun(Base):
    """One model run over a survey; ``tiling`` holds tile size, overlap, threshold... (JSON)."""

    __tablename__ = "inference_run"
    __table_args__ = (
        CheckConstraint(_in("status", RUN_STATUSES), name="status"),
        Index("ix_inference_run_survey_id_status", "survey_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("survey.id", ondelete="CASCADE"))
    model_name: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str | None] = mapped_column(String(100))
    weights_sha256: Mapped[str | None] = mapped_column(String(64))
    tiling: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    status: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    megapixels_per_s: Mapped[float | None] = mapped_column(Float)
    crack_count: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)


class CrackTrack(Base):
    """One physical crack followed over surveys of a site.

    ``status``: ``active`` (seen in the latest tracked survey), ``vanished`` (not found in a
    later survey), ``merged`` (joined another crack; ``merged_into_track_id``).
    ``parent_track_id`` is set when the track started by splitting off another track.
    """

    __tablename__ = "crack_track"
    __table_args__ = (
        CheckConstraint(_in("status", TRACK_STATUSES), name="status"),
        Index("ix_crack_track_site_id_status", "site_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id", ondelete="CASCADE"))
    first_survey_id: Mapped[int] = mapped_column(ForeignKey("survey.id", ondelete="CASCADE"))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_survey_id: Mapped[int] = mapped_column(ForeignKey("survey.id", ondelete="CASCADE"))
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(20), default="active")
    parent_track_id: Mapped[int | None] = mapped_column(
        ForeignKey("crack_track.id", ondelete="SET NULL"))
    merged_into_track_id: Mapped[int | None] = mapped_column(
        ForeignKey("crack_track.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Crack(Base):
    """A crack polygon of one inference run, with its skeleton and measurements.

    ``polygon``: (Multi)Polygon in the site CRS (``coordinate_space == "map"``, SRID = the
    site's EPSG) or in pixel coordinates of the photo ``image_name`` (``"image"``: x =
    column, y = row from the top-left, SRID 0). ``skeleton``: (Multi)LineString or Point in
    the same space. ``crack_index``: the vectoriser's ``crack_id`` (1..n per raster/photo).
    ``severity``: BRE Digest 251 damage category from ``max_width_mm``
    (see :func:`geodata.store.api.crack_severity`).
    """

    __tablename__ = "crack"
    __table_args__ = (
        CheckConstraint(_in("coordinate_space", COORDINATE_SPACES), name="coordinate_space"),
        Index("ix_crack_survey_id", "survey_id"),
        Index("ix_crack_run_id", "run_id"),
        Index("ix_crack_track_id", "track_id"),
        Index("ix_crack_site_id", "site_id"),
        spatial_index("ix_crack_polygon_gist", "polygon"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("inference_run.id", ondelete="CASCADE"))
    survey_id: Mapped[int] = mapped_column(ForeignKey("survey.id", ondelete="CASCADE"))
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id", ondelete="CASCADE"))
    track_id: Mapped[int | None] = mapped_column(
        ForeignKey("crack_track.id", ondelete="SET NULL"))
    crack_index: Mapped[int | None] = mapped_column(Integer)
    image_name: Mapped[str | None] = mapped_column(Text)
    coordinate_space: Mapped[str] = mapped_column(String(10), default="map")
    polygon: Mapped[Any] = mapped_column(GeometryType)
    skeleton: Mapped[Any | None] = mapped_column(GeometryType)
    length_m: Mapped[float] = mapped_column(Float)
    mean_width_mm: Mapped[float] = mapped_column(Float)
    max_width_mm: Mapped[float] = mapped_column(Float)
    area_m2: Mapped[float] = mapped_column(Float)
    mean_probability: Mapped[float | None] = mapped_column(Float)
    max_probability: Mapped[float | None] = mapped_column(Float)
    severity: Mapped[str | None] = mapped_column(String(20))


class TrackObservation(Base):
    """A track in one survey: measurements and growth since the track's previous survey.

    ``crack_id`` is the crack that continues/starts the track (for ``merged``, the crack it
    merged into; ``None`` for ``vanished``). Deltas are current minus baseline (the previous
    survey's crack, or for a merge the merged cracks together: lengths and areas summed,
    widths maxed); rates are deltas per day between the two surveys' ``acquired_at``.
    All ``None`` for ``new``/``split``/``merged``/``vanished`` events without a baseline.
    """

    __tablename__ = "track_observation"
    __table_args__ = (
        UniqueConstraint("track_id", "survey_id", name="uq_track_observation_track_survey"),
        CheckConstraint(_in("event", TRACK_EVENTS), name="event"),
        Index("ix_track_observation_survey_id", "survey_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    track_id: Mapped[int] = mapped_column(ForeignKey("crack_track.id", ondelete="CASCADE"))
    survey_id: Mapped[int] = mapped_column(ForeignKey("survey.id", ondelete="CASCADE"))
    crack_id: Mapped[int | None] = mapped_column(ForeignKey("crack.id", ondelete="SET NULL"))
    event: Mapped[str] = mapped_column(String(20))
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime)
    length_m: Mapped[float | None] = mapped_column(Float)
    mean_width_mm: Mapped[float | None] = mapped_column(Float)
    max_width_mm: Mapped[float | None] = mapped_column(Float)
    area_m2: Mapped[float | None] = mapped_column(Float)
    days_since_previous: Mapped[float | None] = mapped_column(Float)
    delta_length_m: Mapped[float | None] = mapped_column(Float)
    delta_max_width_mm: Mapped[float | None] = mapped_column(Float)
    delta_area_m2: Mapped[float | None] = mapped_column(Float)
    length_rate_m_per_day: Mapped[float | None] = mapped_column(Float)
    max_width_rate_mm_per_day: Mapped[float | None] = mapped_column(Float)
    area_rate_m2_per_day: Mapped[float | None] = mapped_column(Float)


class SurveySummary(Base):
    """Per site and survey: counts and totals of the survey's map cracks after tracking."""

    __tablename__ = "survey_summary"

    survey_id: Mapped[int] = mapped_column(
        ForeignKey("survey.id", ondelete="CASCADE"), primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id", ondelete="CASCADE"), index=True)
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime)
    previous_survey_id: Mapped[int | None] = mapped_column(
        ForeignKey("survey.id", ondelete="SET NULL"))
    crack_count: Mapped[int] = mapped_column(Integer)
    total_length_m: Mapped[float] = mapped_column(Float)
    total_area_m2: Mapped[float] = mapped_column(Float)
    max_width_mm: Mapped[float | None] = mapped_column(Float)
    new_count: Mapped[int] = mapped_column(Integer)
    continued_count: Mapped[int] = mapped_column(Integer)
    split_count: Mapped[int] = mapped_column(Integer)
    merged_count: Mapped[int] = mapped_column(Integer)
    vanished_count: Mapped[int] = mapped_column(Integer)
    tolerance_m: Mapped[float | None] = mapped_column(Float)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Alert(Base):
    """A warning level raised for a site (and optionally one crack track) by a rule.

    ``level`` is one of :data:`ALERT_LEVELS`; ``measured_value`` and ``threshold`` are in the
    rule's unit (named in ``rule``, e.g. ``max_width_rate_mm_per_day``). ``notifications``
    records what was sent where (JSON list). ``watch``: an exceedance not yet confirmed
    (false-alarm control of slope growth rules, :func:`jobs.alerts.confirm_slope_candidates`):
    shown on the map and the Alerts page, no notification queued until it is confirmed.
    """

    __tablename__ = "alert"
    __table_args__ = (
        CheckConstraint(_in("level", ALERT_LEVELS), name="level"),
        Index("ix_alert_site_id_raised_at", "site_id", "raised_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id", ondelete="CASCADE"))
    track_id: Mapped[int | None] = mapped_column(
        ForeignKey("crack_track.id", ondelete="SET NULL"))
    survey_id: Mapped[int | None] = mapped_column(ForeignKey("survey.id", ondelete="SET NULL"))
    level: Mapped[str] = mapped_column(String(10))
    rule: Mapped[str] = mapped_column(String(100))
    measured_value: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    message: Mapped[str] = mapped_column(Text)
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))
    acknowledge_note: Mapped[str | None] = mapped_column(Text)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolve_note: Mapped[str | None] = mapped_column(Text)
    notifications: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    #: Rule details: unit, forecast (inverse velocity), resolution warnings, escalations.
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    #: Server default only (no Python default), so that core inserts written against an
    #: older schema still work; ``eager_defaults`` loads it right after the INSERT.
    watch: Mapped[bool] = mapped_column(Boolean, server_default=false())

    __mapper_args__ = {"eager_defaults": True}


class JobRun(Base):
    """One run of a job (nightly pipeline, ingest...): status, step statuses, traceback."""

    __tablename__ = "job_run"
    __table_args__ = (
        CheckConstraint(_in("status", JOB_STATUSES), name="status"),
        Index("ix_job_run_job_started_at", "job", "started_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job: Mapped[str] = mapped_column(String(100))
    site_id: Mapped[int | None] = mapped_column(ForeignKey("site.id", ondelete="SET NULL"))
    survey_id: Mapped[int | None] = mapped_column(ForeignKey("survey.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(20), default="running")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    steps: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    error: Mapped[str | None] = mapped_column(Text)


class Notification(Base):
    """One notification to deliver: an alert at a level through one channel (the outbox).

    Written in the same transaction as the alert it announces, so a crash after the commit
    cannot lose it; a sender (:mod:`jobs.outbox`) claims it (``sending``), sends it and
    marks it ``delivered`` or ``failed`` with the error and the time of the next try
    (``next_attempt_at``, exponential backoff). Unique per ``(alert_id, channel, level,
    sequence)``: an alert is announced once per channel and level (``sequence`` 0), and
    each escalation notice of an unacknowledged alert is one more row (``sequence`` 1, 2...,
    :mod:`jobs.escalation`). ``recipients``: addresses that replace the channel's own (the
    second-level list of an escalation notice), ``None``: the channel's. ``payload`` is the
    :class:`jobs.notify.AlertMessage` as JSON, as it was when the row was queued.
    """

    __tablename__ = "notification"
    __table_args__ = (
        CheckConstraint(_in("status", NOTIFICATION_STATUSES), name="status"),
        UniqueConstraint("alert_id", "channel", "level", "sequence",
                         name="uq_notification_alert_id_channel_level_sequence"),
        Index("ix_notification_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alert.id", ondelete="CASCADE"))
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(100))
    level: Mapped[str] = mapped_column(String(10))
    action: Mapped[str] = mapped_column(String(20), default="raise")
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sequence: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    recipients: Mapped[list[str] | None] = mapped_column(JSONType)


class AuditEvent(Base):
    """One entry of the audit trail (:mod:`geodata.audit`): ``actor`` (a user name, or
    ``system`` / ``scheduler`` for automatic actions) did ``action`` (e.g.
    ``alert.acknowledged``, ``notification.sent``, ``site.thresholds_set``) at ``at`` (UTC)
    to the alert / site / notification named, with ``details`` (JSON).

    Written in the same transaction as the change it records, and never updated. The ids are
    plain integers, not foreign keys: the trail keeps naming a site or alert after it is
    deleted (``details`` holds the site name where there is one).
    """

    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_at", "at"),
        Index("ix_audit_event_site_id_at", "site_id", "at"),
        Index("ix_audit_event_alert_id", "alert_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(50))
    site_id: Mapped[int | None] = mapped_column(Integer)
    alert_id: Mapped[int | None] = mapped_column(Integer)
    notification_id: Mapped[int | None] = mapped_column(Integer)
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class SiteAlerting(Base):
    """A site's overdue-survey and escalation settings (:mod:`geodata.alert_settings`).

    ``expected_interval_s``: a new survey is expected at least this often (seconds);
    ``None``: the interval of the site's ``schedule``. ``overdue_grace_s``: added before the
    site counts as overdue; ``None``: the default. ``overdue_enabled``: raise
    ``site.overdue`` alerts at all. ``overdue_level``: their level. ``escalation``: per alert
    level, ``{"after_s": seconds or null (off), "recipients": [addresses]}``; a level not
    named uses the defaults. No row: every default.
    """

    __tablename__ = "site_alerting"
    __table_args__ = (
        CheckConstraint(_in("overdue_level", ALERT_LEVELS[1:]), name="overdue_level"),
        CheckConstraint("expected_interval_s IS NULL OR expected_interval_s > 0",
                        name="expected_interval_positive"),
        CheckConstraint("overdue_grace_s IS NULL OR overdue_grace_s >= 0",
                        name="overdue_grace_nonnegative"),
    )

    site_id: Mapped[int] = mapped_column(ForeignKey("site.id", ondelete="CASCADE"),
                                         primary_key=True, autoincrement=False)
    expected_interval_s: Mapped[float | None] = mapped_column(Float)
    overdue_grace_s: Mapped[float | None] = mapped_column(Float)
    overdue_enabled: Mapped[bool] = mapped_column(Boolean, default=True,
                                                  server_default=true())
    overdue_level: Mapped[str] = mapped_column(String(10), default="yellow",
                                               server_default="yellow")
    escalation: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(200))


class SiteLock(Base):
    """The process running a site's pipeline now: one row per locked site.

    On SQLite this row IS the lock (taken in a ``BEGIN IMMEDIATE`` transaction); on
    PostgreSQL the lock is a session advisory lock and the row says who holds it. ``owner``
    is ``host:pid``; ``heartbeat_at`` is refreshed while it runs; ``taken_over_from`` records
    a stale lock (dead owner) that this owner took over. See :mod:`geodata.store.locks`.
    """

    __tablename__ = "site_lock"

    site_id: Mapped[int] = mapped_column(ForeignKey("site.id", ondelete="CASCADE"),
                                         primary_key=True, autoincrement=False)
    owner: Mapped[str] = mapped_column(String(200))
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    purpose: Mapped[str | None] = mapped_column(String(200))
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    taken_over_from: Mapped[str | None] = mapped_column(Text)


class PhotoView(Base):
    """One place of a site that is photographed again and again: a wall, a pier, a joint
    (for nadir drone photos, one patch of ground). Its frame is the pixel grid of its
    reference photo (``reference_survey_id``, ``reference_image``; ``width_px`` x
    ``height_px``, x = column, y = row from the top-left); photos of later surveys are
    registered into it (:mod:`geodata.views`) and their cracks tracked there.

    ``scale_m_per_px``: metres of surface per reference pixel, ``None`` when unknown;
    ``scale_source`` says where it comes from (``"user"``: set with ``crackwatch view
    set-scale``; else the reference photo's GSD and its source). ``image_to_map``: 3x3
    homography (row-major list of 9) reference px -> site CRS, from the reference photo's
    nadir footprint (GPS + GSD), ``None`` without GPS; ``position_error_m`` its assumed
    horizontal error (approximate placement).
    """

    __tablename__ = "photo_view"
    __table_args__ = (
        UniqueConstraint("reference_survey_id", "reference_image",
                         name="uq_photo_view_reference_survey_id"),
        CheckConstraint("scale_m_per_px IS NULL OR scale_m_per_px > 0", name="scale_positive"),
        Index("ix_photo_view_site_id", "site_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    reference_survey_id: Mapped[int] = mapped_column(
        ForeignKey("survey.id", ondelete="CASCADE"))
    reference_image: Mapped[str] = mapped_column(Text)
    width_px: Mapped[int] = mapped_column(Integer)
    height_px: Mapped[int] = mapped_column(Integer)
    scale_m_per_px: Mapped[float | None] = mapped_column(Float)
    scale_source: Mapped[str | None] = mapped_column(Text)
    image_to_map: Mapped[list[float] | None] = mapped_column(JSONType)
    position_error_m: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PhotoRegistration(Base):
    """One photo of a photo survey and its view (see :mod:`geodata.views`).

    ``homography``: 3x3 (row-major list of 9) photo px -> the view's reference px; identity
    for the reference itself; ``None`` when refused. ``matches``, ``inliers``: ratio-test
    matches and RANSAC inliers; ``rms_px``: RMS reprojection error of the inliers (view
    px); ``overlap``: fraction of the view's frame the photo covers. ``gsd_m``: metres per
    photo pixel its cracks were measured with (at the photo centre), ``gsd_source`` where
    it comes from, ``None`` when it has none (its cracks are then not stored). ``quality``:
    black/blur figures (JSON); ``candidates``: every view tried with its figures (JSON
    list); ``reason``: a sentence on what happened (why refused, which view, which GSD).
    ``footprint``: nadir ground footprint (site CRS) of a photo with GPS, ``image_to_map``
    (3x3 list, photo px -> site CRS) and ``position_error_m``: its approximate placement.
    """

    __tablename__ = "photo_registration"
    __table_args__ = (
        UniqueConstraint("survey_id", "image_name", name="uq_photo_registration_survey_id"),
        CheckConstraint(_in("status", REGISTRATION_STATUSES), name="status"),
        CheckConstraint("rms_px IS NULL OR rms_px >= 0", name="rms_nonnegative"),
        Index("ix_photo_registration_site_id", "site_id"),
        Index("ix_photo_registration_view_id", "view_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id", ondelete="CASCADE"))
    survey_id: Mapped[int] = mapped_column(ForeignKey("survey.id", ondelete="CASCADE"))
    image_name: Mapped[str] = mapped_column(Text)
    view_id: Mapped[int | None] = mapped_column(ForeignKey("photo_view.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(20))
    homography: Mapped[list[float] | None] = mapped_column(JSONType)
    matches: Mapped[int | None] = mapped_column(Integer)
    inliers: Mapped[int | None] = mapped_column(Integer)
    rms_px: Mapped[float | None] = mapped_column(Float)
    overlap: Mapped[float | None] = mapped_column(Float)
    gsd_m: Mapped[float | None] = mapped_column(Float)
    gsd_source: Mapped[str | None] = mapped_column(Text)
    quality: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    candidates: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    reason: Mapped[str | None] = mapped_column(Text)
    footprint: Mapped[Any | None] = mapped_column(GeometryType)
    image_to_map: Mapped[list[float] | None] = mapped_column(JSONType)
    position_error_m: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PhotoViewTrack(Base):
    """A crack track followed in a view's frame (a photo track; map tracks have no row)."""

    __tablename__ = "photo_view_track"
    __table_args__ = (Index("ix_photo_view_track_view_id", "view_id"),)

    track_id: Mapped[int] = mapped_column(ForeignKey("crack_track.id", ondelete="CASCADE"),
                                          primary_key=True, autoincrement=False)
    view_id: Mapped[int] = mapped_column(ForeignKey("photo_view.id", ondelete="CASCADE"))
