"""The audit trail: who changed what about an alert, a notification or a site's settings, when.

Every alert state change, every notification queued, sent or failed, and every setting
changed through the command line is one ``audit_event`` row, written by :func:`record` in
the *same transaction* as the change it records: a change that rolls back leaves no entry,
and an entry never describes a change that did not happen. Rows are never updated or
deleted by CrackWatch (a schema downgrade below 0005 drops the table).

Columns: ``at`` (UTC), ``actor`` (a user's name, or :data:`SYSTEM` for what the pipeline
and the outbox do, :data:`SCHEDULER` for the scheduler's periodic checks), ``action`` (one of
:data:`ACTIONS`), ``site_id``, ``alert_id``, ``notification_id`` (plain ids: the trail keeps
them after a site or alert is deleted) and ``details`` (JSON: levels, notes, channels,
errors, old and new settings...).

Monitoring practice asks for this trail (every alert and every action on it written down,
with who and when): e.g. mining trigger-action response plans (TARPs) and the alarm
management of monitoring platforms.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from geodata.store.engine import session_scope
from geodata.store.models import AuditEvent, Site, utcnow

__all__ = ["ACTIONS", "AUDIT_COLUMNS", "SCHEDULER", "SYSTEM", "audit_events", "record"]

#: The actor of what the pipeline, the rules and the outbox do on their own.
SYSTEM = "system"
#: The actor of the scheduler's periodic checks (escalation, overdue surveys).
SCHEDULER = "scheduler"

#: Every action recorded, with what it means.
ACTIONS = {
    "alert.raised": "an alert was raised (and its notifications queued)",
    "alert.watch": "an unconfirmed slope exceedance was recorded as watch (no notification)",
    "alert.confirmed": "a watch alert was confirmed and promoted (notifications queued)",
    "alert.escalated": "an open alert's level rose (notifications queued again)",
    "alert.acknowledged": "a person acknowledged an alert",
    "alert.resolved": "a person resolved an alert",
    "alert.auto_resolved": "an alert was resolved automatically (reason in details)",
    "alert.reattached": "an alert moved to its crack's new track after a tracks rebuild",
    "alert.escalation_notice": "an unacknowledged alert was escalated to the second-level "
                               "recipients (notification queued)",
    "notification.queued": "a notification was written to the outbox",
    "notification.sent": "a notification was delivered",
    "notification.failed": "a try to deliver a notification failed (retried later)",
    "site.added": "a site was created",
    "site.model_set": "a site's model was changed",
    "site.tile_gate_set": "a site's tile gate was turned on, off or back to its rule",
    "site.thresholds_set": "a site's alert thresholds were changed",
    "site.schedule_set": "a site's schedule or time zone was changed",
    "site.overdue_set": "a site's expected survey interval / overdue alarm was changed",
    "site.escalation_set": "a site's escalation settings were changed",
}

_MAX_ACTOR = 200


def _jsonable(value: Any) -> Any:
    """``value`` as plain JSON (datetimes and other objects as their ``str``)."""
    return json.loads(json.dumps(value, default=str))


def record(
    s: Session,
    action: str,
    *,
    actor: str,
    site_id: int | None = None,
    alert_id: int | None = None,
    notification_id: int | None = None,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEvent:
    """Add one audit entry to ``s``'s transaction (it commits or rolls back with it).

    Args:
        s: the session whose transaction makes the change being recorded.
        action: one of :data:`ACTIONS`.
        actor: who: a user name, :data:`SYSTEM` or :data:`SCHEDULER`.
        site_id, alert_id, notification_id: what it concerns.
        details: JSON-able details (datetimes become ISO strings); the site's name is added
            as ``details["site"]`` when ``site_id`` is given (so the entry still names the
            site after it is deleted).
        at: when (aware); default now (UTC).

    Returns:
        The new (flushed) :class:`~geodata.store.models.AuditEvent`.

    Raises:
        ValueError: an unknown action, or an empty or over-long actor.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}; known: {sorted(ACTIONS)}")
    if not isinstance(actor, str) or not actor.strip():
        raise ValueError("an audit entry needs an actor (a user name, 'system' or 'scheduler')")
    actor = actor.strip()
    if len(actor) > _MAX_ACTOR:
        raise ValueError(f"the actor name is {len(actor)} characters long; at most "
                         f"{_MAX_ACTOR} fit")
    details = dict(details or {})
    if site_id is not None and "site" not in details:
        site = s.get(Site, int(site_id))
        if site is not None:
            details["site"] = site.name
    event = AuditEvent(at=at or utcnow(), actor=actor, action=action,
                       site_id=None if site_id is None else int(site_id),
                       alert_id=None if alert_id is None else int(alert_id),
                       notification_id=None if notification_id is None else int(notification_id),
                       details=_jsonable(details))
    s.add(event)
    s.flush()
    return event


#: Columns of :func:`audit_events`.
AUDIT_COLUMNS = ["event_id", "at", "actor", "action", "site_id", "site_name", "alert_id",
                 "notification_id", "details"]


def audit_events(
    bind: Engine | Session,
    *,
    site: int | str | None = None,
    alert_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    actions: list[str] | None = None,
    limit: int | None = None,
    newest_first: bool = True,
) -> pd.DataFrame:
    """The audit trail as a table.

    Args:
        site: only this site (id or name).
        alert_id: only this alert.
        since, until: only entries at or after / before these times (aware).
        actions: only these actions (prefixes such as ``"alert."`` match every alert action).
        limit: at most this many rows.
        newest_first: order by time descending (else ascending).

    Returns:
        Columns :data:`AUDIT_COLUMNS`: ``at`` is UTC, ``site_name`` the site's current name
        (or the one recorded in ``details`` if the site is gone), ``details`` a dict.

    Raises:
        RecordNotFoundError: ``site`` given and unknown.
    """
    from geodata.store.lookup import _site

    with session_scope(bind) as s:
        stmt = select(AuditEvent)
        if site is not None:
            stmt = stmt.where(AuditEvent.site_id == _site(s, site).id)
        if alert_id is not None:
            stmt = stmt.where(AuditEvent.alert_id == int(alert_id))
        if since is not None:
            stmt = stmt.where(AuditEvent.at >= since)
        if until is not None:
            stmt = stmt.where(AuditEvent.at < until)
        if actions:
            from sqlalchemy import or_

            stmt = stmt.where(or_(*[
                AuditEvent.action.startswith(a) if a.endswith(".") else AuditEvent.action == a
                for a in actions]))
        order = (AuditEvent.at.desc(), AuditEvent.id.desc()) if newest_first else \
            (AuditEvent.at, AuditEvent.id)
        stmt = stmt.order_by(*order)
        if limit is not None:
            stmt = stmt.limit(int(limit))
        events = list(s.scalars(stmt))
        names = dict(s.execute(select(Site.id, Site.name)).all())
    rows = [{"event_id": e.id, "at": e.at, "actor": e.actor, "action": e.action,
             "site_id": e.site_id,
             "site_name": names.get(e.site_id, (e.details or {}).get("site")),
             "alert_id": e.alert_id, "notification_id": e.notification_id,
             "details": dict(e.details or {})} for e in events]
    frame = pd.DataFrame(rows, columns=AUDIT_COLUMNS)
    for c in ("site_id", "alert_id", "notification_id"):
        frame[c] = frame[c].astype("Int64")
    return frame
