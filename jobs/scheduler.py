"""``crackwatch scheduler``: each site's pipeline run on its own cron schedule.

APScheduler 3.11 (4.x is a pre-release): a ``BlockingScheduler`` in its own process, one
timezone-aware ``CronTrigger`` per site (the site's ``schedule`` cron string, default nightly
at 02:00, in the site's ``timezone``), ``coalesce=True`` (missed runs collapse into one),
``max_instances=1`` (a slow night never overlaps the next) and a misfire grace time. The job
(:func:`run_site_job`) scans the site's inbox for new orthomosaics and photo folders and
processes every pending survey.

Jobs live in memory only (``MemoryJobStore``); the site table is the source of truth. The
job list is rebuilt from it at start and re-synchronised every :data:`SYNC_MINUTES` minutes
(:func:`sync_site_jobs`), so a site added with ``crackwatch site add`` is picked up without a
restart. Nothing of the scheduler is written to the database: earlier versions kept jobs in
APScheduler's ``SQLAlchemyJobStore`` (table ``apscheduler_jobs``), whose rows are pickles
(unpickling a planted row runs code) and held the database URL with its password; migration
0006 drops that table. What a persistent store gave, a run missed while the scheduler was
down, is kept by a catch-up rule: a site job created while its last scheduled time is less
than :data:`MISFIRE_GRACE_S` ago runs once at once (the job is idempotent: it processes only
pending surveys). URLs in log lines have their password masked. Every
:data:`OUTBOX_MINUTES` minutes :func:`deliver_outbox_job` sends the notifications that are
due (see :mod:`jobs.outbox`). Every minute the alert checks run (overdue surveys, escalation
of unacknowledged alerts: :mod:`jobs.alert_checks`). SIGTERM and SIGINT
shut the scheduler down cleanly (a running survey finishes first).
"""

from __future__ import annotations

import logging
import signal
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from jobs.settings import hide_password

if TYPE_CHECKING:
    from sqlalchemy import Engine

log = logging.getLogger(__name__)

DEFAULT_SCHEDULE = "0 2 * * *"  # nightly, 02:00 site-local time
MISFIRE_GRACE_S = 6 * 3600  # a run missed by up to 6 h still runs (once: coalesce)
SYNC_MINUTES = 5
OUTBOX_MINUTES = 2  # how often undelivered notifications are sent (honouring backoff)
JOB_PREFIX = "site-"
#: Site jobs run at once with the Ray executor (their surveys' inference shares the Ray
#: workers; the store writes of each site stay in its own job, in date order).
RAY_SITE_JOBS = 4


def site_trigger(schedule: str | None, timezone: str) -> CronTrigger:
    """The CronTrigger of a site: 5-field cron ``schedule`` in IANA ``timezone``.

    Raises:
        ValueError: a malformed cron string or an unknown time zone.
    """
    try:
        return CronTrigger.from_crontab(schedule or DEFAULT_SCHEDULE, timezone=timezone)
    except (ValueError, KeyError) as exc:
        raise ValueError(f"bad schedule {schedule!r} / time zone {timezone!r}: {exc}; give a "
                         f"5-field cron string such as '0 2 * * *' and an IANA zone") from exc


def missed_run(trigger: CronTrigger, now: datetime | None = None) -> bool:
    """Whether ``trigger`` fired within the last :data:`MISFIRE_GRACE_S` seconds before ``now``
    (UTC, default: the clock), i.e. a run a stopped scheduler missed and should catch up."""
    now = now or datetime.now(UTC)
    fired = trigger.get_next_fire_time(None, now - timedelta(seconds=MISFIRE_GRACE_S))
    return fired is not None and fired <= now


def run_site_job(database_url: str, site_id: int, options: dict[str, Any],
                 executor: dict[str, Any] | None = None) -> int:
    """The scheduled job: scan the inbox and process pending surveys of one site.

    Returns the number of surveys processed. Errors are recorded per survey by the pipeline.
    ``executor``: :class:`jobs.executor.ExecutorConfig` fields (None: local); the site jobs
    of the process share one executor and its workers.
    """
    from pathlib import Path

    from geodata.errors import SiteBusyError
    from geodata.store import connect
    from jobs.notify import notifiers_from_env
    from jobs.pipeline import PipelineOptions, run_site

    engine = connect(database_url)
    try:
        opts = PipelineOptions(**{**options, "work_dir": Path(options["work_dir"])})
        from jobs.executor import shared_executor

        results = run_site(engine, site_id, opts, notifiers=notifiers_from_env(),
                           executor=shared_executor(executor))
        log.info("site %s: %d survey(s) processed (%d failed)", site_id, len(results),
                 sum(r.status == "failed" for r in results))
        return len(results)
    except SiteBusyError as exc:  # a manual run holds the site: this cycle is skipped
        from geodata.store.jobruns import record_job_run

        log.info("site %s: skipped, %s", site_id, exc)
        record_job_run(engine, "run_site", site_id, "skipped", error=str(exc))
        return 0
    except Exception as exc:  # noqa: BLE001 - recorded on the Runs page, next cycle retries
        from geodata.store.jobruns import record_job_failure

        log.error("site %s: the scheduled run failed: %s", site_id, exc)
        record_job_failure(engine, "run_site", site_id, exc)
        return 0
    finally:
        engine.dispose()


