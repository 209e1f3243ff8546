"""Where each survey of a site stands in the monitoring pipeline: done, pending, waiting for
its retry after a failure, parked after too many failures, or skipped.

Read by the pipeline (:mod:`jobs.pipeline`, which runs what is pending), by ``crackwatch
survey list`` and by the dashboard (:func:`geodata.queries.list_surveys`), so all three say
the same. Failures are the survey's ``process_survey`` job runs that ``failed`` or were
``abandoned`` since its last ``crackwatch survey retry``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from geodata.store import models as m
from geodata.store.engine import session_scope

__all__ = ["MAX_SURVEY_FAILURES", "SURVEY_RETRY_BASE_S", "SurveyState", "survey_states"]

#: A survey whose processing failed (or whose process died) this many times in a row is
#: parked: runs leave it alone until ``crackwatch survey retry ID`` (or ``skip ID``).
MAX_SURVEY_FAILURES = 3
#: After a survey's k-th failure the next try waits ``SURVEY_RETRY_BASE_S * 2**(k-1)`` s.
SURVEY_RETRY_BASE_S = 15 * 60.0


@dataclass
class SurveyState:
    """Where a survey stands in the pipeline (:func:`survey_states`).

    Attributes:
        state: ``done`` (a succeeded run), ``pending`` (to run now), ``waiting`` (failed;
            retried after ``retry_at``), ``parked`` (failed ``MAX_SURVEY_FAILURES`` times;
            needs ``crackwatch survey retry|skip``), ``skipped`` (by ``survey skip``).
        failures: failed or abandoned runs since the last ``survey retry``.
        retry_at: UTC time of the next try of a ``waiting`` survey.
        last_error: the last line of the latest failure.
    """

    survey_id: int
    state: str
    failures: int = 0
    retry_at: datetime | None = None
    last_error: str | None = None

    def action(self) -> str | None:
        """What a person can do about it (None when nothing is needed)."""
        if self.state == "parked":
            return (f"`crackwatch survey retry {self.survey_id}` runs it again, "
                    f"`crackwatch survey skip {self.survey_id}` drops it")
        if self.state == "waiting":
            return (f"retried automatically after {self.retry_at:%Y-%m-%d %H:%M} UTC, or now "
                    f"with `crackwatch survey retry {self.survey_id}`")
        if self.state == "skipped":
            return f"`crackwatch survey retry {self.survey_id}` brings it back"
        return None


def survey_states(bind: Engine | Session, site: int | str, *, now: datetime | None = None,
                  max_failures: int = MAX_SURVEY_FAILURES,
                  retry_base_s: float = SURVEY_RETRY_BASE_S) -> list[SurveyState]:
    """The :class:`SurveyState` of each survey of ``site``, oldest acquisition first.

    Failures are the survey's ``process_survey`` job runs that ``failed`` or were
    ``abandoned`` (its process died) since its last ``survey retry``.

    Raises:
        RecordNotFoundError: no such site.
    """
    from datetime import timedelta

    from geodata.store.api import get_site

    now = now or m.utcnow()
    site_id = get_site(bind, site).id
    with session_scope(bind) as s:
        done = set(s.scalars(select(m.InferenceRun.survey_id).join(m.Survey).where(
            m.Survey.site_id == site_id, m.InferenceRun.status == "succeeded")))
        surveys = list(s.scalars(select(m.Survey).where(m.Survey.site_id == site_id)
                                 .order_by(m.Survey.acquired_at, m.Survey.id)))
        failed: dict[int, list[m.JobRun]] = {}
        for j in s.scalars(select(m.JobRun).where(
                m.JobRun.site_id == site_id, m.JobRun.job == "process_survey",
                m.JobRun.status.in_(("failed", "abandoned"))).order_by(m.JobRun.started_at)):
            failed.setdefault(j.survey_id, []).append(j)
        out = []
        for sv in surveys:
            meta = sv.meta or {}
            if sv.id in done:
                out.append(SurveyState(sv.id, "done"))
                continue
            since = meta.get("retry_from")
            runs = [j for j in failed.get(sv.id, [])
                    if since is None or j.started_at > datetime.fromisoformat(since)]
            last_error = None
            if runs:
                err = (runs[-1].error or "").strip().splitlines()
                last_error = err[-1] if err else runs[-1].status
            if meta.get("skipped"):
                out.append(SurveyState(sv.id, "skipped", len(runs), None, last_error))
            elif len(runs) >= max_failures:
                out.append(SurveyState(sv.id, "parked", len(runs), None, last_error))
            elif runs:
                last = runs[-1].finished_at or runs[-1].started_at
                retry_at = last + timedelta(seconds=retry_base_s * 2 ** (len(runs) - 1))
                out.append(SurveyState(sv.id, "waiting" if retry_at > now else "pending",
                                       len(runs), retry_at, last_error))
            else:
                out.append(SurveyState(sv.id, "pending"))
        return out

