"""Not-observable ground per inference run (issue 25).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06

Adds the nullable geometry column ``inference_run.unobservable``: where the run could not see
the ground (vegetation, :mod:`engine.observable`) as one (Multi)Polygon in the site CRS, drawn
as the "not observable" layer of the survey map and exported with the surveys. NULL on runs
without the vegetation mask (structures, photo sets) and on every run before this revision.
Downgrade drops the column.

SQLite: plain ``ALTER TABLE`` both ways (``recreate="never"``), as 0008: a table copy of
``inference_run`` would cascade-delete every crack.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from geodata.store.types import GeometryType

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("inference_run", recreate="never") as batch:
        batch.add_column(sa.Column("unobservable", GeometryType(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inference_run", recreate="never") as batch:
        batch.drop_column("unobservable")
