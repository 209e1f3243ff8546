"""Surveys as the monitoring pipeline reads and marks them: the survey a run processes with
its site, the surveys to run (by id), un-parking and skipping a survey, the pixel size a run
finds and the new-track count it reports (issue 17: a store boundary, so the pipeline needs
no ORM class). Where each survey stands is :func:`geodata.survey_state.survey_states`.

``bind`` is an ``Engine`` (own transaction, committed) or a ``Session`` (a SAVEPOINT of the
caller's transaction), as in :mod:`geodata.store.api`; functions taking ``s`` work in the
caller's Session (the survey's one transaction).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from geodata.errors import RecordNotFoundError
from geodata.store.engine import session_scope
from geodata.store.models import Site, Survey, SurveySummary, utcnow

__all__ = ["fill_pixel_size", "new_track_count", "retry_survey", "skip_survey",
           "survey_and_site", "surveys_by_id"]


def survey_and_site(bind: Engine | Session, survey_id: int) -> tuple[Survey, Site]:
    """The survey with this id and its site (readable after the call).

    Raises:
        RecordNotFoundError: no such survey (the message says how to list them).
    """
    with session_scope(bind) as s:
        survey = s.get(Survey, survey_id)
        if survey is None:
            raise RecordNotFoundError(f"no survey with id {survey_id}; see `crackwatch survey "
                                      f"list`")
        return survey, s.get(Site, survey.site_id)


def surveys_by_id(bind: Engine | Session, ids: Sequence[int]) -> list[Survey]:
    """The surveys with these ids, in the order of ``ids`` (every id must exist)."""
    with session_scope(bind) as s:
        by_id = {sv.id: sv for sv in s.scalars(select(Survey).where(Survey.id.in_(ids)))}
        return [by_id[i] for i in ids]


def retry_survey(bind: Engine | Session, survey_id: int) -> Survey:
    """Un-park (or un-skip) a survey: its failures so far no longer count; the next run of
    its site processes it.

    Raises:
        RecordNotFoundError: no such survey.
    """
    return _set_survey_meta(bind, survey_id, retry_from=utcnow().isoformat(), skipped=None)


def skip_survey(bind: Engine | Session, survey_id: int, reason: str = "") -> Survey:
    """Leave a survey out of every later run (until :func:`retry_survey`).

    Raises:
        RecordNotFoundError: no such survey.
    """
    return _set_survey_meta(bind, survey_id, skipped={"at": utcnow().isoformat(),
                                                      "reason": reason or None})


def _set_survey_meta(bind: Engine | Session, survey_id: int, **values: Any) -> Survey:
    with session_scope(bind, write=True) as s:
        sv = s.get(Survey, survey_id)
        if sv is None:
            raise RecordNotFoundError(f"no survey with id {survey_id}; see `crackwatch survey "
                                      f"list --site NAME`")
        meta = dict(sv.meta or {})
        for k, v in values.items():
            if v is None:
                meta.pop(k, None)
            else:
                meta[k] = v
        sv.meta = meta
        s.flush()
        s.expunge(sv)
        return sv


def fill_pixel_size(s: Session, survey_id: int, pixel_size_m: float | None) -> Survey:
    """The survey in ``s``, its ``pixel_size_m`` (metres) set to ``pixel_size_m`` when it
    had none and one is given (e.g. from the raster transform, CRS metres)."""
    sv = s.get(Survey, survey_id)
    if sv.pixel_size_m is None and pixel_size_m:
        sv.pixel_size_m = pixel_size_m
    return sv


def new_track_count(s: Session, survey_id: int) -> int:
    """Tracks the survey started (its summary's ``new_count``; 0 without a summary)."""
    summary = s.get(SurveySummary, survey_id)
    return summary.new_count if summary else 0
