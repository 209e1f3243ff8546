"""Tables of job runs and site locks (see :mod:`geodata.store.models`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from geodata.store.models.base import (
    JOB_STATUSES,
    Base,
    JSONType,
    check_in,
    utcnow,
)
from geodata.store.types import UTCDateTime

__all__ = [
    "JobRun",
    "SiteLock",
]


class JobRun(Base):
    """One run of a job (nightly pipeline, ingest...): status, step statuses, traceback."""

    __tablename__ = "job_run"
    __table_args__ = (
        CheckConstraint(check_in("status", JOB_STATUSES), name="status"),
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
