"""The alert rows of the pipeline's alerts step, in the survey's one transaction (the
caller's ``Session``): the series the rules read (track observations and untracked photo
cracks, per survey to evaluate), the site's open alerts by key, and each change of an alert
(raised, escalated, watched, confirmed, expired) with its audit entry (actor ``system``,
:mod:`geodata.audit`).

The rules (which level, whether a candidate raises, escalates or is watched) stay in
:mod:`jobs.alerts` and :mod:`jobs.survey_alerts`; what a rule decided comes in as plain
values (:class:`AlertValues`), so geodata imports nothing of jobs (issue 17: a store
boundary). People's changes (acknowledge, resolve) and the lineage of track alerts are
:mod:`geodata.alerts_store`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from geodata import audit
from geodata.photos import PHOTO_SOURCE_TYPES
from geodata.store.lookup import tracked_surveys
from geodata.store.models import Alert, Crack, CrackTrack, SurveySummary, TrackObservation, utcnow

if TYPE_CHECKING:
    from geodata.store.models import Site, Survey

__all__ = ["ALIVE_EVENTS", "AlertValues", "alert_key", "confirm_watch", "escalate_alert",
           "evaluations", "expire_watch_alerts", "image_series", "observations",
           "open_alerts_by_key", "raise_alert", "raise_watch_level", "watch_alert"]

#: Events of a track observation in which the track has a crack of its own.
ALIVE_EVENTS = ("new", "continued", "split")
#: Detail keys an escalated alert keeps from its earlier details.
_KEPT_ON_ESCALATION = ("reattached", "confirmed_at", "escalation_notices")

#: ``(rule, key)`` -> the open alert (see :func:`alert_key`).
OpenAlerts = dict[tuple[str, str], Alert]


def alert_key(track: Any) -> str:
    """The identity of an alert across nights within a site and rule (see jobs.alerts):
    ``site`` (no track), ``track:<id>`` (a track id) or the photo crack's own key."""
    return "site" if track is None else (f"track:{track}" if isinstance(track, int)
                                         else str(track))


def open_alerts_by_key(s: Session, site_id: int) -> OpenAlerts:
    """The site's open (unresolved) alerts by ``(rule, key)``; of two with one key, the
    later raised."""
    open_alerts: OpenAlerts = {}
    for a in s.scalars(select(Alert).where(Alert.site_id == site_id,
                                           Alert.resolved_at.is_(None))
                       .order_by(Alert.raised_at)):
        open_alerts[(a.rule, (a.details or {}).get("key", alert_key(a.track_id)))] = a
    return open_alerts


def observations(s: Session, site_id: int, until: datetime,
                 alive_in: int | None = None) -> dict[int, list[dict]]:
    """Per active track of the site, its observations up to ``until`` (oldest first):
    ``surveyed_at``, ``length_m``, ``max_width_mm``, ``area_m2`` (missing width, area: 0).

    ``alive_in``: a survey id; then the tracks with a crack of their own in that survey
    instead of those active now (for evaluating the rules as of an earlier survey)."""
    if alive_in is None:
        alive = CrackTrack.status == "active"
    else:
        alive = CrackTrack.id.in_(
            select(TrackObservation.track_id)
            .where(TrackObservation.survey_id == alive_in,
                   TrackObservation.event.in_(ALIVE_EVENTS)))
    rows = s.execute(
        select(TrackObservation)
        .join(CrackTrack, CrackTrack.id == TrackObservation.track_id)
        .where(CrackTrack.site_id == site_id, alive,
               TrackObservation.acquired_at <= until,
               TrackObservation.length_m.is_not(None))
        .order_by(TrackObservation.acquired_at)).scalars()
    series: dict[int, list[dict]] = {}
    for o in rows:
        series.setdefault(o.track_id, []).append({
            "surveyed_at": o.acquired_at, "length_m": o.length_m,
            "max_width_mm": o.max_width_mm or 0.0, "area_m2": o.area_m2 or 0.0})
    return series


def image_series(s: Session, survey: Survey) -> dict[str, list[dict]]:
    """Photo cracks not tracked in a view (refused, duplicate photos): each crack is a
    one-observation series of its own, keyed ``photo:<image name>#<crack index>`` so a
    re-run finds the same key again."""
    rows = s.execute(select(Crack).where(Crack.survey_id == survey.id,
                                         Crack.track_id.is_(None))).scalars()
    return {f"photo:{c.image_name}#{c.crack_index}": [{
        "surveyed_at": survey.acquired_at, "length_m": c.length_m,
        "max_width_mm": c.max_width_mm, "area_m2": c.area_m2}] for c in rows}


