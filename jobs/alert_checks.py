"""The periodic alert checks: overdue surveys and escalation of unacknowledged alerts.

:func:`run_checks` runs :func:`jobs.overdue.check_overdue` then
:func:`jobs.escalation.escalate_unacknowledged` and delivers what they queued through the
outbox. The scheduler runs it every :data:`CHECK_INTERVAL_S` seconds as an in-memory
interval job (:func:`add_scheduler_job`, :func:`scheduled_checks`, actor ``scheduler``);
``crackwatch alerts check`` runs it once (for cron, or to test a site's settings).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from geodata import audit
from jobs.escalation import escalate_unacknowledged
from jobs.notify import Notifier
from jobs.outbox import OutboxReport, channel_of, deliver_pending
from jobs.overdue import OverdueReport, check_overdue

if TYPE_CHECKING:
    from sqlalchemy import Engine

log = logging.getLogger(__name__)

__all__ = ["CHECK_INTERVAL_S", "ChecksReport", "add_scheduler_job", "run_checks",
           "scheduled_checks"]

#: Seconds between two runs of the checks in the scheduler.
CHECK_INTERVAL_S = 60
JOB_ID = "alert-checks"


@dataclass
class ChecksReport:
    """What one :func:`run_checks` call did."""

    overdue: OverdueReport = field(default_factory=OverdueReport)
    notices: list[dict[str, Any]] = field(default_factory=list)
    delivery: OutboxReport | None = None


def run_checks(bind: Engine, notifiers: Sequence[Notifier], *, now: datetime | None = None,
               actor: str = audit.SYSTEM, site: int | str | None = None,
               deliver: bool = True) -> ChecksReport:
    """Overdue check, escalation check, then delivery of what they queued.

    Args:
        bind: the store's engine.
        notifiers: the configured notifiers (their channels are announced through).
        now: the current time (tests); default now (UTC).
        actor: ``system`` (a command) or ``scheduler``.
        site: only this site (id or name).
        deliver: send the new outbox rows right away (else the outbox cycle sends them).

    Raises:
        RecordNotFoundError: ``site`` given and unknown.
    """
    channels = [channel_of(n) for n in notifiers]
    report = ChecksReport()
    report.overdue = check_overdue(bind, channels, now=now, actor=actor, site=site)
    report.notices = escalate_unacknowledged(bind, channels, now=now, actor=actor, site=site)
    ids = [r["alert_id"] for r in report.overdue.raised] + \
        [n["alert_id"] for n in report.notices]
    if deliver and ids:
        report.delivery = deliver_pending(bind, notifiers, alert_ids=ids)
    return report


def scheduled_checks(database_url: str) -> int:
    """The scheduler's job (module-level, no closure): run the checks once as actor
    ``scheduler``. Returns the number of alerts raised plus notices queued; a failure is
    logged and recorded as a failed ``alert_checks`` job run, and the next cycle retries."""
    from geodata.store.jobruns import run_store_cycle
    from jobs.notify import notifiers_from_env

    def cycle(engine: Engine) -> int:
        r = run_checks(engine, notifiers_from_env(), actor=audit.SCHEDULER)
        if r.overdue.raised or r.overdue.resolved or r.notices:
            log.info("alert checks: %d overdue raised, %d resolved, %d escalation notice(s)",
                     len(r.overdue.raised), len(r.overdue.resolved), len(r.notices))
        return len(r.overdue.raised) + len(r.notices)

    return run_store_cycle(database_url, "alert_checks", cycle)


def add_scheduler_job(scheduler: Any, database_url: str,
                      interval_s: float = CHECK_INTERVAL_S) -> None:
    """Add :func:`scheduled_checks` to ``scheduler`` every ``interval_s`` seconds, first run
    now, in its in-memory job store (``memory`` when it has one, else ``default``): the job
    holds the database URL, which must not be written to a persistent job store."""
    from datetime import UTC

    stores = getattr(scheduler, "_jobstores", {})
    jobstore = "memory" if "memory" in stores else "default"
    scheduler.add_job(scheduled_checks, "interval", seconds=interval_s, id=JOB_ID,
                      args=[database_url], replace_existing=True, jobstore=jobstore,
                      next_run_time=datetime.now(UTC), coalesce=True, max_instances=1)
