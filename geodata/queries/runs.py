"""Job runs and inference runs, newest first."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from geodata.store.engine import session_scope
from geodata.store.lookup import _site
from geodata.store.models import InferenceRun, JobRun, Site, Survey

__all__ = [
    "inference_runs",
    "job_runs",
]


def _duration_s(start: Any, end: Any) -> float:
    return (end - start).total_seconds() if start is not None and end is not None else np.nan


def job_runs(
    bind: Engine | Session, *, site: int | str | None = None, limit: int = 500
) -> pd.DataFrame:
    """Job runs (nightly pipeline, ingest...), newest first.

    Returns:
        Columns ``job_run_id``, ``job``, ``site_id``, ``site_name``, ``survey_id``,
        ``status``, ``started_at``, ``finished_at``, ``duration_s`` (NaN while running),
        ``steps`` (the JSON object of step statuses), ``error``.

    Raises:
        RecordNotFoundError: ``site`` given and unknown.
    """
    cols = ["job_run_id", "job", "site_id", "site_name", "survey_id", "status", "started_at",
            "finished_at", "duration_s", "steps", "error"]
    with session_scope(bind) as s:
        stmt = select(JobRun, Site.name).outerjoin(Site, Site.id == JobRun.site_id)
        if site is not None:
            stmt = stmt.where(JobRun.site_id == _site(s, site).id)
        found = s.execute(stmt.order_by(JobRun.started_at.desc(), JobRun.id.desc())
                          .limit(int(limit))).all()
    rows = [{"job_run_id": j.id, "job": j.job, "site_id": j.site_id, "site_name": name,
             "survey_id": j.survey_id, "status": j.status, "started_at": j.started_at,
             "finished_at": j.finished_at, "duration_s": _duration_s(j.started_at,
                                                                     j.finished_at),
             "steps": j.steps or {}, "error": j.error} for j, name in found]
    frame = pd.DataFrame(rows, columns=cols)
    for c in ("site_id", "survey_id"):
        frame[c] = frame[c].astype("Int64")
    frame["duration_s"] = frame["duration_s"].astype(float)
    return frame


def inference_runs(
    bind: Engine | Session, *, site: int | str | None = None, limit: int = 500
) -> pd.DataFrame:
    """Inference runs (every status, superseded ones too), newest first.

    Returns:
        Columns ``run_id``, ``survey_id``, ``site_id``, ``site_name``, ``acquired_at``
        (of the survey, UTC), ``model_name``, ``model_version``, ``status``,
        ``started_at``, ``finished_at``, ``duration_s``, ``megapixels_per_s``,
        ``crack_count``, ``error``.

    Raises:
        RecordNotFoundError: ``site`` given and unknown.
    """
    cols = ["run_id", "survey_id", "site_id", "site_name", "acquired_at", "model_name",
            "model_version", "status", "started_at", "finished_at", "duration_s",
            "megapixels_per_s", "crack_count", "error"]
    with session_scope(bind) as s:
        stmt = (select(InferenceRun, Survey.site_id, Site.name, Survey.acquired_at)
                .join(Survey, Survey.id == InferenceRun.survey_id)
                .join(Site, Site.id == Survey.site_id))
        if site is not None:
            stmt = stmt.where(Survey.site_id == _site(s, site).id)
        found = s.execute(stmt.order_by(InferenceRun.started_at.desc(),
                                        InferenceRun.id.desc()).limit(int(limit))).all()
    rows = [{"run_id": r.id, "survey_id": r.survey_id, "site_id": sid, "site_name": name,
             "acquired_at": acq, "model_name": r.model_name, "model_version": r.model_version,
             "status": r.status, "started_at": r.started_at, "finished_at": r.finished_at,
             "duration_s": _duration_s(r.started_at, r.finished_at),
             "megapixels_per_s": r.megapixels_per_s, "crack_count": r.crack_count,
             "error": r.error} for r, sid, name, acq in found]
    frame = pd.DataFrame(rows, columns=cols)
    frame["crack_count"] = frame["crack_count"].astype("Int64")
    for c in ("duration_s", "megapixels_per_s"):
        frame[c] = frame[c].astype(float)
    return frame
