"""The monitoring pipeline: one survey from source file to stored, tracked, alerted cracks.

``process_survey`` runs the steps of DESIGN.md "Data flow of one survey" for a survey that is
already ingested (:func:`ingest`)::

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
import os
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from engine.allocator import release_free_memory
from geodata import audit
from geodata.alerts_store import alert_anchor
from geodata.photos import PHOTO_SUFFIXES
from geodata.store import models as m
from geodata.store.api import RunInfo, ingest_survey, record_failed_run, store_run
from geodata.store.engine import session_scope
from geodata.store.jobruns import (
    finish_job_run,
    record_job_failure,
    record_job_run,
    set_job_step,
    start_job_run,
)
from geodata.survey_state import (
    MAX_SURVEY_FAILURES,
    SURVEY_RETRY_BASE_S,
    SurveyState,
    survey_states,
)
from geodata.tracking import tracked_surveys
from jobs import alerts as rules
from jobs.notify import Notifier
from jobs.outbox import channel_of, deliver_pending, enqueue
from jobs.storage_errors import storage_problem

log = logging.getLogger(__name__)

__all__ = [
    "InboxRefusal",
    "PipelineOptions",
    "SurveyResult",
    "SurveyState",
    "ingest",
    "pending_surveys",
    "process_survey",
    "abandon_job_runs",
    "retry_notifications",
    "retry_survey",
    "run_site",
    "scan_inbox",
    "site_model_name",
    "skip_survey",
    "survey_states",
]

RASTER_SUFFIXES = {".tif", ".tiff", ".vrt", ".img", ".jp2"}
STEPS = ("infer", "vectorise", "store_track", "alerts", "notify")


#: Coarsest pixel (m) on which alert rules run. The shipped models learned cracks from
#: imagery of roughly 0.1-5 mm per pixel (DeepCrack, UAV75, masonry patches); at 5 cm per
#: pixel a crack narrower than 5 cm is below one pixel, every BRE Digest 251 width class
#: (the widest bound is 25 mm) is unresolved, and what the model marks at such scales is
#: more likely a path, kerb or shadow than a crack. Such surveys are still mapped and
#: tracked; their job run says why no rule ran. A per-run override is
#: ``PipelineOptions.max_alert_pixel_size_m``.
MAX_ALERT_PIXEL_SIZE_M = 0.05

#: Seconds a file in an inbox must have been left alone (no write, no change of size, time or
#: attributes: its ``st_ctime`` and ``st_mtime``) before it is taken; a copy in progress
#: keeps changing them. ``PipelineOptions.inbox_settle_s`` overrides it per run.
INBOX_SETTLE_S = 60.0
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
            (:data:`INBOX_SETTLE_S`).
        max_survey_failures: failures after which a survey is parked
            (:data:`MAX_SURVEY_FAILURES`).
        survey_retry_base_s: backoff after a survey's first failure, seconds, doubled per
            failure (:data:`SURVEY_RETRY_BASE_S`).
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


# --------------------------------------------------------------------------------- ingest


def _acquired_at_of(path: Path) -> tuple[datetime, str]:
    """Acquisition time of a source: EXIF (photos), TIFFTAG_DATETIME (rasters), else mtime.

    EXIF and TIFF times carry no time zone: they come back naive (camera-local time)."""
    if path.is_dir() or path.suffix.lower() in PHOTO_SUFFIXES:
        from geodata.errors import PhotoMetadataError
        from geodata.photos import read_photo_metadata

        photos = [path] if path.is_file() else sorted(
            p for p in path.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
        times = []
        for p in photos:
            try:
                meta = read_photo_metadata(p)
            except (PhotoMetadataError, OSError):
                continue
            if meta.acquired_at is not None:
                times.append(meta.acquired_at)
        if times:
            return min(times), "EXIF DateTimeOriginal"
    else:
        import rasterio

        try:
            with rasterio.open(path) as src:
                stamp = src.tags().get("TIFFTAG_DATETIME")
            if stamp:
                return datetime.strptime(stamp, "%Y:%m:%d %H:%M:%S"), "TIFFTAG_DATETIME"
        except (rasterio.errors.RasterioIOError, ValueError):
            pass
    return (datetime.fromtimestamp(path.stat().st_mtime, UTC),
            "file modification time (no acquisition time in the file)")


def ingest(
    bind: Engine | Session,
    site: int | str,
    path: str | Path,
    *,
    acquired_at: datetime | None = None,
    pixel_size_m: float | None = None,
    registration_error_m: float = 0.0,
    metadata: dict[str, Any] | None = None,
) -> m.Survey:
    """Register an orthomosaic, a photo or a photo folder as a survey of ``site``.

    Idempotent: the same file (SHA-256) twice is one survey. ``acquired_at`` defaults to the
    EXIF time (photos), the GeoTIFF ``TIFFTAG_DATETIME`` (rasters), both read in the site's
    time zone, or else the file's modification time; which one was used is recorded in the
    survey metadata (``acquired_at_source``).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        RecordNotFoundError: no such site. ValueError: a naive ``acquired_at``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; give an orthomosaic (GeoTIFF), a JPEG "
                                f"photo or a folder of JPEG photos.")
    if path.is_dir() and not any(q.suffix.lower() in PHOTO_SUFFIXES for q in path.iterdir()):
        raise ValueError(f"{path} is a folder without JPEG photos; give a folder of JPEG "
                         f"photos, a JPEG photo or an orthomosaic (GeoTIFF).")
    if path.is_file() and path.stat().st_size == 0:
        raise ValueError(f"{path} is an empty (0-byte) file; copy it again completely.")
    from zoneinfo import ZoneInfo

    from geodata.store.api import get_site

    meta = dict(metadata or {})
    if acquired_at is None:
        acquired_at, source = _acquired_at_of(path)
        if acquired_at.tzinfo is None:  # camera-local time: the site's time zone
            tz = get_site(bind, site).timezone
            acquired_at = acquired_at.replace(tzinfo=ZoneInfo(tz))
            source += f" (camera-local time, read in the site's time zone {tz})"
    else:
        source = "given"
    meta.setdefault("acquired_at_source", source)
    return ingest_survey(bind, site, path.resolve(), acquired_at=acquired_at,
                         pixel_size_m=pixel_size_m, registration_error_m=registration_error_m,
                         metadata=meta)




