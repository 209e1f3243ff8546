"""Downgrades of 0003 (site locks) and 0002 (notification outbox), SQLite and PostGIS: the
schema goes back exactly, nothing that still has to be done is lost, and the upgrade after
brings it all back."""

from __future__ import annotations

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
