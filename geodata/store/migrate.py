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
from sqlalchemy import Engine, func, inspect, select, table, text
from sqlalchemy.engine import URL

from geodata.errors import StoreError
from geodata.store.engine import WRITE_OPTION, connect

__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "current_revision",
    "DataLossError",
    "downgrade",
    "downgrade_losses",
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


class DataLossError(StoreError):
    """A downgrade would destroy stored records and was not allowed to."""


def _inventory(conn: Any) -> dict[str, tuple[int, list[str]]]:
    """``{table: (rows, columns)}`` of the CrackWatch tables visible on ``conn``."""
    insp = inspect(conn)
    out = {}
    for name in insp.get_table_names():
        if name in POSTGIS_TABLES or name == "alembic_version":
            continue
        rows = conn.execute(select(func.count()).select_from(table(name))).scalar_one()
        out[name] = (int(rows), [c["name"] for c in insp.get_columns(name)])
    return out


def downgrade_losses(bind: str | URL | Engine, revision: str) -> list[str]:
    """What taking the schema back to ``revision`` would destroy, one sentence per loss: rows
    of tables it drops, rows it deletes from tables it keeps (e.g. tracks of photo cracks),
    and filled values of columns it drops.

    Measured, not listed by hand: the downgrade is run inside a transaction that is then
    rolled back (SQLite and PostgreSQL both roll DDL back), counting rows before and after.

    Raises:
        StoreError: the database cannot be reached or the migration failed (with the cause).
    """
    engine = bind if isinstance(bind, Engine) else connect(bind)
    cfg = alembic_config(engine.url)
    try:
        with engine.execution_options(**{WRITE_OPTION: True}).connect() as conn:
            trans = conn.begin()
            try:
                before = _inventory(conn)
                cfg.attributes["connection"] = conn
                command.downgrade(cfg, revision)
                after = _inventory(conn)
            finally:
                trans.rollback()
            losses = []
            for name, (rows, cols) in before.items():
                if name not in after:
                    if rows:
                        losses.append(f"table {name}: all {rows} rows (the table is dropped)")
                    continue
                if after[name][0] < rows:
                    losses.append(f"table {name}: {rows - after[name][0]} of {rows} rows "
                                  f"deleted")
                for col in sorted(set(cols) - set(after[name][1])):
                    filled = conn.execute(select(func.count()).select_from(table(name)).where(
                        text(f'"{col}" IS NOT NULL'))).scalar_one()
                    if filled:
                        losses.append(f"column {name}.{col}: {filled} values (the column is "
                                      f"dropped)")
            conn.rollback()
    except Exception as exc:
        where = engine.url.render_as_string(hide_password=True)
        raise StoreError(f"cannot check a downgrade of the database {where} to {revision}: "
                         f"{exc}") from exc
    finally:
        if engine is not bind:
            engine.dispose()
    return losses


def downgrade(bind: str | URL | Engine, revision: str, *, allow_data_loss: bool = False) -> str:
    """Take the schema of the database at ``bind`` back to ``revision`` (e.g. ``"0003"``),
    for going back to an older CrackWatch.

    A downgrade that would destroy stored records (:func:`downgrade_losses`: rows of dropped
    tables, rows it deletes, filled dropped columns) is refused unless ``allow_data_loss``;
    export the sites first (``crackwatch export``). Returns the revision the database is at
    afterwards.

    Raises:
        DataLossError: records would be lost and ``allow_data_loss`` is False (the message
            lists them); nothing was changed.
        StoreError: the database cannot be reached or the migration failed (with the cause).
    """
    if not allow_data_loss:
        losses = downgrade_losses(bind, revision)
        if losses:
            raise DataLossError(
                f"a downgrade to {revision} would destroy: " + "; ".join(losses)
                + ". Export the sites first (`crackwatch export`), then repeat with --yes "
                  "(allow_data_loss=True); nothing was changed.")
    return _migrate(bind, revision, "downgrade")
