"""Tables of the per-site "what changed" layer (issue 29; see :mod:`geodata.store.models`).

* ``site_baseline``: a site's baseline for unsupervised surface change: which surveys, where
  their patch features are kept (a safetensors file under the data folder, with its SHA-256),
  the score threshold and its rule (:mod:`engine.site_change`). The newest is the site's
  current baseline.
* ``surface_change``: one later survey compared with a baseline: the probability-like raster
  (a GeoTIFF under the data folder), the polygons of new anomalous ground in the site CRS, and
  the share of the compared ground they cover. Never a crack, never used for alert levels.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from geodata.store.models.base import Base, JSONType, utcnow
from geodata.store.types import GeometryType, UTCDateTime

__all__ = ["SiteBaseline", "SurfaceChange"]


class SiteBaseline(Base):
    """A site's baseline survey(s) for the unsupervised "surface change" layer."""

    __tablename__ = "site_baseline"
    __table_args__ = (Index("ix_site_baseline_site_id", "site_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id", ondelete="CASCADE"))
    survey_ids: Mapped[list[int]] = mapped_column(JSONType, default=list)
    features_path: Mapped[str] = mapped_column(Text)
    features_sha256: Mapped[str] = mapped_column(Text)
    threshold: Mapped[float] = mapped_column(Float)
    card: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SurfaceChange(Base):
    """One survey compared with a site baseline: raster and polygons of changed ground."""

    __tablename__ = "surface_change"
    __table_args__ = (UniqueConstraint("survey_id", "baseline_id"),
                      Index("ix_surface_change_survey_id", "survey_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("survey.id", ondelete="CASCADE"))
    baseline_id: Mapped[int] = mapped_column(ForeignKey("site_baseline.id",
                                                        ondelete="CASCADE"))
    raster_path: Mapped[str | None] = mapped_column(Text)
    geometry: Mapped[Any | None] = mapped_column(GeometryType, nullable=True)
    compared_m2: Mapped[float] = mapped_column(Float)
    changed_m2: Mapped[float] = mapped_column(Float)
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
