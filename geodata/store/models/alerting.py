"""Tables of alerts, their notifications (the outbox), the audit trail and per-site alert
settings (see :mod:`geodata.store.models`)."""

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
    false,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from geodata.store.models.base import (
    ALERT_LEVELS,
    NOTIFICATION_STATUSES,
    Base,
    JSONType,
    check_in,
    utcnow,
)
from geodata.store.types import UTCDateTime

__all__ = [
    "Alert",
    "AuditEvent",
    "Notification",
    "SiteAlerting",
]


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
        CheckConstraint(check_in("level", ALERT_LEVELS), name="level"),
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
        CheckConstraint(check_in("status", NOTIFICATION_STATUSES), name="status"),
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
        CheckConstraint(check_in("overdue_level", ALERT_LEVELS[1:]), name="overdue_level"),
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
