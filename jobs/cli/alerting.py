"""CLI commands of alerting: site alert settings (audited) and the periodic alert checks.

    crackwatch site thresholds SITE [--set JSON | --file PATH | --defaults]
    crackwatch site schedule SITE [--cron CRON | --no-schedule] [--tz ZONE]
    crackwatch site overdue SITE [--every DURATION | --from-schedule] [--grace DURATION |
                                 --default-grace] [--on | --off] [--level LEVEL]
    crackwatch site escalation SITE [--level LEVEL (--after DURATION | --never)
                                    [--to ADDRESSES] | --default]]
    crackwatch alerts check [--site S]     overdue surveys + escalation notices, now

Every setting command without a change prints the current settings; with one, it writes the
change and an audit entry (``site.*_set``, :mod:`geodata.audit`) in one transaction, with
``--by NAME`` (default: the login name) as the actor. Durations: ``90s``, ``30m``, ``2h``,
``1d``, ``1w`` (a bare number is hours).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from jobs.cli.common import BY_HELP, SITE_HELP, URL_HELP, _fail, cli_actor, console
from jobs.cli.common import notifiers as _notifiers
from jobs.cli.common import open_store as _engine
from jobs.cli.pipeline import site_app

alerts_app = typer.Typer(help="Alert checks (overdue surveys, escalation).",
                         no_args_is_help=True)

_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}




def parse_duration_s(text: str) -> float:
    """``"90s"``, ``"30m"``, ``"2h"``, ``"1.5d"``, ``"1w"`` -> seconds; a bare number is hours.

    Raises:
        ValueError: anything else, or a duration <= 0.
    """
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-z]*)\s*", str(text).lower())
    if not m or (m.group(2) and m.group(2) not in _UNITS):
        raise ValueError(f"cannot read the duration {text!r}: give a number and a unit, e.g. "
                         f"30m, 2h, 1d, 1w (a bare number is hours)")
    value = float(m.group(1)) * _UNITS.get(m.group(2) or "h", 3600)
    if value <= 0:
        raise ValueError(f"a duration must be > 0, got {text!r}")
    return value


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and (seconds / size) == int(seconds / size):
            return f"{int(seconds / size)}{unit}"
    return f"{seconds / 3600:.3g}h" if seconds >= 3600 else f"{seconds:g}s"


def _errors() -> tuple[type[Exception], ...]:
    from geodata.errors import RecordNotFoundError, StoreError

    return (RecordNotFoundError, StoreError, ValueError, TypeError)


# --------------------------------------------------------------------------- settings


@site_app.command("thresholds")
def site_thresholds(
    site: str = typer.Argument(..., help=SITE_HELP),
    set_json: str | None = typer.Option(None, "--set", help="The profile's thresholds as JSON, "
                                        "e.g. '{\"opening_rate_mm_per_day\": [1, 3, 9], "
                                        "\"confirmation\": \"consecutive\"}' (keys not given "
                                        "take their defaults)."),
    file: Path | None = typer.Option(None, "--file", help="Read the JSON from this file."),
    defaults: bool = typer.Option(False, "--defaults", help="Back to the default thresholds."),
    by: str | None = typer.Option(None, "--by", help=BY_HELP),
    url: str | None = typer.Option(None, help=URL_HELP),
) -> None:
    """Show or set a site's alert thresholds (the rules of its profile; audited)."""
    from geodata.alert_settings import set_thresholds
    from geodata.store import get_site

    if sum(x is not None and x is not False for x in (set_json, file, defaults)) > 1:
        _fail(ValueError("give one of --set, --file, --defaults"))
    engine = _engine(url)
    try:
        if set_json is None and file is None and not defaults:
            row = get_site(engine, site)
            th = _validated(row.profile, (row.thresholds or {}).get(row.profile) or {})
            console.print(f"site {row.name} ({row.profile}) thresholds:", markup=False)
            console.print_json(json.dumps(th.to_dict()))
            return
        data = None
        if not defaults:
            text = file.read_text(encoding="utf-8") if file is not None else set_json
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"the thresholds are not valid JSON: {exc}") from None
            if not isinstance(data, dict):
                raise ValueError("the thresholds must be a JSON object of settings")
        row = set_thresholds(engine, site, data, actor=cli_actor(by),
                             validate=lambda profile, d: _validated(profile, d))
    except (*_errors(), OSError) as exc:
        _fail(exc)
    finally:
        engine.dispose()
    console.print(f"site {row.name}: {row.profile} thresholds "
                  f"{'reset to the defaults' if defaults else 'set'}; the next run uses them.",
                  markup=False)


