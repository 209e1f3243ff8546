"""Alerts of a site or of every site (state, forecast, delivery), and the notifications
not yet delivered."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from geodata.store.engine import session_scope
from geodata.store.lookup import _site
from geodata.store.models import Alert, Notification, Site

__all__ = [
    "all_alerts",
    "site_alerts",
    "undelivered_notifications",
]


def site_alerts(bind: Engine | Session, site: int | str, *, open_only: bool = False
                ) -> pd.DataFrame:
    """A site's alerts, newest first: ``alert_id``, ``level``, ``rule``, ``track_id``,
    ``survey_id``, ``measured_value``, ``threshold``, ``message``, ``raised_at``,
    ``acknowledged_at``, ``acknowledged_by``, ``acknowledge_note``, ``resolved_at``,
    ``resolve_note``. ``open_only``: only unresolved ones."""
    cols = ["id", "level", "rule", "track_id", "survey_id", "measured_value", "threshold",
            "message", "raised_at", "acknowledged_at", "acknowledged_by", "acknowledge_note",
            "resolved_at", "resolve_note"]
    with session_scope(bind) as s:
        site_row = _site(s, site)
        stmt = select(*[getattr(Alert, c) for c in cols]).where(Alert.site_id == site_row.id)
        if open_only:
            stmt = stmt.where(Alert.resolved_at.is_(None))
        rows = s.execute(stmt.order_by(Alert.raised_at.desc(), Alert.id.desc())).all()
    frame = pd.DataFrame(rows, columns=["alert_id", *cols[1:]])
    for c in ("track_id", "survey_id"):
        frame[c] = frame[c].astype("Int64")
    return frame


def all_alerts(
    bind: Engine | Session,
    *,
    site: int | str | None = None,
    open_only: bool = False,
    limit: int | None = None,
) -> pd.DataFrame:
    """Alerts of every site (or of ``site``), newest first, with the site name and forecast.

    Args:
        site: only this site (id or name); ``None`` for all.
        open_only: only unresolved alerts (raised or acknowledged).
        limit: at most this many rows.

    Returns:
        Columns ``alert_id``, ``site_id``, ``site_name``, ``level``, ``rule``, ``track_id``,
        ``survey_id``, ``measured_value``, ``threshold``, ``unit`` (of both, from the alert's
        ``details``; None if not recorded), ``message``, ``forecast`` (text of the
        inverse-velocity forecast when the alert has one, from ``details["forecast"]``, or
        for an inverse-velocity rule its value in days; else None), ``state`` (``open`` |
        ``acknowledged`` | ``resolved`` | ``watch``: an unresolved, unconfirmed slope
        exceedance that notified nobody), ``raised_at``, ``acknowledged_at``,
        ``acknowledged_by``, ``acknowledge_note``, ``resolved_at``, ``resolve_note``,
        ``delivery`` (per channel of the notifications outbox at the alert's current level:
        ``"webhook: failed (HTTP 500 ...), log: delivered"``; ``""`` when none was queued),
        ``chart`` (``details["chart"]``: the track series the rule reads and the site's
        threshold lines when it fired, see :func:`jobs.alerts.chart.rule_chart`; None for
        site-wide rules and alerts raised before it was recorded).

    Raises:
        RecordNotFoundError: ``site`` given and unknown.
    """
    cols = ["alert_id", "site_id", "site_name", "level", "rule", "track_id", "survey_id",
            "measured_value", "threshold", "unit", "message", "forecast", "state", "raised_at",
            "acknowledged_at", "acknowledged_by", "acknowledge_note", "resolved_at",
            "resolve_note", "delivery", "chart"]
    with session_scope(bind) as s:
        stmt = select(Alert, Site.name).join(Site, Site.id == Alert.site_id)
        if site is not None:
            stmt = stmt.where(Alert.site_id == _site(s, site).id)
        if open_only:
            stmt = stmt.where(Alert.resolved_at.is_(None))
        stmt = stmt.order_by(Alert.raised_at.desc(), Alert.id.desc())
        if limit is not None:
            stmt = stmt.limit(int(limit))
        found = s.execute(stmt).all()
        delivery = _delivery_states(s, [a.id for a, _ in found])
    rows = []
    for a, site_name in found:
        state = ("resolved" if a.resolved_at is not None
                 else "watch" if a.watch
                 else "acknowledged" if a.acknowledged_at is not None else "open")
        details = getattr(a, "details", None) or {}
        rows.append({
            "alert_id": a.id, "site_id": a.site_id, "site_name": site_name, "level": a.level,
            "rule": a.rule, "track_id": a.track_id, "survey_id": a.survey_id,
            "measured_value": a.measured_value, "threshold": a.threshold,
            "unit": details.get("unit"), "message": a.message,
            "forecast": _alert_forecast(a.rule, a.measured_value, details),
            "state": state, "raised_at": a.raised_at, "acknowledged_at": a.acknowledged_at,
            "acknowledged_by": a.acknowledged_by, "acknowledge_note": a.acknowledge_note,
            "resolved_at": a.resolved_at, "resolve_note": a.resolve_note,
            "delivery": ", ".join(text for (lvl, text) in delivery.get(a.id, [])
                                  if lvl == a.level),
            "chart": details.get("chart"),
        })
    frame = pd.DataFrame(rows, columns=cols)
    for c in ("track_id", "survey_id"):
        frame[c] = frame[c].astype("Int64")
    for c in ("measured_value", "threshold"):
        frame[c] = frame[c].astype(float)
    return frame


def _delivery_states(s: Session, alert_ids: list[int]) -> dict[int, list[tuple[str, str]]]:
    """Per alert, ``(level, "channel: status[ (error)]")`` of its outbox rows."""
    out: dict[int, list[tuple[str, str]]] = {}
    for chunk in (alert_ids[i:i + 500] for i in range(0, len(alert_ids), 500)):
        for r in s.scalars(select(Notification).where(Notification.alert_id.in_(chunk))
                           .order_by(Notification.channel)):
            text = f"{r.channel}: {r.status}"
            if r.status == "failed" and r.last_error:
                text += f" ({r.attempts} tries; {r.last_error[:120]})"
            out.setdefault(r.alert_id, []).append((r.level, text))
    return out


def _alert_forecast(rule: str, measured_value: float | None, details: Any) -> str | None:
    """Readable inverse-velocity forecast of an alert (``details["forecast"]``, the
    ``Forecast.to_dict()`` of :mod:`jobs.alerts`), or None when it has none."""
    fc = details.get("forecast") if isinstance(details, dict) else None
    if isinstance(fc, dict):
        if fc.get("failure_time"):
            parts = [f"failure forecast {str(fc['failure_time'])[:16].replace('T', ' ')} UTC"]
            if isinstance(fc.get("days_after_last"), (int, float)):
                parts.append(f"{fc['days_after_last']:.1f} days after the latest survey")
            if isinstance(fc.get("r_squared"), (int, float)):
                parts.append(f"R^2 {fc['r_squared']:.2f}")
            return ", ".join(parts)
        if fc.get("status"):
            return f"no failure forecast ({fc['status']})"
    if rule.endswith("inverse_velocity") and measured_value is not None:
        return f"failure forecast {measured_value:.1f} days after the latest survey"
    return None

def undelivered_notifications(bind: Engine | Session, *, limit: int = 500) -> pd.DataFrame:
    """Notifications of the outbox not yet delivered (pending, sending or failed), oldest first.

    Returns:
        Columns ``notification_id``, ``alert_id``, ``site_name``, ``channel``, ``level``,
        ``status``, ``attempts`` (tries so far), ``last_error``, ``created_at``,
        ``last_attempt_at``, ``next_attempt_at`` (UTC; when the scheduler tries again).
    """
    cols = ["notification_id", "alert_id", "site_name", "channel", "level", "status",
            "attempts", "last_error", "created_at", "last_attempt_at", "next_attempt_at"]
    with session_scope(bind) as s:
        found = s.execute(
            select(Notification, Site.name).join(Site, Site.id == Notification.site_id)
            .where(Notification.status != "delivered")
            .order_by(Notification.created_at, Notification.id).limit(int(limit))).all()
    rows = [{"notification_id": n.id, "alert_id": n.alert_id, "site_name": name,
             "channel": n.channel, "level": n.level, "status": n.status,
             "attempts": n.attempts, "last_error": n.last_error, "created_at": n.created_at,
             "last_attempt_at": n.last_attempt_at, "next_attempt_at": n.next_attempt_at}
            for n, name in found]
    return pd.DataFrame(rows, columns=cols)
