"""Drop APScheduler's legacy job table ``apscheduler_jobs`` (no pickles, no secrets in the store).

Revision ID: 0006
Revises: 0004
Create Date: 2026-11-29

Earlier versions of ``crackwatch scheduler`` kept their jobs in APScheduler 3's
``SQLAlchemyJobStore``: table ``apscheduler_jobs`` in the store's database, one pickled job
per row. Unpickling a planted row runs code when the scheduler starts, and every row held
the database URL with its password in clear. The scheduler now keeps its jobs in memory,
rebuilt from the ``site`` table (see ``jobs/scheduler.py``), so the table is dropped here if
it exists (a store that never ran the old scheduler has none). Nothing of CrackWatch's is
lost: the site table holds every schedule.

Downgrade: a no-op, on purpose. The table was never part of CrackWatch's schema (APScheduler
created it itself), and an older CrackWatch's scheduler creates it again, empty, when it
starts (``SQLAlchemyJobStore.start`` runs ``CREATE TABLE`` if it is missing) and refills it
from the site table on its first sync. Recreating it here would only put back the table
this migration exists to remove.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEGACY_TABLE = "apscheduler_jobs"


def upgrade() -> None:
    if LEGACY_TABLE in sa.inspect(op.get_bind()).get_table_names():
        op.drop_table(LEGACY_TABLE)  # its index on next_run_time goes with it


def downgrade() -> None:
    """Nothing to undo: see the module docstring."""