@dataclass
class InboxRefusal:
    """An inbox entry :func:`scan_inbox` did not take, and why (``reason``)."""

    path: Path
    reason: str
    retried: bool  # True: looked at again by the next scan (e.g. still being copied)


def _outside(p: Path, inbox: Path) -> bool:
    try:
        p.resolve(strict=True).relative_to(inbox)
    except (ValueError, OSError):
        return True
    return False


def _settled(paths: Sequence[Path], settle_s: float, now: float) -> str | None:
    """None when every path is at least ``settle_s`` old (ctime and mtime), else why not."""
    for q in paths:
        st = q.stat()
        age = now - max(st.st_ctime, st.st_mtime)
        if age < settle_s:
            return (f"{q.name} changed {age:.0f} s ago (size {st.st_size} bytes); taken once "
                    f"it has been left alone for {settle_s:g} s")
    return None


def _opens_completely(path: Path) -> str | None:
    """None when the raster/photo reads to its end, else the error (a truncated copy)."""
    if path.suffix.lower() in PHOTO_SUFFIXES:
        from PIL import Image

        try:
            with Image.open(path) as im:
                im.load()
        except (OSError, SyntaxError, ValueError) as exc:
            return f"{path.name} does not read completely ({exc})"
        return None
    import rasterio
    from rasterio.windows import Window

    try:
        with rasterio.open(path) as src:
            src.read(1, window=Window(0, src.height - 1, src.width, 1))  # the last row
    except (rasterio.errors.RasterioError, OSError) as exc:
        return f"{path.name} does not read completely ({exc})"
    return None


