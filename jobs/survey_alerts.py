"""The alerts step of one survey (:func:`jobs.pipeline.process_survey`), inside the survey's
one transaction: the site's rules (:mod:`jobs.alerts`) evaluated on the series the store
gives (:func:`geodata.store.alert_rows.evaluations`), and each candidate raised, escalated,
watched, confirmed or left alone. The rules decide here; the alert rows and their audit
entries are written by :mod:`geodata.store.alert_rows`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from geodata.alerts_store import alert_anchor
from geodata.store.alert_rows import (
    AlertValues,
    alert_key,
    confirm_watch,
    escalate_alert,
    evaluations,
    expire_watch_alerts,
    open_alerts_by_key,
    raise_alert,
    raise_watch_level,
    watch_alert,
)
from jobs import alerts as rules
from jobs.alerts.chart import rule_chart

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from geodata.store.alert_rows import OpenAlerts
    from geodata.store.models import Alert, Site, Survey

__all__ = ["apply_alerts"]


def apply_alerts(s: Session, site: Site, survey: Survey,
                 max_pixel_size_m: float | None = None,
                 watched: list[dict] | None = None) -> tuple[list, list]:
    """Evaluate the site's rules and raise or escalate alerts, inside ``s``'s transaction.

    An alert is keyed by (site, rule, track or photo crack); a key with an open (unresolved)
    alert is not raised again, only escalated when the level rises
    (:func:`jobs.alerts.lifecycle_action`). A track alert records the crack it was raised
    on (``details["anchor"]``), so a later rebuild of the tracks keeps it on that crack's
    lineage (:func:`geodata.alerts_store.reattach_alerts`). A map survey older than surveys
    already processed is evaluated as of itself and of each later survey (see
    :func:`geodata.store.alert_rows.evaluations`).

    Watch alerts (false-alarm control, :func:`jobs.alerts.confirm_slope_candidates`): an
    unconfirmed slope exceedance is stored with ``watch=True`` and queues no notification
    (appended to ``watched``); when a later evaluation confirms it, the same alert is
    promoted (``watch=False``, returned among the raised, so it is announced then); when a
    later survey does not exceed at all, it is resolved automatically as not confirmed.
    Every change is an audit entry (actor ``system``).

    Returns:
        ``(raised, escalated)``: one dict per alert (site, level, rule, track, measured
        value, threshold, unit, message, forecast, resolution warnings, alert id, action).
    """
    thresholds = (site.thresholds or {}).get(site.profile) or None
    open_alerts = open_alerts_by_key(s, site.id)
    raised: list[dict] = []
    escalated: list[dict] = []
    watched = watched if watched is not None else []
    for sv, series, new_count in evaluations(s, site, survey, max_pixel_size_m):
        candidates = rules.evaluate_site(site.profile, thresholds, series, sv.pixel_size_m,
                                         new_count, site=site.id)
        _apply_candidates(s, site, sv, candidates, open_alerts, raised, escalated, watched)
    return raised, escalated


def _values(site: Site, c: Any) -> tuple[AlertValues, dict[str, Any]]:
    """What candidate ``c`` writes on its alert, and the record the pipeline reports."""
    key = alert_key(c.track)
    track_id = c.track if isinstance(c.track, int) else None
    details = {"key": key, "unit": c.unit,
               "resolution_warnings": list(c.resolution_warnings),
               "observed_at": c.observed_at.isoformat() if c.observed_at else None}
    if c.confirmation:
        details["confirmation"] = c.confirmation
    if c.forecast is not None:
        details["forecast"] = c.forecast.to_dict()
    chart = rule_chart(site.profile, (site.thresholds or {}).get(site.profile) or None, c.rule)
    if chart is not None:
        details["chart"] = chart  # the series and threshold lines the dashboard draws
    message = c.message if key.startswith(("site", "track:")) else f"{key}: {c.message}"
    value = float(c.measured_value)
    threshold = None if c.threshold is None else float(c.threshold)
    record = {"site": site.name, "level": str(c.level), "rule": c.rule, "track": track_id,
              "measured_value": value, "threshold": threshold, "unit": c.unit,
              "message": message, "forecast": details.get("forecast"),
              "resolution_warnings": tuple(c.resolution_warnings)}
    return AlertValues(rule=c.rule, key=key, track_id=track_id, level=str(c.level),
                       measured_value=value, threshold=threshold, message=message,
                       unit=c.unit, confirmation=c.confirmation, details=details), record


def _apply_candidates(s: Session, site: Site, survey: Survey, candidates: list,
                      open_alerts: OpenAlerts, raised: list[dict], escalated: list[dict],
                      watched: list[dict]) -> None:
    exceeding: set[tuple[str, str]] = set()
    for c in candidates:
        if not c.is_alert:
            continue
        v, record = _values(site, c)
        exceeding.add((c.rule, v.key))
        current = open_alerts.get((c.rule, v.key))
        if c.watch or (current is not None and current.watch):
            _apply_watch(s, site, survey, c, current, v, record, open_alerts, raised, watched)
            continue
        action = rules.lifecycle_action(current.level if current else None, c)
        if action is rules.LifecycleAction.NONE:
            continue
        if v.track_id is not None:
            v.details["anchor"] = alert_anchor(s, v.track_id, survey.id)
        if action is rules.LifecycleAction.RAISE:
            alert = raise_alert(s, site.id, survey.id, v)
            open_alerts[(c.rule, v.key)] = alert
            raised.append({**record, "alert_id": alert.id, "action": "raise"})
        else:
            previous = escalate_alert(s, current, site.id, survey.id, v)
            escalated.append({**record, "alert_id": current.id, "action": "escalate",
                              "from": previous})
    expire_watch_alerts(s, site.id, survey, open_alerts, exceeding, rules.CONFIRMED_RULES)


def _apply_watch(s: Session, site: Site, survey: Survey, c: Any, current: Alert | None,
                 v: AlertValues, record: dict, open_alerts: OpenAlerts, raised: list[dict],
                 watched: list[dict]) -> None:
    """A watch candidate, or any candidate for a key whose open alert is a watch."""
    if c.watch and current is not None and not current.watch:
        return  # an alert already confirmed and open: an unconfirmed survey changes nothing
    if v.track_id is not None:
        v.details["anchor"] = alert_anchor(s, v.track_id, survey.id)
    if current is None:  # a new unconfirmed exceedance
        alert = watch_alert(s, site.id, survey.id, v)
        open_alerts[(c.rule, v.key)] = alert
        watched.append({**record, "alert_id": alert.id, "action": "watch"})
        return
    if c.watch:  # still unconfirmed: keep the highest level measured, notify nobody
        if rules.Level.parse(c.level) > rules.Level.parse(current.level):
            raise_watch_level(s, current, site.id, survey.id, v)
            watched.append({**record, "alert_id": current.id, "action": "watch"})
        return
    # confirmed: the watch alert becomes an alert and is announced now
    confirm_watch(s, current, site.id, survey.id, v)
    raised.append({**record, "alert_id": current.id, "action": "raise"})
