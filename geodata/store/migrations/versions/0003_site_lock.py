"""Site lock (one pipeline run per site at a time) and the ``abandoned`` job-run status.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from geodata.store.types import UTCDateTime

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = "status IN ('running', 'succeeded', 'failed', 'skipped')"
NEW = "status IN ('running', 'succeeded', 'failed', 'skipped', 'abandoned')"


def upgrade() -> None:
    op.create_table(
        "site_lock",
        sa.Column("site_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("host", sa.String(length=200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=200), nullable=True),
        sa.Column("acquired_at", UTCDateTime(), nullable=False),
        sa.Column("heartbeat_at", UTCDateTime(), nullable=False),
        sa.Column("taken_over_from", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["site_id"], ["site.id"], name=op.f("fk_site_lock_site_id_site"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("site_id", name=op.f("pk_site_lock")),
    )
    with op.batch_alter_table("job_run") as batch:
        batch.drop_constraint(op.f("ck_job_run_status"), type_="check")
        batch.create_check_constraint(op.f("ck_job_run_status"), sa.text(NEW))


def downgrade() -> None:
    op.execute("UPDATE job_run SET status = 'failed' WHERE status = 'abandoned'")
    with op.batch_alter_table("job_run") as batch:
        batch.drop_constraint(op.f("ck_job_run_status"), type_="check")
        batch.create_check_constraint(op.f("ck_job_run_status"), sa.text(OLD))
    op.drop_table("site_lock")
