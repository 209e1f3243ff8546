"""Alembic environment of the CrackWatch store, configured in code (no alembic.ini).

:func:`geodata.store.migrate.upgrade` builds the ``Config`` and passes an open connection
in ``config.attributes["connection"]``. SQLite runs in batch mode (table copies) so that
later migrations can alter columns there too.
"""

from __future__ import annotations

from alembic import context

from geodata.store.migrate import include_object_for
from geodata.store.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=include_object_for(connection.dialect.name),
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - only via a hand-made alembic.ini
    from geodata.store.engine import connect

    engine = connect(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()
else:
    _run(connection)
