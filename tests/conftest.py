"""Shared fixtures: synthetic image/mask folders, the path of the real data, and PostGIS.

PostGIS. Every test that needs PostgreSQL + PostGIS gets it from :func:`postgis_url` (a
database at the schema head, one per test session) or :func:`empty_postgis_url` (an empty
database with the extension, one per test), both made on the server at
``CRACKWATCH_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``)
and dropped afterwards. When a piece is missing (psycopg, the server, the ``postgis``
extension on it, the right to create a database or to enable the extension in it) these
tests skip, saying which piece and what to do, so ``python3 -m pytest`` passes on a machine
with or without PostGIS; in CI (env ``CI`` set, as ``.ci/run`` does) they fail instead.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import numpy as np
import pytest
from PIL import Image

from engine.data import default_data_root

DATA_ROOT = default_data_root()

# Models converted for ONNX Runtime / OpenVINO (engine.runtime) go to one folder per test
# session, never to the user's ~/.cache; CLI subprocesses inherit it.
if "CRACKWATCH_RUNTIME_CACHE" not in os.environ:
    import tempfile

    os.environ["CRACKWATCH_RUNTIME_CACHE"] = tempfile.mkdtemp(prefix="crackwatch-runtime-")


def write_pair(folder: Path, stem: str, size=(64, 48), crack_row: int = 20,
               mask_size=None, planking: bool = False) -> None:
    """A grey image with a dark horizontal crack at ``crack_row`` and its 0/255 mask.

    ``size`` is (cols, rows) as PIL uses it.
    """
    cols, rows = size
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    img = np.full((rows, cols, 3), 160, np.uint8)
    img[crack_row:crack_row + 2] = 30
    Image.fromarray(img).save(folder / "images" / f"{stem}.jpg")
    mcols, mrows = mask_size or size
    mask = np.zeros((mrows, mcols), np.uint8)
    mask[crack_row:crack_row + 2] = 255
    Image.fromarray(mask).save(folder / "masks" / f"{stem}.png")
    if planking:
        (folder / "planking").mkdir(exist_ok=True)
        pl = np.zeros((rows, cols), np.uint8)
        pl[:, 5:8] = 255
        Image.fromarray(pl).save(folder / "planking" / f"{stem}.png")


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    root = tmp_path / "tiny"
    for i in range(3):
        write_pair(root, f"img{i}", crack_row=10 + 5 * i, planking=True)
    return root


REAL_DATA_MISSING = ("the shared data folder ../shared/data is not beside this checkout "
                     f"({DATA_ROOT}); the real-data tests need it")


def require_real_data(*parts: str) -> Path:
    """``DATA_ROOT / parts``; when missing the test skips with the reason (a clone without
    ``../shared``), and fails where ``CI`` is set (CI always has the data)."""
    p = DATA_ROOT.joinpath(*parts)
    if not p.exists():
        msg = f"real data {p} missing: {REAL_DATA_MISSING}"
        if in_ci():
            pytest.fail(msg + " (CI is set: real-data tests never skip in CI)", pytrace=False)
        pytest.skip(msg)
    return p


def pytest_collection_modifyitems(config, items) -> None:
    """Tests marked ``realdata`` skip with the reason in a clone without ``../shared``
    (outside CI; in CI they run and fail loudly)."""
    if DATA_ROOT.is_dir() or in_ci():
        return
    skip = pytest.mark.skip(reason=REAL_DATA_MISSING)
    for item in items:
        if "realdata" in item.keywords:
            item.add_marker(skip)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for local test servers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- PostGIS

POSTGRES_ADMIN_URL = os.environ.get("CRACKWATCH_TEST_POSTGRES_URL",
                                    "postgresql://postgres@127.0.0.1:5432/postgres")


def in_ci() -> bool:
    """True when env ``CI`` is set to anything but empty, ``0``, ``false`` or ``no``."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def postgis_unavailable(reason: str) -> NoReturn:
    """Skip the test (fail it in CI) because PostGIS is not usable: ``reason`` says why."""
    msg = (f"PostGIS tests need PostgreSQL with PostGIS at {POSTGRES_ADMIN_URL}: {reason}. "
           f"Install it (apt-get install postgresql-15-postgis-3; .ci/run does) or point "
           f"CRACKWATCH_TEST_POSTGRES_URL at a server that has it")
    if in_ci():
        pytest.fail(msg + " (CI is set: PostGIS tests never skip in CI)", pytrace=False)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def postgis_server() -> str:
    """The admin URL of a reachable server that offers the ``postgis`` extension (checked
    once per session; skips or, in CI, fails without it)."""
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - a declared dependency
        postgis_unavailable(f"psycopg is not installed ({exc})")
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            row = conn.execute("SELECT default_version FROM pg_available_extensions "
                               "WHERE name = 'postgis'").fetchone()
    except psycopg.Error as exc:
        postgis_unavailable(f"cannot connect ({str(exc).strip()})")
    if row is None:
        postgis_unavailable("the server has no postgis extension to install "
                            "(not in pg_available_extensions)")
    return POSTGRES_ADMIN_URL


@contextmanager
def postgis_database(admin_url: str, prefix: str) -> Iterator[str]:
    """A new database ``<prefix>_<random>`` with PostGIS enabled; yields its SQLAlchemy URL
    (``postgresql+psycopg://...``) and drops it afterwards (skips or, in CI, fails when the
    database cannot be created or PostGIS cannot be enabled in it)."""
    import psycopg

    name = f"{prefix}_{secrets.token_hex(4)}"
    base = admin_url.rsplit("/", 1)[0]
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
        try:
            admin.execute(f'CREATE DATABASE "{name}"')
        except psycopg.Error as exc:
            postgis_unavailable(f"cannot create the test database {name} ({str(exc).strip()})")
        try:
            try:
                with psycopg.connect(f"{base}/{name}", autocommit=True,
                                     connect_timeout=5) as conn:
                    conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
            except psycopg.Error as exc:
                postgis_unavailable(f"cannot enable PostGIS in {name} ({str(exc).strip()})")
            yield f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgis_url(postgis_server: str) -> Iterator[str]:
    """A PostGIS database for this test session with the schema at head; dropped at the end.
    Tests that share it clean it first (tests/integration/conftest.py's ``engine``)."""
    from geodata import store

    with postgis_database(postgis_server, "crackwatch_test") as url:
        store.upgrade(url)
        yield url


@pytest.fixture
def empty_postgis_url(postgis_server: str) -> Iterator[str]:
    """A fresh, empty PostGIS database (no schema) for one test; dropped afterwards."""
    with postgis_database(postgis_server, "crackwatch_test_empty") as url:
        yield url
