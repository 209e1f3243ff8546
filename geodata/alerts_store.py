"""Acknowledging and resolving alerts (what a person does with a raised alert).

Lifecycle (see :mod:`jobs.alerts`): an alert is *raised* by the nightly job, *acknowledged*
by a person who has seen it (it stays open), and *resolved* with a note once dealt with
(only then can the same rule raise a new alert for the same crack). Each function here is
one transaction: the alert row is read with ``SELECT ... FOR UPDATE`` (PostgreSQL; SQLite
takes its write lock at ``BEGIN IMMEDIATE``), checked and updated, or nothing changes.

``bind`` is an ``Engine`` (own transaction, committed) or a ``Session`` (a SAVEPOINT of the
caller's transaction), as in :mod:`geodata.store.api`.

Lineage. An alert on a crack track is anchored to the crack it was raised (or last
escalated) on: ``details["anchor"]`` = ``{"survey_id", "crack_id", "point"}`` (a point on
that crack's polygon, site CRS), see :func:`alert_anchor`. Track ids are not what lasts:
re-tracking from an old survey (a survey that arrives out of date order, a re-run) deletes
and re-creates the tracks first seen from that survey on. :func:`geodata.tracking.track_survey`
therefore takes the anchors of the site's open track alerts before it rebuilds and calls
:func:`reattach_alerts` after: each alert follows its crack to the crack's track now (by id,
or by the point when the survey was re-run and the crack re-created); an alert whose crack is
gone is resolved with the reason recorded; two open alerts of one rule that land on one
track are merged (the higher level, then the older, stays open; the other is resolved naming
it). So a rebuild never orphans or duplicates an alert.

Audit. Every change here is recorded in the audit trail (:mod:`geodata.audit`) in the same
transaction: ``alert.acknowledged`` / ``alert.resolved`` with the person's name as actor,
``alert.reattached`` / ``alert.auto_resolved`` with actor ``system``.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import shapely
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from geodata import audit
from geodata.errors import RecordNotFoundError, StoreError
from geodata.store.alert_rows import ALIVE_EVENTS
from geodata.store.engine import session_scope
from geodata.store.models import ALERT_LEVELS, Alert, Crack, SurveySummary, TrackObservation, utcnow

__all__ = ["acknowledge_alert", "alert_anchor", "open_alert_anchors", "reattach_alerts",
           "resolve_alert"]

log = logging.getLogger(__name__)

_MAX_BY = 200  # length of Alert.acknowledged_by


def _who(by: str) -> str:
    if not isinstance(by, str) or not by.strip():
        raise ValueError("say who acknowledges or resolves the alert (a non-empty name)")
    by = by.strip()
    if len(by) > _MAX_BY:
        raise ValueError(f"the name is {len(by)} characters long; at most {_MAX_BY} fit")
    return by


def _t(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M UTC")


def _locked_alert(s: Session, alert_id: int) -> Alert:
    alert = s.scalar(select(Alert).where(Alert.id == int(alert_id)).with_for_update())
    if alert is None:
        raise RecordNotFoundError(f"no alert with id {alert_id}; list them with "
                                  f"geodata.queries.all_alerts")
    return alert


def acknowledge_alert(
    bind: Engine | Session, alert_id: int, *, by: str, note: str | None = None
) -> Alert:
    """Mark an open alert as seen by ``by``, with an optional note; it stays open.

    Returns:
        The updated alert (``acknowledged_at`` now, UTC).

    Raises:
        RecordNotFoundError: no such alert.
        StoreError: the alert is resolved already, or acknowledged already (the message
            says by whom and when; nothing is overwritten).
        ValueError: empty ``by``.
    """
    who = _who(by)
    text = note.strip() if isinstance(note, str) and note.strip() else None
    with session_scope(bind, write=True) as s:
        alert = _locked_alert(s, alert_id)
        if alert.resolved_at is not None:
            raise StoreError(f"alert {alert.id} was resolved at {_t(alert.resolved_at)}; "
                             f"a resolved alert cannot be acknowledged")
        if alert.acknowledged_at is not None:
            raise StoreError(
                f"alert {alert.id} was acknowledged already by {alert.acknowledged_by or '?'} "
                f"at {_t(alert.acknowledged_at)}; resolve it when dealt with")
        alert.acknowledged_at = utcnow()
        alert.acknowledged_by = who
        alert.acknowledge_note = text
        s.flush()
        audit.record(s, "alert.acknowledged", actor=who, site_id=alert.site_id,
                     alert_id=alert.id, at=alert.acknowledged_at,
                     details={"level": alert.level, "rule": alert.rule, "note": text,
                              "watch": bool(alert.watch)})
        return alert


def resolve_alert(bind: Engine | Session, alert_id: int, *, by: str, note: str) -> Alert:
    """Close an alert with a note saying what was done (acknowledging it too if it was not).

    The table has no "resolved by" column, so ``resolve_note`` is stored as
    ``"<note> (<by>)"``.

    Returns:
        The updated alert (``resolved_at`` now, UTC).

    Raises:
        RecordNotFoundError: no such alert.
        StoreError: the alert is resolved already.
        ValueError: empty ``by`` or ``note`` (a resolution must say what was done).
    """
    who = _who(by)
    if not isinstance(note, str) or not note.strip():
        raise ValueError("resolving an alert needs a note saying what was done or checked")
    with session_scope(bind, write=True) as s:
        alert = _locked_alert(s, alert_id)
        if alert.resolved_at is not None:
            raise StoreError(f"alert {alert.id} was resolved already at "
                             f"{_t(alert.resolved_at)}")
        now = utcnow()
        was_acknowledged = alert.acknowledged_at is not None
        if alert.acknowledged_at is None:
            alert.acknowledged_at = now
            alert.acknowledged_by = who
        alert.resolved_at = now
        alert.resolve_note = f"{note.strip()} ({who})"
        s.flush()
        audit.record(s, "alert.resolved", actor=who, site_id=alert.site_id, alert_id=alert.id,
                     at=now, details={"level": alert.level, "rule": alert.rule,
                                      "note": note.strip(),
                                      "acknowledged_too": not was_acknowledged,
                                      "watch": bool(alert.watch)})
        return alert


# --------------------------------------------------------------------------- lineage


def alert_anchor(s: Session, track_id: int, survey_id: int | None) -> dict[str, Any] | None:
    """The crack of ``track_id`` an alert is anchored to: the track's crack in ``survey_id``
    (else its latest crack), as ``{"survey_id", "crack_id", "point": [x, y]}`` (a point on
    the crack's polygon, site CRS); None when the track has no crack left."""
    q = (select(TrackObservation.survey_id, Crack.id, Crack.polygon)
         .join(Crack, Crack.id == TrackObservation.crack_id)
         .where(TrackObservation.track_id == int(track_id),
                TrackObservation.event.in_(ALIVE_EVENTS)))
    row = None
    if survey_id is not None:
        row = s.execute(q.where(TrackObservation.survey_id == int(survey_id))).first()
    if row is None:
        row = s.execute(q.order_by(TrackObservation.acquired_at.desc())).first()
    if row is None:
        return None
    p = shapely.point_on_surface(row[2])
    return {"survey_id": int(row[0]), "crack_id": int(row[1]), "point": [p.x, p.y]}


def _open_track_alerts(s: Session, site_id: int) -> list[Alert]:
    rows = s.scalars(select(Alert).where(Alert.site_id == site_id, Alert.resolved_at.is_(None))
                     .order_by(Alert.id).execution_options(populate_existing=True))
    return [a for a in rows
            if a.track_id is not None or str((a.details or {}).get("key", "")).startswith("track:")]


def open_alert_anchors(s: Session, site_id: int) -> dict[int, dict[str, Any] | None]:
    """Alert id -> anchor (:func:`alert_anchor`) of each open alert on a crack track of the
    site, read before its tracks are rebuilt. A stored anchor whose crack still exists is
    kept; otherwise it is taken from the alert's track (None: nothing to anchor to)."""
    out: dict[int, dict[str, Any] | None] = {}
    for a in _open_track_alerts(s, site_id):
        stored = (a.details or {}).get("anchor")
        if stored and stored.get("crack_id") is not None and s.get(Crack, stored["crack_id"]):
            out[a.id] = stored
            continue
        fresh = alert_anchor(s, a.track_id, a.survey_id) if a.track_id is not None else None
        out[a.id] = fresh or stored
    return out


def _track_at_point(s: Session, anchor: dict[str, Any]) -> tuple[int, int] | None:
    """(track id, crack id) of the map crack of the anchor's survey at the anchor's point
    (within the survey's tracking tolerance; the nearest, then the longest)."""
    point = anchor.get("point")
    if not point or anchor.get("survey_id") is None:
        return None
    summary = s.get(SurveySummary, anchor["survey_id"])
    tol = (summary.tolerance_m or 0.0) if summary else 0.0
    pt = shapely.Point(point)
    best = None
    for crack_id, track_id, polygon, length in s.execute(
            select(Crack.id, Crack.track_id, Crack.polygon, Crack.length_m)
            .where(Crack.survey_id == anchor["survey_id"], Crack.coordinate_space == "map",
                   Crack.track_id.is_not(None))):
        d = shapely.distance(polygon, pt)
        if d <= tol and (best is None or (d, -length) < best[0]):
            best = ((d, -length), int(track_id), int(crack_id))
    return None if best is None else (best[1], best[2])


def reattach_alerts(s: Session, site_id: int, anchors: dict[int, dict[str, Any] | None], *,
                    reason: str) -> dict[str, int]:
    """After a rebuild of the site's tracks, move each open track alert to the track its
    anchor crack belongs to now; resolve it (with ``reason`` recorded) when that crack is
    gone; merge open alerts of one rule that end on one track. In ``s``'s transaction.

    Args:
        anchors: from :func:`open_alert_anchors`, read before the rebuild.
        reason: what rebuilt the tracks (recorded on every alert changed).

    Returns:
        Counts: ``reattached`` (alert moved to another track id), ``resolved`` (crack gone),
        ``merged`` (duplicates resolved).
    """
    now = utcnow()
    counts = {"reattached": 0, "resolved": 0, "merged": 0}
    alerts = {a.id: a for a in _open_track_alerts(s, site_id)}
    for alert_id, anchor in anchors.items():
        a = alerts.get(alert_id)
        outcome = None if a is None else _reattach_alert(s, site_id, a, anchor, reason, now)
        if outcome is not None:
            counts[outcome] += 1
    s.flush()
    counts["merged"] = _merge_duplicate_alerts(s, site_id, list(alerts.values()), reason, now)
    s.flush()
    return counts


def _reattach_alert(s: Session, site_id: int, a: Alert, anchor: dict[str, Any] | None,
                    reason: str, now: datetime) -> str | None:
    """Move open alert ``a`` to the track its anchor crack belongs to now, or resolve it
    when that crack is gone (:func:`reattach_alerts`). Returns the count it adds to:
    ``"reattached"`` or ``"resolved"``; None when it stays on its track."""
    details = dict(a.details or {})
    old_key = details.get("key", f"track:{a.track_id}")
    found = None
    if anchor:
        crack = s.get(Crack, anchor["crack_id"]) if anchor.get("crack_id") else None
        if crack is not None and crack.track_id is not None:
            found = (int(crack.track_id), int(crack.id))
        else:
            found = _track_at_point(s, anchor)
    if found is None:
        a.resolved_at = now
        a.resolve_note = (f"resolved automatically: the crack this alert was raised on is "
                          f"no longer in the store after {reason} (crackwatch)")
        details["resolved_reason"] = "lineage_lost"
        a.details = details
        a.track_id = None
        audit.record(s, "alert.auto_resolved", actor=audit.SYSTEM, site_id=site_id,
                     alert_id=a.id, at=now,
                     details={"reason": "lineage_lost", "rule": a.rule, "level": a.level,
                              "note": a.resolve_note})
        log.warning("site %s: alert %s (%s) resolved: its crack is gone after %s",
                    site_id, a.id, a.rule, reason)
        return "resolved"
    track_id, crack_id = found
    new_key = f"track:{track_id}"
    details["anchor"] = {**(anchor or {}), "crack_id": crack_id}
    outcome = None
    if new_key != old_key or a.track_id != track_id:
        history = list(details.get("reattached", []))
        history.append({"from": old_key, "to": new_key, "reason": reason,
                        "at": now.isoformat()})
        details["reattached"] = history
        outcome = "reattached"
        audit.record(s, "alert.reattached", actor=audit.SYSTEM, site_id=site_id,
                     alert_id=a.id, at=now,
                     details={"from": old_key, "to": new_key, "reason": reason,
                              "rule": a.rule})
    details["key"] = new_key
    a.details = details
    a.track_id = track_id
    return outcome


def _merge_duplicate_alerts(s: Session, site_id: int, alerts: list[Alert], reason: str,
                            now: datetime) -> int:
    """Resolve all but the highest of the open alerts of one rule on one track
    (:func:`reattach_alerts`); returns how many were resolved."""
    merged = 0
    groups: dict[tuple[str, int], list[Alert]] = {}
    for a in alerts:
        if a.resolved_at is None and a.track_id is not None:
            groups.setdefault((a.rule, a.track_id), []).append(a)
    for group in groups.values():
        if len(group) < 2:
            continue
        group.sort(key=lambda a: (-ALERT_LEVELS.index(a.level), a.raised_at, a.id))
        keep = group[0]
        for a in group[1:]:
            a.resolved_at = now
            a.resolve_note = (f"resolved automatically: duplicate of alert {keep.id} (same "
                              f"crack and rule) after {reason} (crackwatch)")
            a.details = {**(a.details or {}), "resolved_reason": "duplicate",
                         "duplicate_of": keep.id}
            merged += 1
            audit.record(s, "alert.auto_resolved", actor=audit.SYSTEM, site_id=site_id,
                         alert_id=a.id, at=now,
                         details={"reason": "duplicate", "duplicate_of": keep.id,
                                  "rule": a.rule, "level": a.level, "note": a.resolve_note})
    return merged