def scan_inbox(bind: Engine, site: int | str, *, settle_s: float = INBOX_SETTLE_S,
               refused: list[InboxRefusal] | None = None) -> list[m.Survey]:
    """Ingest every orthomosaic and photo folder found in the site's inbox (idempotent).

    An orthomosaic is a raster file directly in the inbox; a photo set is a sub-folder with
    JPEGs (loose JPEGs directly in the inbox are one photo survey each). Safe intake:

    * an entry is taken only once it (every JPEG of a folder) has been left alone for
      ``settle_s`` seconds and reads to its end, so a half-copied file never becomes a
      survey; it is looked at again by the next scan;
    * a symlink that leads out of the inbox (a file, a folder or a JPEG inside a folder) is
      refused and logged, as are empty files and folders without JPEGs;
    * names starting with ``.`` are ignored (rsync and many copy tools write those first).

    Files that fail to ingest are logged and skipped; they do not stop the scan. Refused
    entries are logged and, when ``refused`` is given, appended to it.
    """
    from geodata.store.api import get_site

    row = get_site(bind, site)
    if not row.inbox:
        return []
    inbox = Path(row.inbox)
    if not inbox.is_dir():
        log.warning("inbox %s of site %s does not exist", inbox, row.name)
        return []
    inbox = inbox.resolve()
    found = []
    now = time.time()

    def refuse(p: Path, reason: str, retried: bool) -> None:
        (log.info if retried else log.warning)("inbox %s: %s not taken: %s", inbox, p.name,
                                               reason)
        if refused is not None:
            refused.append(InboxRefusal(p, reason, retried))

    for p in sorted(inbox.iterdir()):
        if p.name.startswith("."):
            continue
        if _outside(p, inbox):
            refuse(p, f"it is a link to {os.path.realpath(p)}, outside the inbox (copy the "
                      f"data into the inbox instead)", False)
            continue
        if p.is_dir():
            photos = [q for q in sorted(p.iterdir())
                      if q.suffix.lower() in PHOTO_SUFFIXES and not q.name.startswith(".")]
            if not photos:
                continue  # not a photo set (yet)
            leaving = [q.name for q in photos if _outside(q, inbox)]
            if leaving:
                refuse(p, f"{', '.join(leaving)} link(s) outside the inbox", False)
                continue
        elif p.suffix.lower() in RASTER_SUFFIXES | PHOTO_SUFFIXES:
            photos = [p]
        else:
            continue
        try:
            if any(q.stat().st_size == 0 for q in photos):
                refuse(p, "an empty (0-byte) file", True)
                continue
            waiting = _settled(photos, settle_s, now)
            if waiting:
                refuse(p, waiting, True)
                continue
            broken = next((e for e in map(_opens_completely, photos) if e), None)
            if broken:
                refuse(p, broken, True)
                continue
            found.append(ingest(bind, row.id, p))
        except (OSError, ValueError) as exc:
            log.error("inbox %s: cannot ingest %s: %s", inbox, p, exc)
    return found


def pending_surveys(bind: Engine | Session, site: int | str, *, now: datetime | None = None,
                    max_failures: int = MAX_SURVEY_FAILURES,
                    retry_base_s: float = SURVEY_RETRY_BASE_S) -> list[m.Survey]:
    """Surveys of ``site`` to run now, oldest acquisition first: no succeeded run, not
    skipped, not parked, and past the backoff of their last failure (:func:`survey_states`).
    """
    ids = [st.survey_id for st in survey_states(bind, site, now=now, max_failures=max_failures,
                                                retry_base_s=retry_base_s)
           if st.state == "pending"]
    with session_scope(bind) as s:
        by_id = {sv.id: sv for sv in s.scalars(select(m.Survey).where(m.Survey.id.in_(ids)))}
        return [by_id[i] for i in ids]


def retry_survey(bind: Engine, survey_id: int) -> m.Survey:
    """Un-park (or un-skip) a survey: its failures so far no longer count; the next run of
    its site processes it.

    Raises:
        RecordNotFoundError: no such survey.
    """
    return _set_survey_meta(bind, survey_id, retry_from=m.utcnow().isoformat(), skipped=None)


def skip_survey(bind: Engine, survey_id: int, reason: str = "") -> m.Survey:
    """Leave a survey out of every later run (until :func:`retry_survey`).

    Raises:
        RecordNotFoundError: no such survey.
    """
    return _set_survey_meta(bind, survey_id, skipped={"at": m.utcnow().isoformat(),
                                                      "reason": reason or None})


def _set_survey_meta(bind: Engine, survey_id: int, **values: Any) -> m.Survey:
    from geodata.errors import RecordNotFoundError

    with session_scope(bind, write=True) as s:
        sv = s.get(m.Survey, survey_id)
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


# ------------------------------------------------------------------------------ job runs


def _start_job(bind: Engine, job: str, survey: m.Survey) -> int:
    return start_job_run(bind, job, site_id=survey.site_id, survey_id=survey.id, steps=STEPS)


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


def _observations(s: Session, site_id: int, until: datetime,
                  alive_in: int | None = None) -> dict[int, list[dict]]:
    """Per active track of the site, its observations up to ``until`` (oldest first).

    ``alive_in``: a survey id; then the tracks with a crack of their own in that survey
    instead of those active now (for evaluating the rules as of an earlier survey)."""
    if alive_in is None:
        alive = m.CrackTrack.status == "active"
    else:
        alive = m.CrackTrack.id.in_(
            select(m.TrackObservation.track_id)
            .where(m.TrackObservation.survey_id == alive_in,
                   m.TrackObservation.event.in_(("new", "continued", "split"))))
    rows = s.execute(
        select(m.TrackObservation)
        .join(m.CrackTrack, m.CrackTrack.id == m.TrackObservation.track_id)
        .where(m.CrackTrack.site_id == site_id, alive,
               m.TrackObservation.acquired_at <= until,
               m.TrackObservation.length_m.is_not(None))
        .order_by(m.TrackObservation.acquired_at)).scalars()
    series: dict[int, list[dict]] = {}
    for o in rows:
        series.setdefault(o.track_id, []).append({
            "surveyed_at": o.acquired_at, "length_m": o.length_m,
            "max_width_mm": o.max_width_mm or 0.0, "area_m2": o.area_m2 or 0.0})
    return series


