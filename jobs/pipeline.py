"""The monitoring pipeline: one survey from source file to stored, tracked, alerted cracks.

``process_survey`` runs the steps of DESIGN.md "Data flow of one survey" for a survey that is
already ingested (:func:`jobs.inbox.ingest`)::

    infer -> vectorise -> store + track -> alerts -> notify

Transactions. ``infer`` and ``vectorise`` touch no database (they write the probability map
under the work directory). ``store + track`` and ``alerts`` run in ONE database transaction:
an error anywhere before the commit (a model error, a CRS mismatch, a failed rule) leaves
the store exactly as it was, apart from the job-run record that says what failed (with the
traceback) and a ``failed`` inference-run record; the survey can simply be run again.
The notifications an alert needs are outbox rows (:mod:`jobs.outbox`) written in that same
transaction; ``notify`` delivers them after the commit, so nobody is told about an alert
that was rolled back, and a crash after the commit leaves them pending, not lost. A
notification that fails is marked failed on its row (and logged on the alert's
``notifications``) and resent by every later run of the site (:func:`retry_notifications`)
and by the scheduler's outbox cycle, to the failed channel only.

Each step's status and timing is recorded in the ``job_run`` row (``steps`` JSON) as it
goes, in small transactions of their own.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from engine.allocator import release_free_memory
from geodata.severity import MAX_RESOLVED_PIXEL_M
from geodata.store import REGISTRATION_STATUSES
from geodata.store.api import RunInfo, get_site, get_survey, record_failed_run, store_run
from geodata.store.engine import session_scope
from geodata.store.jobruns import (
    abandon_job_runs,
    finish_job_run,
    record_job_failure,
    record_job_run,
    set_job_step,
    start_job_run,
)
from geodata.store.surveys import fill_pixel_size, new_track_count, survey_and_site, surveys_by_id
from geodata.survey_state import (
    MAX_SURVEY_FAILURES,
    SURVEY_RETRY_BASE_S,
    SurveyState,
    survey_states,
)
from jobs.inbox import INBOX_SETTLE_S, scan_inbox
from jobs.notify import LogNotifier, Notifier
from jobs.outbox import channel_of, deliver_pending, enqueue
from jobs.site_baseline import surface_change_after_run
from jobs.site_models import ModelCache, load_site_model, site_model_name
from jobs.storage_errors import storage_problem
from jobs.survey_alerts import apply_alerts

if TYPE_CHECKING:
    from geodata.store import models as m

log = logging.getLogger(__name__)

__all__ = [
    "PipelineOptions",
    "SurveyResult",
    "SurveyState",
    "pending_surveys",
    "process_survey",
    "retry_notifications",
    "run_site",
    "survey_states",
]

STEPS = ("infer", "vectorise", "store_track", "alerts", "notify")


#: Coarsest pixel (m) on which alert rules run: :data:`geodata.severity.MAX_RESOLVED_PIXEL_M`
#: (5 cm; every BRE Digest 251 width class is unresolved above it, and what the model marks at
#: such scales is more likely a path, kerb or shadow than a crack). Such surveys are still
#: mapped and tracked, their cracks with severity ``unresolved``; their job run, the Site
#: page and the Overview say why no rule ran. A per-run override is
#: ``PipelineOptions.max_alert_pixel_size_m``.
MAX_ALERT_PIXEL_SIZE_M = MAX_RESOLVED_PIXEL_M

# MAX_SURVEY_FAILURES (failures before a survey is parked) and SURVEY_RETRY_BASE_S (the
# backoff of its retries) live in geodata.survey_state with survey_states, read by the CLI
# and the dashboard too.


@dataclass
class PipelineOptions:
    """Tiling, thresholds and places for one pipeline run.

    Attributes:
        work_dir: where probability maps are written (``<work_dir>/probability/``).
        model_name: shipped or user model for every site of the run (``--model``); default:
            each site's own (:func:`site_model_name`).
        weights_dir: extra folder of weights + model cards.
        tile_size, overlap, batch_size: tiling of :func:`engine.infer.predict_raster`, px
            (batch size None: :func:`engine.infer.default_batch_size`, 4 on the CPU).
        device: ``cpu``, ``cuda``, ``cuda:N``.
        threshold: crack probability threshold in (0, 1].
        min_area_px: cracks with fewer pixels are dropped.
        tolerance_px: tracking tolerance in pixels (plus the survey's registration error).
        max_alert_pixel_size_m: surveys with coarser pixels are mapped, stored and tracked,
            but no alert rule is evaluated on them (see :data:`MAX_ALERT_PIXEL_SIZE_M`).
        tta: test-time augmentation (mean over 4 flips; 4x the model compute).
        inbox_settle_s: seconds an inbox file must be left alone before it is taken
            (:data:`jobs.inbox.INBOX_SETTLE_S`).
        max_survey_failures: failures after which a survey is parked
            (:data:`MAX_SURVEY_FAILURES`).
        survey_retry_base_s: backoff after a survey's first failure, seconds, doubled per
            failure (:data:`SURVEY_RETRY_BASE_S`).
        object_filter: crack-object rules for every site of the run
            (:class:`geodata.crack_objects.ObjectFilter`); None: each site profile's
            and model's (:func:`engine.crack_rules.rules_for`).
        runtime: what runs the model on the CPU (:func:`engine.runtime.resolve_runtime`:
            ``auto``, ``openvino``, ``onnxruntime``, ``torch``).
    """

    work_dir: Path
    model_name: str | None = None
    weights_dir: Path | None = None
    tile_size: int = 512
    overlap: int = 64
    batch_size: int | None = None
    device: str = "cpu"
    threshold: float = 0.5
    min_area_px: int = 20
    tolerance_px: float = 3.0
    max_alert_pixel_size_m: float = MAX_ALERT_PIXEL_SIZE_M
    tta: bool = False
    inbox_settle_s: float = INBOX_SETTLE_S
    max_survey_failures: int = MAX_SURVEY_FAILURES
    survey_retry_base_s: float = SURVEY_RETRY_BASE_S
    object_filter: Any = None
    runtime: str = "auto"


@dataclass
class SurveyResult:
    """What :func:`process_survey` did to one survey."""

    survey_id: int
    job_run_id: int
    status: str
    cracks: int = 0
    new_tracks: int = 0
    alerts_raised: list[dict[str, Any]] = field(default_factory=list)
    alerts_escalated: list[dict[str, Any]] = field(default_factory=list)
    #: Unconfirmed slope exceedances recorded as watch alerts (no notification).
    alerts_watch: list[dict[str, Any]] = field(default_factory=list)
    notifications_failed: int = 0
    alerts_skipped: str | None = None
    megapixels_per_s: float | None = None
    seconds: float = 0.0
    error: str | None = None


def pending_surveys(bind: Engine | Session, site: int | str, *, now: datetime | None = None,
                    max_failures: int = MAX_SURVEY_FAILURES,
                    retry_base_s: float = SURVEY_RETRY_BASE_S) -> list[m.Survey]:
    """Surveys of ``site`` to run now, oldest acquisition first: no succeeded run, not
    skipped, not parked, and past the backoff of their last failure (:func:`survey_states`).
    """
    return surveys_by_id(bind, [st.survey_id for st in survey_states(
        bind, site, now=now, max_failures=max_failures, retry_base_s=retry_base_s)
        if st.state == "pending"])


# --------------------------------------------------------------------------------- steps


def _measure_photo_cracks(survey: m.Survey, out: dict[str, Any],
                          placements: dict[str, Any]) -> tuple[gpd.GeoDataFrame,
                                                               gpd.GeoSeries, list[str]]:
    """Each photo's pixel-unit cracks in metres and mm with the GSD its placement gives, at
    each crack's own position (:meth:`geodata.views.PhotoPlacement.gsd_at`).

    Returns:
        (cracks, skeletons, photos without a GSD, with the reason). Raises ValueError when
        no photo of the survey has a GSD (nothing could be measured).
    """
    frames, skels, unmeasured = [], [], []
    for name, (cracks, sk) in sorted(out["photo_cracks"].items()):
        place = placements.get(name)
        if place is None or place.gsd_m is None:
            unmeasured.append(f"{name}: {place.reason if place else 'not registered'}")
            continue
        cracks = cracks.copy()
        if len(cracks):
            pts = cracks.geometry.representative_point()
            g = np.array([place.gsd_at(pt.x, pt.y) for pt in pts], dtype=float)
            for col in ("length_m", "mean_width_mm", "max_width_mm"):
                cracks[col] = cracks[col].to_numpy(float) * g
            cracks["area_m2"] = cracks["area_m2"].to_numpy(float) * g * g
            cracks["pixel_size_m"] = g
        frames.append(cracks)
        skels.append(sk)
    measurable = [p for p in placements.values() if p.gsd_m is not None]
    if not measurable:
        reasons = "; ".join(p.reason for p in placements.values()) or "no photos"
        raise ValueError(f"survey {survey.id}: no photo could be measured (no GSD): "
                         f"{reasons}")
    if frames:
        cracks = pd.concat(frames, ignore_index=True)
        skeletons = gpd.GeoSeries(pd.concat(skels, ignore_index=True), index=cracks.index)
    else:
        from geodata.vectorise import empty_crack_frame

        cracks = empty_crack_frame(None)
        skeletons = gpd.GeoSeries([], index=cracks.index)
    cracks.attrs["coordinate_space"] = "image"
    return cracks, skeletons, unmeasured


def retry_notifications(bind: Engine, notifiers: Sequence[Notifier],
                        site_id: int | None = None) -> int:
    """Send every notification not yet delivered (of ``site_id``, or of every site).

    The outbox rows (:mod:`jobs.outbox`) of the notifiers' channels that are pending, failed
    or abandoned by a dead sender are sent now, regardless of their backoff: a run asked for
    it. Each is sent to its own channel only, so a channel that already delivered an alert
    does not get it twice.

    Returns:
        The number still failing (recorded on their rows; sent again next time).
    """
    return deliver_pending(bind, notifiers, site_id=site_id, respect_backoff=False).failed


# ------------------------------------------------------------------------------- pipeline


def _before_step(step: str) -> None:
    """Test seam: :func:`process_survey` calls it with each step's name (:data:`STEPS`) before
    the step runs. It does nothing; fault-injection tests replace it (``monkeypatch.setattr(
    jobs.pipeline, "_before_step", ...)``) with one that raises or kills the process."""


def process_survey(
    bind: Engine,
    survey_id: int,
    options: PipelineOptions,
    *,
    model: Any = None,
    notifiers: Sequence[Notifier] | None = None,
    infer: Callable[[m.Survey, m.Site, Any, PipelineOptions], dict[str, Any]] | None = None,
) -> SurveyResult:
    """Run infer -> vectorise -> store + track -> alerts -> notify for one survey.

    Args:
        bind: the store's engine.
        survey_id: an ingested survey (:func:`jobs.inbox.ingest`).
        options: tiling, thresholds, work directory.
        model: a loaded model (default: the site's model, :func:`site_model_name`, via
            :func:`engine.registry.load_model`).
        notifiers: where raised/escalated alerts go (default: the log only).
        infer: where infer + vectorise run (:mod:`jobs.executor`: on a Ray worker); called
            as ``infer(survey, site, model, options)``, returns what the local steps return.
            Default: in this process.

    Returns:
        :class:`SurveyResult`; ``status`` ``"succeeded"`` or ``"failed"`` (with ``error``).
        A failure never raises: it is recorded (job run with traceback, failed inference
        run) and leaves no partial results.
    """
    t_start = time.perf_counter()
    survey, site = survey_and_site(bind, survey_id)
    job_id = start_job_run(bind, "process_survey", site_id=survey.site_id,
                           survey_id=survey.id, steps=STEPS)
    notifiers = list(notifiers) if notifiers is not None else [LogNotifier()]
    step = "infer"
    run_info: dict[str, Any] = {"model_name": options.model_name or "unknown"}
    try:
        model = _model_for_run(model, site, options, run_info)
        t0 = time.perf_counter()
        if infer is not None:
            out = infer(survey, site, model, options)
        else:
            from engine.survey import InferenceSettings, SurveySource, infer_survey

            out = infer_survey(SurveySource.of(survey, site), model, InferenceSettings.of(options),
                               work_dir=options.work_dir).as_dict()
        set_job_step(bind, job_id, "infer", "succeeded",
                  **{**out["infer"], "seconds": round(time.perf_counter() - t0, 2)})
        step = "vectorise"
        _before_step(step)
        _vectorised(bind, job_id, out, run_info)

        step = "store_track"
        with session_scope(bind, write=True) as s:  # ONE transaction: store..alerts
            _before_step(step)
            if "photos" in out:
                _register_photos(s, survey, out)
            _mark_unresolved(out["cracks"], survey.pixel_size_m, options.max_alert_pixel_size_m)
            run = store_run(s, survey.id, out["cracks"], out["skeletons"], run_info,
                            coordinate_space=out["coordinate_space"],
                            footprint=out["footprint"], track=True,
                            tolerance_px=options.tolerance_px,
                            unobservable=out.get("unobservable"))
            new_tracks = new_track_count(s, survey.id)
            step = "alerts"
            _before_step(step)
            alerts = _alerts_step(s, survey.id, site.id, out, options, notifiers)
        _record_stored(bind, job_id, run, new_tracks, out, alerts)
        step = "notify"
        _before_step(step)
        failed = _notify(bind, job_id, notifiers, alerts)
        finish_job_run(bind, job_id, "succeeded")
        surface_change_after_run(bind, survey.id, options.work_dir)  # never fails the run
        return SurveyResult(survey.id, job_id, "succeeded", cracks=run.crack_count or 0,
                            new_tracks=new_tracks, alerts_raised=alerts.raised,
                            alerts_escalated=alerts.escalated, alerts_watch=alerts.watched,
                            notifications_failed=failed,
                            megapixels_per_s=out["megapixels_per_s"],
                            seconds=time.perf_counter() - t_start, alerts_skipped=alerts.skipped)
    except Exception as exc:  # noqa: BLE001 - recorded with its traceback, never lost
        return _failed(bind, job_id, survey.id, step, run_info, exc, options, t_start)


def _model_for_run(model: Any, site: m.Site, options: PipelineOptions,
                   run_info: dict[str, Any]) -> Any:
    """The infer step's start: ``model``, else the site's
    (:func:`jobs.site_models.load_site_model`); fills ``run_info`` with the model's name
    (before loading it, so a failure to load names it), version, weights hash, tiling and
    start time (UTC)."""
    if model is None:
        run_info["model_name"] = site_model_name(site, options)[0]
    _before_step("infer")
    if model is None:
        model = load_site_model(options, site)
    card = getattr(model, "card", {})
    run_info.update({
        "model_name": card.get("name", run_info["model_name"]),
        "model_version": str(card.get("version", "")) or None,
        "weights_sha256": card.get("weights", {}).get("sha256"),
        "tiling": {"tile_size": options.tile_size, "overlap": options.overlap,
                   "batch_size": options.batch_size or _default_batch(options.device),
                   "threshold": options.threshold,
                   "min_area_px": options.min_area_px, "device": options.device,
                   "tta": options.tta,
                   # a loaded model says what runs it; on Ray the workers resolve the choice
                   "runtime": getattr(model, "runtime", None) or (
                       "torch" if hasattr(model, "forward") else options.runtime)},
        "started_at": datetime.now(UTC),
    })
    return model


def _mark_unresolved(cracks: Any, survey_pixel_m: float | None, max_pixel_m: float) -> None:
    """Set ``severity`` to :data:`geodata.severity.UNRESOLVED` on the cracks measured with
    pixels coarser than ``max_pixel_m`` (their ``pixel_size_m`` column, else the survey's):
    no BRE Digest 251 category is given to a width the imagery cannot resolve (issue 25)."""
    from geodata.severity import UNRESOLVED

    if cracks is None or not len(cracks):
        return
    px = (cracks["pixel_size_m"].to_numpy(float) if "pixel_size_m" in cracks.columns
          else np.full(len(cracks), np.nan))
    if survey_pixel_m:
        px = np.where(np.isfinite(px), px, survey_pixel_m)
    coarse = np.isfinite(px) & (px > max_pixel_m)
    if coarse.any():
        if "severity" not in cracks.columns:
            cracks["severity"] = None
        cracks.loc[coarse, "severity"] = UNRESOLVED


def _vectorised(bind: Engine, job_id: int, out: dict[str, Any],
                run_info: dict[str, Any]) -> None:
    """Record the vectorise step (crack count) and the inference's speed and end time."""
    set_job_step(bind, job_id, "vectorise", "succeeded", cracks=(
        len(out["cracks"]) if "cracks" in out
        else sum(len(c) for c, _ in out["photo_cracks"].values())))
    run_info["megapixels_per_s"] = out["megapixels_per_s"]
    run_info["finished_at"] = datetime.now(UTC)
    infer = out.get("infer", {})
    if infer.get("crack_rules"):
        run_info["tiling"] = {**run_info.get("tiling", {}), "crack_rules": infer["crack_rules"]}
    if infer.get("observable_fraction") is not None:
        run_info["observable_fraction"] = infer["observable_fraction"]


def _register_photos(s: Session, survey: m.Survey, out: dict[str, Any]) -> None:
    """A photo survey's store step: register its photos into the site's views
    (:func:`geodata.views.register_survey_photos`), then measure its cracks in mm
    (:func:`_measure_photo_cracks`); sets ``out``'s ``cracks``, ``skeletons`` and
    ``registration``. In ``s``'s transaction."""
    from geodata.views import register_survey_photos

    placements = register_survey_photos(s, get_survey(s, survey.id), out["photos"])
    out["cracks"], out["skeletons"], unmeasured = _measure_photo_cracks(survey, out, placements)
    out["registration"] = _registration(placements, unmeasured)


def _registration(placements: dict[str, Any], unmeasured: list[str]) -> dict[str, Any]:
    """Photos per registration status (:data:`geodata.store.REGISTRATION_STATUSES`), and
    those that could not be measured (no GSD), with the reason."""
    counts: dict[str, Any] = {status: sum(p.status == status for p in placements.values())
                              for status in REGISTRATION_STATUSES}
    if unmeasured:
        counts["not_measured"] = unmeasured
    return counts


@dataclass
class _Alerts:
    """What the alerts step of one survey did (see :class:`SurveyResult`)."""

    raised: list[dict[str, Any]]
    escalated: list[dict[str, Any]]
    watched: list[dict[str, Any]]
    skipped: str | None


def _alerts_step(s: Session, survey_id: int, site_id: int, out: dict[str, Any],
                 options: PipelineOptions, notifiers: Sequence[Notifier]) -> _Alerts:
    """The alerts step, in the survey's transaction ``s``: the site's rules
    (:func:`jobs.survey_alerts.apply_alerts`; none when the survey's pixels are coarser than
    ``options.max_alert_pixel_size_m``, ``skipped`` says why), the outbox rows of what was
    raised or escalated, and a ``site.overdue`` alert closed (imagery arrived)."""
    from jobs.overdue import resolve_overdue

    # a pixel size from the raster transform (CRS metres) when the survey had none
    sv = fill_pixel_size(s, survey_id, out.get("pixel_size_m"))
    watched: list[dict] = []
    skipped = None
    if sv.pixel_size_m and sv.pixel_size_m > options.max_alert_pixel_size_m:
        skipped = (f"alert rules not run: pixels of {sv.pixel_size_m:g} m are coarser "
                   f"than {options.max_alert_pixel_size_m:g} m, where crack widths "
                   f"are not resolved (see jobs.pipeline.MAX_ALERT_PIXEL_SIZE_M)")
        raised, escalated = [], []
    else:
        raised, escalated = apply_alerts(s, get_site(s, site_id), sv,
                                         options.max_alert_pixel_size_m, watched)
    # the outbox rows commit with the alerts: a crash after the commit loses nothing
    enqueue(s, raised + escalated, [channel_of(n) for n in notifiers])
    resolve_overdue(s, site_id)  # imagery arrived: close a site.overdue alert
    return _Alerts(raised, escalated, watched, skipped)


def _record_stored(bind: Engine, job_id: int, run: Any, new_tracks: int, out: dict[str, Any],
                   alerts: _Alerts) -> None:
    """Record the committed store + track and alerts steps on the job run."""
    set_job_step(bind, job_id, "store_track", "succeeded", run_id=run.id,
                 cracks=run.crack_count or 0, new_tracks=new_tracks,
                 **({"photos": out["registration"]} if "registration" in out else {}))
    set_job_step(bind, job_id, "alerts", "skipped" if alerts.skipped else "succeeded",
                 raised=len(alerts.raised), escalated=len(alerts.escalated),
                 watch=len(alerts.watched),
                 **({"reason": alerts.skipped} if alerts.skipped else {}))


def _notify(bind: Engine, job_id: int, notifiers: Sequence[Notifier], alerts: _Alerts) -> int:
    """The notify step: deliver the outbox rows of the raised and escalated alerts now;
    returns how many failed (recorded on their rows; sent again by later runs)."""
    announced = alerts.raised + alerts.escalated
    sent = deliver_pending(bind, notifiers, respect_backoff=False,
                           alert_ids=[a["alert_id"] for a in announced]
                           ) if announced else None
    failed = sent.failed if sent else 0
    set_job_step(bind, job_id, "notify", "succeeded" if not failed else "failed",
                 sent=sent.delivered if sent else 0, failed=failed,
                 **({"errors": sent.errors} if failed else {}))
    return failed


def _failed(bind: Engine, job_id: int, survey_id: int, step: str, run_info: dict[str, Any],
            exc: Exception, options: PipelineOptions, t_start: float) -> SurveyResult:
    """Record a survey's failure at ``step``: the step (a full disk says so), a failed
    inference run (when the store had not committed), the job run with the traceback."""
    tb = "".join(traceback.format_exception(exc))
    log.error("survey %s failed at step %s: %s", survey_id, step, exc)
    disk = storage_problem(exc, work_dir=options.work_dir)  # a full disk says so
    try:
        set_job_step(bind, job_id, step, "failed", error=disk or str(exc))
        if step in ("infer", "vectorise", "store_track", "alerts"):
            record_failed_run(bind, survey_id, {k: v for k, v in run_info.items()
                                                if k in RunInfo.__dataclass_fields__}, exc)
    finally:
        finish_job_run(bind, job_id, "failed", tb)
    return SurveyResult(survey_id, job_id, "failed", error=f"{step}: {disk or exc}",
                        seconds=time.perf_counter() - t_start)


def _default_batch(device: str) -> int:
    from engine.infer import default_batch_size

    return default_batch_size(device)


def run_site(
    bind: Engine,
    site: int | str,
    options: PipelineOptions,
    *,
    model: Any = None,
    models: ModelCache | None = None,
    notifiers: Sequence[Notifier] | None = None,
    progress: Callable[[m.Survey, SurveyResult], None] | None = None,
    wait_s: float = 0.0,
    executor: Any = None,
) -> list[SurveyResult]:
    """Scan the site's inbox, then process every pending survey in acquisition order.

    The site's model (:func:`site_model_name`) is loaded once for all its pending surveys;
    every run records the model it used.

    One run per site at a time: the run holds the site's lock
    (:func:`geodata.store.locks.site_lock`) throughout; a lock left by a dead process is taken
    over and recorded (a ``lock_takeover`` job run). With the lock held, job runs of the site
    still marked ``running`` belong to a process that is gone: they are marked
    ``abandoned``. Notifications not yet delivered are sent first (a failure there is
    recorded and never stops the surveys).

    Args:
        model: a loaded model for every survey (default: the site's model).
        models: a cache shared by the calls of a run over several sites (``{}`` at first):
            a model already loaded for another site is reused, not loaded again.
        wait_s: seconds to wait while another process runs the site (0: refuse at once).
        executor: where the surveys' inference runs (:func:`jobs.executor.make_executor`:
            Ray workers, all pending surveys at once; the store writes stay here, in date
            order); None: here, one survey after another.

    Raises:
        SiteBusyError: another live process runs the site (after ``wait_s``).
        RecordNotFoundError: no such site.
    """
    from geodata.store.locks import site_lock

    site_id = get_site(bind, site).id
    with site_lock(bind, site_id, purpose="run_site", wait_s=wait_s) as held:
        if held.taken_over_from:
            record_job_run(bind, "lock_takeover", site_id, "succeeded",
                        steps={"lock": {"status": "taken over",
                                        "from": held.taken_over_from,
                                        "by": held.owner}})
        abandon_job_runs(bind, site_id, by=held.owner)
        try:
            return _run_site_locked(bind, site_id, options, model=model, models=models,
                                    notifiers=notifiers, progress=progress, executor=executor)
        finally:
            # Give the batches' heap back between sites (engine.allocator keeps it during a
            # run), so a long-lived scheduler does not hold its peak between cycles.
            release_free_memory()


def _run_site_locked(bind: Engine, site_id: int, options: PipelineOptions, *, model: Any,
                     models: ModelCache | None,
                     notifiers: Sequence[Notifier] | None,
                     progress: Callable[[m.Survey, SurveyResult], None] | None,
                     executor: Any = None) -> list[SurveyResult]:
    scan_inbox(bind, site_id, settle_s=options.inbox_settle_s)
    if notifiers:
        try:
            retry_notifications(bind, notifiers, site_id)
        except Exception as exc:  # noqa: BLE001 - a retry failure never stops the surveys
            log.error("site %s: retrying failed notifications failed: %s; the surveys are "
                      "processed anyway and the retry runs again next time", site_id, exc)
            record_job_failure(bind, "retry_notifications", site_id, exc)
    results = []
    pending = pending_surveys(bind, site_id, max_failures=options.max_survey_failures,
                              retry_base_s=options.survey_retry_base_s)
    for st in survey_states(bind, site_id, max_failures=options.max_survey_failures,
                            retry_base_s=options.survey_retry_base_s):
        if st.state in ("parked", "waiting"):
            log.warning("site %s: survey %s is %s after %d failure(s)%s (last: %s)", site_id,
                        st.survey_id, st.state, st.failures,
                        f" until {st.retry_at:%Y-%m-%d %H:%M} UTC" if st.retry_at else
                        f"; `crackwatch survey retry {st.survey_id}` or `skip`",
                        st.last_error)
    if executor is not None:  # inference on the executor's workers, stored here in order
        return executor.process_surveys(bind, pending, options, model=model,
                                        notifiers=notifiers, progress=progress)
    if pending and model is None:  # load once for all pending surveys of the site
        from engine.errors import ModelCardError, ModelNotFoundError, WeightsIntegrityError

        try:
            model = load_site_model(options, get_site(bind, site_id), models)
        except (ModelNotFoundError, WeightsIntegrityError, ModelCardError) as exc:
            log.error("site %s: cannot load its model: %s", site_id, exc)  # each survey
            # records the failure (process_survey tries again and fails the same way)
    for survey in pending:
        r = process_survey(bind, survey.id, options, model=model, notifiers=notifiers)
        results.append(r)
        if progress:
            progress(survey, r)
    return results
