"""Job runs in the store: one row per survey run (with its steps) or per other job (a site's
inbox scan, the outbox cycle, the alert checks), written by the pipeline, the scheduler and
the alert checks through these functions (issue 17: a store boundary, so callers need no ORM
class). Each call is its own short write transaction.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import Engine, select

from geodata.store.engine import session_scope
from geodata.store.models import JobRun, utcnow

__all__ = ["abandon_job_runs", "finish_job_run", "record_job_failure", "record_job_run",
           "set_job_step", "start_job_run"]

log = logging.getLogger(__name__)


def start_job_run(bind: Engine, job: str, *, site_id: int | None, survey_id: int | None,
                  steps: Iterable[str]) -> int:
    """A ``running`` job run with every step ``pending``; returns its id."""
    with session_scope(bind, write=True) as s:
        row = JobRun(job=job, site_id=site_id, survey_id=survey_id, status="running",
                     steps={k: {"status": "pending"} for k in steps})
        s.add(row)
        s.flush()
        return row.id


def set_job_step(bind: Engine, job_id: int, step: str, status: str, **info: Any) -> None:
    """Record one step's status (and any JSON-able details) on a job run."""
    with session_scope(bind, write=True) as s:
        row = s.get(JobRun, job_id)
        steps = dict(row.steps or {})
        steps[step] = {"status": status, **info}
        row.steps = steps


def finish_job_run(bind: Engine, job_id: int, status: str, error: str | None = None) -> None:
    """Close a job run (``succeeded`` / ``failed``, with the error); on failure the steps
    still ``pending`` become ``not run``."""
    with session_scope(bind, write=True) as s:
        row = s.get(JobRun, job_id)
        row.status = status
        row.finished_at = utcnow()
        row.error = error
        if status == "failed":
            row.steps = _not_run(row.steps)


def _not_run(steps: dict[str, Any] | None) -> dict[str, Any]:
    """``steps`` with those still ``pending`` marked ``not run``."""
    return {k: (v if v.get("status") != "pending" else {"status": "not run"})
            for k, v in (steps or {}).items()}


def abandon_job_runs(bind: Engine, site_id: int, *, by: str = "") -> int:
    """Mark the site's job runs still ``running`` as ``abandoned``; returns how many.

    Call it only while holding the site's lock: then no live process can be running them
    (their process was killed, crashed or lost its disk).
    """
    with session_scope(bind, write=True) as s:
        rows = list(s.scalars(select(JobRun).where(JobRun.site_id == site_id,
                                                   JobRun.status == "running")))
        for row in rows:
            row.status = "abandoned"
            row.finished_at = utcnow()
            row.error = (f"abandoned: the process running it is gone (it no longer held the "
                         f"site lock; found by {by or 'the next run'} at "
                         f"{row.finished_at:%Y-%m-%d %H:%M:%S} UTC)")
            row.steps = _not_run(row.steps)
            log.warning("site %s: job run %s (%s) was abandoned by its process", site_id,
                        row.id, row.job)
    return len(rows)


def record_job_run(bind: Engine, job: str, site_id: int | None, status: str, *,
                   error: str | None = None, steps: dict[str, Any] | None = None) -> int | None:
    """Write a finished job-run row for a job that is not one survey's run.

    Returns its id, or ``None`` when even that write failed (logged): recording a failure
    must never raise over the failure itself.
    """
    try:
        with session_scope(bind, write=True) as s:
            row = JobRun(job=job, site_id=site_id, status=status, steps=steps or {},
                         finished_at=utcnow(), error=error)
            s.add(row)
            s.flush()
            return row.id
    except Exception as again:  # noqa: BLE001
        log.error("cannot record job %s (%s): %s", job, status, again)
        return None


def record_job_failure(bind: Engine, job: str, site_id: int | None,
                       exc: BaseException) -> int | None:
    """A finished ``failed`` job-run row with the traceback of ``exc`` (see
    :func:`record_job_run`)."""
    return record_job_run(bind, job, site_id, "failed",
                          error="".join(traceback.format_exception(exc)))


def run_store_cycle(database_url: str, job: str, work: Callable[[Engine], int]) -> int:
    """One cycle of a scheduler job over the store: ``work(engine)`` on an engine of its own
    (disposed after). Returns what ``work`` returns; a failure of the cycle is logged and
    recorded as a failed ``job`` run (:func:`record_job_failure`) and returns 0, so the next
    cycle retries."""
    from geodata.store.engine import connect

    engine = connect(database_url)
    try:
        return work(engine)
    except Exception as exc:  # noqa: BLE001 - recorded, retried next cycle
        log.error("%s cycle failed: %s", job, exc)
        record_job_failure(engine, job, None, exc)
        return 0
    finally:
        engine.dispose()
