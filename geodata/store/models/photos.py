"""Tables of photo views, photo registrations and photo tracks (see
:mod:`geodata.store.models`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from geodata.store.models.base import (
    REGISTRATION_STATUSES,
    Base,
    JSONType,
    check_in,
    utcnow,
)
from geodata.store.types import GeometryType, UTCDateTime

__all__ = [
    "PhotoRegistration",
    "PhotoView",
    "PhotoViewTrack",
]


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
        CheckConstraint(check_in("status", REGISTRATION_STATUSES), name="status"),
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
