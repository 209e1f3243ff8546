"""Engines and transactions for the crack store (SQLite file or PostgreSQL + PostGIS).

:func:`connect` takes an explicit URL (reading settings/environment is the job of
``jobs.settings``):

* ``sqlite:///path/to/crackwatch.db``: the file's folder is created. Every connection runs
  ``PRAGMA journal_mode=WAL`` (readers never block the writer and the writer never blocks
  readers, so the dashboard reads while the nightly job writes), ``PRAGMA
  busy_timeout`` (a second writer waits instead of failing at once), ``PRAGMA
  foreign_keys=ON`` and ``PRAGMA synchronous=NORMAL`` (safe with WAL). SQLAlchemy emits
  ``BEGIN`` itself (the sqlite3 module's legacy transaction handling is switched off, as the
  SQLAlchemy SQLite docs recommend) so SAVEPOINTs work; write transactions opened by the
  store API use ``BEGIN IMMEDIATE`` so they queue for the write lock up front instead of
  failing when upgrading a read snapshot that another writer has moved past.
* ``postgresql+psycopg://user@host:5432/db`` (``postgresql://`` is taken to mean the
  psycopg 3 driver). The database needs the PostGIS extension; :func:`geodata.store.upgrade`
  creates it (``CREATE EXTENSION IF NOT EXISTS postgis``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.orm import Session

from geodata.errors import StoreError

__all__ = ["connect", "normalise_url", "session_scope", "sqlite_url"]

#: Execution option that makes the SQLite ``begin`` hook emit ``BEGIN IMMEDIATE``.
WRITE_OPTION = "crackwatch_write"


def sqlite_url(path: str | Path) -> str:
    """The SQLAlchemy URL of the SQLite file ``path`` (made absolute)."""
    return f"sqlite:///{Path(path).expanduser().resolve()}"


def normalise_url(url: str | URL) -> URL:
    """Parse ``url``; ``postgresql://`` becomes ``postgresql+psycopg://`` (psycopg 3).

    Raises:
        StoreError: the URL cannot be parsed or names an unsupported backend.
    """
    try:
        u = make_url(url)
    except (ArgumentError, ValueError) as exc:  # ValueError: a port that is not a number
        import re

        shown = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", str(url))  # never print a password
        raise StoreError(
            f"cannot parse database URL {shown!r}: {exc}; expected e.g. "
            f"sqlite:////var/lib/crackwatch/crackwatch.db or "
            f"postgresql+psycopg://user@host:5432/crackwatch"
        ) from exc
    if u.get_backend_name() == "postgresql" and u.drivername == "postgresql":
        u = u.set(drivername="postgresql+psycopg")
    if u.get_backend_name() not in ("sqlite", "postgresql"):
        raise StoreError(
            f"database URL {u.render_as_string(hide_password=True)} uses backend "
            f"{u.get_backend_name()!r}; CrackWatch supports sqlite and postgresql (PostGIS)"
        )
    return u


def connect(
    url: str | URL, *, busy_timeout_ms: int = 30_000, echo: bool = False,
    must_exist: bool = False, read_only: bool = False,
) -> Engine:
    """An SQLAlchemy engine for the store at ``url`` (does not create the schema).

    Args:
        url: ``sqlite:///ABSOLUTE/PATH.db`` or ``postgresql+psycopg://...``.
        busy_timeout_ms: SQLite only: how long a writer waits for another writer's lock.
        echo: log SQL statements.
        must_exist: SQLite only: raise instead of creating a missing database file (for
            read-only commands, so a typo does not leave an empty file behind).
        read_only: SQLite only: open the file read-only (``mode=ro``, implies
            ``must_exist``), and ``immutable`` when its folder is not writable and no WAL with
            commits lies beside it (a read-only mount, where SQLite could not create the WAL
            index; with a WAL there, a plain read-only open reads it; an immutable open does not
            see writes still in an uncheckpointed ``-wal`` file); no PRAGMA that writes.

    Returns:
        An ``Engine``; run :func:`geodata.store.upgrade` once to create/upgrade the schema.

    Raises:
        StoreError: bad URL, unsupported backend, in-memory SQLite (each connection would
            see its own empty database), a missing file with ``must_exist``, or the
            PostgreSQL driver missing.
    """
    u = normalise_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database in (None, "", ":memory:"):
            raise StoreError(
                "in-memory SQLite is not supported (every connection would get its own empty "
                "database); give a file, e.g. sqlite:////tmp/crackwatch.db"
            )
        path = Path(u.database).expanduser()
        if (must_exist or read_only) and not path.exists():
            raise StoreError(
                f"there is no store at {path}; check the URL or create it with "
                f"`crackwatch db upgrade --url {u.render_as_string(hide_password=True)}`"
            )
        if read_only:
            query = {"mode": "ro", "uri": "true"}
            wal = path.with_name(path.name + "-wal")
            if not _folder_writable(path.parent) and not (wal.exists() and wal.stat().st_size):
                # immutable would not read a WAL's commits: with a WAL left beside the file
                # (its writer still open, or killed), a plain read-only open reads them
                query["immutable"] = "1"
            engine = create_engine(u.set(database=f"file:{path.resolve()}", query=query),
                                   echo=echo)
            _install_sqlite_hooks(engine, busy_timeout_ms, read_only=True)
            return engine
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            # owner-only (0600): the store holds sites, alerts and the audit trail; SQLite
            # gives its -wal and -shm files the database file's permissions
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        engine = create_engine(u, echo=echo)
        _install_sqlite_hooks(engine, busy_timeout_ms)
        return engine
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        raise StoreError(
            'the PostgreSQL driver psycopg 3 is not installed: pip install "psycopg[binary]"'
        ) from exc
    return create_engine(u, echo=echo, pool_pre_ping=True)


def _folder_writable(folder: Path) -> bool:
    """Whether this process may create files in ``folder`` (False on a read-only mount)."""
    return os.access(folder, os.W_OK)


def _install_sqlite_hooks(engine: Engine, busy_timeout_ms: int, read_only: bool = False) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, connection_record) -> None:
        # take over transaction control from the sqlite3 module (SQLAlchemy's recipe)
        dbapi_connection.isolation_level = None
        cur = dbapi_connection.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        if not read_only:
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


@contextmanager
def session_scope(bind: Engine | Session, *, write: bool = False) -> Iterator[Session]:
    """One transaction: commit on success, roll back everything on any error.

    ``bind`` an ``Engine``: a new ``Session`` (``expire_on_commit=False``, so returned
    objects stay readable) in its own transaction. ``bind`` a ``Session``: a SAVEPOINT inside
    the caller's transaction; on error only the work done here is rolled back and the caller
    decides when to commit. ``write=True`` takes SQLite's write lock at BEGIN.

    Raises:
        StoreError: the schema is missing (run ``crackwatch db upgrade``) or the database
            cannot be reached; other errors propagate unchanged after the rollback.
    """
    try:
        if isinstance(bind, Session):
            with bind.begin_nested():
                yield bind
            return
        engine = bind.execution_options(**{WRITE_OPTION: True}) if write else bind
        with Session(engine, expire_on_commit=False) as session, session.begin():
            yield session
    except DBAPIError as exc:
        clearer = _translate(exc, bind)
        if clearer is None:
            raise
        raise clearer from exc


def _translate(exc: DBAPIError, bind: Engine | Session) -> StoreError | None:
    """A clearer error for a missing schema or an unreachable server; else ``None``."""
    text = str(exc.orig).lower() if exc.orig is not None else str(exc).lower()
    engine = bind.get_bind() if isinstance(bind, Session) else bind
    where = engine.url.render_as_string(hide_password=True)
    if "no such table" in text or ("relation" in text and "does not exist" in text):
        return StoreError(
            f"the database {where} has no CrackWatch schema (or an old one): {exc.orig}; "
            f"run `crackwatch db upgrade --url {where}` (or geodata.store.upgrade(url))"
        )
    if exc.connection_invalidated or "connection refused" in text or "could not connect" in text:
        return StoreError(f"cannot reach the database {where}: {exc.orig}; is the server up?")
    return None
