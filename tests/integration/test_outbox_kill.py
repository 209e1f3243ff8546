"""Issue 30, item 5: exactly-once across a kill -9 during a send, on SQLite and PostGIS.

A real sender process claims an outbox row and is killed while its webhook request (or its
SMTP DATA) is in flight, so the receiver has the message. The next sender on this host sees
the claimant's process is gone and sends the row again at once (not 15 minutes later), with
the same idempotency key: the webhook's ``Idempotency-Key`` header, the e-mail's
``Message-ID``. A receiver that drops a repeated key has the notification exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from sqlalchemy import select

from geodata.store import models as m
from geodata.store.engine import session_scope
from jobs.outbox import deliver_pending, idempotency_key
from tests.builders import http_server
from tests.conftest import free_port
from tests.integration.test_outbox import email, raise_alerts, webhook

ROOT = Path(__file__).resolve().parents[2]
_CHILD = """
import sys
from geodata.store import connect
from jobs.notify import EmailNotifier, WebhookNotifier
from jobs.outbox import deliver_pending
kind, target = sys.argv[2], sys.argv[3]
n = (WebhookNotifier(url=target, attempts=1, timeout_s=30) if kind == "webhook" else
     EmailNotifier(host="127.0.0.1", port=int(target), sender="crackwatch@localhost",
                   recipients=["ops@localhost"], starttls=False, timeout_s=30, attempts=1))
deliver_pending(connect(sys.argv[1]), [n], respect_backoff=False)
"""


class Receiver:
    """Keys seen, in order; ``arrived`` is set at the first; the first request is held until
    ``release`` (the sender is killed meanwhile)."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.arrived, self.release = threading.Event(), threading.Event()

    def got(self, key: str) -> None:
        self.keys.append(key)
        if len(self.keys) == 1:
            self.arrived.set()
            self.release.wait(10)

    def delivered_once(self) -> list[str]:
        return list(dict.fromkeys(self.keys))  # what a deduplicating receiver keeps


def _kill_mid_send(engine, kind: str, target: str, rx: Receiver) -> None:
    url = engine.url.render_as_string(hide_password=False)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, url, kind, target], env=env,
                             cwd=ROOT)
    try:
        assert rx.arrived.wait(60), "the sender never reached the receiver"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        rx.release.set()
        if child.poll() is None:
            child.kill()
    with session_scope(engine) as s:
        [row] = s.scalars(select(m.Notification)).all()
        assert row.status == "sending" and row.claimed_by.endswith(f":{child.pid}")


def test_webhook_kill_during_send_resent_at_once_with_the_same_key(engine):
    [alert_id] = raise_alerts(engine, 1, ["webhook"])
    rx = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            rx.got(self.headers.get("Idempotency-Key"))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    with http_server(Handler, "/hook") as url:
        _kill_mid_send(engine, "webhook", url, rx)
        t0 = time.monotonic()
        report = deliver_pending(engine, [webhook(url)], respect_backoff=False)
    assert report.delivered == 1 and time.monotonic() - t0 < 30  # not after the 15-min claim
    with session_scope(engine) as s:
        row_id = s.scalar(select(m.Notification.id))
    key = idempotency_key(row_id, alert_id)
    assert rx.keys == [key, key]
    assert rx.delivered_once() == [key]


def test_email_kill_during_send_resent_at_once_with_the_same_message_id(engine):
    from aiosmtpd.controller import Controller

    [alert_id] = raise_alerts(engine, 1, ["email"])
    rx = Receiver()

    class Box:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd
            import email as email_lib

            msg = email_lib.message_from_bytes(envelope.content)
            import asyncio

            await asyncio.get_running_loop().run_in_executor(None, rx.got, msg["Message-ID"])
            return "250 OK"

    port = free_port()
    controller = Controller(Box(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        _kill_mid_send(engine, "email", str(port), rx)
        report = deliver_pending(engine, [email(port)], respect_backoff=False)
    finally:
        controller.stop()
    assert report.delivered == 1
    with session_scope(engine) as s:
        row_id = s.scalar(select(m.Notification.id))
    mid = f"<{idempotency_key(row_id, alert_id)}@crackwatch.invalid>"
    assert rx.keys == [mid, mid]
    assert rx.delivered_once() == [mid]


@pytest.mark.parametrize("owner", ["elsewhere:123", "{host}:{pid}"])
def test_a_live_or_remote_claimant_keeps_its_row_until_the_claim_timeout(engine, owner):
    import socket

    raise_alerts(engine, 1, ["webhook"])
    owner = owner.format(host=socket.gethostname(), pid=os.getpid())  # this live process
    with session_scope(engine, write=True) as s:
        row = s.scalars(select(m.Notification)).one()
        row.status, row.claimed_by, row.last_attempt_at = "sending", owner, m.utcnow()
    assert deliver_pending(engine, [webhook("http://127.0.0.1:9/x")],
                           respect_backoff=False).delivered == 0