def deliver_outbox_job(database_url: str) -> int:
    """The scheduler's outbox cycle: send the notifications of every site that are due.

    Failed rows wait for their backoff (:mod:`jobs.outbox`). Returns the number delivered;
    a failure of the cycle itself is logged and recorded as a failed ``deliver_outbox`` job
    run, and the next cycle tries again.
    """
    from geodata.store.jobruns import run_store_cycle
    from jobs.notify import notifiers_from_env
    from jobs.outbox import deliver_pending

    def cycle(engine: Engine) -> int:
        report = deliver_pending(engine, notifiers_from_env())
        if report.delivered or report.failed:
            log.info("outbox: %d notification(s) delivered, %d failed", report.delivered,
                     report.failed)
        return report.delivered

    return run_store_cycle(database_url, "deliver_outbox", cycle)


def sync_site_jobs(scheduler: BaseScheduler, database_url: str,
                   options: dict[str, Any], executor: dict[str, Any] | None = None, *,
                   now: datetime | None = None) -> list[str]:
    """Make the scheduler's (in-memory) site jobs match the sites table: add, reschedule,
    remove. A job that is added (not one rescheduled) runs at once when its cron time passed
    less than :data:`MISFIRE_GRACE_S` before ``now`` (:func:`missed_run`): the run a stopped
    scheduler missed.

    Returns the ids of the site jobs now scheduled.
    """
    from geodata.store import connect
    from geodata.store.schedules import site_schedules

    engine = connect(database_url)
    try:
        sites = site_schedules(engine)
    finally:
        engine.dispose()
    wanted = set()
    for site_id, name, schedule, tz in sites:
        job_id = f"{JOB_PREFIX}{site_id}"
        wanted.add(job_id)
        try:
            trigger = site_trigger(schedule, tz)
        except ValueError as exc:
            log.error("site %s: %s; not scheduled", name, exc)
            continue
        existing = scheduler.get_job(job_id)
        args = [database_url, site_id, options, executor]
        if existing is None or str(existing.trigger) != str(trigger) or \
                str(getattr(existing.trigger, "timezone", "")) != str(trigger.timezone) or \
                list(existing.args) != args:
            catch_up = existing is None and missed_run(trigger, now)
            extra = {"next_run_time": datetime.now(UTC)} if catch_up else {}
            scheduler.add_job(run_site_job, trigger, id=job_id, name=f"process site {name}",
                              args=args, replace_existing=True,
                              coalesce=True, max_instances=1,
                              misfire_grace_time=MISFIRE_GRACE_S, **extra)
            log.info("scheduled %s: %s (%s)%s", name, schedule or DEFAULT_SCHEDULE, tz,
                     "; a run missed in the last hours runs now" if catch_up else "")
    for job in scheduler.get_jobs():
        if job.id.startswith(JOB_PREFIX) and job.id not in wanted:
            job.remove()
    return sorted(wanted)


def build_scheduler(database_url: str | None = None, *,
                    scheduler_cls: type[BaseScheduler] = BlockingScheduler,
                    threads: int = 1) -> BaseScheduler:
    """A scheduler whose jobs live in memory only; nothing is written to the database.

    Job stores ``default`` (site jobs) and ``memory`` (the periodic sync and outbox cycle)
    are both ``MemoryJobStore``: site jobs are rebuilt from the site table by
    :func:`sync_site_jobs`. ``database_url`` is not used (kept for callers that pass it).
    One worker thread: surveys are processed one at a time (one model in memory, no GPU
    contention); ``threads`` > 1 (the Ray executor: :data:`RAY_SITE_JOBS`) runs that many
    site jobs at once.
    """
    del database_url  # jobs are not persisted: the site table is the source of truth
    return scheduler_cls(
        jobstores={"default": MemoryJobStore(), "memory": MemoryJobStore()},
        executors={"default": ThreadPoolExecutor(threads)},
        job_defaults={"coalesce": True, "max_instances": 1,
                      "misfire_grace_time": MISFIRE_GRACE_S},
        timezone="UTC",
    )


def start(database_url: str, options: dict[str, Any],
          executor: dict[str, Any] | None = None) -> None:
    """Run the scheduler in the foreground until SIGTERM / SIGINT.

    ``executor``: :class:`jobs.executor.ExecutorConfig` fields; with ``kind="ray"`` up to
    :data:`RAY_SITE_JOBS` site jobs run at once, sharing the Ray workers."""
    ray = bool(executor) and executor.get("kind") == "ray"
    scheduler = build_scheduler(database_url, threads=RAY_SITE_JOBS if ray else 1)

    def _stop(signum: int, _frame: Any) -> None:
        log.info("signal %s: shutting down after the running job", signum)
        scheduler.shutdown(wait=True)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    scheduler.add_job(sync_site_jobs, "interval", minutes=SYNC_MINUTES, id="sync-sites",
                      args=[scheduler, database_url, options, executor],
                      replace_existing=True,
                      jobstore="memory", next_run_time=datetime.now(UTC))
    scheduler.add_job(deliver_outbox_job, "interval", minutes=OUTBOX_MINUTES,
                      id="deliver-outbox", args=[database_url], replace_existing=True,
                      jobstore="memory", next_run_time=datetime.now(UTC))
    from jobs.alert_checks import add_scheduler_job as add_alert_checks

    add_alert_checks(scheduler, database_url)  # overdue surveys, escalation (in memory)
    log.info("scheduler started (store %s, jobs in memory, rebuilt from the site table); "
             "Ctrl-C or SIGTERM stops it", hide_password(database_url))
    scheduler.start()  # blocks until shutdown
