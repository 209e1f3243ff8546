"""Record lookups shared by the store's modules (the site and survey a call names).

Below :mod:`geodata.store.api`, :mod:`geodata.tracking` and :mod:`geodata.audit`, so that
they need not import each other for them (issue 17: no import circles).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from geodata.errors import RecordNotFoundError
from geodata.store.models import InferenceRun, Site, Survey

__all__ = ["tracked_surveys"]


def _site(s: Session, site: int | str | Site) -> Site:
    if isinstance(site, Site):
        site = site.id
    if isinstance(site, int):
        found = s.get(Site, site)
    else:  # a name first, so a site named "1" is that site; digits alone: an id as before
        found = s.scalar(select(Site).where(Site.name == site))
        if found is None and isinstance(site, str) and site.isdigit():
            found = s.get(Site, int(site))
    if found is None:
        names = s.scalars(select(Site.name).order_by(Site.name).limit(20)).all()
        raise RecordNotFoundError(
            f"no site {site!r} in the store; known sites: {list(names) or 'none'} "
            f"(create one with geodata.store.add_site)"
        )
    return found


def _survey(s: Session, survey_id: int, *, lock: bool = False) -> Survey:
    stmt = select(Survey).where(Survey.id == survey_id)
    if lock:
        stmt = stmt.with_for_update()
    found = s.scalar(stmt)
    if found is None:
        raise RecordNotFoundError(f"no survey with id {survey_id} in the store; ingest it "
                                  f"first (geodata.store.ingest_survey)")
    return found


def tracked_surveys(s: Session, site_id: int) -> list[Survey]:
    """The site's surveys with a current (succeeded) run, in tracking order
    (``acquired_at``, then id)."""
    return _tracked_surveys(s, site_id)


def _tracked_surveys(s: Session, site_id: int) -> list[Survey]:
    has_run = (select(InferenceRun.id)
               .where(InferenceRun.survey_id == Survey.id, InferenceRun.status == "succeeded")
               .exists())
    return list(s.scalars(select(Survey).where(Survey.site_id == site_id, has_run)
                          .order_by(Survey.acquired_at, Survey.id)))
