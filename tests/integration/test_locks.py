"""One run per site at a time (geodata.store.locks, jobs.pipeline.run_site), on SQLite and
PostGIS alike, with real processes where it matters (two runs at once, kill -9)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from geodata import store
from geodata.errors import SiteBusyError
from geodata.store import models as m
from geodata.store.engine import session_scope
from geodata.store.locks import CLASS_ID, site_lock

EPSG = 32633
ROOT = Path(__file__).parents[2]


def new_site(engine, name: str = "wall", **kw) -> int:
    return store.add_site(engine, name, profile="structure", crs_epsg=EPSG, **kw).id


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_second_taker_is_refused_with_the_owner_and_can_wait(engine):
    site_id = new_site(engine)
    with site_lock(engine, site_id, purpose="first run") as held:
        assert held.taken_over_from is None
        with pytest.raises(SiteBusyError, match="being processed by .*first run.*--wait"):
            with site_lock(engine, site_id):
                pass
        released = threading.Event()

        def second():
            with site_lock(engine, site_id, wait_s=20, poll_s=0.05):
                released.set()

        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.3)
        assert not released.is_set()  # still waiting for the first
    t.join(20)
    assert released.is_set()  # got it once the first let go
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(m.SiteLock)) == 0


def test_a_stale_lock_of_a_dead_owner_is_taken_over_and_recorded(engine):
    import socket

    site_id = new_site(engine)
    now = datetime.now(UTC)
    with session_scope(engine, write=True) as s:  # what a killed run leaves behind
        s.add(m.SiteLock(site_id=site_id, owner=f"{socket.gethostname()}:{dead_pid()}",
                         host=socket.gethostname(), pid=dead_pid(), purpose="run_site",
                         acquired_at=now, heartbeat_at=now))
    with site_lock(engine, site_id) as held:
        assert held.taken_over_from is not None
        reason = ("held no advisory lock" if engine.dialect.name == "postgresql"
                  else "is gone")
        assert reason in held.taken_over_from
        with session_scope(engine) as s:
            assert s.get(m.SiteLock, site_id).taken_over_from == held.taken_over_from


@pytest.mark.parametrize("age_s, busy", [(600, False), (5, True)])
def test_an_owner_on_another_host_is_stale_only_without_heartbeat(sqlite_engine, age_s, busy):
    engine = sqlite_engine
    site_id = new_site(engine)
    beat = datetime.now(UTC) - timedelta(seconds=age_s)
    with session_scope(engine, write=True) as s:
        s.add(m.SiteLock(site_id=site_id, owner="elsewhere:42", host="elsewhere", pid=42,
                         acquired_at=beat, heartbeat_at=beat))
    if busy:
        with pytest.raises(SiteBusyError, match="elsewhere:42"):
            with site_lock(engine, site_id):
                pass
    else:
        with site_lock(engine, site_id) as held:
            assert "no heartbeat for" in held.taken_over_from


def test_the_heartbeat_is_refreshed_while_held(sqlite_engine):
    site_id = new_site(sqlite_engine)
    with site_lock(sqlite_engine, site_id, heartbeat_s=0.1) as held:
        time.sleep(0.5)
        with session_scope(sqlite_engine) as s:
            assert s.get(m.SiteLock, site_id).heartbeat_at > held.acquired_at


RUN_SITE = """
import sys, time
from pathlib import Path
import torch
from geodata.errors import SiteBusyError
from geodata.store import connect
from jobs.pipeline import PipelineOptions, run_site

GATE = Path(sys.argv[5]) if len(sys.argv) > 5 else None

class SlowDarkModel(torch.nn.Module):  # 'crack' = dark pixels, slowly
    def forward(self, x):
        while GATE is not None and not GATE.exists():  # hold the lock until the test says so
            time.sleep(0.05)
        time.sleep(float(sys.argv[4]))
        return -8.0 * (x.mean(1, keepdim=True) + 1.0)

try:
    results = run_site(connect(sys.argv[1]), "wall", PipelineOptions(
        work_dir=Path(sys.argv[2]), tile_size=256, overlap=32, inbox_settle_s=0),
        model=SlowDarkModel(),
        wait_s=float(sys.argv[3]))
except SiteBusyError as exc:
    print("BUSY", exc)
    sys.exit(3)
