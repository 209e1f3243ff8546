"""The notifications outbox: what an alert must announce is stored with the alert.

The pipeline writes one ``notification`` row per (alert, channel, level) in the same
transaction as the alert (:func:`enqueue`), so a crash right after the commit cannot lose a
notification. After the commit a sender (:func:`deliver_pending`) delivers the rows:

1. it **claims** a row with one conditional ``UPDATE`` (``pending``/``failed`` ->
   ``sending``, owner and time recorded); a row another process claimed is left to it, so two
   senders at once (a manual run during the scheduler's cycle) do not both send it;
2. it sends through the notifier of the row's channel (which has its own retries with
   backoff, e.g. :class:`jobs.notify.WebhookNotifier`);
3. it marks the row ``delivered``, or ``failed`` with the error text and the time of the
   next try (``next_attempt_at``: exponential backoff, :data:`BASE_BACKOFF_S` doubled per
   failed try, capped at :data:`MAX_BACKOFF_S`).

A sender that dies between sending and marking leaves the row ``sending``. The next sender
on the same host sees that the claimant's process is gone (:func:`geodata.store.locks.
owner_is_alive`) and sends the row again at once; a claimant on another host is presumed
dead after :data:`CLAIM_TIMEOUT_S`. The receiver may then have the message already, so every
try of a row carries the same key (:func:`idempotency_key`): the webhook's
``Idempotency-Key`` header (and ``crackwatch.idempotency_key`` in its JSON), the e-mail's
``Message-ID``. A receiver that drops a repeated key gets each notification exactly once
per channel and level; one that does not gets a repeat only when a sender died in that
window, right away rather than 15 minutes late.

Every ``crackwatch run`` resends everything not yet delivered for its site
(``respect_backoff=False``); the scheduler sends due rows of every site on its own cycle
(:func:`jobs.scheduler.deliver_outbox_job`), honouring the backoff. Each try is also
appended to the alert's ``notifications`` log (the audit trail the dashboard shows).

A channel is a notifier's ``name`` (``log``, ``webhook``, ``email``). Rows of a channel that
is not configured in the sending process (say the webhook variable was unset) stay pending
until a process that has it runs.

Escalation notices of an unacknowledged alert (:mod:`jobs.escalation`) are rows of the same
outbox with ``sequence`` 1, 2... and, on the ``email`` channel, the second-level
``recipients`` (given to the notifier in the message, :attr:`jobs.notify.AlertMessage
.recipients`). Every row queued, sent or failed is also an audit entry
(``notification.queued`` / ``.sent`` / ``.failed``, :mod:`geodata.audit`) written in the
transaction that changes the row.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from geodata import audit
from geodata.store.engine import session_scope
from geodata.store.outbox import (
    claim_notification,
    due_notifications,
    mark_notification,
    queue_notifications,
)
from jobs.notify import AlertMessage, DeliveryResult, Notifier, deliver

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

__all__ = [
    "BASE_BACKOFF_S",
    "CLAIM_TIMEOUT_S",
    "MAX_BACKOFF_S",
    "OutboxReport",
    "channel_of",
    "deliver_pending",
    "dead_senders",
    "enqueue",
    "idempotency_key",
    "sender_id",
]

#: Backoff before the first retry of a failed row, seconds (doubled per failed try).
BASE_BACKOFF_S = 60.0
#: Longest backoff between two tries of one row, seconds.
MAX_BACKOFF_S = 3600.0
#: A row ``sending`` for longer than this (seconds) is taken as abandoned by a dead sender
#: and sent again. Longer than any notifier's tries, timeouts and backoff together.
CLAIM_TIMEOUT_S = 15 * 60.0


def sender_id() -> str:
    """``host:pid`` of this process: who claimed a row (shown on a ``sending`` row)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def idempotency_key(row_id: int, alert_id: int) -> str:
    """The key every try of outbox row ``row_id`` carries (``crackwatch-a<alert>-n<row>``)."""
    return f"crackwatch-a{int(alert_id)}-n{int(row_id)}"


def dead_senders(bind: Engine) -> list[str]:
    """``host:pid`` claimants of ``sending`` rows whose process is gone on this host."""
    from geodata.store.locks import owner_is_alive
    from geodata.store.outbox import sending_owners

    with session_scope(bind) as s:
        owners = sending_owners(s)
    dead = []
    for owner in owners:
        host, _, pid = owner.rpartition(":")
        if pid.isdigit() and owner_is_alive(host, int(pid)) is False:
            dead.append(owner)
    return dead


def channel_of(notifier: Notifier) -> str:
    """The channel name of a notifier: its ``name`` (or its class name)."""
    return str(getattr(notifier, "name", type(notifier).__name__))


def backoff_s(failed_tries: int) -> float:
    """Seconds to wait after ``failed_tries`` (>= 1) failed tries of one row."""
    return min(MAX_BACKOFF_S, BASE_BACKOFF_S * 2 ** max(0, failed_tries - 1))