def _new_count(s: Session, survey_id: int) -> int:
    """New tracks of the survey; 0 for the first survey of a site (nothing to be "new"
    against)."""
    summary = s.get(SurveySummary, survey_id)
    return summary.new_count if summary and summary.previous_survey_id else 0


def evaluations(s: Session, site: Site, survey: Survey,
                max_pixel_size_m: float | None) -> list[tuple[Survey, dict, int]]:
    """(survey, series, new crack count) to evaluate the rules on, oldest first.

    A photo survey: itself. A map survey: itself and every later tracked survey of the site
    (with pixels fine enough for alerts), each as of its own date: a survey that arrives after
    newer ones were processed (out of date order) changes the growth of every later interval,
    so the rules see the history as it would have been seen in date order."""
    ordered = tracked_surveys(s, site.id)
    if survey.source_type in PHOTO_SOURCE_TYPES:
        # photo tracks (per view, geodata.views) as of this survey, plus the photo cracks
        # not tracked in any view; "new" counts only views seen before
        last = not ordered or survey.id == ordered[-1].id
        series: dict[Any, list[dict]] = dict(observations(
            s, site.id, survey.acquired_at, None if last else survey.id))
        series.update(image_series(s, survey))
        return [(survey, series, _new_count(s, survey.id))]
    ids = [sv.id for sv in ordered]
    todo = ordered[ids.index(survey.id):] if survey.id in ids else [survey]
    out = []
    for k, sv in enumerate(todo):
        if k and max_pixel_size_m and sv.pixel_size_m and sv.pixel_size_m > max_pixel_size_m:
            continue
        last = sv.id == ordered[-1].id if ordered else True
        series = observations(s, site.id, sv.acquired_at, None if last else sv.id)
        out.append((sv, series, _new_count(s, sv.id)))
    return out


# ------------------------------------------------------------------------ alert changes


@dataclass
class AlertValues:
    """What one rule candidate (:class:`jobs.alerts.AlertCandidate`) writes on an alert row.

    ``measured_value`` and ``threshold`` are in the rule's ``unit``; ``key`` is
    :func:`alert_key` of the candidate's track; ``details`` the alert's JSON details of this
    evaluation (key, unit, resolution warnings, forecast, confirmation, anchor).
    """

    rule: str
    key: str
    track_id: int | None
    level: str
    measured_value: float
    threshold: float | None
    message: str
    unit: str
    confirmation: Any
    details: dict[str, Any]

    def fields(self, survey_id: int) -> dict[str, Any]:
        """The columns an evaluation of ``survey_id`` sets on an existing alert."""
        return {"level": self.level, "measured_value": self.measured_value,
                "threshold": self.threshold, "message": self.message, "survey_id": survey_id}


def _new_alert(s: Session, site_id: int, survey_id: int, v: AlertValues, *,
               watch: bool) -> Alert:
    alert = Alert(site_id=site_id, track_id=v.track_id, rule=v.rule, notifications=[],
                  details=v.details, **v.fields(survey_id), **({"watch": True} if watch else {}))
    s.add(alert)
    s.flush()
    return alert


def _set(alert: Alert, v: AlertValues, survey_id: int) -> str:
    """Set an alert's columns from ``v``; returns its level before."""
    previous = alert.level
    for name, value in v.fields(survey_id).items():
        setattr(alert, name, value)
    return previous


def raise_alert(s: Session, site_id: int, survey_id: int, v: AlertValues) -> Alert:
    """A new open alert (audit ``alert.raised``)."""
    alert = _new_alert(s, site_id, survey_id, v, watch=False)
    audit.record(s, "alert.raised", actor=audit.SYSTEM, site_id=site_id,
                 alert_id=alert.id, details={"level": alert.level, "rule": v.rule,
                                             "survey_id": survey_id, "key": v.key,
                                             "measured_value": v.measured_value,
                                             "threshold": v.threshold, "unit": v.unit,
                                             "confirmation": v.confirmation})
    return alert


