"""Tables of sites, their surveys, inference runs, cracks and crack tracks (see
:mod:`geodata.store.models`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from geodata.store.models.base import (
    COORDINATE_SPACES,
    PROFILES,
    RUN_STATUSES,
    SOURCE_TYPES,
    TRACK_EVENTS,
    TRACK_STATUSES,
    Base,
    JSONType,
    check_in,
    utcnow,
)
from geodata.store.types import GeometryType, UTCDateTime, spatial_index

__all__ = [
    "Crack",
    "CrackTrack",
    "InferenceRun",
    "Site",
    "Survey",
    "SurveySummary",
    "TrackObservation",
]


class Site(Base):
    """A monitored slope or structure.

    ``crs_epsg`` is the EPSG code of a *projected* CRS in metres; every map geometry of the
    site is stored in it. ``lon``/``lat`` are WGS 84 degrees (EPSG:4326) of the site's
    marker. ``schedule`` is a 5-field cron string in the site's ``timezone`` (IANA name).
    ``thresholds`` holds the alert rule thresholds (JSON object). ``model_name`` is the model
    the pipeline runs on the site's surveys; ``None``: the model of the site's ``profile``
    (``engine.registry.PROFILE_MODELS``). ``tile_gate`` is the site's own switch of the
    crack / no-crack tile gate (``crackwatch site set-tile-gate``); ``None``: the rule of the
    site's profile and model (``engine.crack_rules.rules_for``).
    """

    __tablename__ = "site"
    __table_args__ = (
        CheckConstraint(check_in("profile", PROFILES), name="profile"),
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
    tile_gate: Mapped[bool | None] = mapped_column(Boolean)

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
        CheckConstraint(check_in("source_type", SOURCE_TYPES), name="source_type"),
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
    """One model run over a survey; ``tiling`` holds tile size, overlap, threshold and the
    profile's crack rules (JSON); ``observable_fraction``: the share of the survey's valid
    pixels not masked as vegetation (slope sites; NULL without the mask); ``unobservable``: that
    vegetation as one (Multi)Polygon in the site CRS (orthomosaics of slope sites; NULL
    otherwise), the map's "not observable" layer."""

    __tablename__ = "inference_run"
    __table_args__ = (
        CheckConstraint(check_in("status", RUN_STATUSES), name="status"),
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
    observable_fraction: Mapped[float | None] = mapped_column(Float)
    unobservable: Mapped[Any] = mapped_column(GeometryType, nullable=True)


class CrackTrack(Base):
    """One physical crack followed over surveys of a site.

    ``status``: ``active`` (seen in the latest tracked survey), ``vanished`` (not found in a
    later survey), ``merged`` (joined another crack; ``merged_into_track_id``).
    ``parent_track_id`` is set when the track started by splitting off another track.
    """

    __tablename__ = "crack_track"
    __table_args__ = (
        CheckConstraint(check_in("status", TRACK_STATUSES), name="status"),
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
        CheckConstraint(check_in("coordinate_space", COORDINATE_SPACES), name="coordinate_space"),
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
        CheckConstraint(check_in("event", TRACK_EVENTS), name="event"),
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
