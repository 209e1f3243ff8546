"""Fault injection on the notifications outbox (jobs.outbox), on SQLite and PostGIS alike.

Real local servers only (127.0.0.1): a webhook receiver that answers 500, hangs past the
client's timeout, or is not listening at all, and then recovers; an SMTP server (aiosmtpd)
that is down, then refuses for now (451), then accepts. A notification counts as
received when the receiver answered it with 200 (a request it left hanging, or answered
500, it did not accept). Every test is bounded in time (timeouts well under a second).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler

import pytest
from sqlalchemy import select, update

from geodata import queries, store
from geodata.store import models as m
from geodata.store.engine import session_scope
from jobs.notify import EmailNotifier, WebhookNotifier
from jobs.outbox import CLAIM_TIMEOUT_S, channel_of, deliver_pending, enqueue
from jobs.pipeline import retry_notifications
from tests.builders import http_server
from tests.conftest import free_port

EPSG = 32633


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    """urllib honours *_proxy variables: keep test traffic on 127.0.0.1."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)


class Hook:
    """A webhook receiver. ``script`` is what it does with each request in turn (``"500"``,
    ``"hang"``: answer nothing for ``hang_s``, ``"200"``); when the script is used up it
    answers 200 after ``delay_s``. ``accepted`` holds the alert ids it answered 200."""

    def __init__(self, script: list[str] | None = None, *, hang_s: float = 1.0,
                 delay_s: float = 0.0) -> None:
        self.script = list(script or [])
        self.hang_s, self.delay_s = hang_s, delay_s
        self.accepted: list[int] = []
        self.requests = 0
        self.lock = threading.Lock()


@contextmanager
def serve(hook: Hook, port: int = 0) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            with hook.lock:
                hook.requests += 1
                action = hook.script.pop(0) if hook.script else "200"
            if action == "hang":
                time.sleep(hook.hang_s)  # the client has given up by now
                return
            if action == "200":
                time.sleep(hook.delay_s)
                with hook.lock:
                    hook.accepted.append(body["crackwatch"]["alert_id"])
            self.send_response(int(action))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    with http_server(Handler, "/hook", port) as url:
        yield url


class Recorder:
    """An in-process channel that records the alert ids it sent."""

    def __init__(self, name: str = "log") -> None:
        self.name, self.sent = name, []

    def send(self, alert) -> None:
        self.sent.append(alert.alert_id)


def webhook(url: str, attempts: int = 2) -> WebhookNotifier:
    return WebhookNotifier(url=url, attempts=attempts, base_delay_s=0.0, timeout_s=0.3)


def raise_alerts(engine, n: int, channels: list[str], level: str = "orange") -> list[int]:
    """``n`` alerts on a new site with their outbox rows, in one transaction (as the
    pipeline writes them)."""
    site = store.add_site(engine, f"wall {time.monotonic_ns()}", profile="structure",
                          crs_epsg=EPSG)
    ids = []
    with session_scope(engine, write=True) as s:
        for k in range(n):
            a = m.Alert(site_id=site.id, level=level, rule="structure.bre251",
                        message=f"crack {k} wide", notifications=[], details={"unit": "mm"})
            s.add(a)
            s.flush()
            ids.append(a.id)
        enqueue(s, [{"alert_id": i, "site": site.name, "level": level,
                     "rule": "structure.bre251", "message": "wide", "action": "raise"}
                    for i in ids], channels)
    return ids


def statuses(engine) -> dict[tuple[int, str], str]:
    with session_scope(engine) as s:
        return {(r.alert_id, r.channel): r.status for r in s.scalars(select(m.Notification))}