def _image_series(s: Session, survey: m.Survey) -> dict[str, list[dict]]:
    """Photo cracks not tracked in a view (refused, duplicate photos): each crack is a
    one-observation series of its own, keyed ``photo:<image name>#<crack index>`` so a
    re-run finds the same key again."""
    rows = s.execute(select(m.Crack).where(m.Crack.survey_id == survey.id,
                                           m.Crack.track_id.is_(None))).scalars()
    return {f"photo:{c.image_name}#{c.crack_index}": [{
        "surveyed_at": survey.acquired_at, "length_m": c.length_m,
        "max_width_mm": c.max_width_mm, "area_m2": c.area_m2}] for c in rows}


def _alert_key(track: Any) -> str:
    """The identity of an alert across nights within a site and rule (see jobs.alerts)."""
    return "site" if track is None else (f"track:{track}" if isinstance(track, int)
                                         else str(track))


def _evaluations(s: Session, site: m.Site, survey: m.Survey,
                 max_pixel_size_m: float | None) -> list[tuple[m.Survey, dict, int]]:
    """(survey, series, new crack count) to evaluate the rules on, oldest first.

    A photo survey: itself. A map survey: itself and every later tracked survey of the site
    (with pixels fine enough for alerts), each as of its own date: a survey that arrives after
    newer ones were processed (out of date order) changes the growth of every later interval,
    so the rules see the history as it would have been seen in date order."""
    if survey.source_type in ("photo", "photos"):
        # photo tracks (per view, geodata.views) as of this survey, plus the photo cracks
        # not tracked in any view; "new" counts only views seen before
        ordered = tracked_surveys(s, site.id)
        last = not ordered or survey.id == ordered[-1].id
        series: dict[Any, list[dict]] = dict(_observations(
            s, site.id, survey.acquired_at, None if last else survey.id))
        series.update(_image_series(s, survey))
        summary = s.get(m.SurveySummary, survey.id)
        new_count = summary.new_count if summary and summary.previous_survey_id else 0
        return [(survey, series, new_count)]
    ordered = tracked_surveys(s, site.id)
    ids = [sv.id for sv in ordered]
    todo = ordered[ids.index(survey.id):] if survey.id in ids else [survey]
    out = []
    for k, sv in enumerate(todo):
        if k and max_pixel_size_m and sv.pixel_size_m and sv.pixel_size_m > max_pixel_size_m:
            continue
        last = sv.id == ordered[-1].id if ordered else True
        series = _observations(s, site.id, sv.acquired_at, None if last else sv.id)
        summary = s.get(m.SurveySummary, sv.id)
        # the first survey of a site has nothing to be "new" against
        new_count = summary.new_count if summary and summary.previous_survey_id else 0
        out.append((sv, series, new_count))
    return out


def _apply_alerts(s: Session, site: m.Site, survey: m.Survey,
                  max_pixel_size_m: float | None = None,
                  watched: list[dict] | None = None) -> tuple[list, list]:
    """Evaluate the site's rules and raise or escalate alerts, inside ``s``'s transaction.

    An alert is keyed by (site, rule, track or photo crack); a key with an open (unresolved)
    alert is not raised again, only escalated when the level rises
    (:func:`jobs.alerts.lifecycle_action`). A track alert records the crack it was raised
    on (``details["anchor"]``), so a later rebuild of the tracks keeps it on that crack's
    lineage (:func:`geodata.alerts_store.reattach_alerts`). A map survey older than surveys
    already processed is evaluated as of itself and of each later survey (see
    :func:`_evaluations`).

    Watch alerts (false-alarm control, :func:`jobs.alerts.confirm_slope_candidates`): an
    unconfirmed slope exceedance is stored with ``watch=True`` and queues no notification
    (appended to ``watched``); when a later evaluation confirms it, the same alert is
    promoted (``watch=False``, returned among the raised, so it is announced then); when a
    later survey does not exceed at all, it is resolved automatically as not confirmed.
    Every change is an audit entry (actor ``system``).
    """
    thresholds = (site.thresholds or {}).get(site.profile) or None
    open_alerts: dict[tuple[str, str], m.Alert] = {}
    for a in s.scalars(select(m.Alert).where(m.Alert.site_id == site.id,
                                             m.Alert.resolved_at.is_(None))
                       .order_by(m.Alert.raised_at)):
        open_alerts[(a.rule, (a.details or {}).get("key", _alert_key(a.track_id)))] = a
    raised: list[dict] = []
    escalated: list[dict] = []
    watched = watched if watched is not None else []
    for sv, series, new_count in _evaluations(s, site, survey, max_pixel_size_m):
        candidates = rules.evaluate_site(site.profile, thresholds, series, sv.pixel_size_m,
                                         new_count, site=site.id)
        _apply_candidates(s, site, sv, candidates, open_alerts, raised, escalated, watched)
    return raised, escalated


