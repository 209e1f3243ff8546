"""The scheduler writes no code and no secrets into the store (SQLite and PostGIS).

Jobs live in memory, rebuilt from the site table; a legacy ``apscheduler_jobs`` table (with
a planted pickle row) is dropped by migration 0006 without ever being unpickled; after a
real ``crackwatch scheduler`` process ran against a PostGIS URL with a password, no table
holds a pickle or the password, and its log shows the URL masked.
"""

from __future__ import annotations

import logging
import os
import pickle
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import make_url

from geodata import store
from geodata.store.migrate import POSTGIS_TABLES, current_revision, downgrade, head_revision

ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN_URL = os.environ.get("CRACKWATCH_TEST_POSTGRES_URL",
                              "postgresql://postgres@127.0.0.1:5432/postgres")
PASSWORD = "S3cret-Scheduler-pw"
EPSG = 32633


class Planted:
    """Unpickling this creates the file ``path`` (what a planted job row could do)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@contextmanager
def postgis_database_with_password() -> Iterator[str]:
    """A fresh PostGIS database, reached with a URL that carries :data:`PASSWORD` (the
    local server trusts any); dropped afterwards. Skips without a server (fails in CI)."""
    import psycopg

    name = f"crackwatch_sched_{secrets.token_hex(4)}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostGIS needed at {PG_ADMIN_URL}: {exc}")
        pytest.skip(f"PostGIS needed at {PG_ADMIN_URL}: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        base = PG_ADMIN_URL.rsplit("/", 1)[0]
        try:
            with psycopg.connect(f"{base}/{name}", autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
            url = make_url(f"{base}/{name}").set(drivername="postgresql+psycopg",
                                                 password=PASSWORD)
            yield url.render_as_string(hide_password=False)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgis", marks=pytest.mark.postgis)])
def fresh_url(request, tmp_path):
    """An empty database: a SQLite file, or a new PostGIS database whose URL has a
    password."""
    if request.param == "sqlite":
        yield store.sqlite_url(tmp_path / "cw.db")
        return
    with postgis_database_with_password() as url:
        yield url


def _plant_legacy_table(url: str, marker: Path) -> None:
    """APScheduler 3's own SQLAlchemyJobStore table, with one planted pickle row."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

    eng = store.connect(url)
    legacy = SQLAlchemyJobStore(engine=eng)
    legacy.jobs_t.create(eng, checkfirst=True)  # what SQLAlchemyJobStore.start() does
    with eng.begin() as conn:
        conn.execute(legacy.jobs_t.insert().values(
            id="site-1", next_run_time=time.time() - 60,
            job_state=pickle.dumps(Planted(marker), pickle.HIGHEST_PROTOCOL)))
    eng.dispose()


def _scan_store(url: str) -> dict[str, list[str]]:
    """Every table of the database and what is wrong in it: ``pickle`` (a value that
    starts with a pickle protocol header) or ``password`` (the password in any value)."""
    eng = store.connect(url)
    found: dict[str, list[str]] = {}
    try:
        tables = [t for t in inspect(eng).get_table_names() if t not in POSTGIS_TABLES]
        with eng.connect() as conn:
            for table in tables:
                problems = found.setdefault(table, [])
                for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                    for value in row:
                        raw = value if isinstance(value, (bytes, memoryview)) else None
                        if raw is not None and bytes(raw)[:1] == b"\x80":
                            problems.append("pickle")
                        if PASSWORD in str(bytes(raw) if raw is not None else value):
                            problems.append("password")
    finally:
        eng.dispose()
    return found


def test_legacy_job_table_is_dropped_unread_and_the_downgrade_leaves_it_to_apscheduler(
        fresh_url, tmp_path):
    marker = tmp_path / "planted-row-was-unpickled"
    assert store.upgrade(fresh_url, "0004") == "0004"
    _plant_legacy_table(fresh_url, marker)
    assert "apscheduler_jobs" in _scan_store(fresh_url)

    assert store.upgrade(fresh_url) == head_revision()
    tables = _scan_store(fresh_url)
    assert "apscheduler_jobs" not in tables
    assert not marker.exists()  # the planted row was dropped, never unpickled

    # 0006's downgrade is a no-op: an older CrackWatch's job store makes its table again
    downgrade(fresh_url, "0004", allow_data_loss=True)
    assert current_revision(fresh_url) == "0004"
    assert "apscheduler_jobs" not in _scan_store(fresh_url)
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    eng = store.connect(fresh_url)
    old = BackgroundScheduler(jobstores={"default": SQLAlchemyJobStore(engine=eng)})
    old.start(paused=True)
    old.shutdown(wait=False)
    eng.dispose()
    assert _scan_store(fresh_url)["apscheduler_jobs"] == []  # created again, empty
    assert store.upgrade(fresh_url) == head_revision()  # and the upgrade drops it again
    assert "apscheduler_jobs" not in _scan_store(fresh_url)
    # a store that never had the table upgrades too (nothing to drop)
    other = store.sqlite_url(tmp_path / "never.db")
    assert store.upgrade(other) == head_revision()