def test_webhook_refusing_then_500_then_hanging_then_recovering_delivers_each_once(engine):
    log_ch = Recorder()
    ids = raise_alerts(engine, 3, ["log", "webhook"])
    port = free_port()

    # 1. nothing listens on the port: connection refused; the log channel still delivers
    t0 = time.monotonic()
    report = deliver_pending(engine, [log_ch, webhook(f"http://127.0.0.1:{port}/hook")],
                             respect_backoff=False)
    assert (report.delivered, report.failed) == (3, 3)
    assert all("connection error" in e for e in report.errors)
    st = statuses(engine)
    assert {st[(i, "webhook")] for i in ids} == {"failed"}
    assert {st[(i, "log")] for i in ids} == {"delivered"}
    alerts = queries.all_alerts(engine).set_index("alert_id")  # what the dashboard shows
    assert alerts.loc[ids[0], "delivery"].startswith("log: delivered, webhook: failed (2 tries;")
    waiting = queries.undelivered_notifications(engine)
    assert sorted(waiting["alert_id"]) == sorted(ids) and set(waiting["channel"]) == {"webhook"}

    # 2. the receiver is up but answers 500 twice (alert 1), then hangs twice (alert 2)
    hook = Hook(["500", "500", "hang", "hang"], hang_s=1.0)
    with serve(hook, port) as url:
        report = retry_notifications(engine, [log_ch, webhook(url)])
        assert report == 2  # alerts 1 and 2 still failing, alert 3 delivered
        st = statuses(engine)
        assert [st[(i, "webhook")] for i in ids] == ["failed", "failed", "delivered"]
        with session_scope(engine) as s:
            errors = {r.alert_id: r.last_error for r in s.scalars(
                select(m.Notification).where(m.Notification.channel == "webhook"))}
        assert "HTTP 500" in errors[ids[0]] and "timed out" in errors[ids[1]]

        # 3. it recovers: the next run sends what is still failing, once
        assert retry_notifications(engine, [log_ch, webhook(url)]) == 0
        assert retry_notifications(engine, [log_ch, webhook(url)]) == 0  # nothing left
    assert sorted(hook.accepted) == sorted(ids)  # each alert accepted exactly once
    assert sorted(log_ch.sent) == sorted(ids)  # the log channel was never sent twice
    assert set(statuses(engine).values()) == {"delivered"}
    assert queries.undelivered_notifications(engine).empty
    assert time.monotonic() - t0 < 20
    with session_scope(engine) as s:  # each try is in the alert's delivery log
        log = s.get(m.Alert, ids[0]).notifications
    assert [(e["notifier"], e["ok"]) for e in log] == [
        ("log", True), ("webhook", False), ("webhook", False), ("webhook", True)]


