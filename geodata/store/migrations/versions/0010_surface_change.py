"""Site baselines and the unsupervised surface-change layer (issue 29).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07

New tables only (``site_baseline``, ``surface_change``; :mod:`geodata.store.models.change`);
no existing table is altered. Downgrade drops them (the feature files and rasters under the
data folder stay where they are).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from geodata.store.types import GeometryType, UTCDateTime

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "site_baseline",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("survey_ids", JSONType, nullable=False),
        sa.Column("features_path", sa.Text(), nullable=False),
        sa.Column("features_sha256", sa.Text(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("card", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["site.id"],
                                name=op.f("fk_site_baseline_site_id_site"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_site_baseline")),
    )
    op.create_index("ix_site_baseline_site_id", "site_baseline", ["site_id"])
    op.create_table(
        "surface_change",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("survey_id", sa.Integer(), nullable=False),
        sa.Column("baseline_id", sa.Integer(), nullable=False),
        sa.Column("raster_path", sa.Text(), nullable=True),
        sa.Column("geometry", GeometryType(), nullable=True),
        sa.Column("compared_m2", sa.Float(), nullable=False),
        sa.Column("changed_m2", sa.Float(), nullable=False),
        sa.Column("details", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["survey_id"], ["survey.id"],
                                name=op.f("fk_surface_change_survey_id_survey"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["baseline_id"], ["site_baseline.id"],
                                name=op.f("fk_surface_change_baseline_id_site_baseline"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_surface_change")),
        sa.UniqueConstraint("survey_id", "baseline_id",
                            name=op.f("uq_surface_change_survey_id")),
    )
    op.create_index("ix_surface_change_survey_id", "surface_change", ["survey_id"])


def downgrade() -> None:
    op.drop_index("ix_surface_change_survey_id", table_name="surface_change")
    op.drop_table("surface_change")
    op.drop_index("ix_site_baseline_site_id", table_name="site_baseline")
    op.drop_table("site_baseline")
