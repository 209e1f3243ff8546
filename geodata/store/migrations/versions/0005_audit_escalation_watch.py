"""Audit trail, per-site alerting settings, watch alerts, escalation notices in the outbox.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30

* ``audit_event``: who did what to which alert/site/notification, when (UTC), with details.
* ``site_alerting``: a site's expected survey interval (overdue alarm) and escalation
  settings per alert level.
* ``alert.watch``: an unconfirmed slope growth exceedance (no notification until confirmed).
* ``notification.sequence`` (0: the announcement of a level; 1, 2...: escalation notices of
  an unacknowledged alert) and ``notification.recipients`` (the second-level list); the
  unique key becomes ``(alert_id, channel, level, sequence)``.

SQLite: ``alert`` is altered in place (``recreate="never"``: a table copy would ``DROP
TABLE alert`` and with foreign keys on cascade-delete every notification). ``notification``
is copied (SQLite cannot change a unique constraint in place); no table references it.

Downgrade: escalation notices (``sequence`` > 0) are deleted (0004 has no place for them),
open watch alerts are resolved with a note saying why (0004 has no watch state: they would
otherwise show as alerts nobody was told about), and the audit trail and alerting settings
are dropped.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from geodata.store.types import UTCDateTime

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
OLD_UNIQUE = "uq_notification_alert_id_channel_level"
NEW_UNIQUE = "uq_notification_alert_id_channel_level_sequence"


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=50), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=True),
        sa.Column("alert_id", sa.Integer(), nullable=True),
        sa.Column("notification_id", sa.Integer(), nullable=True),
        sa.Column("details", JSONType, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_event")),
    )
    op.create_index("ix_audit_event_at", "audit_event", ["at"])
    op.create_index("ix_audit_event_site_id_at", "audit_event", ["site_id", "at"])
    op.create_index("ix_audit_event_alert_id", "audit_event", ["alert_id"])

    op.create_table(
        "site_alerting",
        sa.Column("site_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("expected_interval_s", sa.Float(), nullable=True),
        sa.Column("overdue_grace_s", sa.Float(), nullable=True),
        sa.Column("overdue_enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("overdue_level", sa.String(length=10), server_default="yellow",
                  nullable=False),
        sa.Column("escalation", JSONType, nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=True),
        sa.CheckConstraint("overdue_level IN ('yellow', 'orange', 'red')",
                           name=op.f("ck_site_alerting_overdue_level")),
        sa.CheckConstraint("expected_interval_s IS NULL OR expected_interval_s > 0",
                           name=op.f("ck_site_alerting_expected_interval_positive")),
        sa.CheckConstraint("overdue_grace_s IS NULL OR overdue_grace_s >= 0",
                           name=op.f("ck_site_alerting_overdue_grace_nonnegative")),
        sa.ForeignKeyConstraint(["site_id"], ["site.id"],
                                name=op.f("fk_site_alerting_site_id_site"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("site_id", name=op.f("pk_site_alerting")),
    )

    with op.batch_alter_table("alert", recreate="never") as batch:
        batch.add_column(sa.Column("watch", sa.Boolean(), server_default=sa.false(),
                                   nullable=False))

    with op.batch_alter_table("notification") as batch:
        batch.add_column(sa.Column("sequence", sa.Integer(), server_default="0",
                                   nullable=False))
        batch.add_column(sa.Column("recipients", JSONType, nullable=True))
        batch.drop_constraint(OLD_UNIQUE, type_="unique")
        batch.create_unique_constraint(NEW_UNIQUE, ["alert_id", "channel", "level", "sequence"])


def downgrade() -> None:
    from datetime import UTC, datetime

    notification = sa.table("notification", sa.column("sequence", sa.Integer))
    op.execute(notification.delete().where(notification.c.sequence > 0))
    with op.batch_alter_table("notification") as batch:
        batch.drop_constraint(NEW_UNIQUE, type_="unique")
        batch.create_unique_constraint(OLD_UNIQUE, ["alert_id", "channel", "level"])
        batch.drop_column("recipients")
        batch.drop_column("sequence")

    alert = sa.table("alert", sa.column("watch", sa.Boolean),
                     sa.column("resolved_at", UTCDateTime()),
                     sa.column("resolve_note", sa.Text))
    op.execute(alert.update()
               .where(alert.c.watch == sa.true(), alert.c.resolved_at.is_(None))
               .values(resolved_at=datetime.now(UTC),
                       resolve_note="resolved by the downgrade to schema 0004: an unconfirmed "
                                    "(watch) exceedance that nobody was notified about; 0004 "
                                    "has no watch state (crackwatch)"))
    with op.batch_alter_table("alert", recreate="never") as batch:
        batch.drop_column("watch")

    op.drop_table("site_alerting")
    op.drop_index("ix_audit_event_alert_id", table_name="audit_event")
    op.drop_index("ix_audit_event_site_id_at", table_name="audit_event")
    op.drop_index("ix_audit_event_at", table_name="audit_event")
    op.drop_table("audit_event")