def _apply_candidates(s: Session, site: m.Site, survey: m.Survey, candidates: list,
                      open_alerts: dict[tuple[str, str], m.Alert], raised: list[dict],
                      escalated: list[dict], watched: list[dict] | None = None) -> None:
    exceeding: set[tuple[str, str]] = set()
    for c in candidates:
        if not c.is_alert:
            continue
        key = _alert_key(c.track)
        exceeding.add((c.rule, key))
        track_id = c.track if isinstance(c.track, int) else None
        current = open_alerts.get((c.rule, key))
        details = {"key": key, "unit": c.unit,
                   "resolution_warnings": list(c.resolution_warnings),
                   "observed_at": c.observed_at.isoformat() if c.observed_at else None}
        if c.confirmation:
            details["confirmation"] = c.confirmation
        if c.forecast is not None:
            details["forecast"] = c.forecast.to_dict()
        message = c.message if key.startswith(("site", "track:")) else f"{key}: {c.message}"
        value = float(c.measured_value)
        threshold = None if c.threshold is None else float(c.threshold)
        record = {"site": site.name, "level": str(c.level), "rule": c.rule, "track": track_id,
                  "measured_value": value, "threshold": threshold, "unit": c.unit,
                  "message": message, "forecast": details.get("forecast"),
                  "resolution_warnings": tuple(c.resolution_warnings)}
        if c.watch or (current is not None and current.watch):
            _apply_watch(s, site, survey, c, current, key, track_id, details, record,
                         open_alerts, raised, watched if watched is not None else [])
            continue
        action = rules.lifecycle_action(current.level if current else None, c)
        if action is rules.LifecycleAction.NONE:
            continue
        if track_id is not None:
            details["anchor"] = alert_anchor(s, track_id, survey.id)
        if action is rules.LifecycleAction.RAISE:
            alert = m.Alert(site_id=site.id, track_id=track_id, survey_id=survey.id,
                            level=str(c.level), rule=c.rule, measured_value=value,
                            threshold=threshold, message=message, notifications=[],
                            details=details)
            s.add(alert)
            s.flush()
            open_alerts[(c.rule, key)] = alert
            raised.append({**record, "alert_id": alert.id, "action": "raise"})
            audit.record(s, "alert.raised", actor=audit.SYSTEM, site_id=site.id,
                         alert_id=alert.id, details={"level": alert.level, "rule": c.rule,
                                                     "survey_id": survey.id, "key": key,
                                                     "measured_value": value,
                                                     "threshold": threshold, "unit": c.unit,
                                                     "confirmation": c.confirmation})
        else:
            previous = current.level
            history = list((current.details or {}).get("escalations", []))
            history.append({"from": previous, "to": str(c.level), "survey_id": survey.id,
                            "at": m.utcnow().isoformat()})
            current.level, current.measured_value = str(c.level), value
            current.threshold, current.message = threshold, message
            current.survey_id = survey.id
            kept = {k: v for k, v in (current.details or {}).items()
                    if k in ("reattached", "confirmed_at", "escalation_notices")}
            current.details = {**kept, **details, "escalations": history}
            escalated.append({**record, "alert_id": current.id, "action": "escalate",
                              "from": previous})
            audit.record(s, "alert.escalated", actor=audit.SYSTEM, site_id=site.id,
                         alert_id=current.id, details={"from": previous, "to": str(c.level),
                                                       "rule": c.rule, "survey_id": survey.id,
                                                       "measured_value": value,
                                                       "threshold": threshold,
                                                       "unit": c.unit})
    _expire_watch(s, site, survey, open_alerts, exceeding)


