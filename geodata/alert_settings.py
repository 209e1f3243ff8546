"""A site's alerting settings: expected survey interval (overdue alarm) and escalation.

Stored in ``site_alerting`` (one row per site; no row means every default), except the
alert thresholds and the schedule, which are columns of ``site``. Every change made through
this module is an audit entry (:mod:`geodata.audit`) in the same transaction, with the old
and the new values.

Overdue survey ("not reporting"). A site expects a new survey at least every
``expected_interval_s``: the value set for it, else the interval of its cron ``schedule``
(the longest gap between its next fire times, so a weekdays-only schedule expects a survey
within 3 days, not 1), else none (no alarm: a site without a schedule has no expectation).
It is *overdue* when no survey was acquired within the interval plus a grace
(``overdue_grace_s``; default :func:`default_grace_s`: a quarter of the interval, at least
:data:`MIN_GRACE_S`). See :mod:`jobs.overdue`.

Escalation (:mod:`jobs.escalation`). Per alert level, ``after_s``: an open alert of that
level not acknowledged this long after it reached the level is escalated to the
``recipients`` (the second-level list), and again every ``after_s`` until it is
acknowledged or resolved; ``None`` turns it off for that level. Defaults
(:data:`DEFAULT_ESCALATION_AFTER_S`): red 30 min, orange 2 h, yellow off; recipients default
to none of the site's own (``jobs.escalation`` then uses the address list of
``CRACKWATCH_ESCALATION_EMAIL_TO``). These delays are a project choice in the spirit of
mining TARPs and monitoring platforms (the more severe the level, the sooner the next tier is
called); set them to what the site's response plan says.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from geodata import audit
from geodata.store.engine import session_scope
from geodata.store.models import ALERT_LEVELS, Site, SiteAlerting, utcnow

__all__ = [
    "DEFAULT_ESCALATION_AFTER_S",
    "MIN_GRACE_S",
    "AlertingSettings",
    "EscalationPolicy",
    "Freshness",
    "alerting_settings",
    "data_age_overview",
    "default_grace_s",
    "freshness",
    "schedule_interval_s",
    "set_escalation",
    "set_overdue",
    "set_schedule",
    "set_thresholds",
]

#: Seconds without acknowledgement before an alert of each level is escalated (None: never).
DEFAULT_ESCALATION_AFTER_S: dict[str, float | None] = {
    "yellow": None, "orange": 2 * 3600.0, "red": 30 * 60.0}
#: The shortest default grace before a site counts as overdue, seconds.
MIN_GRACE_S = 3600.0
#: Levels an alert can be escalated at.
ESCALATION_LEVELS = ALERT_LEVELS[1:]

_EMAIL = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+$")


def default_grace_s(interval_s: float) -> float:
    """Default grace after a missed survey: 25 % of the interval, at least
    :data:`MIN_GRACE_S` (a nightly site is overdue after 30 h, a weekly one after 8.75 days).
    A project choice: late uploads of a few hours are normal, a day or more is not."""
    return max(MIN_GRACE_S, 0.25 * float(interval_s))


def schedule_interval_s(schedule: str | None, timezone: str = "UTC",
                        now: datetime | None = None, fires: int = 15) -> float | None:
    """The longest gap (seconds) between the next ``fires`` fire times of a cron schedule.

    Args:
        schedule: 5-field cron string (``None``: no schedule, returns ``None``).
        timezone: IANA zone the schedule is read in (DST changes are honoured).
        now: start of the look-ahead (default now).

    Raises:
        ValueError: a malformed cron string or an unknown zone.
    """
    if not schedule:
        return None
    from apscheduler.triggers.cron import CronTrigger

    try:
        trigger = CronTrigger.from_crontab(schedule, timezone=timezone)
    except (ValueError, KeyError) as exc:
        raise ValueError(f"bad schedule {schedule!r} / time zone {timezone!r}: {exc}; give a "
                         f"5-field cron string such as '0 2 * * *' and an IANA zone") from exc
    t = now or datetime.now(UTC)
    times: list[datetime] = []
    for _ in range(max(2, fires)):
        nxt = trigger.get_next_fire_time(times[-1] if times else None, t)
        if nxt is None:
            break
        times.append(nxt)
        t = nxt + timedelta(seconds=1)
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
    return max(gaps) if gaps else None


@dataclass(frozen=True)
class EscalationPolicy:
    """Escalation of one alert level at one site.

    Attributes:
        level: ``yellow``, ``orange`` or ``red``.
        after_s: seconds without acknowledgement before the first notice and between notices
            (``None``: never escalated).
        recipients: second-level e-mail addresses (empty: the default list of the sending
            process, ``CRACKWATCH_ESCALATION_EMAIL_TO``).
        source: ``"site"`` (set for the site) or ``"default"``.
    """

    level: str
    after_s: float | None
    recipients: tuple[str, ...] = ()
    source: str = "default"

    def to_dict(self) -> dict[str, Any]:
        return {"after_s": self.after_s, "recipients": list(self.recipients)}


@dataclass(frozen=True)
class AlertingSettings:
    """A site's effective alerting settings (stored values merged with the defaults).

    Attributes:
        site_id, site_name: the site.
        expected_interval_s: a new survey is expected at least this often (seconds), or
            ``None`` (no expectation: no overdue alarm).
        interval_source: ``"set"`` (explicit), ``"schedule"`` (from the cron schedule) or
            ``None``.
        grace_s: grace after the interval (seconds; ``None`` with no interval).
        overdue_enabled: whether ``site.overdue`` alerts are raised.
        overdue_level: their level.
        escalation: per level (``yellow``, ``orange``, ``red``), its policy.
    """

    site_id: int
    site_name: str
    expected_interval_s: float | None
    interval_source: str | None
    grace_s: float | None
    overdue_enabled: bool
    overdue_level: str
    escalation: dict[str, EscalationPolicy] = field(default_factory=dict)

    @property
    def overdue_after_s(self) -> float | None:
        """Interval plus grace (seconds): data older than this is overdue; ``None``: never."""
        if not self.overdue_enabled or self.expected_interval_s is None:
            return None
        return self.expected_interval_s + (self.grace_s or 0.0)


def _site(s: Session, site: int | str | Site) -> Site:
    from geodata.store.api import _site as find

    return find(s, site)


def alerting_settings(bind: Engine | Session, site: int | str | Site,
                      now: datetime | None = None) -> AlertingSettings:
    """The effective settings of ``site`` (see the module docstring for the defaults).

    Raises:
        RecordNotFoundError: no such site.
    """
    with session_scope(bind) as s:
        row = _site(s, site)
        stored = s.get(SiteAlerting, row.id)
        return _effective(row, stored, now)


def _effective(site: Site, stored: SiteAlerting | None,
               now: datetime | None = None) -> AlertingSettings:
    interval, source = None, None
    if stored is not None and stored.expected_interval_s:
        interval, source = float(stored.expected_interval_s), "set"
    elif site.schedule:
        try:
            interval = schedule_interval_s(site.schedule, site.timezone or "UTC", now)
            source = "schedule" if interval else None
        except ValueError:
            interval = None
    grace = None
    if interval is not None:
        grace = float(stored.overdue_grace_s) if stored is not None and \
            stored.overdue_grace_s is not None else default_grace_s(interval)
    esc_stored = dict(stored.escalation or {}) if stored is not None else {}
    escalation = {}
    for level in ESCALATION_LEVELS:
        if level in esc_stored:
            e = esc_stored[level] or {}
            after = e.get("after_s")
            escalation[level] = EscalationPolicy(
                level, None if after is None else float(after),
                tuple(e.get("recipients") or ()), "site")
        else:
            escalation[level] = EscalationPolicy(level, DEFAULT_ESCALATION_AFTER_S[level])
    return AlertingSettings(
        site_id=site.id, site_name=site.name, expected_interval_s=interval,
        interval_source=source, grace_s=grace,
        overdue_enabled=True if stored is None else bool(stored.overdue_enabled),
        overdue_level="yellow" if stored is None else stored.overdue_level,
        escalation=escalation)


def _row(s: Session, site: Site) -> SiteAlerting:
    row = s.get(SiteAlerting, site.id)
    if row is None:
        row = SiteAlerting(site_id=site.id, overdue_enabled=True, overdue_level="yellow",
                           escalation={}, updated_at=utcnow())
        s.add(row)
    return row


def _snapshot(row: SiteAlerting) -> dict[str, Any]:
    return {"expected_interval_s": row.expected_interval_s,
            "overdue_grace_s": row.overdue_grace_s,
            "overdue_enabled": row.overdue_enabled, "overdue_level": row.overdue_level,
            "escalation": dict(row.escalation or {})}


UNSET: Any = object()


def set_overdue(bind: Engine | Session, site: int | str | Site, *, actor: str,
                expected_interval_s: float | None = UNSET,
                grace_s: float | None = UNSET, enabled: bool = UNSET,
                level: str = UNSET) -> AlertingSettings:
    """Change a site's overdue-survey settings (only the arguments given), with an audit
    entry ``site.overdue_set`` (old and new values) in the same transaction.

    Args:
        expected_interval_s: seconds (> 0); ``None``: back to the schedule's interval.
        grace_s: seconds (>= 0); ``None``: back to the default grace.
        enabled: raise ``site.overdue`` alerts at all.
        level: their level (``yellow``, ``orange`` or ``red``).

    Returns:
        The effective settings after the change.

    Raises:
        RecordNotFoundError: no such site. ValueError: a value out of range, an empty actor.
    """
    if expected_interval_s is not UNSET and expected_interval_s is not None and \
            not float(expected_interval_s) > 0:
        raise ValueError(f"the expected survey interval must be > 0 seconds, got "
                         f"{expected_interval_s!r}")
    if grace_s is not UNSET and grace_s is not None and not float(grace_s) >= 0:
        raise ValueError(f"the grace must be >= 0 seconds, got {grace_s!r}")
    if level is not UNSET and level not in ESCALATION_LEVELS:
        raise ValueError(f"the overdue alert level must be one of {ESCALATION_LEVELS}, got "
                         f"{level!r}")
    with session_scope(bind, write=True) as s:
        site_row = _site(s, site)
        row = _row(s, site_row)
        old = _snapshot(row)
        if expected_interval_s is not UNSET:
            row.expected_interval_s = None if expected_interval_s is None else \
                float(expected_interval_s)
        if grace_s is not UNSET:
            row.overdue_grace_s = None if grace_s is None else float(grace_s)
        if enabled is not UNSET:
            row.overdue_enabled = bool(enabled)
        if level is not UNSET:
            row.overdue_level = level
        row.updated_at, row.updated_by = utcnow(), actor
        s.flush()
        new = _snapshot(row)
        audit.record(s, "site.overdue_set", actor=actor, site_id=site_row.id,
                     details={"old": {k: old[k] for k in old if k != "escalation"},
                              "new": {k: new[k] for k in new if k != "escalation"}})
        return _effective(site_row, row)


def _recipients(recipients: Sequence[str]) -> list[str]:
    out = []
    for r in recipients:
        for part in str(r).replace(";", ",").split(","):
            part = part.strip()
            if not part:
                continue
            if not _EMAIL.match(part):
                raise ValueError(f"{part!r} is not an e-mail address (name@domain); give "
                                 f"second-level recipients as addresses")
            out.append(part)
    return list(dict.fromkeys(out))


def set_escalation(bind: Engine | Session, site: int | str | Site, level: str, *,
                   actor: str, after_s: float | None = UNSET,
                   recipients: Sequence[str] = UNSET, default: bool = False
                   ) -> AlertingSettings:
    """Change how a site escalates unacknowledged alerts of ``level``, with an audit entry
    ``site.escalation_set`` (old and new) in the same transaction.

    Args:
        level: ``yellow``, ``orange`` or ``red``.
        after_s: seconds (> 0) before the first notice and between notices; ``None``: never.
        recipients: second-level e-mail addresses (replace the stored list; ``[]`` clears).
        default: forget the site's setting for this level (back to the defaults).

    Returns:
        The effective settings after the change.

    Raises:
        RecordNotFoundError: no such site. ValueError: unknown level, a delay <= 0, a
        recipient that is not an e-mail address.
    """
    if level not in ESCALATION_LEVELS:
        raise ValueError(f"escalation level must be one of {ESCALATION_LEVELS}, got {level!r}")
    if after_s is not UNSET and after_s is not None and not float(after_s) > 0:
        raise ValueError(f"the escalation delay must be > 0 seconds, got {after_s!r}")
    to = _recipients(recipients) if recipients is not UNSET else UNSET
    with session_scope(bind, write=True) as s:
        site_row = _site(s, site)
        row = _row(s, site_row)
        current = _effective(site_row, row).escalation[level]
        esc = dict(row.escalation or {})
        old = esc.get(level)
        if default:
            esc.pop(level, None)
        else:
            esc[level] = {
                "after_s": current.after_s if after_s is UNSET else (
                    None if after_s is None else float(after_s)),
                "recipients": list(current.recipients) if to is UNSET else to}
        row.escalation = esc
        row.updated_at, row.updated_by = utcnow(), actor
        s.flush()
        audit.record(s, "site.escalation_set", actor=actor, site_id=site_row.id,
                     details={"level": level, "old": old, "new": esc.get(level),
                              "default": bool(default)})
        return _effective(site_row, row)


def set_thresholds(bind: Engine | Session, site: int | str | Site,
                   thresholds: dict[str, Any] | None, *, actor: str,
                   validate: Callable[[str, dict[str, Any]], Any] | None = None) -> Site:
    """Replace the alert thresholds of a site's profile (``site.thresholds[profile]``), with
    an audit entry ``site.thresholds_set`` (old and new) in the same transaction.

    Args:
        thresholds: the profile's thresholds as JSON (``None``: back to the defaults).
        validate: called with ``(profile, thresholds)`` before anything is written; raises
            for invalid thresholds (``jobs`` passes the rules' ``from_dict``: ``geodata``
            does not import the rules).

    Raises:
        RecordNotFoundError: no such site. Whatever ``validate`` raises.
    """
    with session_scope(bind, write=True) as s:
        row = _site(s, site)
        if thresholds is not None and validate is not None:
            validate(row.profile, thresholds)
        all_th = dict(row.thresholds or {})
        old = all_th.get(row.profile)
        if thresholds is None:
            all_th.pop(row.profile, None)
        else:
            all_th[row.profile] = audit._jsonable(thresholds)
        row.thresholds = all_th
        s.flush()
        audit.record(s, "site.thresholds_set", actor=actor, site_id=row.id,
                     details={"profile": row.profile, "old": old,
                              "new": all_th.get(row.profile)})
        return row


def set_schedule(bind: Engine | Session, site: int | str | Site, *, actor: str,
                 schedule: str | None = UNSET, timezone: str = UNSET) -> Site:
    """Change a site's cron schedule and/or time zone, with an audit entry
    ``site.schedule_set`` (old and new) in the same transaction.

    Args:
        schedule: 5-field cron string (site local time); ``None``: no schedule of its own
            (the scheduler's default, nightly 02:00; no overdue expectation from it).
        timezone: IANA zone name.

    Raises:
        RecordNotFoundError: no such site. ValueError: a malformed schedule or zone.
    """
    with session_scope(bind, write=True) as s:
        row = _site(s, site)
        new_tz = row.timezone if timezone is UNSET else timezone
        new_schedule = row.schedule if schedule is UNSET else schedule
        try:
            zoneinfo.ZoneInfo(new_tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {new_tz!r}; use an IANA name such as "
                             f"'Europe/Zurich' or 'UTC'") from exc
        if new_schedule is not None:
            if len(new_schedule.split()) != 5:
                raise ValueError(f"schedule must be a 5-field cron string like '0 2 * * *', "
                                 f"got {new_schedule!r}")
            schedule_interval_s(new_schedule, new_tz)  # raises for a bad field
        old = {"schedule": row.schedule, "timezone": row.timezone}
        row.schedule, row.timezone = new_schedule, new_tz
        s.flush()
        audit.record(s, "site.schedule_set", actor=actor, site_id=row.id,
                     details={"old": old, "new": {"schedule": row.schedule,
                                                  "timezone": row.timezone}})
        return row


# --------------------------------------------------------------------------- data age


@dataclass(frozen=True)
class Freshness:
    """How old a site's newest imagery is, against what the site expects.

    Attributes:
        site_id, site_name: the site.
        latest_survey_at: acquisition time (UTC) of its newest survey, or ``None``.
        baseline: ``latest_survey_at``, or the site's creation time when it has no survey.
        age_s: seconds from ``baseline`` to ``now``.
        settings: the site's :class:`AlertingSettings`.
        overdue: True when ``age_s`` exceeds the expected interval plus grace (and the alarm
            is enabled).
    """

    site_id: int
    site_name: str
    latest_survey_at: datetime | None
    baseline: datetime
    age_s: float
    settings: AlertingSettings
    overdue: bool


def freshness(s: Session, site: Site, now: datetime | None = None) -> Freshness:
    """The :class:`Freshness` of ``site`` at ``now`` (default now), read in ``s``."""
    from sqlalchemy import func, select

    from geodata.store.models import Survey

    now = now or utcnow()
    settings = _effective(site, s.get(SiteAlerting, site.id), now)
    latest = s.scalar(select(func.max(Survey.acquired_at)).where(Survey.site_id == site.id))
    if latest is not None and latest.tzinfo is None:  # func.max loses the column type
        latest = latest.replace(tzinfo=UTC)
    if isinstance(latest, str):
        latest = datetime.fromisoformat(latest)
    baseline = latest or site.created_at
    age = (now - baseline).total_seconds()
    after = settings.overdue_after_s
    return Freshness(site.id, site.name, latest, baseline, age, settings,
                     after is not None and age > after)


def data_age_overview(bind: Engine | Session, now: datetime | None = None):
    """Every site's data age and overdue state, for the Overview.

    Returns:
        A DataFrame, one row per site (by name): ``site_id``, ``name``, ``latest_survey_at``
        (UTC), ``data_age_h`` (hours since the newest survey, else since the site was
        created), ``expected_interval_h`` (``None``: no expectation), ``interval_source``
        (``set`` | ``schedule`` | ``None``), ``overdue_after_h`` (interval + grace),
        ``overdue`` (bool).
    """
    import pandas as pd
    from sqlalchemy import select

    now = now or utcnow()
    with session_scope(bind) as s:
        rows = []
        for site in s.scalars(select(Site).order_by(Site.name)):
            f = freshness(s, site, now)
            after = f.settings.overdue_after_s
            interval = f.settings.expected_interval_s
            rows.append({"site_id": site.id, "name": site.name,
                         "latest_survey_at": f.latest_survey_at,
                         "data_age_h": f.age_s / 3600.0,
                         "expected_interval_h": None if interval is None else interval / 3600,
                         "interval_source": f.settings.interval_source,
                         "overdue_after_h": None if after is None else after / 3600.0,
                         "overdue": f.overdue})
    return pd.DataFrame(rows, columns=["site_id", "name", "latest_survey_at", "data_age_h",
                                       "expected_interval_h", "interval_source",
                                       "overdue_after_h", "overdue"])
