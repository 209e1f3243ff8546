"""Initial schema: sites, surveys, inference runs, cracks, tracks, alerts, job runs.

Revision ID: 0001
Revises:
Create Date: 2026-11-22

On PostgreSQL this enables PostGIS and adds GiST indexes on the geometry columns; on SQLite
geometries are EWKB blobs without a spatial index (see geodata.store.types).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from geodata.store.types import GeometryType, UTCDateTime

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    is_pg = op.get_bind().dialect.name == "postgresql"
    if is_pg:
        op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.create_table(
        "site",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("profile", sa.String(length=20), nullable=False),
        sa.Column("crs_epsg", sa.Integer(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("inbox", sa.Text(), nullable=True),
        sa.Column("schedule", sa.String(length=100), nullable=True),
        sa.Column("thresholds", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("profile IN ('slope', 'structure')", name=op.f("ck_site_profile")),
        sa.CheckConstraint("crs_epsg > 0", name=op.f("ck_site_crs_epsg_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_site")),
        sa.UniqueConstraint("name", name=op.f("uq_site_name")),
    )
    op.create_table(
        "survey",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("acquired_at", UTCDateTime(), nullable=False),
        sa.Column("source_type", sa.String(length=20), nullable=False),
        sa.Column("source_path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("pixel_size_m", sa.Float(), nullable=True),
        sa.Column("footprint", GeometryType(), nullable=True),
        sa.Column("registration_error_m", sa.Float(), nullable=False),
        sa.Column("metadata", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "source_type IN ('orthomosaic', 'photos', 'photo', 'other')",
            name=op.f("ck_survey_source_type"),
        ),
        sa.CheckConstraint(
            "pixel_size_m IS NULL OR pixel_size_m > 0", name=op.f("ck_survey_pixel_size_positive")
        ),
        sa.CheckConstraint(
            "registration_error_m >= 0", name=op.f("ck_survey_registration_error_nonnegative")
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["site.id"], name=op.f("fk_survey_site_id_site"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey")),
        sa.UniqueConstraint("site_id", "sha256", name="uq_survey_site_id_sha256"),
    )
    if is_pg:
        op.create_index(
            "ix_survey_footprint_gist", "survey", ["footprint"], postgresql_using="gist"
        )
    op.create_index("ix_survey_site_id_acquired_at", "survey", ["site_id", "acquired_at"])

    op.create_table(
        "crack_track",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("first_survey_id", sa.Integer(), nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("last_survey_id", sa.Integer(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("parent_track_id", sa.Integer(), nullable=True),
        sa.Column("merged_into_track_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "status IN ('active', 'vanished', 'merged')", name=op.f("ck_crack_track_status")
        ),
        sa.ForeignKeyConstraint(
            ["first_survey_id"],
            ["survey.id"],
            name=op.f("fk_crack_track_first_survey_id_survey"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["last_survey_id"],
            ["survey.id"],
            name=op.f("fk_crack_track_last_survey_id_survey"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["merged_into_track_id"],
            ["crack_track.id"],
            name=op.f("fk_crack_track_merged_into_track_id_crack_track"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["parent_track_id"],
            ["crack_track.id"],
            name=op.f("fk_crack_track_parent_track_id_crack_track"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["site.id"], name=op.f("fk_crack_track_site_id_site"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crack_track")),
    )
    op.create_index("ix_crack_track_site_id_status", "crack_track", ["site_id", "status"])

    op.create_table(
        "inference_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("survey_id", sa.Integer(), nullable=False),
        sa.Column("model_name", sa.String(length=200), nullable=False),
        sa.Column("model_version", sa.String(length=100), nullable=True),
        sa.Column("weights_sha256", sa.String(length=64), nullable=True),
        sa.Column("tiling", JSONType, nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("megapixels_per_s", sa.Float(), nullable=True),
        sa.Column("crack_count", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'succeeded', 'failed', 'superseded')",
            name=op.f("ck_inference_run_status"),
        ),
        sa.ForeignKeyConstraint(
            ["survey_id"],
            ["survey.id"],
            name=op.f("fk_inference_run_survey_id_survey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inference_run")),
    )
    op.create_index("ix_inference_run_survey_id_status", "inference_run", ["survey_id", "status"])

    op.create_table(
        "job_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job", sa.String(length=100), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=True),
        sa.Column("survey_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("steps", JSONType, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'succeeded', 'failed', 'skipped')",
            name=op.f("ck_job_run_status"),
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["site.id"], name=op.f("fk_job_run_site_id_site"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["survey_id"],
            ["survey.id"],
            name=op.f("fk_job_run_survey_id_survey"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_run")),
    )
    op.create_index("ix_job_run_job_started_at", "job_run", ["job", "started_at"])

    op.create_table(
        "survey_summary",
        sa.Column("survey_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("acquired_at", UTCDateTime(), nullable=False),
        sa.Column("previous_survey_id", sa.Integer(), nullable=True),
        sa.Column("crack_count", sa.Integer(), nullable=False),
        sa.Column("total_length_m", sa.Float(), nullable=False),
        sa.Column("total_area_m2", sa.Float(), nullable=False),
        sa.Column("max_width_mm", sa.Float(), nullable=True),
        sa.Column("new_count", sa.Integer(), nullable=False),
        sa.Column("continued_count", sa.Integer(), nullable=False),
        sa.Column("split_count", sa.Integer(), nullable=False),
        sa.Column("merged_count", sa.Integer(), nullable=False),
        sa.Column("vanished_count", sa.Integer(), nullable=False),
        sa.Column("tolerance_m", sa.Float(), nullable=True),
        sa.Column("computed_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["previous_survey_id"],
            ["survey.id"],
            name=op.f("fk_survey_summary_previous_survey_id_survey"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["site.id"],
            name=op.f("fk_survey_summary_site_id_site"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["survey_id"],
            ["survey.id"],
            name=op.f("fk_survey_summary_survey_id_survey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("survey_id", name=op.f("pk_survey_summary")),
    )
    op.create_index("ix_survey_summary_site_id", "survey_summary", ["site_id"])

    op.create_table(
        "alert",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("track_id", sa.Integer(), nullable=True),
        sa.Column("survey_id", sa.Integer(), nullable=True),
        sa.Column("level", sa.String(length=10), nullable=False),
        sa.Column("rule", sa.String(length=100), nullable=False),
        sa.Column("measured_value", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("raised_at", UTCDateTime(), nullable=False),
        sa.Column("acknowledged_at", UTCDateTime(), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=200), nullable=True),
        sa.Column("acknowledge_note", sa.Text(), nullable=True),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.Column("resolve_note", sa.Text(), nullable=True),
        sa.Column("notifications", JSONType, nullable=False),
        sa.Column("details", JSONType, nullable=False),
        sa.CheckConstraint(
            "level IN ('green', 'yellow', 'orange', 'red')", name=op.f("ck_alert_level")
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["site.id"], name=op.f("fk_alert_site_id_site"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["survey_id"],
            ["survey.id"],
            name=op.f("fk_alert_survey_id_survey"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["track_id"],
            ["crack_track.id"],
            name=op.f("fk_alert_track_id_crack_track"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert")),
    )
    op.create_index("ix_alert_site_id_raised_at", "alert", ["site_id", "raised_at"])

    op.create_table(
        "crack",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("survey_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("track_id", sa.Integer(), nullable=True),
        sa.Column("crack_index", sa.Integer(), nullable=True),
        sa.Column("image_name", sa.Text(), nullable=True),
        sa.Column("coordinate_space", sa.String(length=10), nullable=False),
        sa.Column("polygon", GeometryType(), nullable=False),
        sa.Column("skeleton", GeometryType(), nullable=True),
        sa.Column("length_m", sa.Float(), nullable=False),
        sa.Column("mean_width_mm", sa.Float(), nullable=False),
        sa.Column("max_width_mm", sa.Float(), nullable=False),
        sa.Column("area_m2", sa.Float(), nullable=False),
        sa.Column("mean_probability", sa.Float(), nullable=True),
        sa.Column("max_probability", sa.Float(), nullable=True),
        sa.Column("severity", sa.String(length=20), nullable=True),
        sa.CheckConstraint(
            "coordinate_space IN ('map', 'image')", name=op.f("ck_crack_coordinate_space")
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["inference_run.id"],
            name=op.f("fk_crack_run_id_inference_run"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["site.id"], name=op.f("fk_crack_site_id_site"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["survey_id"], ["survey.id"], name=op.f("fk_crack_survey_id_survey"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["track_id"],
            ["crack_track.id"],
            name=op.f("fk_crack_track_id_crack_track"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crack")),
    )
    if is_pg:
        op.create_index("ix_crack_polygon_gist", "crack", ["polygon"], postgresql_using="gist")
    op.create_index("ix_crack_run_id", "crack", ["run_id"])
    op.create_index("ix_crack_site_id", "crack", ["site_id"])
    op.create_index("ix_crack_survey_id", "crack", ["survey_id"])
    op.create_index("ix_crack_track_id", "crack", ["track_id"])

    op.create_table(
        "track_observation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("track_id", sa.Integer(), nullable=False),
        sa.Column("survey_id", sa.Integer(), nullable=False),
        sa.Column("crack_id", sa.Integer(), nullable=True),
        sa.Column("event", sa.String(length=20), nullable=False),
        sa.Column("acquired_at", UTCDateTime(), nullable=False),
        sa.Column("length_m", sa.Float(), nullable=True),
        sa.Column("mean_width_mm", sa.Float(), nullable=True),
        sa.Column("max_width_mm", sa.Float(), nullable=True),
        sa.Column("area_m2", sa.Float(), nullable=True),
        sa.Column("days_since_previous", sa.Float(), nullable=True),
        sa.Column("delta_length_m", sa.Float(), nullable=True),
        sa.Column("delta_max_width_mm", sa.Float(), nullable=True),
        sa.Column("delta_area_m2", sa.Float(), nullable=True),
        sa.Column("length_rate_m_per_day", sa.Float(), nullable=True),
        sa.Column("max_width_rate_mm_per_day", sa.Float(), nullable=True),
        sa.Column("area_rate_m2_per_day", sa.Float(), nullable=True),
        sa.CheckConstraint(
            "event IN ('new', 'continued', 'split', 'merged', 'vanished')",
            name=op.f("ck_track_observation_event"),
        ),
        sa.ForeignKeyConstraint(
            ["crack_id"],
            ["crack.id"],
            name=op.f("fk_track_observation_crack_id_crack"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["survey_id"],
            ["survey.id"],
            name=op.f("fk_track_observation_survey_id_survey"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["track_id"],
            ["crack_track.id"],
            name=op.f("fk_track_observation_track_id_crack_track"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_track_observation")),
        sa.UniqueConstraint("track_id", "survey_id", name="uq_track_observation_track_survey"),
    )
    op.create_index("ix_track_observation_survey_id", "track_observation", ["survey_id"])


def downgrade() -> None:
    op.drop_table("track_observation")
    op.drop_table("crack")
    op.drop_table("alert")
    op.drop_table("survey_summary")
    op.drop_table("job_run")
    op.drop_table("inference_run")
    op.drop_table("crack_track")
    op.drop_table("survey")
    op.drop_table("site")