def _apply_watch(s: Session, site: m.Site, survey: m.Survey, c: Any, current: m.Alert | None,
                 key: str, track_id: int | None, details: dict, record: dict,
                 open_alerts: dict[tuple[str, str], m.Alert], raised: list[dict],
                 watched: list[dict]) -> None:
    """A watch candidate, or any candidate for a key whose open alert is a watch."""
    if c.watch and current is not None and not current.watch:
        return  # an alert already confirmed and open: an unconfirmed survey changes nothing
    if track_id is not None:
        details["anchor"] = alert_anchor(s, track_id, survey.id)
    fields = {"level": str(c.level), "measured_value": record["measured_value"],
              "threshold": record["threshold"], "message": record["message"],
              "survey_id": survey.id}
    if current is None:  # a new unconfirmed exceedance
        alert = m.Alert(site_id=site.id, track_id=track_id, rule=c.rule, notifications=[],
                        details=details, watch=True, **fields)
        s.add(alert)
        s.flush()
        open_alerts[(c.rule, key)] = alert
        watched.append({**record, "alert_id": alert.id, "action": "watch"})
        audit.record(s, "alert.watch", actor=audit.SYSTEM, site_id=site.id, alert_id=alert.id,
                     details={"level": alert.level, "rule": c.rule, "survey_id": survey.id,
                              "key": key, "confirmation": c.confirmation})
        return
    kept = {k: v for k, v in (current.details or {}).items() if k == "reattached"}
    if c.watch:  # still unconfirmed: keep the highest level measured, notify nobody
        if rules.Level.parse(c.level) > rules.Level.parse(current.level):
            previous = current.level
            for name, value in fields.items():
                setattr(current, name, value)
            current.details = {**kept, **details}
            watched.append({**record, "alert_id": current.id, "action": "watch"})
            audit.record(s, "alert.watch", actor=audit.SYSTEM, site_id=site.id,
                         alert_id=current.id,
                         details={"from": previous, "level": current.level, "rule": c.rule,
                                  "survey_id": survey.id, "confirmation": c.confirmation})
        return
    # confirmed: the watch alert becomes an alert and is announced now
    previous = current.level
    for name, value in fields.items():
        setattr(current, name, value)
    current.watch = False
    now = m.utcnow()
    current.details = {**kept, **details, "confirmed_at": now.isoformat(),
                       "watch_level": previous}
    raised.append({**record, "alert_id": current.id, "action": "raise"})
    audit.record(s, "alert.confirmed", actor=audit.SYSTEM, site_id=site.id,
                 alert_id=current.id, at=now,
                 details={"from": previous, "level": current.level, "rule": c.rule,
                          "survey_id": survey.id, "confirmation": c.confirmation})