def escalate_alert(s: Session, alert: Alert, site_id: int, survey_id: int,
                   v: AlertValues) -> str:
    """Raise an open alert's level to ``v``'s, recording the escalation in its
    ``details["escalations"]`` (audit ``alert.escalated``); returns the level before."""
    history = list((alert.details or {}).get("escalations", []))
    history.append({"from": alert.level, "to": v.level, "survey_id": survey_id,
                    "at": utcnow().isoformat()})
    kept = {k: x for k, x in (alert.details or {}).items() if k in _KEPT_ON_ESCALATION}
    previous = _set(alert, v, survey_id)
    alert.details = {**kept, **v.details, "escalations": history}
    audit.record(s, "alert.escalated", actor=audit.SYSTEM, site_id=site_id,
                 alert_id=alert.id, details={"from": previous, "to": v.level,
                                             "rule": v.rule, "survey_id": survey_id,
                                             "measured_value": v.measured_value,
                                             "threshold": v.threshold, "unit": v.unit})
    return previous


def watch_alert(s: Session, site_id: int, survey_id: int, v: AlertValues) -> Alert:
    """A new watch alert: an unconfirmed exceedance, no notification (audit
    ``alert.watch``)."""
    alert = _new_alert(s, site_id, survey_id, v, watch=True)
    audit.record(s, "alert.watch", actor=audit.SYSTEM, site_id=site_id, alert_id=alert.id,
                 details={"level": alert.level, "rule": v.rule, "survey_id": survey_id,
                          "key": v.key, "confirmation": v.confirmation})
    return alert


def _reattached(alert: Alert) -> dict[str, Any]:
    return {k: x for k, x in (alert.details or {}).items() if k == "reattached"}


def raise_watch_level(s: Session, alert: Alert, site_id: int, survey_id: int,
                      v: AlertValues) -> None:
    """A watch alert, still unconfirmed, takes the higher level of ``v`` (audit
    ``alert.watch``)."""
    kept = _reattached(alert)
    previous = _set(alert, v, survey_id)
    alert.details = {**kept, **v.details}
    audit.record(s, "alert.watch", actor=audit.SYSTEM, site_id=site_id, alert_id=alert.id,
                 details={"from": previous, "level": alert.level, "rule": v.rule,
                          "survey_id": survey_id, "confirmation": v.confirmation})


def confirm_watch(s: Session, alert: Alert, site_id: int, survey_id: int,
                  v: AlertValues) -> None:
    """A watch alert confirmed: it becomes an open alert (``watch=False``), with
    ``details["confirmed_at"]`` (UTC) and ``details["watch_level"]`` (audit
    ``alert.confirmed``)."""
    kept = _reattached(alert)
    previous = _set(alert, v, survey_id)
    alert.watch = False
    now = utcnow()
    alert.details = {**kept, **v.details, "confirmed_at": now.isoformat(),
                     "watch_level": previous}
    audit.record(s, "alert.confirmed", actor=audit.SYSTEM, site_id=site_id,
                 alert_id=alert.id, at=now,
                 details={"from": previous, "level": alert.level, "rule": v.rule,
                          "survey_id": survey_id, "confirmation": v.confirmation})


def expire_watch_alerts(s: Session, site_id: int, survey: Survey, open_alerts: OpenAlerts,
                        exceeding: Collection[tuple[str, str]],
                        confirmed_rules: Collection[str]) -> None:
    """Resolve the open watch alerts that a later survey did not confirm: the crack's rule
    (one of ``confirmed_rules``) no longer exceeds its threshold in ``survey`` (acquired
    after the watch was raised; ``exceeding``: the ``(rule, key)`` that still exceed). Each
    is removed from ``open_alerts`` (audit ``alert.auto_resolved``). Photo surveys resolve
    nothing: they are not tracked, so they say nothing about a track's growth."""
    if survey.source_type in PHOTO_SOURCE_TYPES:
        return
    when = survey.acquired_at
    for k, a in list(open_alerts.items()):
        if not a.watch or a.resolved_at is not None or k in exceeding or \
                a.rule not in confirmed_rules:
            continue
        seen = (a.details or {}).get("observed_at")
        if seen is None or datetime.fromisoformat(seen) >= when:
            continue  # evaluated as of a survey not later than the exceedance
        now = utcnow()
        a.resolved_at = now
        a.resolve_note = (f"resolved automatically: not confirmed, survey {survey.id} of "
                          f"{when:%Y-%m-%d} shows no exceedance (false-alarm control) "
                          f"(crackwatch)")
        a.details = {**(a.details or {}), "resolved_reason": "not_confirmed"}
        del open_alerts[k]
        audit.record(s, "alert.auto_resolved", actor=audit.SYSTEM, site_id=site_id,
                     alert_id=a.id, at=now,
                     details={"reason": "not_confirmed", "rule": a.rule, "level": a.level,
                              "survey_id": survey.id, "note": a.resolve_note})
