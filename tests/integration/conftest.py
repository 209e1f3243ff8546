"""Fixtures shared by the integration tests: a migrated store on SQLite and on PostGIS.

The PostGIS half creates a fresh database ``crackwatch_test_<random>`` per test session on
``CRACKWATCH_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``)
and drops it at the end. When the server or PostGIS is missing these tests skip with the
reason, except in CI (env ``CI`` set, as ``.ci/run`` does), where they fail.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest
from sqlalchemy import text

from geodata import store

ADMIN_URL = os.environ.get("CRACKWATCH_TEST_POSTGRES_URL",
                           "postgresql://postgres@127.0.0.1:5432/postgres")


def _unavailable(reason: str) -> None:
    msg = (f"PostGIS store tests need PostgreSQL with PostGIS at {ADMIN_URL}: {reason}. "
           f"Install it (apt-get install postgresql-15-postgis-3; .ci/run does) or set "
           f"CRACKWATCH_TEST_POSTGRES_URL")
    if os.environ.get("CI"):
        pytest.fail(msg + " (CI is set: these tests never skip in CI)")
    pytest.skip(msg)


@pytest.fixture(scope="session")
def postgis_url():
    """A fresh PostGIS database for this test session, schema at head; dropped at the end."""
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - a declared dependency
        _unavailable(f"psycopg is not installed ({exc})")
    name = f"crackwatch_test_{secrets.token_hex(4)}"
    try:
        admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        _unavailable(f"cannot connect ({str(exc).strip()})")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        base = ADMIN_URL.rsplit("/", 1)[0]
        url = f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)
        try:
            with psycopg.connect(f"{base}/{name}", autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
            store.upgrade(url)
            yield url
        except psycopg.Error as exc:
            _unavailable(f"PostGIS is not available ({str(exc).strip()})")
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgis", marks=pytest.mark.postgis)])
def engine(request, tmp_path: Path):
    """An engine on an empty, migrated store: a SQLite file or the session's PostGIS db."""
    if request.param == "sqlite":
        url = store.sqlite_url(tmp_path / "store.db")
        assert store.upgrade(url) == store.head_revision()
        eng = store.connect(url)
    else:
        eng = store.connect(request.getfixturevalue("postgis_url"))
        tables = ", ".join(t.name for t in store.Base.metadata.sorted_tables)
        with eng.begin() as conn:
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    yield eng
    eng.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path):
    """A migrated SQLite store whose writers give up on a lock after 0.2 s."""
    url = store.sqlite_url(tmp_path / "store.db")
    store.upgrade(url)
    eng = store.connect(url, busy_timeout_ms=200)
    yield eng
    eng.dispose()
