"""Issue 16, part B, on SQLite and PostGIS: escalation of unacknowledged alerts to
second-level recipients through the outbox, the overdue-survey alarm, watch alerts (false-alarm
control for slopes) in the pipeline, and the audit trail of all of it."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from synthetic import DarkModel, write_ortho

from geodata import alert_settings, alerts_store, audit, store
from geodata.crack_objects import ObjectFilter
from geodata.store import models as m
from geodata.store.engine import session_scope
from jobs.alert_checks import run_checks
from jobs.inbox import ingest
from jobs.notify import AlertMessage, EmailNotifier
from jobs.overdue import RULE as OVERDUE
from jobs.pipeline import PipelineOptions, process_survey
from tests.conftest import free_port

EPSG = 32633
T0 = datetime(2026, 6, 1, tzinfo=UTC)


class Recorder:
    """A notifier that records the messages it was given (a channel that always works)."""

    def __init__(self, name: str) -> None:
        self.name, self.sent = name, []

    def send(self, alert) -> None:
        self.sent.append(AlertMessage.from_any(alert))


def _alert(engine, site_id: int, level: str = "orange", raised_at: datetime = T0) -> int:
    with session_scope(engine, write=True) as s:
        a = m.Alert(site_id=site_id, level=level, rule="structure.bre251", message="wide",
                    notifications=[], details={"unit": "mm", "key": "track:1"},
                    raised_at=raised_at)
        s.add(a)
        s.flush()
        return a.id


def _events(engine, **kw) -> list[tuple[str, str, int | None]]:
    """(action, actor, alert_id) of the audit trail, oldest first."""
    df = audit.audit_events(engine, newest_first=False, **kw)
    return [(r.action, r.actor, None if r.alert_id is None or str(r.alert_id) == "<NA>"
             else int(r.alert_id)) for r in df.itertuples()]


# --------------------------------------------------------------------------- escalation


def test_escalation_fires_after_the_delay_repeats_and_stops_after_acknowledgement(engine):
    site = store.add_site(engine, "wall", profile="structure", crs_epsg=EPSG)
    alert_settings.set_escalation(engine, site.id, "orange", actor="lead", after_s=60,
                                  recipients=["boss@example.org, chief@example.org"])
    alert_id = _alert(engine, site.id)
    log_ch, mail = Recorder("log"), Recorder("email")

    def check(seconds):
        return run_checks(engine, [log_ch], now=T0 + timedelta(seconds=seconds)).notices

    assert check(59) == []  # not yet due
    [first] = check(61)
    assert first["sequence"] == 1 and first["recipients"] == ["boss@example.org",
                                                              "chief@example.org"]
    [msg] = log_ch.sent
    assert msg.action == "unacknowledged" and msg.alert_id == alert_id
    assert "NOT ACKNOWLEDGED 1 min after it reached orange" in msg.message
    assert "NOT ACKNOWLEDGED" in msg.subject
    assert check(100) == []  # the next one is due 60 s after the first
    [second] = check(125)
    assert second["sequence"] == 2
    # the e-mail rows carry the second-level list; this process had no e-mail channel, a
    # process that has one sends them (to those addresses, not to its own list)
    from jobs.outbox import deliver_pending

    assert deliver_pending(engine, [mail]).delivered == 2
    assert [x.recipients for x in mail.sent] == [("boss@example.org", "chief@example.org")] * 2

    alerts_store.acknowledge_alert(engine, alert_id, by="Ana", note="on my way")
    assert check(600) == [] and check(6000) == []
    with session_scope(engine) as s:
        rows = s.scalars(select(m.Notification).where(m.Notification.alert_id == alert_id)
                         .order_by(m.Notification.id)).all()
        assert [(r.channel, r.sequence, r.status) for r in rows] == [
            ("log", 1, "delivered"), ("email", 1, "delivered"),
            ("log", 2, "delivered"), ("email", 2, "delivered")]
        assert rows[1].recipients == ["boss@example.org", "chief@example.org"]
    trail = _events(engine, alert_id=alert_id)
    assert ("alert.escalation_notice", "system", alert_id) in trail
    assert [a for a, _, _ in trail].count("alert.escalation_notice") == 2
    assert [a for a, _, _ in trail].count("notification.queued") == 4
    assert [a for a, _, _ in trail].count("notification.sent") == 4
    assert trail[-1] == ("alert.acknowledged", "Ana", alert_id)
    settings = _events(engine, actions=["site."])
    assert settings == [("site.escalation_set", "lead", None)]


@contextmanager
def _smtp():
    from aiosmtpd.controller import Controller

    class Inbox:
        def __init__(self) -> None:
            self.messages: list = []

        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd
            self.messages.append((list(envelope.rcpt_tos), envelope.content.decode()))
            return "250 OK"

    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def test_escalation_e_mail_reaches_the_second_level_over_smtp(engine, monkeypatch):
    """Defaults: red escalates after 30 min; the fallback list comes from the environment."""
    monkeypatch.setenv("CRACKWATCH_ESCALATION_EMAIL_TO", "duty@example.org")
    site = store.add_site(engine, "quay", profile="structure", crs_epsg=EPSG)
    alert_id = _alert(engine, site.id, level="red")
    with _smtp() as (inbox, port):
        mail = EmailNotifier(host="127.0.0.1", port=port, starttls=False, attempts=1,
                             sender="cw@example.org", recipients=["team@example.org"])
        assert run_checks(engine, [mail], now=T0 + timedelta(minutes=29)).notices == []
        r = run_checks(engine, [mail], now=T0 + timedelta(minutes=31))
    assert r.delivery.delivered == 1
    [(rcpt, body)] = inbox.messages
    assert rcpt == ["duty@example.org"]  # the second level, not the team's list
    assert f"alert_id: {alert_id}" in body and "NOT ACKNOWLEDGED 31 min" in body
    # yellow never escalates by default (the red one goes on until acknowledged)
    yellow = _alert(engine, site.id, level="yellow")
    later = run_checks(engine, [Recorder("log")], now=T0 + timedelta(days=30)).notices
    assert [n["alert_id"] for n in later] == [alert_id] and yellow != alert_id


def test_a_level_rise_restarts_the_clock_and_a_watch_never_escalates(engine):
    site = store.add_site(engine, "cut", profile="slope", crs_epsg=EPSG)
    alert_settings.set_escalation(engine, site.id, "red", actor="lead", after_s=600)
    alert_id = _alert(engine, site.id, level="red")
    with session_scope(engine, write=True) as s:  # escalated orange -> red 1 h after raising
        a = s.get(m.Alert, alert_id)
        a.details = {**a.details, "escalations": [
            {"from": "orange", "to": "red", "at": (T0 + timedelta(hours=1)).isoformat()}]}
        s.add(m.Alert(site_id=site.id, level="red", rule="slope.opening_rate", message="w",
                      notifications=[], details={}, raised_at=T0, watch=True))
    log_ch = Recorder("log")
    assert run_checks(engine, [log_ch], now=T0 + timedelta(minutes=65)).notices == []
    notices = run_checks(engine, [log_ch], now=T0 + timedelta(minutes=71)).notices
    assert [n["alert_id"] for n in notices] == [alert_id]  # not the watch alert


# --------------------------------------------------------------------------- overdue


def _survey(engine, site_id: int, when: datetime, n: int) -> None:
    with session_scope(engine, write=True) as s:
        s.add(m.Survey(site_id=site_id, acquired_at=when, source_type="orthomosaic",
                       source_path=f"/data/s{n}.tif", sha256=f"{n:064d}", pixel_size_m=0.002))


def test_an_overdue_site_raises_once_and_resolves_when_imagery_arrives(engine):
    site = store.add_site(engine, "north", profile="slope", crs_epsg=EPSG,
                          schedule="0 2 * * *")
    st = alert_settings.alerting_settings(engine, site.id)
    assert (st.expected_interval_s, st.interval_source, st.grace_s) == (86400, "schedule",
                                                                        21600)
    alert_settings.set_overdue(engine, site.id, actor="lead", expected_interval_s=86400,
                               grace_s=3600)
    _survey(engine, site.id, T0, 1)
    log_ch = Recorder("log")

    def check(hours):
        return run_checks(engine, [log_ch], now=T0 + timedelta(hours=hours)).overdue

    assert check(24.9).raised == []
    r = check(25.5)
    [raised] = r.raised
    assert raised["rule"] == OVERDUE and raised["level"] == "yellow"
    assert "no new survey for 25.5 h" in raised["message"]
    assert [x.rule for x in log_ch.sent] == [OVERDUE]  # notified through the outbox
    assert check(30).raised == [] and check(72).raised == []  # once, not repeatedly
    ov = alert_settings.data_age_overview(engine, now=T0 + timedelta(hours=30)).iloc[0]
    assert ov["overdue"] and ov["data_age_h"] == pytest.approx(30)

    _survey(engine, site.id, T0 + timedelta(hours=73), 2)  # imagery arrives
    r = check(74)
    assert r.resolved == [raised["alert_id"]] and r.raised == []
    with session_scope(engine) as s:
        a = s.get(m.Alert, raised["alert_id"])
        assert a.resolved_at is not None and "has arrived" in a.resolve_note
        assert a.details["resolved_reason"] == "imagery_arrived"
    trail = _events(engine, site=site.id)
    assert ("alert.raised", "system", raised["alert_id"]) in trail
    assert ("alert.auto_resolved", "system", raised["alert_id"]) in trail
    assert ("site.overdue_set", "lead", None) in trail

    # overdue again; a person resolves it while it is still overdue: not raised again
    [again] = check(73 + 26).raised
    alerts_store.resolve_alert(engine, again["alert_id"], by="Bo", note="drone broken, known")
    assert check(73 + 40).raised == []
    # switching the alarm off closes nothing new and raises nothing
    alert_settings.set_overdue(engine, site.id, actor="lead", enabled=False)
    _survey(engine, site.id, T0 + timedelta(hours=200), 3)
    assert check(400).raised == []


def test_a_site_without_a_schedule_expects_nothing(engine):
    site = store.add_site(engine, "adhoc", profile="structure", crs_epsg=EPSG)
    assert alert_settings.alerting_settings(engine, site.id).expected_interval_s is None
    assert run_checks(engine, [Recorder("log")], now=T0 + timedelta(days=999)).overdue.raised \
        == []


def test_the_pipeline_resolves_the_overdue_alert_when_it_stores_a_survey(engine, tmp_path):
    site = store.add_site(engine, "wall", profile="structure", crs_epsg=EPSG)
    alert_settings.set_overdue(engine, site.id, actor="lead", expected_interval_s=3600)
    with session_scope(engine, write=True) as s:
        s.get(m.Site, site.id).created_at = T0
    [raised] = run_checks(engine, [], now=T0 + timedelta(hours=3)).overdue.raised
    sv = ingest(engine, "wall", write_ortho(tmp_path / "d.tif", when=datetime.now(UTC)))
    opts = PipelineOptions(work_dir=tmp_path / "work", tile_size=256, overlap=32)
    assert process_survey(engine, sv.id, opts, model=DarkModel()).status == "succeeded"
    with session_scope(engine) as s:
        a = s.get(m.Alert, raised["alert_id"])
        assert a.resolved_at is not None and a.details["resolved_reason"] == "imagery_arrived"


# --------------------------------------------------------------------------- watch


def _opts(tmp_path):
    return PipelineOptions(work_dir=tmp_path / "work", tile_size=256, overlap=32,
                           inbox_settle_s=0)


def _grow(engine, tmp_path, site: str, cols: list[int], channel: Recorder):
    """One survey a day of a slope crack ``cols[k]`` pixels (2 mm each) long."""
    results = []
    for k, c in enumerate(cols):
        sv = ingest(engine, site, write_ortho(tmp_path / f"{site}{k}.tif",
                                              when=T0 + timedelta(days=k), crack_cols=c,
                                              seed=k))
        r = process_survey(engine, sv.id, _opts(tmp_path), model=DarkModel(),
                           notifiers=[channel])
        assert r.status == "succeeded", r.error
        results.append(r)
    return results


def _length_alerts(engine, site_name):
    with session_scope(engine) as s:
        return [(a.id, a.level, a.watch, a.resolved_at is not None)
                for a in s.scalars(select(m.Alert).join(m.Site).where(
                    m.Site.name == site_name, m.Alert.rule == "slope.length_rate")
                    .order_by(m.Alert.id))]


def test_an_unconfirmed_exceedance_notifies_nobody_and_its_confirmation_does(engine, tmp_path):
    store.add_site(engine, "cut", profile="slope", crs_epsg=EPSG)
    channel = Recorder("log")
    # +50 px = 0.1 m a day: yellow length growth (0.05 m/day), in one survey only
    r = _grow(engine, tmp_path, "cut", [100, 150], channel)
    [(alert_id, level, watch, resolved)] = _length_alerts(engine, "cut")
    assert (level, watch, resolved) == ("yellow", True, False)
    assert channel.sent == [] and r[1].alerts_raised == [] and len(r[1].alerts_watch) == 1
    with session_scope(engine) as s:
        assert s.scalars(select(m.Notification)).all() == []
    from geodata import queries

    ov = queries.sites_overview(engine).iloc[0]
    assert (ov["alert_level"], ov["watch_alerts"], ov["watch_level"]) == ("green", 1, "yellow")
    assert queries.all_alerts(engine).iloc[0]["state"] == "watch"
    # the alert carries the chart the dashboard draws: its series and the site's thresholds
    chart = queries.all_alerts(engine).iloc[0]["chart"]
    assert chart["series"] == "length_rate_m_per_day"
    assert [(x["level"], x["value"]) for x in chart["lines"]] == [
        ("yellow", 0.05), ("orange", 0.2), ("red", 1.0)]

    # the next survey confirms it: the same alert is promoted and announced
    sv = ingest(engine, "cut", write_ortho(tmp_path / "cut2.tif", when=T0 + timedelta(days=2),
                                           crack_cols=200, seed=2))
    r2 = process_survey(engine, sv.id, _opts(tmp_path), model=DarkModel(), notifiers=[channel])
    assert [a["alert_id"] for a in r2.alerts_raised if a["rule"] == "slope.length_rate"] == \
        [alert_id]
    assert _length_alerts(engine, "cut") == [(alert_id, "yellow", False, False)]
    assert [x.rule for x in channel.sent] == ["slope.length_rate"]
    assert "confirmed: exceeded in 2 consecutive surveys" in channel.sent[0].message
    actions = [a for a, _, _ in _events(engine, alert_id=alert_id)]
    assert actions[:2] == ["alert.watch", "alert.confirmed"]
    assert {"notification.queued", "notification.sent"} <= set(actions)


def test_a_watch_the_next_survey_does_not_confirm_is_resolved(engine, tmp_path):
    store.add_site(engine, "cut", profile="slope", crs_epsg=EPSG)
    channel = Recorder("log")
    _grow(engine, tmp_path, "cut", [100, 150, 150], channel)
    [(alert_id, level, watch, resolved)] = _length_alerts(engine, "cut")
    assert watch and resolved and channel.sent == []
    with session_scope(engine) as s:
        a = s.get(m.Alert, alert_id)
        assert a.details["resolved_reason"] == "not_confirmed"
        assert "not confirmed" in a.resolve_note
    assert ("alert.auto_resolved", "system", alert_id) in _events(engine, alert_id=alert_id)


# --------------------------------------------------------------------------- audit


def test_acknowledge_and_resolve_are_audited_in_their_transaction(engine):
    site = store.add_site(engine, "wall", profile="structure", crs_epsg=EPSG)
    alert_id = _alert(engine, site.id)
    alerts_store.acknowledge_alert(engine, alert_id, by="Ana", note="seen")
    with pytest.raises(Exception, match="acknowledged already"):
        alerts_store.acknowledge_alert(engine, alert_id, by="Bo")  # refused: no entry
    alerts_store.resolve_alert(engine, alert_id, by="Bo", note="sealed")
    df = audit.audit_events(engine, alert_id=alert_id, newest_first=False)
    assert list(df["action"]) == ["alert.acknowledged", "alert.resolved"]
    assert list(df["actor"]) == ["Ana", "Bo"]
    assert df.iloc[0]["details"]["note"] == "seen" and df.iloc[1]["details"]["note"] == "sealed"
    assert df.iloc[0]["site_name"] == "wall" and df.iloc[0]["at"].tzinfo is not None
    # an entry keeps naming its site after the site is deleted
    store.delete_site(engine, site.id)
    df = audit.audit_events(engine, alert_id=alert_id)
    assert set(df["site_name"]) == {"wall"}
    with pytest.raises(ValueError, match="unknown audit action"):
        with session_scope(engine, write=True) as s:
            audit.record(s, "alert.deleted", actor="x")


# --------------------------------------------------------------------------- migration


def test_migration_0005_up_and_down_keeps_what_0004_can_hold(engine):
    """0005 down: escalation notices and the audit trail go, open watch alerts are resolved
    with a note, every other alert and notification stays; up again: the schema matches the
    models (tests/integration/test_store.py checks the comparison at head)."""
    from sqlalchemy import inspect, text

    from geodata.store.migrate import downgrade
    from jobs.outbox import enqueue

    site = store.add_site(engine, "wall", profile="structure", crs_epsg=EPSG)
    alert_id = _alert(engine, site.id)
    alert_settings.set_escalation(engine, site.id, "orange", actor="lead", after_s=60,
                                  recipients=["boss@example.org"])
    with session_scope(engine, write=True) as s:
        watch = m.Alert(site_id=site.id, level="yellow", rule="slope.length_rate",
                        message="w", notifications=[], details={}, watch=True)
        s.add(watch)
        s.flush()
        watch_id = watch.id
        item = {"alert_id": alert_id, "level": "orange", "message": "wide", "action": "raise"}
        enqueue(s, [item], ["log"])
        enqueue(s, [{**item, "action": "unacknowledged"}], ["log", "email"], sequence=1,
                recipients={"email": ["boss@example.org"]})
    try:
        assert downgrade(engine, "0004", allow_data_loss=True) == "0004"
        tables = set(inspect(engine).get_table_names())
        assert not {"audit_event", "site_alerting"} & tables
        assert "watch" not in {c["name"] for c in inspect(engine).get_columns("alert")}
        cols = {c["name"] for c in inspect(engine).get_columns("notification")}
        assert not {"sequence", "recipients"} & cols
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM notification")) == 1  # the raise
            assert conn.scalar(text("SELECT count(*) FROM alert")) == 2
            note = conn.scalar(text(f"SELECT resolve_note FROM alert WHERE id = {watch_id}"))
            assert "unconfirmed (watch)" in note
            assert conn.scalar(text(f"SELECT resolved_at FROM alert WHERE id = {alert_id}")) \
                is None
            assert conn.scalar(text("SELECT count(*) FROM site")) == 1
        assert store.upgrade(engine) == store.head_revision()
        with session_scope(engine) as s:
            assert s.get(m.Alert, alert_id).watch is False
            assert [(n.channel, n.sequence) for n in s.scalars(select(m.Notification))] == \
                [("log", 0)]
            assert s.scalars(select(m.AuditEvent)).all() == []
        # the widened unique key: the same channel and level again as notice 1
        with session_scope(engine, write=True) as s:
            assert enqueue(s, [{**item, "action": "unacknowledged"}], ["log"], sequence=1) == 1
            assert enqueue(s, [item], ["log"]) == 0
    finally:
        store.upgrade(engine)


# --------------------------------------------------------------------------- CLI


def test_setting_commands_are_audited_and_the_audit_layer_exports_to_csv(tmp_path):
    import csv
    import json

    from typer.testing import CliRunner

    from jobs.cli import app

    runner = CliRunner()
    url = f"sqlite:///{tmp_path / 'cw.db'}"

    def ok(*args):
        r = runner.invoke(app, [*args, "--url", url], env={"COLUMNS": "200"})
        assert r.exit_code == 0, r.output
        return r.output

    ok("site", "add", "North cut", "--profile", "slope", "--crs", "EPSG:32633", "--by", "ana")
    ok("site", "set-model", "North cut", "--profile-default", "--by", "ana")
    out = ok("site", "thresholds", "North cut")
    assert '"confirmation": "either"' in out
    ok("site", "thresholds", "North cut", "--set",
       '{"length_rate_m_per_day": [0.1, 0.5, 2], "confirmation": "consecutive"}',
       "--by", "bo")
    r = runner.invoke(app, ["site", "thresholds", "North cut", "--set", '{"bogus": 1}',
                            "--url", url])
    assert r.exit_code == 2 and "unknown SlopeThresholds setting" in r.output
    ok("site", "schedule", "North cut", "--cron", "0 3 * * 1-5", "--tz", "Europe/Oslo",
       "--by", "bo")
    out = ok("site", "overdue", "North cut")
    assert "every 3d (from its schedule)" in out and "grace 18h" in out
    out = ok("site", "overdue", "North cut", "--every", "1w", "--grace", "12h", "--level",
             "orange", "--by", "cy")
    assert "every 1w (set for the site), grace 12h" in out and "level orange" in out
    out = ok("site", "escalation", "North cut", "--level", "red", "--after", "10m", "--to",
             "boss@example.org,chief@example.org", "--by", "cy")
    assert "10m, repeated" in out and "boss@example.org" in out
    r = runner.invoke(app, ["site", "escalation", "North cut", "--level", "red", "--to",
                            "not-an-address", "--url", url])
    assert r.exit_code == 2 and "not an e-mail address" in r.output
    out = ok("alerts", "check")
    assert "raised site.overdue" in out or "Nothing due" in out

    path = tmp_path / "audit.csv"
    ok("export", "--layer", "audit", "--format", "csv", "--out", str(path))
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    settings = [(r["action"], r["actor"]) for r in rows if r["action"].startswith("site.")]
    assert settings == [("site.added", "ana"), ("site.model_set", "ana"),
                        ("site.thresholds_set", "bo"), ("site.schedule_set", "bo"),
                        ("site.overdue_set", "cy"), ("site.escalation_set", "cy")]
    th = json.loads(next(r for r in rows if r["action"] == "site.thresholds_set")["details"])
    assert th["new"]["confirmation"] == "consecutive" and th["old"] is None
    assert all(r["site_name"] == "North cut" and r["at"].endswith("+00:00") for r in rows)
    r = runner.invoke(app, ["export", "--layer", "audit", "--out", str(tmp_path / "a.gpkg"),
                            "--url", url])
    assert r.exit_code == 2 and "format 'csv'" in r.output


# --------------------------------------------------------------------------- scheduler


def test_the_scheduler_runs_the_checks_in_memory_as_scheduler(tmp_path):
    from apscheduler.schedulers.background import BackgroundScheduler

    from jobs.alert_checks import JOB_ID, add_scheduler_job, scheduled_checks
    from jobs.scheduler import build_scheduler

    url = f"sqlite:///{tmp_path / 'cw.db'}"
    store.upgrade(url)
    engine = store.connect(url)
    try:
        site = store.add_site(engine, "wall", profile="structure", crs_epsg=EPSG)
        alert_settings.set_overdue(engine, site.id, actor="lead", expected_interval_s=60,
                                   grace_s=0)
        with session_scope(engine, write=True) as s:
            s.get(m.Site, site.id).created_at = T0
        sched = build_scheduler(url, scheduler_cls=BackgroundScheduler)
        add_scheduler_job(sched, url)
        sched.start(paused=True)
        try:
            job = sched.get_job(JOB_ID, jobstore="memory")
            assert job is not None and job.trigger.interval.total_seconds() == 60
        finally:
            sched.shutdown(wait=False)
        assert scheduled_checks(url) == 1
        assert scheduled_checks(url) == 0  # raised once
        assert ("alert.raised", "scheduler") in [(a, who) for a, who, _ in _events(engine)]
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- SIMULATED site


def test_the_simulated_growth_site_notifies_only_confirmed_growth(tmp_path):
    """The demo's SIMULATED growth site (a real UAV75 crack inpainted away night by night,
    jobs.demo) run with the shipped model: its first growth exceedance is seen in one survey
    only, so it is a watch and nobody is told; a later exceedance of one crack in two
    consecutive surveys is confirmed and notified (Intrieri et al. 2012 rule)."""
    from engine.registry import load_model
    from jobs.demo import DEMO_DATA, GROWTH_SOURCE_STEM, _structure_model, make_simulated_growth

    src = DEMO_DATA / "uav75" / "growth_source"
    nights = make_simulated_growth(src / f"{GROWTH_SOURCE_STEM}.jpg",
                                   src / f"{GROWTH_SOURCE_STEM}.png", tmp_path / "sim")
    url = f"sqlite:///{tmp_path / 'g.db'}"
    store.upgrade(url)
    engine = store.connect(url)
    name = "SIMULATED growth"
    store.add_site(engine, name, profile="slope", crs_epsg=32632, model_name=_structure_model())
    model = load_model(_structure_model(), device="cpu")
    channel = Recorder("log")
    sent_after = []
    try:
        for path, when in nights:
            sv = ingest(engine, name, path, acquired_at=when, metadata={"simulated": True})
            # without the object rules: the 50 px length rule (engine.crack_rules) hides the
            # 35 px branch of night 3, so the second crack's track would start a night later
            r = process_survey(engine, sv.id, PipelineOptions(work_dir=tmp_path / "work",
                                                              object_filter=ObjectFilter()),
                               model=model, notifiers=[channel])
            assert r.status == "succeeded", r.error
            sent_after.append([x.rule for x in channel.sent])
        with session_scope(engine) as s:
            alerts = s.scalars(select(m.Alert).where(m.Alert.rule.in_(
                ["slope.length_rate", "slope.opening_rate"])).order_by(m.Alert.id)).all()
            notified = {n.alert_id for n in s.scalars(select(m.Notification))}
            first = alerts[0]
            assert first.details["observed_at"].startswith(f"{nights[1][1]:%Y-%m-%d}")
            assert first.id not in notified and sent_after[1] == []  # night 2: a watch only
            assert all(a.id not in notified for a in alerts if a.watch)
            confirmed = [a for a in alerts if not a.watch]
            assert confirmed and {a.id for a in confirmed} <= notified
            for a in confirmed:  # each was a watch first, then confirmed by the next survey
                actions = [e.action for e in s.scalars(select(m.AuditEvent).where(
                    m.AuditEvent.alert_id == a.id).order_by(m.AuditEvent.id))]
                assert actions[:2] == ["alert.watch", "alert.confirmed"], actions
                assert "confirmed" in a.details["confirmation"]
        assert sent_after[-1] and set(sent_after[-1]) <= {"slope.length_rate",
                                                          "slope.opening_rate"}
    finally:
        engine.dispose()


def test_a_failed_scheduler_cycle_is_recorded_and_the_next_one_runs(tmp_path, monkeypatch):
    """The alert-check and outbox cycles (geodata.store.jobruns.run_store_cycle): a failure
    is recorded as a failed job run with its traceback and returns 0; the next cycle runs."""
    import jobs.alert_checks
    import jobs.outbox
    from geodata.queries import job_runs
    from jobs.alert_checks import scheduled_checks
    from jobs.scheduler import deliver_outbox_job

    url = f"sqlite:///{tmp_path / 'cw.db'}"
    store.upgrade(url)

    def broken(*_a, **_k):
        raise RuntimeError("disk on fire")

    with monkeypatch.context() as mp:
        mp.setattr(jobs.alert_checks, "run_checks", broken)
        mp.setattr(jobs.outbox, "deliver_pending", broken)
        assert scheduled_checks(url) == 0
        assert deliver_outbox_job(url) == 0
    assert scheduled_checks(url) == 0 and deliver_outbox_job(url) == 0  # nothing due: runs
    engine = store.connect(url)
    try:
        runs = job_runs(engine)
    finally:
        engine.dispose()
    failed = runs[runs["status"] == "failed"]
    assert sorted(failed["job"]) == ["alert_checks", "deliver_outbox"]
    assert all("disk on fire" in e for e in failed["error"])
