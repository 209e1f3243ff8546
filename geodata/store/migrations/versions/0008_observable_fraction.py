"""Observable ground per inference run (issue 25).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06

Adds the nullable column ``inference_run.observable_fraction``: the share of a survey's
valid pixels where a crack can be seen at all (not vegetation; :mod:`engine.observable`),
recorded on slope sites; NULL on runs without the mask and on every run before this
revision. Downgrade drops the column.

SQLite: both directions are plain ``ALTER TABLE`` (``recreate="never"``; DROP COLUMN needs
SQLite >= 3.35), as in 0004: recreating ``inference_run`` by a table copy would ``DROP TABLE
inference_run``, and with foreign keys on that deletes every crack (ON DELETE CASCADE).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("inference_run", recreate="never") as batch:
        batch.add_column(sa.Column("observable_fraction", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inference_run", recreate="never") as batch:
        batch.drop_column("observable_fraction")
