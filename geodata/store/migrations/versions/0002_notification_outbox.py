"""Notifications outbox: one row per (alert, channel, level) to deliver.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

Rows are written in the alert's own transaction and delivered after the commit
(:mod:`jobs.outbox`). The upgrade carries over the delivery log of existing alerts
(``alert.notifications``): per open alert, channel and the alert's current level, the
latest entry becomes a ``delivered`` or ``failed`` row, so a notification that failed before
the upgrade is still sent by the next run.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from geodata.store.types import UTCDateTime

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "notification",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=100), nullable=False),
        sa.Column("level", sa.String(length=10), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("payload", JSONType, nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("claimed_by", sa.String(length=200), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'sending', 'delivered', 'failed')",
            name=op.f("ck_notification_status"),
        ),
        sa.ForeignKeyConstraint(["alert_id"], ["alert.id"],
                                name=op.f("fk_notification_alert_id_alert"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["site_id"], ["site.id"],
                                name=op.f("fk_notification_site_id_site"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification")),
        sa.UniqueConstraint("alert_id", "channel", "level",
                            name="uq_notification_alert_id_channel_level"),
    )
    op.create_index("ix_notification_status_next_attempt_at", "notification",
                    ["status", "next_attempt_at"])
    _carry_over_delivery_log()


def _carry_over_delivery_log() -> None:
    from datetime import UTC, datetime

    bind = op.get_bind()
    alert = sa.table("alert", sa.column("id", sa.Integer), sa.column("site_id", sa.Integer),
                     sa.column("level", sa.String), sa.column("rule", sa.String),
                     sa.column("track_id", sa.Integer), sa.column("message", sa.Text),
                     sa.column("measured_value", sa.Float), sa.column("threshold", sa.Float),
                     sa.column("resolved_at", UTCDateTime()),
                     sa.column("notifications", JSONType), sa.column("details", JSONType))
    site = sa.table("site", sa.column("id", sa.Integer), sa.column("name", sa.String))
    notification = sa.table(
        "notification", sa.column("alert_id", sa.Integer), sa.column("site_id", sa.Integer),
        sa.column("channel", sa.String), sa.column("level", sa.String),
        sa.column("action", sa.String), sa.column("payload", JSONType),
        sa.column("status", sa.String), sa.column("attempts", sa.Integer),
        sa.column("last_error", sa.Text), sa.column("created_at", UTCDateTime()),
        sa.column("delivered_at", UTCDateTime()))
    now = datetime.now(UTC)
    rows = []
    for a in bind.execute(
            sa.select(alert, site.c.name.label("site_name"))
            .join(site, site.c.id == alert.c.site_id)
            .where(alert.c.resolved_at.is_(None))).all():
        site_name = a.site_name
        latest: dict[str, dict] = {}
        for entry in a.notifications or []:
            if entry.get("level") == a.level and entry.get("notifier"):
                latest[entry["notifier"]] = entry
        details = a.details or {}
        payload = {"alert_id": a.id, "site": site_name, "level": a.level, "rule": a.rule,
                   "track": a.track_id, "measured_value": a.measured_value,
                   "threshold": a.threshold, "unit": details.get("unit", ""),
                   "message": a.message}
        for channel, entry in latest.items():
            ok = bool(entry.get("ok"))
            rows.append({"alert_id": a.id, "site_id": a.site_id, "channel": channel,
                         "level": a.level, "action": "raise", "payload": payload,
                         "status": "delivered" if ok else "failed",
                         "attempts": int(entry.get("attempts") or 1),
                         "last_error": entry.get("error"), "created_at": now,
                         "delivered_at": now if ok else None})
    if rows:
        op.bulk_insert(notification, rows)


def downgrade() -> None:
    _carry_back_undelivered()
    op.drop_index("ix_notification_status_next_attempt_at", table_name="notification")
    op.drop_table("notification")


def _carry_back_undelivered() -> None:
    """Before the outbox goes: every row not delivered whose channel's latest entry in the
    alert's delivery log (for that level) is not a failure gets a failed entry there, so the
    0001 code (and a later upgrade) still sends it. Delivered rows are in the log already."""
    bind = op.get_bind()
    alert = sa.table("alert", sa.column("id", sa.Integer),
                     sa.column("notifications", JSONType))
    notification = sa.table(
        "notification", sa.column("alert_id", sa.Integer), sa.column("channel", sa.String),
        sa.column("level", sa.String), sa.column("status", sa.String),
        sa.column("attempts", sa.Integer), sa.column("last_error", sa.Text))
    undelivered: dict[int, list] = {}
    for n in bind.execute(sa.select(notification).where(notification.c.status != "delivered")
                          .order_by(notification.c.alert_id)).all():
        undelivered.setdefault(n.alert_id, []).append(n)
    for alert_id, rows in undelivered.items():
        log = list(bind.execute(sa.select(alert.c.notifications)
                                .where(alert.c.id == alert_id)).scalar() or [])
        changed = False
        for n in rows:
            latest = [e for e in log if e.get("notifier") == n.channel
                      and e.get("level") == n.level]
            if latest and not latest[-1].get("ok"):
                continue  # its failure is in the log already
            log.append({"notifier": n.channel, "ok": False, "level": n.level,
                        "attempts": int(n.attempts or 0),
                        "error": n.last_error or f"{n.status}: not delivered before the "
                                                 f"downgrade"})
            changed = True
        if changed:
            bind.execute(sa.update(alert).where(alert.c.id == alert_id)
                         .values(notifications=log))