def test_scheduler_start_and_sync_write_nothing_to_the_store(fresh_url, tmp_path, caplog):
    from apscheduler.schedulers.background import BackgroundScheduler

    from jobs.scheduler import build_scheduler, sync_site_jobs

    store.upgrade(fresh_url)
    eng = store.connect(fresh_url)
    store.add_site(eng, "north cut", profile="slope", crs_epsg=EPSG, timezone="Europe/Oslo")
    before = _scan_store(fresh_url)
    opts = {"work_dir": str(tmp_path / "work")}
    sched = build_scheduler(fresh_url, scheduler_cls=BackgroundScheduler)
    with caplog.at_level(logging.DEBUG):
        sched.start(paused=True)
        try:
            assert sync_site_jobs(sched, fresh_url, opts) == ["site-1"]
            store.add_site(eng, "quay wall", profile="structure", crs_epsg=EPSG,
                           schedule="30 3 * * 1")
            assert sync_site_jobs(sched, fresh_url, opts) == ["site-1", "site-2"]
            assert {j.id for j in sched.get_jobs()} == {"site-1", "site-2"}
            assert {type(s).__name__ for s in sched._jobstores.values()} == {"MemoryJobStore"}
        finally:
            sched.shutdown(wait=False)
    eng.dispose()
    after = _scan_store(fresh_url)
    assert set(after) == set(before)  # no table was added (no apscheduler_jobs)
    assert all(problems == [] for problems in after.values()), after
    assert PASSWORD not in caplog.text


def test_missed_run_catch_up_rule():
    from jobs.scheduler import MISFIRE_GRACE_S, missed_run, site_trigger

    trigger = site_trigger("0 2 * * *", "UTC")
    two = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
    assert missed_run(trigger, two + timedelta(hours=1))  # missed an hour ago: catch up
    assert missed_run(trigger, two)  # due right now
    assert not missed_run(trigger, two + timedelta(seconds=MISFIRE_GRACE_S + 60))  # too old
    assert not missed_run(trigger, two - timedelta(minutes=1))  # not due yet


def test_scheduler_sync_catches_up_a_run_missed_within_the_grace_time(tmp_path):
    from apscheduler.schedulers.background import BackgroundScheduler

    from jobs.scheduler import build_scheduler, sync_site_jobs

    url = store.sqlite_url(tmp_path / "cw.db")
    store.upgrade(url)
    eng = store.connect(url)
    now = datetime.now(UTC)
    recent = (now - timedelta(hours=1)).hour
    far = (now + timedelta(hours=12)).hour
    store.add_site(eng, "missed", profile="slope", crs_epsg=EPSG, schedule=f"0 {recent} * * *")
    store.add_site(eng, "later", profile="slope", crs_epsg=EPSG, schedule=f"0 {far} * * *")
    eng.dispose()
    sched = build_scheduler(scheduler_cls=BackgroundScheduler)
    sched.start(paused=True)
    try:
        sync_site_jobs(sched, url, {"work_dir": str(tmp_path)})
        missed, later = sched.get_job("site-1"), sched.get_job("site-2")
        assert missed.next_run_time <= datetime.now(UTC)  # runs at once
        assert later.next_run_time > now + timedelta(hours=10)  # its next cron time
        # a later sync does not catch up again (the job exists)
        missed.modify(next_run_time=now + timedelta(days=1))
        sync_site_jobs(sched, url, {"work_dir": str(tmp_path)})
        assert sched.get_job("site-1").next_run_time == now + timedelta(days=1)
    finally:
        sched.shutdown(wait=False)


@pytest.mark.postgis
def test_crackwatch_scheduler_process_logs_the_url_masked_and_stores_no_secret(tmp_path):
    """``crackwatch scheduler --url postgresql+psycopg://postgres:PASSWORD@...`` as a real
    process: it starts, syncs its sites, stops on SIGTERM; its output never shows the
    password and the database holds no pickle and no password afterwards."""
    with postgis_database_with_password() as url:
        store.upgrade(url)
        eng = store.connect(url)
        far = (datetime.now(UTC) + timedelta(hours=12)).hour  # no catch-up run
        store.add_site(eng, "north cut", profile="slope", crs_epsg=EPSG,
                       schedule=f"0 {far} * * *")
        eng.dispose()
        env = {**os.environ, "CRACKWATCH_DATA_DIR": str(tmp_path / "data"),
               "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen([sys.executable, "-m", "jobs.cli", "scheduler", "--url", url],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
        reader.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any("scheduled north cut" in x
                                                      for x in lines):
            if proc.poll() is not None:
                break
            time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        reader.join(timeout=10)
        out = "".join(lines)
        assert "scheduled north cut" in out, out
        assert PASSWORD not in out
        assert "postgres:***@" in out  # the start line names the store, masked
        scan = _scan_store(url)
        assert "apscheduler_jobs" not in scan
        assert all(problems == [] for problems in scan.values()), scan
        eng = store.connect(url)
        with eng.connect() as conn:  # the site table is all there is of the schedule
            assert conn.execute(select(store.Site.schedule)).scalars().all() == [f"0 {far} * * *"]
        eng.dispose()
