"""Fixtures shared by the integration tests: a migrated store on SQLite and on PostGIS.

The PostGIS half is the session database of ``postgis_url`` (tests/conftest.py: skips with the
reason when PostGIS is missing, fails in CI), emptied before each test.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from geodata import store as store_api  # `store` is the fixture below


@pytest.fixture(params=["sqlite", pytest.param("postgis", marks=pytest.mark.postgis)])
def engine(request, tmp_path: Path):
    """An engine on an empty, migrated store: a SQLite file or the session's PostGIS db."""
    if request.param == "sqlite":
        url = store_api.sqlite_url(tmp_path / "store.db")
        assert store_api.upgrade(url) == store_api.head_revision()
        eng = store_api.connect(url)
    else:
        eng = store_api.connect(request.getfixturevalue("postgis_url"))
        tables = ", ".join(t.name for t in store_api.Base.metadata.sorted_tables)
        with eng.begin() as conn:
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    yield eng
    eng.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path):
    """A migrated SQLite store whose writers give up on a lock after 0.2 s."""
    url = store_api.sqlite_url(tmp_path / "store.db")
    store_api.upgrade(url)
    eng = store_api.connect(url, busy_timeout_ms=200)
    yield eng
    eng.dispose()


@pytest.fixture
def store(tmp_path: Path):
    """A migrated SQLite store ``cw.db`` in ``tmp_path``: ``(url, engine)``."""
    url = f"sqlite:///{tmp_path / 'cw.db'}"
    store_api.upgrade(url)
    eng = store_api.connect(url)
    yield url, eng
    eng.dispose()
