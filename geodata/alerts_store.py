"""Acknowledging and resolving alerts (what a person does with a raised alert).

Lifecycle (see :mod:`jobs.alerts`): an alert is *raised* by the nightly job, *acknowledged*
by a person who has seen it (it stays open), and *resolved* with a note once dealt with
(only then can the same rule raise a new alert for the same crack). Each function here is
one transaction: the alert row is read with ``SELECT ... FOR UPDATE`` (PostgreSQL; SQLite
takes its write lock at ``BEGIN IMMEDIATE``), checked and updated, or nothing changes.

``bind`` is an ``Engine`` (own transaction, committed) or a ``Session`` (a SAVEPOINT of the
caller's transaction), as in :mod:`geodata.store.api`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from geodata.errors import RecordNotFoundError, StoreError
from geodata.store.engine import session_scope
from geodata.store.models import Alert, utcnow

__all__ = ["acknowledge_alert", "resolve_alert"]

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
        if alert.acknowledged_at is None:
            alert.acknowledged_at = now
            alert.acknowledged_by = who
        alert.resolved_at = now
        alert.resolve_note = f"{note.strip()} ({who})"
        s.flush()
        return alert
