"""Downgrades of 0003 (site locks) and 0002 (notification outbox), SQLite and PostGIS: the
schema goes back exactly, nothing that still has to be done is lost, and the upgrade after
brings it all back."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from sqlalchemy import inspect, select, text

from geodata import store
from geodata.store import models as m
from geodata.store.engine import WRITE_OPTION, session_scope
from geodata.store.migrate import alembic_config, current_revision, head_revision
from jobs.outbox import enqueue
from jobs.pipeline import retry_notifications

EPSG = 32633


class Recorder:
    def __init__(self, name: str) -> None:
        self.name, self.sent = name, []

    def send(self, alert) -> None:
        self.sent.append(alert.alert_id)


def _downgrade(engine, revision: str) -> None:
    cfg = alembic_config(engine.url)
    with engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def _tables(engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_downgrade_0003_then_0002_keeps_what_is_still_to_do_and_upgrades_back(engine):
    try:
        site = store.add_site(engine, "wall", profile="structure", crs_epsg=EPSG)
        with session_scope(engine, write=True) as s:
            alert = m.Alert(site_id=site.id, level="orange", rule="structure.bre251",
                            message="wide", details={"unit": "mm"},
                            notifications=[{"notifier": "log", "ok": True, "attempts": 1,
                                            "level": "orange"}])
            s.add(alert)
            s.flush()
            alert_id = alert.id
            enqueue(s, [{"alert_id": alert_id, "site": "wall", "level": "orange",
                         "rule": "structure.bre251", "message": "wide", "action": "raise"}],
                    ["log", "webhook"])
            s.execute(m.Notification.__table__.update()
                      .where(m.Notification.channel == "log").values(status="delivered"))
            s.add(m.JobRun(job="process_survey", site_id=site.id, status="abandoned"))
            s.add(m.SiteLock(site_id=site.id, owner="h:1", host="h", pid=1))

        _downgrade(engine, "0002")
        assert current_revision(engine) == "0002"
        assert "site_lock" not in _tables(engine) and "notification" in _tables(engine)
        with session_scope(engine) as s:  # 0002 knows no 'abandoned': a failed run
            assert s.execute(text("SELECT status FROM job_run")).scalar() == "failed"

        _downgrade(engine, "0001")
        assert current_revision(engine) == "0001"
        assert "notification" not in _tables(engine)
        with session_scope(engine) as s:  # the webhook message never sent is in the log
            log = s.execute(text(f"SELECT notifications FROM alert WHERE id = {alert_id}")
                            ).scalar()
        log = log if isinstance(log, list) else __import__("json").loads(log)
        assert [(e["notifier"], e["ok"]) for e in log] == [("log", True), ("webhook", False)]

        assert store.upgrade(engine) == head_revision()
        assert {"site_lock", "notification"} <= _tables(engine)
        log_ch, hook = Recorder("log"), Recorder("webhook")
        assert retry_notifications(engine, [log_ch, hook]) == 0
        assert (log_ch.sent, hook.sent) == ([], [alert_id])  # sent once, to the webhook only
        with session_scope(engine) as s:
            assert {n.status for n in s.scalars(select(m.Notification))} == {"delivered"}
    finally:
        store.upgrade(engine)  # the PostGIS database is shared by the session's tests


def test_a_downgrade_that_would_lose_records_is_measured_listed_and_refused(engine, tmp_path):
    """Issue 30, item 7: going back to 0006 drops the photo views and the runs' observable
    ground: the CLI lists what would be lost (measured by a trial downgrade that is rolled
    back), changes nothing without --yes, and downgrades with it."""
    import pytest
    import shapely
    from typer.testing import CliRunner

    from geodata.store.migrate import DataLossError, downgrade, downgrade_losses
    from jobs.cli import app

    site = store.add_site(engine, "hill", profile="slope", crs_epsg=EPSG)
    with session_scope(engine, write=True) as s:
        sv = m.Survey(site_id=site.id, source_path="/x/h.tif", source_type="orthomosaic",
                      sha256="1" * 64, meta={},
                      acquired_at=datetime(2026, 6, 1, tzinfo=UTC))
        s.add(sv)
        s.flush()
        s.add(m.InferenceRun(survey_id=sv.id, model_name="x", status="succeeded", tiling={},
                             observable_fraction=0.5,
                             unobservable=shapely.set_srid(shapely.box(0, 0, 1, 1), EPSG)))
    assert downgrade_losses(engine, head_revision()) == []  # nothing to lose: nothing listed
    assert sorted(downgrade_losses(engine, "0007")) == [
        "column inference_run.observable_fraction: 1 values (the column is dropped)",
        "column inference_run.unobservable: 1 values (the column is dropped)"]
    assert current_revision(engine) == head_revision()  # the trial was rolled back
    with pytest.raises(DataLossError, match="observable_fraction"):
        downgrade(engine, "0007")
    assert current_revision(engine) == head_revision()
    url = engine.url.render_as_string(hide_password=False)
    r = CliRunner().invoke(app, ["db", "downgrade", "0007", "--url", url])
    assert r.exit_code == 2 and "would lose" in r.output and "not downgraded" in r.output
    assert current_revision(engine) == head_revision()
    r = CliRunner().invoke(app, ["db", "downgrade", "0007", "--url", url, "--yes"])
    assert r.exit_code == 0 and "store at revision 0007" in r.output, r.output
    assert current_revision(engine) == "0007"
    assert store.upgrade(engine) == head_revision()