def _expire_watch(s: Session, site: m.Site, survey: m.Survey,
                  open_alerts: dict[tuple[str, str], m.Alert],
                  exceeding: set[tuple[str, str]]) -> None:
    """Resolve the open watch alerts that a later survey did not confirm: the crack's rule
    no longer exceeds its threshold in ``survey`` (acquired after the watch was raised)."""
    if survey.source_type in ("photo", "photos"):
        return  # photos are not tracked: they say nothing about a track's growth
    when = survey.acquired_at
    for k, a in list(open_alerts.items()):
        if not a.watch or a.resolved_at is not None or k in exceeding or \
                a.rule not in rules.CONFIRMED_RULES:
            continue
        seen = (a.details or {}).get("observed_at")
        if seen is None or datetime.fromisoformat(seen) >= when:
            continue  # evaluated as of a survey not later than the exceedance
        now = m.utcnow()
        a.resolved_at = now
        a.resolve_note = (f"resolved automatically: not confirmed, survey {survey.id} of "
                          f"{when:%Y-%m-%d} shows no exceedance (false-alarm control) "
                          f"(crackwatch)")
        a.details = {**(a.details or {}), "resolved_reason": "not_confirmed"}
        del open_alerts[k]
        audit.record(s, "alert.auto_resolved", actor=audit.SYSTEM, site_id=site.id,
                     alert_id=a.id, at=now,
                     details={"reason": "not_confirmed", "rule": a.rule, "level": a.level,
                              "survey_id": survey.id, "note": a.resolve_note})


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
        survey_id: an ingested survey (:func:`ingest`).
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
    from jobs.notify import LogNotifier

    t_start = time.perf_counter()
    with session_scope(bind) as s:
        survey = s.get(m.Survey, survey_id)
        if survey is None:
            from geodata.errors import RecordNotFoundError

            raise RecordNotFoundError(f"no survey with id {survey_id}; see `crackwatch survey "
                                      f"list`")
        site = s.get(m.Site, survey.site_id)
    job_id = _start_job(bind, "process_survey", survey)
    notifiers = list(notifiers) if notifiers is not None else [LogNotifier()]
    step = "infer"
    run_info: dict[str, Any] = {"model_name": options.model_name or "unknown"}
    try:
        if model is None:
            run_info["model_name"] = site_model_name(site, options)[0]
        _before_step(step)
        if model is None:
            model = _load_model(options, site)
        card = getattr(model, "card", {})
        run_info = {
            "model_name": card.get("name", run_info["model_name"]),
            "model_version": str(card.get("version", "")) or None,
            "weights_sha256": card.get("weights", {}).get("sha256"),
            "tiling": {"tile_size": options.tile_size, "overlap": options.overlap,
                       "batch_size": options.batch_size or _default_batch(options.device),
                       "threshold": options.threshold,
                       "min_area_px": options.min_area_px, "device": options.device,
                       "tta": options.tta},
            "started_at": datetime.now(UTC),
        }
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
        set_job_step(bind, job_id, "vectorise", "succeeded", cracks=(
            len(out["cracks"]) if "cracks" in out
            else sum(len(c) for c, _ in out["photo_cracks"].values())))
        run_info["megapixels_per_s"] = out["megapixels_per_s"]
        run_info["finished_at"] = datetime.now(UTC)

        step = "store_track"
        with session_scope(bind, write=True) as s:  # ONE transaction: store..alerts
            _before_step(step)
            if "photos" in out:  # register into the site's views, then measure (mm)
                from geodata.views import register_survey_photos

                placements = register_survey_photos(s, s.get(m.Survey, survey.id),
                                                    out["photos"])
                out["cracks"], out["skeletons"], unmeasured = _measure_photo_cracks(
                    survey, out, placements)
                out["registration"] = {
                    status: sum(p.status == status for p in placements.values())
                    for status in m.REGISTRATION_STATUSES}
                if unmeasured:
                    out["registration"]["not_measured"] = unmeasured
            run = store_run(s, survey.id, out["cracks"], out["skeletons"], run_info,
                            coordinate_space=out["coordinate_space"],
                            footprint=out["footprint"], track=True,
                            tolerance_px=options.tolerance_px)
            summary = s.get(m.SurveySummary, survey.id)
            new_tracks = summary.new_count if summary else 0
            step = "alerts"
            _before_step(step)
            sv = s.get(m.Survey, survey.id)
            if sv.pixel_size_m is None and out.get("pixel_size_m"):
                sv.pixel_size_m = out["pixel_size_m"]  # from the raster transform (CRS metres)
            skipped = None
            watched: list[dict] = []
            if sv.pixel_size_m and sv.pixel_size_m > options.max_alert_pixel_size_m:
                skipped = (f"alert rules not run: pixels of {sv.pixel_size_m:g} m are coarser "
                           f"than {options.max_alert_pixel_size_m:g} m, where crack widths "
                           f"are not resolved (see jobs.pipeline.MAX_ALERT_PIXEL_SIZE_M)")
                raised, escalated = [], []
            else:
                raised, escalated = _apply_alerts(s, s.get(m.Site, site.id), sv,
                                                  options.max_alert_pixel_size_m, watched)
            # the outbox rows commit with the alerts: a crash after the commit loses nothing
            enqueue(s, raised + escalated, [channel_of(n) for n in notifiers])
            from jobs.overdue import resolve_overdue

            resolve_overdue(s, site.id)  # imagery arrived: close a site.overdue alert
            crack_count = run.crack_count or 0
        set_job_step(bind, job_id, "store_track", "succeeded", run_id=run.id, cracks=crack_count,
                  new_tracks=new_tracks,
                  **({"photos": out["registration"]} if "registration" in out else {}))
        set_job_step(bind, job_id, "alerts", "skipped" if skipped else "succeeded",
                  raised=len(raised), escalated=len(escalated), watch=len(watched),
                  **({"reason": skipped} if skipped else {}))

        step = "notify"
        _before_step(step)
        sent = deliver_pending(bind, notifiers, respect_backoff=False,
                               alert_ids=[a["alert_id"] for a in raised + escalated]
                               ) if raised or escalated else None
        failed = sent.failed if sent else 0
        set_job_step(bind, job_id, "notify", "succeeded" if not failed else "failed",
                  sent=sent.delivered if sent else 0, failed=failed,
                  **({"errors": sent.errors} if failed else {}))
        finish_job_run(bind, job_id, "succeeded")
        return SurveyResult(survey.id, job_id, "succeeded", cracks=crack_count,
                            new_tracks=new_tracks, alerts_raised=raised,
                            alerts_escalated=escalated, alerts_watch=watched,
                            notifications_failed=failed,
                            megapixels_per_s=out["megapixels_per_s"],
                            seconds=time.perf_counter() - t_start, alerts_skipped=skipped)
    except Exception as exc:  # noqa: BLE001 - recorded with its traceback, never lost
        tb = "".join(traceback.format_exception(exc))
        log.error("survey %s failed at step %s: %s", survey_id, step, exc)
        disk = storage_problem(exc, work_dir=options.work_dir)  # a full disk says so
        try:
            set_job_step(bind, job_id, step, "failed", error=disk or str(exc))
            if step in ("infer", "vectorise", "store_track", "alerts"):
                record_failed_run(bind, survey.id, {k: v for k, v in run_info.items()
                                                    if k in RunInfo.__dataclass_fields__},
                                  exc)
        finally:
            finish_job_run(bind, job_id, "failed", tb)
        return SurveyResult(survey.id, job_id, "failed", error=f"{step}: {disk or exc}",
                            seconds=time.perf_counter() - t_start)