def _validated(profile: str, data: dict):
    from jobs.alerts import SlopeThresholds, StructureThresholds

    cls = SlopeThresholds if profile == "slope" else StructureThresholds
    return cls.from_dict(data)


@site_app.command("schedule")
def site_schedule(
    site: str = typer.Argument(..., help=SITE_HELP),
    cron: str | None = typer.Option(None, "--cron", help="5-field cron, site local time, "
                                    "e.g. '0 2 * * *'."),
    no_schedule: bool = typer.Option(False, "--no-schedule",
                                     help="No schedule of its own (scheduler default; no "
                                          "overdue expectation from it)."),
    tz: str | None = typer.Option(None, "--tz", help="IANA time zone, e.g. Europe/Oslo."),
    by: str | None = typer.Option(None, "--by", help=BY_HELP),
    url: str | None = typer.Option(None, help=URL_HELP),
) -> None:
    """Show or set a site's processing schedule and time zone (audited)."""
    from geodata.alert_settings import UNSET, set_schedule
    from geodata.store import get_site

    if cron is not None and no_schedule:
        _fail(ValueError("give --cron or --no-schedule, not both"))
    engine = _engine(url)
    try:
        if cron is None and not no_schedule and tz is None:
            row = get_site(engine, site)
        else:
            row = set_schedule(engine, site, actor=cli_actor(by),
                               schedule=None if no_schedule else (cron if cron is not None
                                                                  else UNSET),
                               timezone=tz if tz is not None else UNSET)
    except _errors() as exc:
        _fail(exc)
    finally:
        engine.dispose()
    console.print(f"site {row.name}: schedule '{row.schedule or '(scheduler default)'}' "
                  f"{row.timezone}", markup=False)


@site_app.command("overdue")
def site_overdue(
    site: str = typer.Argument(..., help=SITE_HELP),
    every: str | None = typer.Option(None, "--every", help="A new survey is expected at least "
                                     "this often, e.g. 1d, 1w."),
    from_schedule: bool = typer.Option(False, "--from-schedule",
                                       help="Expect the interval of the site's schedule."),
    grace: str | None = typer.Option(None, "--grace", help="Extra time before the alarm, "
                                     "e.g. 6h."),
    default_grace: bool = typer.Option(False, "--default-grace",
                                       help="Default grace (25% of the interval, >= 1 h)."),
    on: bool | None = typer.Option(None, "--on/--off", help="Raise site.overdue alerts."),
    level: str | None = typer.Option(None, "--level", help="yellow | orange | red"),
    by: str | None = typer.Option(None, "--by", help=BY_HELP),
    url: str | None = typer.Option(None, help=URL_HELP),
) -> None:
    """Show or set a site's expected survey interval and overdue alarm (audited)."""
    from geodata.alert_settings import alerting_settings, set_overdue

    engine = _engine(url)
    try:
        if every is not None and from_schedule:
            raise ValueError("give --every or --from-schedule, not both")
        if grace is not None and default_grace:
            raise ValueError("give --grace or --default-grace, not both")
        kwargs: dict = {}
        if every is not None or from_schedule:
            kwargs["expected_interval_s"] = None if from_schedule else parse_duration_s(every)
        if grace is not None or default_grace:
            kwargs["grace_s"] = None if default_grace else _grace(grace)
        if on is not None:
            kwargs["enabled"] = on
        if level is not None:
            kwargs["level"] = level.strip().lower()
        st = set_overdue(engine, site, actor=cli_actor(by), **kwargs) if kwargs else \
            alerting_settings(engine, site)
    except _errors() as exc:
        _fail(exc)
    finally:
        engine.dispose()
    where = {"set": "set for the site", "schedule": "from its schedule"}.get(
        st.interval_source or "", "none: no schedule and none set")
    state = "on" if st.overdue_enabled else "off"
    console.print(f"site {st.site_name}: a survey expected every "
                  f"{_dur(st.expected_interval_s)} ({where}), grace {_dur(st.grace_s)}; "
                  f"overdue alarm {state} at level {st.overdue_level}", markup=False)


def _grace(text: str) -> float:
    if str(text).strip() in ("0", "0h", "0s", "0m"):
        return 0.0
    return parse_duration_s(text)


