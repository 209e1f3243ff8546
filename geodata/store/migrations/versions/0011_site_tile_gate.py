"""A site's own tile-gate switch (issue 26).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07

Adds the nullable column ``site.tile_gate``: ``true`` / ``false`` when the site's owner turned
the crack / no-crack tile gate on or off for its surveys (``crackwatch site set-tile-gate``);
NULL (every site before this revision) follows the rule of the site's profile and model
(``engine.crack_rules.rules_for``). Downgrade drops the column.

SQLite: both directions are plain ``ALTER TABLE`` (``recreate="never"``), as in 0008:
recreating ``site`` by a table copy would ``DROP TABLE site``, and with foreign keys on that
deletes every survey (ON DELETE CASCADE).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("site", recreate="never") as batch:
        batch.add_column(sa.Column("tile_gate", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("site", recreate="never") as batch:
        batch.drop_column("tile_gate")