print("DONE", [r.status for r in results])
"""


def _run_site_proc(url: str, work: Path, wait_s: float, sleep_s: float,
                   gate: Path | None = None) -> subprocess.Popen:
    """``run_site`` in a new process; with ``gate``, its model waits for that file to exist."""
    return subprocess.Popen([sys.executable, "-c", RUN_SITE, url, str(work), str(wait_s),
                             str(sleep_s), *([str(gate)] if gate else [])], cwd=ROOT,
                            stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _lock_row(engine, site_id):
    with session_scope(engine) as s:
        row = s.get(m.SiteLock, site_id)
        return None if row is None else (row.owner, row.pid)


def test_two_runs_of_one_site_at_once_process_each_survey_once(engine, tmp_path):
    from synthetic import write_ortho

    url = engine.url.render_as_string(hide_password=False)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    site_id = new_site(engine, inbox=inbox)
    for k in range(2):
        write_ortho(inbox / f"n{k}.tif", when=datetime(2026, 6, 1 + k))
    work = tmp_path / "work"  # one work dir shared by both processes
    gate = tmp_path / "go"  # the first run holds the lock until the refusal is seen
    first = _run_site_proc(url, work, 0, 0.5, gate=gate)
    deadline = time.monotonic() + 60
    while _lock_row(engine, site_id) is None and first.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    refused = _run_site_proc(url, work, 0, 0)
    out, _ = refused.communicate(timeout=120)
    assert refused.returncode == 3 and "being processed by" in out, out
    waiting = _run_site_proc(url, work, 120, 0)  # waits, then finds nothing left to do
    time.sleep(3.0)  # time to start and queue for the lock (not asserted: racy)
    gate.touch()
    out1, err1 = first.communicate(timeout=300)
    out2, err2 = waiting.communicate(timeout=300)
    assert first.returncode == 0 and "DONE ['succeeded', 'succeeded']" in out1, err1[-2000:]
    assert waiting.returncode == 0 and "DONE []" in out2, err2[-2000:]
    with session_scope(engine) as s:
        runs = s.execute(select(m.InferenceRun.survey_id, m.InferenceRun.status)).all()
        assert sorted(runs) == [(sv, "succeeded") for sv in sorted(
            s.scalars(select(m.Survey.id).where(m.Survey.site_id == site_id)))]
        assert s.scalar(select(func.count()).select_from(m.SiteLock)) == 0
    assert sorted(p.name for p in (work / "probability").iterdir()) == [
        f"survey{sv}_probability.tif" for sv, _ in sorted(runs)]  # no partial files left


KILLED_RUN = """
import os, signal, sys
from pathlib import Path
import torch
import jobs.pipeline as p
from geodata.store import connect

class DarkModel(torch.nn.Module):
    def forward(self, x):
        return -8.0 * (x.mean(1, keepdim=True) + 1.0)

def kill(step):
    if step == "vectorise":
        os.kill(os.getpid(), signal.SIGKILL)

p._before_step = kill
p.run_site(connect(sys.argv[1]), "wall", p.PipelineOptions(work_dir=Path(sys.argv[2]),
           tile_size=256, overlap=32, inbox_settle_s=0), model=DarkModel())
"""


def _wait_for_dead_advisory_locks(engine, timeout_s: float = 20.0) -> None:
    """On PostgreSQL, wait until the server has noticed a killed client and released its
    advisory site lock (it does when it sees the connection close: at once on an idle
    machine, later on a loaded one); nothing on SQLite."""
    if engine.dialect.name != "postgresql":
        return
    deadline = time.monotonic() + timeout_s
    while True:
        with engine.connect() as c:
            held = c.execute(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                  "AND classid = :c"), {"c": CLASS_ID}).scalar()
        if not held or time.monotonic() > deadline:
            return
        time.sleep(0.1)


def test_a_run_killed_mid_survey_is_abandoned_and_its_lock_taken_over(engine, tmp_path):
    from synthetic import DarkModel, write_ortho

    from jobs.pipeline import PipelineOptions, run_site, survey_states

    url = engine.url.render_as_string(hide_password=False)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    new_site(engine, inbox=inbox)
    write_ortho(inbox / "n0.tif", when=datetime(2026, 6, 1))
    proc = subprocess.run([sys.executable, "-c", KILLED_RUN, url, str(tmp_path / "work")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    with session_scope(engine) as s:
        [job] = s.scalars(select(m.JobRun)).all()
        assert job.status == "running"  # what the kill left
        killed_job = job.id
    opt = PipelineOptions(work_dir=tmp_path / "work", tile_size=256, overlap=32,
                          inbox_settle_s=0)
    _wait_for_dead_advisory_locks(engine)
    assert run_site(engine, "wall", opt, model=DarkModel()) == []  # the abandoned run is a
    [st] = survey_states(engine, "wall")  # failure: the survey waits for its backoff
    assert (st.state, st.failures) == ("waiting", 1) and st.last_error.startswith("abandoned")
    opt.survey_retry_base_s = 0
    results = run_site(engine, "wall", opt, model=DarkModel())
    assert [r.status for r in results] == ["succeeded"]
    with session_scope(engine) as s:
        job = s.get(m.JobRun, killed_job)
        assert job.status == "abandoned" and "process running it is gone" in job.error
        assert job.finished_at is not None
        assert job.steps["infer"]["status"] == "succeeded"
        assert job.steps["store_track"]["status"] == "not run"
        takeovers = s.scalars(select(m.JobRun).where(m.JobRun.job == "lock_takeover")).all()
        # the dead process' lock row was left behind (on PostgreSQL without its advisory
        # lock, which the server released with the connection)
        assert len(takeovers) == 1 and takeovers[0].steps["lock"]["status"] == "taken over"
        assert s.scalar(select(func.count()).select_from(m.SiteLock)) == 0


def test_the_scheduler_and_the_cli_refuse_a_site_that_is_being_run(tmp_path):
    from typer.testing import CliRunner

    from jobs.cli import app
    from jobs.scheduler import run_site_job

    url = store.sqlite_url(tmp_path / "cw.db")
    store.upgrade(url)
    engine = store.connect(url)
    try:
        site_id = new_site(engine)
        with site_lock(engine, site_id, purpose="crackwatch run"):
            assert run_site_job(url, site_id, {"work_dir": str(tmp_path / "work")}) == 0
            r = CliRunner().invoke(app, ["run", "--site", "wall", "--url", url])
            assert r.exit_code == 2
            assert "being processed by" in r.output and "--wait" in r.output
        with session_scope(engine) as s:
            row = s.scalars(select(m.JobRun).where(m.JobRun.job == "run_site")).one()
            assert row.status == "skipped" and "being processed by" in row.error
    finally:
        engine.dispose()
