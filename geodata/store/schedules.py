"""What the scheduler reads from the store: each site's schedule (issue 17: a store boundary,
so the scheduler needs no ORM class)."""

from __future__ import annotations

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from geodata.store.engine import session_scope
from geodata.store.models import Site

__all__ = ["site_schedules"]


def site_schedules(bind: Engine | Session) -> list[tuple[int, str, str | None, str | None]]:
    """``(site id, name, cron schedule or None, IANA time zone or None)`` of every site, by
    id (the scheduler's source of truth: :func:`jobs.scheduler.sync_site_jobs`)."""
    with session_scope(bind) as s:
        return [(x.id, x.name, x.schedule, x.timezone)
                for x in s.scalars(select(Site).order_by(Site.id))]
