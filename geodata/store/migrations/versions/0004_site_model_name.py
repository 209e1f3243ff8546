"""The model a site uses: ``site.model_name`` (null: the model of the site's profile).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30

SQLite: both directions are plain ``ALTER TABLE`` (``recreate="never"``; DROP COLUMN needs
SQLite >= 3.35). Recreating ``site`` by a table copy would ``DROP TABLE site``, and with
foreign keys on that deletes every survey, run and crack of every site (ON DELETE CASCADE).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("site", recreate="never") as batch:
        batch.add_column(sa.Column("model_name", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("site", recreate="never") as batch:
        batch.drop_column("model_name")