@site_app.command("escalation")
def site_escalation(
    site: str = typer.Argument(..., help=SITE_HELP),
    level: str | None = typer.Option(None, "--level", help="yellow | orange | red"),
    after: str | None = typer.Option(None, "--after", help="Escalate when not acknowledged "
                                     "this long after the alert reached the level, and again "
                                     "every as long, e.g. 30m, 2h."),
    never: bool = typer.Option(False, "--never", help="Never escalate this level."),
    to: str | None = typer.Option(None, "--to", help="Second-level e-mail addresses, "
                                  "comma-separated ('' clears the site's list)."),
    default: bool = typer.Option(False, "--default", help="Back to the defaults for the "
                                 "level."),
    by: str | None = typer.Option(None, "--by", help=BY_HELP),
    url: str | None = typer.Option(None, help=URL_HELP),
) -> None:
    """Show or set how a site escalates unacknowledged alerts per level (audited)."""
    from geodata.alert_settings import UNSET, alerting_settings, set_escalation

    engine = _engine(url)
    try:
        changes = after is not None or never or to is not None or default
        if changes and level is None:
            raise ValueError("say which level: --level yellow|orange|red")
        if after is not None and never:
            raise ValueError("give --after or --never, not both")
        if default and (after is not None or never or to is not None):
            raise ValueError("--default resets the level: give it alone")
        if changes:
            st = set_escalation(
                engine, site, level.strip().lower(), actor=cli_actor(by),
                after_s=None if never else (parse_duration_s(after) if after is not None
                                            else UNSET),
                recipients=[to] if to is not None else UNSET, default=default)
        else:
            st = alerting_settings(engine, site)
    except _errors() as exc:
        _fail(exc)
    finally:
        engine.dispose()
    from jobs.escalation import DEFAULT_RECIPIENTS_ENV

    t = Table(title=f"escalation of unacknowledged alerts: {escape(st.site_name)}")
    for c in ("level", "after", "second-level recipients", "from"):
        t.add_column(c)
    for lvl, p in st.escalation.items():
        t.add_row(lvl, "never" if p.after_s is None else f"{_dur(p.after_s)}, repeated",
                  escape(", ".join(p.recipients) or f"({DEFAULT_RECIPIENTS_ENV})"), p.source)
    console.print(t)


# --------------------------------------------------------------------------- checks


@alerts_app.command("check")
def alerts_check(
    site: str | None = typer.Option(None, "--site", help="Only this site (default: all)."),
    site_id: int | None = typer.Option(None, "--site-id", help="Site id instead of --site."),
    deliver: bool = typer.Option(True, "--deliver/--no-deliver",
                                 help="Send what was queued now (else the scheduler's outbox "
                                      "cycle sends it)."),
    url: str | None = typer.Option(None, help=URL_HELP),
) -> None:
    """Run the alert checks once: overdue surveys, then escalation of unacknowledged alerts.

    The scheduler runs them every minute; use this from cron when the scheduler does not run,
    or to see a site's settings at work. Exit 1 when a notification failed (it is retried).
    """
    from jobs.alert_checks import run_checks

    if site is not None and site_id is not None:
        _fail(ValueError("give --site NAME or --site-id ID, not both"))
    engine = _engine(url)
    try:
        r = run_checks(engine, _notifiers(), site=site_id if site_id is not None else site,
                       deliver=deliver)
    except _errors() as exc:
        _fail(exc)
    finally:
        engine.dispose()
    for a in r.overdue.raised:
        console.print(f"raised site.overdue #{a['alert_id']} ({a['level']}) at "
                      f"{a['site']}: {a['message']}", markup=False, soft_wrap=True)
    for alert_id in r.overdue.resolved:
        console.print(f"resolved site.overdue #{alert_id}: imagery arrived", markup=False)
    for n in r.notices:
        to = f" to {', '.join(n['recipients'])}" if n["recipients"] else ""
        console.print(f"escalation notice {n['sequence']} for alert #{n['alert_id']} "
                      f"({n['level']}, {n['site']}){to}", markup=False, soft_wrap=True)
    if not (r.overdue.raised or r.overdue.resolved or r.notices):
        console.print("Nothing due: no site overdue, no alert waiting for escalation.")
    if r.delivery is not None:
        console.print(f"notifications: {r.delivery.delivered} delivered, "
                      f"{r.delivery.failed} failed", markup=False)
        if r.delivery.failed:
            for e in r.delivery.errors:
                console.print(f"  {e}", markup=False, soft_wrap=True)
            raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    """Add ``crackwatch alerts`` (the site setting commands live on ``site_app``)."""
    app.add_typer(alerts_app, name="alerts")
