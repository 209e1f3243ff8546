"""Create or upgrade the store's schema with the Alembic migrations shipped in the package.

No ``alembic.ini`` is needed: :func:`alembic_config` builds the configuration in code, with
``script_location`` pointing at ``geodata/store/migrations``. Developers make a new revision
with ``alembic`` itself, e.g.::

    python3 -c "from geodata.store.migrate import alembic_config; from alembic import command;
    command.revision(alembic_config('sqlite:////tmp/x.db'), 'add foo', autogenerate=True)"
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.engine import URL

from geodata.errors import StoreError
from geodata.store.engine import WRITE_OPTION, connect

__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "current_revision",
    "downgrade",
    "head_revision",
    "include_object_for",
    "upgrade",
]

#: Folder of the Alembic environment and its ``versions/``.
MIGRATIONS_DIR = Path(__file__).with_name("migrations")


#: Tables that PostGIS owns; autogenerate must neither drop nor create them.
POSTGIS_TABLES = frozenset({"spatial_ref_sys", "geometry_columns", "geography_columns",
                            "raster_columns", "raster_overviews"})


def include_object_for(dialect_name: str) -> Callable[..., bool]:
    """An Alembic autogenerate ``include_object`` filter for a database of ``dialect_name``.

    It skips PostGIS' own tables, and indexes the models create on another dialect only
    (``Index.ddl_if(dialect=...)``, e.g. the PostgreSQL GiST indexes on SQLite).
    """

    def include_object(obj: Any, name: str | None, type_: str, reflected: bool,
                       compare_to: Any) -> bool:
        if type_ == "table" and name in POSTGIS_TABLES:
            return False
        ddl_if = getattr(obj, "_ddl_if", None)
        if type_ == "index" and ddl_if is not None and ddl_if.dialect not in (None,
                                                                            dialect_name):
            return False
        return True

    return include_object


def alembic_config(url: str | URL | None = None) -> Config:
    """An Alembic ``Config`` for the shipped migrations (``sqlalchemy.url`` = ``url``)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        rendered = url.render_as_string(hide_password=False) if isinstance(url, URL) else url
        cfg.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    """The newest revision id of the shipped migrations."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(bind: str | URL | Engine) -> str | None:
    """The revision the database at ``bind`` is at (``None``: no CrackWatch schema)."""
    engine = bind if isinstance(bind, Engine) else connect(bind)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        if engine is not bind:
            engine.dispose()


def _migrate(bind: str | URL | Engine, revision: str, direction: str) -> str:
    engine = bind if isinstance(bind, Engine) else connect(bind)
    cfg = alembic_config(engine.url)
    try:
        with engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
            cfg.attributes["connection"] = conn
            getattr(command, direction)(cfg, revision)
        with engine.connect() as conn:
            now = MigrationContext.configure(conn).get_current_revision()
    except Exception as exc:
        where = engine.url.render_as_string(hide_password=True)
        raise StoreError(f"cannot {direction} the database {where} to {revision}: "
                         f"{exc}") from exc
    finally:
        if engine is not bind:
            engine.dispose()
    return now or ""


def upgrade(bind: str | URL | Engine, revision: str = "head") -> str:
    """Create or upgrade the schema of the database at ``bind`` to ``revision``.

    On PostgreSQL the first migration runs ``CREATE EXTENSION IF NOT EXISTS postgis`` (the
    role needs the right to create it, or a DBA creates it first). Idempotent.

    Returns:
        The revision the database is at afterwards.

    Raises:
        StoreError: the database cannot be reached or the migration failed (with the cause).
    """
    return _migrate(bind, revision, "upgrade")


def downgrade(bind: str | URL | Engine, revision: str) -> str:
    """Take the schema of the database at ``bind`` back to ``revision`` (e.g. ``"0003"``).

    For going back to an older CrackWatch; data in the dropped columns and tables is lost.
    Returns the revision the database is at afterwards.

    Raises:
        StoreError: the database cannot be reached or the migration failed (with the cause).
    """
    return _migrate(bind, revision, "downgrade")