def test_two_senders_at_once_send_each_notification_once(engine):
    ids = raise_alerts(engine, 6, ["webhook"])
    hook = Hook(delay_s=0.1)  # slow enough that the two senders overlap
    errors: list[BaseException] = []
    with serve(hook) as url:
        def sender():
            try:
                deliver_pending(engine, [webhook(url)], respect_backoff=False)
            except BaseException as exc:  # noqa: BLE001 - reported by the assert below
                errors.append(exc)

        threads = [threading.Thread(target=sender) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert errors == []
    assert sorted(hook.accepted) == sorted(ids)
    assert set(statuses(engine).values()) == {"delivered"}


def test_failed_rows_wait_for_their_backoff_on_the_scheduler_cycle(engine):
    [alert_id] = raise_alerts(engine, 1, ["webhook"])
    dead = webhook(f"http://127.0.0.1:{free_port()}/hook", attempts=1)
    assert deliver_pending(engine, [dead]).failed == 1
    with session_scope(engine) as s:
        row = s.scalars(select(m.Notification)).one()
        first_try, retry_at = row.last_attempt_at, row.next_attempt_at
    assert timedelta(seconds=59) < retry_at - first_try < timedelta(seconds=61)
    hook = Hook()
    with serve(hook) as url:
        # before the backoff has passed the cycle leaves it alone...
        assert deliver_pending(engine, [webhook(url)], now=retry_at - timedelta(seconds=5)
                               ).delivered == 0
        # ...after it, it is sent
        assert deliver_pending(engine, [webhook(url)], now=retry_at + timedelta(seconds=1)
                               ).delivered == 1
    assert hook.accepted == [alert_id]


def test_a_sender_that_died_mid_send_is_taken_over_after_the_claim_timeout(engine):
    [alert_id] = raise_alerts(engine, 1, ["log"])
    now = m.utcnow()
    with session_scope(engine, write=True) as s:  # a sender claimed it, then was killed
        s.execute(update(m.Notification).values(status="sending", claimed_by="host:999999",
                                                last_attempt_at=now - timedelta(minutes=1)))
    log_ch = Recorder()
    assert deliver_pending(engine, [log_ch], respect_backoff=False).delivered == 0
    later = now + timedelta(seconds=CLAIM_TIMEOUT_S)
    assert deliver_pending(engine, [log_ch], respect_backoff=False, now=later).delivered == 1
    assert log_ch.sent == [alert_id]
    assert statuses(engine) == {(alert_id, "log"): "delivered"}


def test_outbox_rows_are_idempotent_per_alert_channel_and_level(engine):
    [alert_id] = raise_alerts(engine, 1, ["log", "webhook"])
    item = {"alert_id": alert_id, "level": "orange", "message": "wide", "action": "raise"}
    with session_scope(engine, write=True) as s:
        assert enqueue(s, [item], ["log", "webhook"]) == 0  # already there
        assert enqueue(s, [{**item, "level": "red", "action": "escalate"}], ["log"]) == 1
    with session_scope(engine) as s:
        rows = sorted((r.channel, r.level, r.action) for r in s.scalars(select(m.Notification)))
    assert rows == [("log", "orange", "raise"), ("log", "red", "escalate"),
                    ("webhook", "orange", "raise")]
    with pytest.raises(ValueError, match="unique name"):
        deliver_pending(engine, [Recorder("log"), Recorder("log")])
    assert channel_of(Recorder("sms")) == "sms"


def test_upgrade_carries_failed_notifications_of_old_alerts_into_the_outbox(tmp_path):
    """A store at 0001 whose alert's webhook delivery failed: after the upgrade, the next run
    sends it to the webhook (and not again to the log channel, which had delivered)."""
    url = store.sqlite_url(tmp_path / "old.db")
    store.upgrade(url, "0001")
    engine = store.connect(url)
    try:
        with session_scope(engine, write=True) as s:  # the 0001 schema: core inserts only
            site_id = s.execute(m.Site.__table__.insert().values(
                name="wall", profile="structure", crs_epsg=EPSG, timezone="UTC",
                created_at=m.utcnow()).returning(m.Site.__table__.c.id)).scalar_one()
            a = m.Alert.__table__
            s.execute(a.insert().values(
                site_id=site_id, level="orange", rule="structure.bre251", message="wide",
                raised_at=m.utcnow(), details={"unit": "mm"}, notifications=[
                    {"notifier": "log", "ok": True, "attempts": 1, "level": "orange"},
                    {"notifier": "webhook", "ok": False, "attempts": 3, "level": "orange",
                     "error": "HTTP 500"}]))
        assert store.upgrade(engine) == store.head_revision()
        assert set(statuses(engine).values()) == {"delivered", "failed"}
        log_ch, hook = Recorder("log"), Recorder("webhook")
        assert retry_notifications(engine, [log_ch, hook]) == 0
        assert (log_ch.sent, len(hook.sent)) == ([], 1)
    finally:
        engine.dispose()


def test_the_scheduler_cycle_sends_what_is_due(tmp_path, monkeypatch):
    from jobs.scheduler import deliver_outbox_job

    url = store.sqlite_url(tmp_path / "cw.db")
    store.upgrade(url)
    engine = store.connect(url)
    try:
        ids = raise_alerts(engine, 2, ["log", "webhook"])
        hook = Hook(["500", "500", "500"])  # the first alert fails all 3 tries of one cycle
        with serve(hook) as hook_url:
            monkeypatch.setenv("CRACKWATCH_WEBHOOK_URL", hook_url)
            assert deliver_outbox_job(url) == 3  # 2 log + the second webhook (after 1 s + 2 s)
            assert deliver_outbox_job(url) == 0  # the failed one waits for its backoff
            assert deliver_outbox_job(url) == 0
        assert hook.accepted == [ids[1]]
        assert statuses(engine)[(ids[0], "webhook")] == "failed"
    finally:
        engine.dispose()


class Mailbox:
    """An SMTP receiver (aiosmtpd): ``script`` holds replies to the first messages (e.g.
    ``"451 ..."``, a transient refusal); after it every message is accepted (250) and the
    alert id in its body recorded in ``accepted``."""

    def __init__(self, script: list[str] | None = None) -> None:
        self.script = list(script or [])
        self.accepted: list[int] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        if self.script:
            return self.script.pop(0)
        body = envelope.content.decode("utf-8", "replace")
        self.accepted.append(int(re.search(r"alert_id: (\d+)", body).group(1)))
        return "250 OK"


@contextmanager
def smtp_server(box: Mailbox, port: int) -> Iterator[None]:
    from aiosmtpd.controller import Controller

    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield
    finally:
        controller.stop()


def email(port: int) -> EmailNotifier:
    return EmailNotifier(host="127.0.0.1", port=port, sender="crackwatch@localhost",
                         recipients=["ops@localhost"], starttls=False, timeout_s=2.0,
                         attempts=1)


def test_smtp_down_then_busy_then_up_delivers_each_alert_once(engine):
    log_ch = Recorder()
    ids = raise_alerts(engine, 3, ["log", "email"])
    port = free_port()

    # 1. no SMTP server: connection refused; the log channel delivers anyway
    report = deliver_pending(engine, [log_ch, email(port)], respect_backoff=False)
    assert (report.delivered, report.failed) == (3, 3)
    assert all("Connection refused" in e or "ConnectionRefused" in e for e in report.errors)
    st = statuses(engine)
    assert {st[(i, "email")] for i in ids} == {"failed"}
    assert {st[(i, "log")] for i in ids} == {"delivered"}

    box = Mailbox(["451 4.3.0 mailbox busy, try again later"])
    with smtp_server(box, port):
        # 2. the server is up but refuses the first message for now (451): still pending
        assert retry_notifications(engine, [log_ch, email(port)]) == 1
        with session_scope(engine) as s:
            errors = [r.last_error for r in s.scalars(select(m.Notification).where(
                m.Notification.channel == "email", m.Notification.status == "failed"))]
        assert len(errors) == 1 and "SMTP 451" in errors[0]
        # 3. it accepts: what is left is sent, once; a later run sends nothing
        assert retry_notifications(engine, [log_ch, email(port)]) == 0
        assert retry_notifications(engine, [log_ch, email(port)]) == 0
    assert sorted(box.accepted) == sorted(ids)  # each alert e-mailed exactly once
    assert sorted(log_ch.sent) == sorted(ids)
    assert set(statuses(engine).values()) == {"delivered"}


def test_dead_smtp_and_webhook_then_alive_through_crackwatch_runs(engine, tmp_path):
    """The pipeline raises an alert while the SMTP server and the webhook are down; the next
    runs of the site (no new survey) deliver it to each, exactly once."""
    from synthetic import DarkModel, write_ortho

    from jobs.inbox import ingest
    from jobs.pipeline import PipelineOptions, run_site

    store.add_site(engine, "wall", profile="structure", crs_epsg=EPSG)
    ingest(engine, "wall", write_ortho(tmp_path / "a.tif",
                                       when=datetime(2026, 6, 1, tzinfo=UTC)))
    opt = PipelineOptions(work_dir=tmp_path / "work", tile_size=256, overlap=32,
                          inbox_settle_s=0)
    smtp_port, hook_port = free_port(), free_port()
    log_ch = Recorder()

    def channels():
        return [log_ch, email(smtp_port), webhook(f"http://127.0.0.1:{hook_port}/hook")]

    [r] = run_site(engine, "wall", opt, model=DarkModel(), notifiers=channels())
    assert r.status == "succeeded" and r.notifications_failed == 2
    [alert_id] = [a["alert_id"] for a in r.alerts_raised]
    assert queries.undelivered_notifications(engine)["channel"].tolist() in (
        ["email", "webhook"], ["webhook", "email"])

    box, hook = Mailbox(), Hook()
    with smtp_server(box, smtp_port), serve(hook, hook_port):
        assert run_site(engine, "wall", opt, model=DarkModel(), notifiers=channels()) == []
        assert run_site(engine, "wall", opt, model=DarkModel(), notifiers=channels()) == []
    assert (box.accepted, hook.accepted, log_ch.sent) == ([alert_id], [alert_id], [alert_id])
    assert queries.undelivered_notifications(engine).empty
