"""Overdue-survey alarm: a ``site.overdue`` alert when a site's imagery stops arriving.

Monitoring platforms alarm on "not reporting": a sensor (here: a site's drone surveys) whose
data is overdue is itself a warning, since a growing crack cannot be seen in imagery that
never came. Each site expects a new survey at least every *expected interval* (set with
``crackwatch site overdue``, else the interval of its cron schedule; see
:mod:`geodata.alert_settings`). :func:`check_overdue`:

* raises one ``site.overdue`` alert (level from the settings, default yellow; rule id
  :data:`RULE`; ``measured_value`` the data age and ``threshold`` interval + grace, hours)
  when the newest survey is older than the interval plus the grace, with its notifications
  queued in the outbox (same transaction). It is raised *once per overdue episode*: an open
  one is not repeated, and after a person resolves it, it is not raised again until a newer
  survey has arrived and become overdue in its turn;
* resolves it automatically (actor ``system``/``scheduler``, audit ``alert.auto_resolved``)
  when a survey newer than the one it was raised on has arrived, or when the site no longer
  expects one (the alarm or the interval was switched off).

It runs in the scheduler's alert-check cycle and in ``crackwatch alerts check``
(:mod:`jobs.alert_checks`), and the pipeline calls :func:`resolve_overdue` in the
transaction that stores a survey's cracks, so the alert closes as soon as imagery is
processed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from geodata import audit
from geodata.alert_settings import Freshness
from geodata.store.alert_state import (
    OverdueState,
    auto_resolve_alert,
    overdue_states,
    raise_site_alert,
)
from geodata.store.engine import session_scope
from geodata.timestamps import duration_text
from jobs.outbox import enqueue

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

__all__ = ["RULE", "OverdueReport", "check_overdue", "resolve_overdue"]

#: Rule id of the overdue-survey alert.
RULE = "site.overdue"


@dataclass
class OverdueReport:
    """What one :func:`check_overdue` call did.

    Attributes:
        raised: outbox records of the ``site.overdue`` alerts raised (with ``alert_id``).
        resolved: ids of the ``site.overdue`` alerts resolved automatically.
    """

    raised: list[dict[str, Any]] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)


def check_overdue(bind: Engine | Session, channels: Sequence[str] = (), *,
                  now: datetime | None = None, actor: str = audit.SYSTEM,
                  site: int | str | None = None, raise_new: bool = True) -> OverdueReport:
    """Raise or resolve the ``site.overdue`` alert of every site (or of ``site``).

    One transaction (or a SAVEPOINT of ``bind``'s when it is a session): the alerts, their
    outbox rows (one per channel of ``channels``) and the audit entries commit together.

    Args:
        channels: notifier names the raised alerts are announced through.
        now: the current time (tests); default now (UTC).
        actor: recorded as who raised/resolved (``system`` or ``scheduler``).
        site: only this site (id or name).
        raise_new: False: only resolve (the pipeline after storing a survey).

    Returns:
        :class:`OverdueReport`.

    Raises:
        RecordNotFoundError: ``site`` given and unknown.
    """
    now = now or datetime.now(UTC)
    report = OverdueReport()
    with session_scope(bind, write=True) as s:
        for state in overdue_states(s, RULE, now, site=site):
            f = state.freshness
            baseline = f.baseline.isoformat()
            if state.latest_open:
                if state.latest_baseline == baseline and f.overdue:
                    continue  # still overdue: raised once, not repeated
                _resolve(s, state, now, actor)
                report.resolved.append(state.latest_alert_id)
            if not raise_new or not f.overdue:
                continue
            if state.latest_baseline == baseline:
                continue  # this episode was raised already (and resolved by a person)
            report.raised.append(_raise(s, f, now, actor))
        if report.raised and channels:
            enqueue(s, report.raised, channels, actor=actor)
    return report


def resolve_overdue(s: Session, site_id: int, *, now: datetime | None = None,
                    actor: str = audit.SYSTEM) -> list[int]:
    """Resolve the site's open ``site.overdue`` alert if imagery has arrived since, inside
    ``s``'s transaction (called by the pipeline). Returns the ids resolved."""
    return check_overdue(s, (), now=now, actor=actor, site=int(site_id),
                         raise_new=False).resolved


def _raise(s: Session, f: Freshness, now: datetime, actor: str) -> dict[str, Any]:
    st = f.settings
    after = st.overdue_after_s
    since = (f"the newest survey was acquired {f.latest_survey_at:%Y-%m-%d %H:%M} UTC"
             if f.latest_survey_at is not None else
             f"no survey since the site was created {f.baseline:%Y-%m-%d %H:%M} UTC")
    how = "set for the site" if st.interval_source == "set" else "from its schedule"
    every, grace = duration_text(st.expected_interval_s), duration_text(st.grace_s or 0)
    message = (f"no new survey for {duration_text(f.age_s)}: {since}; a survey is expected "
               f"every {every} ({how}) plus {grace} grace. Check the drone flights and the "
               f"upload to the inbox.")
    details = {"key": "site", "unit": "h", "baseline": f.baseline.isoformat(),
               "latest_survey_at": f.latest_survey_at.isoformat() if f.latest_survey_at
               else None, "expected_interval_s": st.expected_interval_s,
               "grace_s": st.grace_s, "interval_source": st.interval_source}
    alert_id = raise_site_alert(
        s, f.site_id, level=st.overdue_level, rule=RULE, measured_value=f.age_s / 3600.0,
        threshold=after / 3600.0, message=message, details=details, at=now, actor=actor,
        audit_details={"level": st.overdue_level, "rule": RULE,
                       "data_age_h": round(f.age_s / 3600.0, 2),
                       "overdue_after_h": round(after / 3600.0, 2),
                       "baseline": details["baseline"]})
    log.warning("site %s: %s", f.site_name, message)
    return {"alert_id": alert_id, "site": f.site_name, "level": st.overdue_level,
            "rule": RULE, "track": None, "measured_value": f.age_s / 3600.0,
            "threshold": after / 3600.0, "unit": "h", "message": message,
            "action": "raise"}


def _resolve(s: Session, state: OverdueState, now: datetime, actor: str) -> None:
    f = state.freshness
    if f.latest_survey_at is not None and state.latest_baseline != f.baseline.isoformat():
        why = "imagery_arrived"
        note = (f"resolved automatically: a survey acquired "
                f"{f.latest_survey_at:%Y-%m-%d %H:%M} UTC has arrived ({actor})")
    else:
        why = "no_longer_expected"
        note = (f"resolved automatically: the site no longer counts as overdue (expected "
                f"interval or overdue alarm changed) ({actor})")
    auto_resolve_alert(s, state.latest_alert_id, at=now, note=note, reason=why, actor=actor,
                       audit_details={"reason": why, "rule": RULE, "level": state.latest_level,
                                      "note": note, "latest_survey_at": f.latest_survey_at})
    log.info("site %s: overdue alert %s resolved (%s)", f.site_name, state.latest_alert_id,
             why)
