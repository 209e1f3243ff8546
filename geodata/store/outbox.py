"""The notifications outbox in the store: queue, list what is due, claim, mark sent or failed.

The rows and their life (``pending`` -> ``sending`` -> ``delivered`` | ``failed``, retried
after a backoff) are described in :mod:`jobs.outbox`, which decides what to send and
through which notifier; these functions are its only way to the ``notification`` table
(issue 17: a store boundary, so the jobs need no ORM class). Each takes the session whose
transaction the change belongs to: queued rows commit with their alert, a claim and a mark
are each one short write transaction of the caller. Every row queued, sent or failed is an
audit entry (:mod:`geodata.audit`) in that same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from geodata import audit
from geodata.store.models import Alert, Notification, utcnow

__all__ = ["claim_notification", "due_notifications", "mark_notification",
           "queue_notifications", "sending_owners"]


def queue_notifications(s: Session, alert_id: int, channels: Iterable[str], *, level: str,
                        action: str, payload: Mapping[str, Any], sequence: int = 0,
                        recipients: Mapping[str, Sequence[str]] | None = None,
                        actor: str = audit.SYSTEM) -> int:
    """Add a ``pending`` row per channel for one alert, inside ``s``'s transaction.

    Args:
        s: the session whose transaction writes the alert (the rows commit with it).
        alert_id: the stored alert announced.
        channels: notifier names (duplicates count once).
        level: the alert level announced (one of :data:`geodata.levels.ALERT_LEVELS`).
        action: ``raise`` / ``escalate`` / ``unacknowledged``.
        payload: the message as JSON (:meth:`jobs.notify.AlertMessage.to_dict`).
        sequence: 0 for the announcement of a level; n >= 1 for the n-th escalation notice.
        recipients: per channel, addresses that replace the channel's own.
        actor: recorded as who queued the rows in the audit trail.

    Returns:
        The number of rows added: a row that exists for (alert, channel, level, sequence) is
        not added again.
    """
    site_id = s.get(Alert, alert_id).site_id
    added = 0
    for channel in dict.fromkeys(channels):
        exists = s.scalar(select(Notification.id).where(
            Notification.alert_id == alert_id, Notification.channel == channel,
            Notification.level == level, Notification.sequence == int(sequence)))
        if exists is not None:
            continue
        to = [str(r) for r in (recipients or {}).get(channel) or []] or None
        row = Notification(alert_id=alert_id, site_id=site_id, channel=channel, level=level,
                           action=action, payload=dict(payload), status="pending",
                           attempts=0, sequence=int(sequence), recipients=to)
        s.add(row)
        s.flush()
        audit.record(s, "notification.queued", actor=actor, site_id=site_id,
                     alert_id=alert_id, notification_id=row.id,
                     details={"channel": channel, "level": level, "action": action,
                              "sequence": int(sequence), "recipients": to})
        added += 1
    s.flush()
    return added


def sending_owners(s: Session) -> list[str]:
    """The distinct ``claimed_by`` (``host:pid``) of the rows now ``sending``."""
    return [o for o in s.scalars(select(Notification.claimed_by).distinct()
                                 .where(Notification.status == "sending")) if o]


def _due(now: datetime, respect_backoff: bool, claim_timeout_s: float,
         dead_owners: Sequence[str] = ()) -> Any:
    """Rows to (re)send: pending or failed (past their backoff when ``respect_backoff``), and
    rows ``sending`` for longer than ``claim_timeout_s`` or claimed by one of
    ``dead_owners`` (their sender died)."""
    stale = now - timedelta(seconds=claim_timeout_s)
    retry = Notification.status.in_(("pending", "failed"))
    if respect_backoff:
        retry = and_(retry, or_(Notification.next_attempt_at.is_(None),
                                Notification.next_attempt_at <= now))
    gone = Notification.last_attempt_at < stale
    if dead_owners:
        gone = or_(gone, Notification.claimed_by.in_(list(dead_owners)))
    abandoned = and_(Notification.status == "sending", gone)
    return or_(retry, abandoned)


def due_notifications(s: Session, channels: Iterable[str], *, now: datetime,
                      claim_timeout_s: float, respect_backoff: bool = True,
                      site_id: int | None = None,
                      alert_ids: Iterable[int] | None = None,
                      dead_owners: Sequence[str] = ()) -> list[int]:
    """Ids of the rows of ``channels`` due at ``now`` (UTC), oldest first.

    Due: ``pending`` or ``failed`` (with ``respect_backoff``, only once ``next_attempt_at``
    has passed), or ``sending`` since more than ``claim_timeout_s`` seconds or claimed by
    one of ``dead_owners`` (abandoned). ``site_id`` / ``alert_ids`` narrow to one site's /
    these alerts' rows.
    """
    q = (select(Notification.id)
         .where(Notification.channel.in_(list(channels)),
                _due(now, respect_backoff, claim_timeout_s, dead_owners))
         .order_by(Notification.id))
    if site_id is not None:
        q = q.where(Notification.site_id == site_id)
    if alert_ids is not None:
        q = q.where(Notification.alert_id.in_([int(a) for a in alert_ids]))
    return list(s.scalars(q))


def claim_notification(s: Session, row_id: int, *, owner: str, now: datetime,
                       claim_timeout_s: float, respect_backoff: bool = True,
                       dead_owners: Sequence[str] = ()) -> dict[str, Any] | None:
    """Take row ``row_id`` for sending with one conditional ``UPDATE`` if it is still due
    (see :func:`due_notifications`): ``sending``, ``claimed_by`` ``owner``, tried now.

    Returns:
        ``alert_id``, ``channel``, ``level`` and ``payload`` (with the row's ``recipients``,
        if any) of the row, or ``None`` when another sender has it or it is no longer due.
    """
    res = s.execute(
        update(Notification)
        .where(Notification.id == row_id,
               _due(now, respect_backoff, claim_timeout_s, dead_owners))
        .values(status="sending", claimed_by=owner, last_attempt_at=utcnow())
        .execution_options(synchronize_session=False))
    if res.rowcount != 1:
        return None
    row = s.get(Notification, row_id)
    payload = dict(row.payload or {})
    if row.recipients:
        payload["recipients"] = list(row.recipients)
    return {"alert_id": row.alert_id, "channel": row.channel, "level": row.level,
            "payload": payload}


def mark_notification(s: Session, row_id: int, *, ok: bool, attempts: int,
                      error: str | None, at: datetime,
                      backoff_s: Callable[[int], float]) -> None:
    """Record the outcome of one try on the row, in its alert's delivery log
    (``alert.notifications``) and in the audit trail (``notification.sent`` / ``.failed``).

    Args:
        row_id: the row tried (gone when its alert was deleted meanwhile: nothing happens).
        ok, attempts, error, at: the try's outcome (:class:`jobs.notify.DeliveryResult`).
        backoff_s: seconds to wait after n failed tries of the row (n counted from the
            alert's delivery log on this channel and level), for ``next_attempt_at``.
    """
    row = s.get(Notification, row_id)
    if row is None:  # the alert (and its rows) was deleted meanwhile
        return
    row.attempts = (row.attempts or 0) + max(1, int(attempts))
    sender, row.claimed_by = row.claimed_by, None
    alert = s.get(Alert, row.alert_id)
    if ok:
        row.status, row.delivered_at, row.last_error = "delivered", at, None
        row.next_attempt_at = None
    else:
        failures = len([e for e in _alert_log(alert, row) if e.get("ok") is False]) + 1
        row.status, row.last_error = "failed", error
        row.next_attempt_at = at + timedelta(seconds=backoff_s(failures))
    if alert is not None:
        alert.notifications = [*(alert.notifications or []), {
            "notifier": row.channel, "ok": ok, "attempts": attempts, "error": error,
            "at": at.isoformat(), "level": row.level}]
    audit.record(s, "notification.sent" if ok else "notification.failed",
                 actor=audit.SYSTEM, site_id=row.site_id, alert_id=row.alert_id,
                 notification_id=row.id, at=at,
                 details={"channel": row.channel, "level": row.level, "action": row.action,
                          "sequence": row.sequence, "recipients": row.recipients,
                          "attempts": attempts, "error": error, "sender": sender})


def _alert_log(alert: Alert | None, row: Notification) -> list[dict[str, Any]]:
    """The alert's delivery-log entries of the row's channel and level."""
    return [e for e in (alert.notifications or []) if e.get("notifier") == row.channel
            and e.get("level") == row.level] if alert is not None else []
