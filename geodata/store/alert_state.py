"""The alert checks' way to the store: open alerts to escalate, each site's overdue state, and
the changes the checks make (an escalation notice, a ``site.overdue`` alert raised or
resolved automatically).

:mod:`jobs.escalation` and :mod:`jobs.overdue` decide *what* is due; these functions read and
write the rows (issue 17: a store boundary, so the jobs need no ORM class). Each takes the
session of the check's one transaction: the rows these functions lock stay locked until it
commits, and each change is written with its audit entry (:mod:`geodata.audit`) in it. What
they return are plain snapshots (:class:`OpenAlert`, :class:`OverdueState`), not ORM rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from geodata import audit
from geodata.alert_settings import Freshness, freshness
from geodata.store.lookup import _site
from geodata.store.models import Alert, Site

__all__ = ["OpenAlert", "OverdueState", "add_escalation_notice", "auto_resolve_alert",
           "level_since", "overdue_states", "raise_site_alert", "unacknowledged_alerts"]


@dataclass(frozen=True)
class OpenAlert:
    """An open alert as the escalation check reads it (a snapshot of the row).

    Attributes:
        id, site_id, site_name, level, rule, track_id, measured_value, threshold, message:
            the alert's columns (values in ``details["unit"]``).
        details: a copy of its JSON details (``escalation_notices``, ``unit``, ``forecast``...).
        since: when it reached its current level (UTC, :func:`level_since`).
    """

    id: int
    site_id: int
    site_name: str
    level: str
    rule: str
    track_id: int | None
    measured_value: float | None
    threshold: float | None
    message: str
    details: dict[str, Any]
    since: datetime


def level_since(alert: Alert) -> datetime:
    """When ``alert`` reached its current level (UTC): raised, confirmed from watch, or its
    latest escalation to this level."""
    t = alert.raised_at
    details = alert.details or {}
    if details.get("confirmed_at"):
        t = max(t, datetime.fromisoformat(details["confirmed_at"]))
    for e in details.get("escalations", []):
        if e.get("to") == alert.level and e.get("at"):
            t = max(t, datetime.fromisoformat(e["at"]))
    return t


def unacknowledged_alerts(s: Session, site: int | str | None = None) -> list[OpenAlert]:
    """The open alerts (not a watch, not acknowledged, not resolved) of every site (or of
    ``site``, id or name), by id, locked ``FOR UPDATE`` until ``s`` commits (one escalation
    check at a time per alert).

    Raises:
        RecordNotFoundError: ``site`` given and unknown.
    """
    q = (select(Alert, Site.name).join(Site, Site.id == Alert.site_id)
         .where(Alert.resolved_at.is_(None), Alert.acknowledged_at.is_(None),
                Alert.watch.is_(False))
         .order_by(Alert.id).with_for_update(of=Alert))
    if site is not None:
        q = q.where(Alert.site_id == _site(s, site).id)
    return [OpenAlert(a.id, a.site_id, name, a.level, a.rule, a.track_id, a.measured_value,
                      a.threshold, a.message, dict(a.details or {}), level_since(a))
            for a, name in s.execute(q).all()]


def add_escalation_notice(s: Session, alert_id: int, notice: Mapping[str, Any], *,
                          actor: str, at: datetime, audit_details: Mapping[str, Any]) -> None:
    """Append ``notice`` to the alert's ``details["escalation_notices"]`` and record the
    audit entry ``alert.escalation_notice`` (``audit_details``), in ``s``'s transaction."""
    alert = s.get(Alert, alert_id)
    details = dict(alert.details or {})
    details["escalation_notices"] = [*details.get("escalation_notices", []), dict(notice)]
    alert.details = details
    audit.record(s, "alert.escalation_notice", actor=actor, site_id=alert.site_id,
                 alert_id=alert.id, at=at, details=dict(audit_details))


@dataclass(frozen=True)
class OverdueState:
    """One site's data age and its latest alert of the overdue rule.

    Attributes:
        freshness: the site's :class:`geodata.alert_settings.Freshness` at the check's time.
        latest_alert_id: the newest alert of the rule on the site, or ``None``.
        latest_open: whether that alert is still open (not resolved).
        latest_level: its level, or ``None``.
        latest_baseline: its ``details["baseline"]`` (ISO time of the survey it was raised
            on), or ``None``.
    """

    freshness: Freshness
    latest_alert_id: int | None
    latest_open: bool
    latest_level: str | None
    latest_baseline: str | None


def overdue_states(s: Session, rule: str, now: datetime, *,
                   site: int | str | None = None) -> list[OverdueState]:
    """Each site's (or ``site``'s) :class:`OverdueState` at ``now``, by site id; each site row
    is locked ``FOR UPDATE`` until ``s`` commits (one overdue checker at a time per site: the
    scheduler and a cron'd check at once).

    Raises:
        RecordNotFoundError: ``site`` given and unknown.
    """
    sites = list(s.scalars(select(Site).order_by(Site.id))) if site is None else \
        [_site(s, site)]
    states = []
    for row in sites:
        s.execute(select(Site.id).where(Site.id == row.id).with_for_update())
        f = freshness(s, row, now)
        latest = s.scalars(select(Alert).where(Alert.site_id == row.id, Alert.rule == rule)
                           .order_by(Alert.id.desc()).limit(1)).first()
        states.append(OverdueState(
            f, None if latest is None else latest.id,
            latest is not None and latest.resolved_at is None,
            None if latest is None else latest.level,
            None if latest is None else (latest.details or {}).get("baseline")))
    return states


def raise_site_alert(s: Session, site_id: int, *, level: str, rule: str,
                     measured_value: float, threshold: float, message: str,
                     details: Mapping[str, Any], at: datetime, actor: str,
                     audit_details: Mapping[str, Any]) -> int:
    """Add an open site-wide alert (no track, not a watch) raised at ``at`` and its audit
    entry ``alert.raised`` (``audit_details``), in ``s``'s transaction. Returns its id."""
    alert = Alert(site_id=site_id, level=level, rule=rule, measured_value=measured_value,
                  threshold=threshold, message=message, notifications=[],
                  details=dict(details), raised_at=at, watch=False)
    s.add(alert)
    s.flush()
    audit.record(s, "alert.raised", actor=actor, site_id=site_id, alert_id=alert.id, at=at,
                 details=dict(audit_details))
    return alert.id


def auto_resolve_alert(s: Session, alert_id: int, *, at: datetime, note: str, reason: str,
                       actor: str, audit_details: Mapping[str, Any]) -> None:
    """Resolve the alert automatically at ``at`` (``resolve_note`` ``note``,
    ``details["resolved_reason"]`` ``reason``) with the audit entry ``alert.auto_resolved``
    (``audit_details``), in ``s``'s transaction."""
    alert = s.get(Alert, alert_id)
    alert.resolved_at = at
    alert.resolve_note = note
    alert.details = {**(alert.details or {}), "resolved_reason": reason}
    audit.record(s, "alert.auto_resolved", actor=actor, site_id=alert.site_id,
                 alert_id=alert.id, at=at, details=dict(audit_details))
