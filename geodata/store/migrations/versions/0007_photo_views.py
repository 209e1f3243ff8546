"""Photo views: registration of survey photos into views, crack tracks per view.

Revision ID: 0007
Revises: 0004
Create Date: 2026-11-30

New tables only (``photo_view``, ``photo_registration``, ``photo_view_track``); no existing
table is altered. Downgrade: the crack tracks followed in views (photo tracks) are removed
first -- their observations, their cracks' ``track_id`` and the ``track_id`` of alerts on
them -- so the schema of 0004 is left as 0004 code expects it (photo cracks untracked, open
alerts kept without a track), then the tables are dropped.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from geodata.store.types import GeometryType, UTCDateTime

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")
STATUSES = "status IN ('reference', 'registered', 'duplicate', 'refused')"


def upgrade() -> None:
    op.create_table(
        "photo_view",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("reference_survey_id", sa.Integer(), nullable=False),
        sa.Column("reference_image", sa.Text(), nullable=False),
        sa.Column("width_px", sa.Integer(), nullable=False),
        sa.Column("height_px", sa.Integer(), nullable=False),
        sa.Column("scale_m_per_px", sa.Float(), nullable=True),
        sa.Column("scale_source", sa.Text(), nullable=True),
        sa.Column("image_to_map", JSONType, nullable=True),
        sa.Column("position_error_m", sa.Float(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("scale_m_per_px IS NULL OR scale_m_per_px > 0",
                           name=op.f("ck_photo_view_scale_positive")),
        sa.ForeignKeyConstraint(["reference_survey_id"], ["survey.id"],
                                name=op.f("fk_photo_view_reference_survey_id_survey"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["site_id"], ["site.id"],
                                name=op.f("fk_photo_view_site_id_site"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_photo_view")),
        sa.UniqueConstraint("reference_survey_id", "reference_image",
                            name=op.f("uq_photo_view_reference_survey_id")),
    )
    op.create_index("ix_photo_view_site_id", "photo_view", ["site_id"])
    op.create_table(
        "photo_registration",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("survey_id", sa.Integer(), nullable=False),
        sa.Column("image_name", sa.Text(), nullable=False),
        sa.Column("view_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("homography", JSONType, nullable=True),
        sa.Column("matches", sa.Integer(), nullable=True),
        sa.Column("inliers", sa.Integer(), nullable=True),
        sa.Column("rms_px", sa.Float(), nullable=True),
        sa.Column("overlap", sa.Float(), nullable=True),
        sa.Column("gsd_m", sa.Float(), nullable=True),
        sa.Column("gsd_source", sa.Text(), nullable=True),
        sa.Column("quality", JSONType, nullable=False),
        sa.Column("candidates", JSONType, nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("footprint", GeometryType(), nullable=True),
        sa.Column("image_to_map", JSONType, nullable=True),
        sa.Column("position_error_m", sa.Float(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(STATUSES, name=op.f("ck_photo_registration_status")),
        sa.CheckConstraint("rms_px IS NULL OR rms_px >= 0",
                           name=op.f("ck_photo_registration_rms_nonnegative")),
        sa.ForeignKeyConstraint(["site_id"], ["site.id"],
                                name=op.f("fk_photo_registration_site_id_site"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["survey_id"], ["survey.id"],
                                name=op.f("fk_photo_registration_survey_id_survey"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["view_id"], ["photo_view.id"],
                                name=op.f("fk_photo_registration_view_id_photo_view"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_photo_registration")),
        sa.UniqueConstraint("survey_id", "image_name",
                            name=op.f("uq_photo_registration_survey_id")),
    )
    op.create_index("ix_photo_registration_site_id", "photo_registration", ["site_id"])
    op.create_index("ix_photo_registration_view_id", "photo_registration", ["view_id"])
    op.create_table(
        "photo_view_track",
        sa.Column("track_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("view_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["track_id"], ["crack_track.id"],
                                name=op.f("fk_photo_view_track_track_id_crack_track"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["view_id"], ["photo_view.id"],
                                name=op.f("fk_photo_view_track_view_id_photo_view"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("track_id", name=op.f("pk_photo_view_track")),
    )
    op.create_index("ix_photo_view_track_view_id", "photo_view_track", ["view_id"])


def downgrade() -> None:
    photo_tracks = "SELECT track_id FROM photo_view_track"
    # explicit, so it does not depend on foreign keys being enforced on this connection
    op.execute(f"UPDATE alert SET track_id = NULL WHERE track_id IN ({photo_tracks})")
    op.execute(f"UPDATE crack SET track_id = NULL WHERE track_id IN ({photo_tracks})")
    op.execute(f"UPDATE crack_track SET parent_track_id = NULL "
               f"WHERE parent_track_id IN ({photo_tracks})")
    op.execute(f"UPDATE crack_track SET merged_into_track_id = NULL "
               f"WHERE merged_into_track_id IN ({photo_tracks})")
    op.execute(f"DELETE FROM track_observation WHERE track_id IN ({photo_tracks})")
    op.execute(f"DELETE FROM crack_track WHERE id IN ({photo_tracks})")
    op.drop_index("ix_photo_view_track_view_id", table_name="photo_view_track")
    op.drop_table("photo_view_track")
    op.drop_index("ix_photo_registration_view_id", table_name="photo_registration")
    op.drop_index("ix_photo_registration_site_id", table_name="photo_registration")
    op.drop_table("photo_registration")
    op.drop_index("ix_photo_view_site_id", table_name="photo_view")
    op.drop_table("photo_view")