def _default_batch(device: str) -> int:
    from engine.infer import default_batch_size

    return default_batch_size(device)


def site_model_name(site: m.Site, options: PipelineOptions) -> tuple[str, str]:
    """The model that processes ``site``'s surveys, and where the choice comes from.

    ``options.model_name`` (``--model``) wins (``"option"``), else the site's own
    ``model_name`` (``"site"``, set by ``crackwatch site add/set-model --model``), else the
    shipped model of the site's profile (``"profile"``,
    :func:`engine.registry.model_for_profile`).
    """
    from engine.registry import model_for_profile

    if options.model_name:
        return options.model_name, "option"
    if site.model_name:
        return site.model_name, "site"
    return model_for_profile(site.profile), "profile"


#: A cache of loaded models for a run over several sites: ``{(name, weights_dir, device):
#: model}`` (see ``run_site(models=...)``).
ModelCache = dict[tuple[str, str, str], Any]


def _load_model(options: PipelineOptions, site: m.Site, cache: ModelCache | None = None
                ) -> Any:
    """The site's model (:func:`site_model_name`), verified, on the device; from ``cache``
    when it holds it (a model loaded here is added to it).

    Raises:
        ModelNotFoundError, WeightsIntegrityError, ModelCardError: as
        :func:`engine.registry.load_model`; a model named by the site that does not exist says
        how to change the site's model.
    """
    from engine.errors import ModelNotFoundError
    from engine.registry import load_model

    name, source = site_model_name(site, options)
    key = (name, str(options.weights_dir or ""), str(options.device))
    if cache is not None and key in cache:
        return cache[key]
    try:
        model = load_model(name, weights_dir=options.weights_dir, device=options.device)
    except ModelNotFoundError as exc:
        if source == "site":
            raise ModelNotFoundError(
                f"site {site.name!r} names model {name!r}, which is not installed ({exc}) Fix "
                f"the site: `crackwatch site set-model {site.name!r} --model NAME` with a NAME "
                f"from `crackwatch models list`, or `crackwatch site set-model {site.name!r} "
                f"--profile-default` for the {site.profile} model.") from exc
        if source == "profile":
            raise ModelNotFoundError(
                f"model {name!r} of the {site.profile} profile (engine/profile_models.json) "
                f"is not installed ({exc}) Restore its weights and card in engine/weights "
                f"(git checkout / git lfs pull), or give site {site.name!r} an installed "
                f"model: `crackwatch site set-model {site.name!r} --model NAME`.") from exc
        raise
    log.info("site %s: model %s (%s)", site.name, name,
             {"option": "--model", "site": "the site's own",
              "profile": f"the {site.profile} profile's"}[source])
    if cache is not None:
        cache[key] = model
    return model


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
    from geodata.store.api import get_site
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


def abandon_job_runs(bind: Engine, site_id: int, *, by: str = "") -> int:
    """Mark the site's job runs still ``running`` as ``abandoned``; returns how many.

    Call it only while holding the site's lock: then no live process can be running them
    (their process was killed, crashed or lost its disk).
    """
    with session_scope(bind, write=True) as s:
        rows = list(s.scalars(select(m.JobRun).where(m.JobRun.site_id == site_id,
                                                     m.JobRun.status == "running")))
        for row in rows:
            row.status = "abandoned"
            row.finished_at = m.utcnow()
            row.error = (f"abandoned: the process running it is gone (it no longer held the "
                         f"site lock; found by {by or 'the next run'} at "
                         f"{row.finished_at:%Y-%m-%d %H:%M:%S} UTC)")
            row.steps = {k: (v if v.get("status") != "pending" else {"status": "not run"})
                         for k, v in (row.steps or {}).items()}
            log.warning("site %s: job run %s (%s) was abandoned by its process", site_id,
                        row.id, row.job)
    return len(rows)


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
        from geodata.store.api import get_site

        try:
            model = _load_model(options, get_site(bind, site_id), models)
        except (ModelNotFoundError, WeightsIntegrityError, ModelCardError) as exc:
            log.error("site %s: cannot load its model: %s", site_id, exc)  # each survey
            # records the failure (process_survey tries again and fails the same way)
    for survey in pending:
        r = process_survey(bind, survey.id, options, model=model, notifiers=notifiers)
        results.append(r)
        if progress:
            progress(survey, r)
    return results