@dataclass
class OutboxReport:
    """What one :func:`deliver_pending` call did.

    Attributes:
        delivered: rows sent and marked delivered.
        failed: rows whose try failed (marked failed, sent again later).
        errors: ``"alert N via CHANNEL: error"`` per failed row.
    """

    delivered: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def enqueue(s: Session, items: Iterable[Mapping[str, Any]], channels: Sequence[str], *,
            sequence: int = 0, recipients: Mapping[str, Sequence[str]] | None = None,
            actor: str = audit.SYSTEM) -> int:
    """Add a pending row per alert item and channel, inside ``s``'s transaction.

    Args:
        s: the session whose transaction writes the alerts (the rows commit with them).
        items: raised/escalated alert records with ``alert_id``, ``level``, ``message``
            (and the other :class:`jobs.notify.AlertMessage` fields; ``action``
            ``raise``/``escalate``/``unacknowledged``).
        channels: notifier names to announce through.
        sequence: 0 for the announcement of a level; n >= 1 for the n-th escalation notice
            of an unacknowledged alert (:mod:`jobs.escalation`).
        recipients: per channel, addresses that replace the channel's own (the second-level
            list of an escalation notice on ``email``); other channels use their own.
        actor: recorded as who queued the rows in the audit trail.

    Returns:
        The number of rows added. A row that exists for (alert, channel, level, sequence) is
        not added again: an alert is announced once per channel and level, and each
        escalation notice once per channel.

    Raises:
        ValueError: an item without ``alert_id`` or with an invalid level.
    """
    added = 0
    for item in items:
        if item.get("alert_id") is None:
            raise ValueError(f"an outbox item needs the alert_id of a stored alert: {item!r}")
        msg = AlertMessage.from_any(item)
        added += queue_notifications(s, int(item["alert_id"]), channels, level=msg.level,
                                     action=msg.action or "raise", payload=msg.to_dict(),
                                     sequence=int(sequence), recipients=recipients,
                                     actor=actor)
    s.flush()
    return added


def deliver_pending(
    bind: Engine,
    notifiers: Sequence[Notifier],
    *,
    site_id: int | None = None,
    alert_ids: Iterable[int] | None = None,
    respect_backoff: bool = True,
    now: datetime | None = None,
) -> OutboxReport:
    """Send the outbox rows that are due, one claim-send-mark cycle per row, oldest first.

    Args:
        bind: the store's engine.
        notifiers: the configured notifiers; only rows of their channels are sent.
        site_id: only this site's rows.
        alert_ids: only these alerts' rows (the pipeline, right after its commit).
        respect_backoff: skip failed rows whose ``next_attempt_at`` is in the future
            (the scheduler's cycle); ``False`` sends every undelivered row (a run).
        now: the current time (tests); default now (UTC).

    Returns:
        :class:`OutboxReport`. Never raises for a failed send (it is recorded on the row);
        database errors propagate.

    Raises:
        ValueError: two notifiers with the same name (a channel must be unambiguous).
    """
    by_channel: dict[str, Notifier] = {}
    for n in notifiers:
        name = channel_of(n)
        if name in by_channel:
            raise ValueError(f"two notifiers are named {name!r}: give each a unique name "
                             f"(it is the channel recorded in the outbox)")
        by_channel[name] = n
    report = OutboxReport()
    if not by_channel:
        return report
    now = now or datetime.now(UTC)
    dead = dead_senders(bind)  # their rows are due now, not after the claim timeout
    with session_scope(bind) as s:
        ids = due_notifications(s, by_channel, now=now, claim_timeout_s=CLAIM_TIMEOUT_S,
                                respect_backoff=respect_backoff, site_id=site_id,
                                alert_ids=alert_ids, dead_owners=dead)
    me = sender_id()
    for row_id in ids:
        row = _claim(bind, row_id, me, now, respect_backoff, dead)
        if row is None:
            continue  # another sender took it (or it was delivered meanwhile)
        notifier = by_channel[row["channel"]]
        payload = {**row["payload"], "idempotency_key": idempotency_key(row_id,
                                                                        row["alert_id"])}
        result = deliver(payload, [notifier])[0]
        _mark(bind, row_id, result)
        if result.ok:
            report.delivered += 1
        else:
            report.failed += 1
            report.errors.append(f"alert {row['alert_id']} via {row['channel']}: "
                                 f"{result.error}")
    return report


def _claim(bind: Engine, row_id: int, owner: str, now: datetime,
           respect_backoff: bool, dead_owners: Sequence[str] = ()) -> dict[str, Any] | None:
    """Take row ``row_id`` for sending if it is still due; its data, or None if not ours."""
    with session_scope(bind, write=True) as s:
        return claim_notification(s, row_id, owner=owner, now=now,
                                  claim_timeout_s=CLAIM_TIMEOUT_S,
                                  respect_backoff=respect_backoff, dead_owners=dead_owners)


def _mark(bind: Engine, row_id: int, result: DeliveryResult) -> None:
    """Record the outcome of one try on the row and in the alert's delivery log."""
    with session_scope(bind, write=True) as s:
        mark_notification(s, row_id, ok=result.ok, attempts=result.attempts,
                          error=result.error, at=result.at, backoff_s=backoff_s)
