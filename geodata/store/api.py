"""Writing to the crack store: sites, surveys (idempotent ingest) and inference runs.

Every function takes ``bind``: an ``Engine`` (the function runs in its own transaction and
commits) or a ``Session`` (it runs in a SAVEPOINT of the caller's transaction; the caller
commits). Either way a failure rolls back everything the function did and nothing else.

Validation happens here, at the boundary: CRSs (a site's CRS must be projected, in metres,
with an EPSG code; a crack frame must be in its site's CRS), timestamps (timezone-aware),
metrics (finite, >= 0), geometry types.
"""

from __future__ import annotations

import hashlib
import math
import os
import traceback
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pyproj
from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from geodata.errors import StoreError
from geodata.photos import PHOTO_SUFFIXES
from geodata.severity import BRE251_CATEGORIES, bre251_name
from geodata.store.checks import geometry_in_site_crs, jsonable, projected_epsg, site_crs
from geodata.store.crack_rows import crack_rows, frame_space
from geodata.store.engine import session_scope
from geodata.store.lookup import _site, _survey
from geodata.store.models import (
    PROFILES,
    SOURCE_TYPES,
    Crack,
    InferenceRun,
    Site,
    Survey,
    utcnow,
)
from geodata.timestamps import utc_aware

__all__ = [
    "SEVERITY_CLASSES",
    "RunInfo",
    "add_site",
    "crack_severity",
    "delete_site",
    "get_site",
    "get_survey",
    "ingest_survey",
    "record_failed_run",
    "set_site_model",
    "set_site_tile_gate",
    "site_crs",
    "source_sha256",
    "store_run",
]

#: BRE Digest 251 damage categories, (upper width bound in mm, name), from
#: :data:`geodata.severity.BRE251_CATEGORIES` (the one table the alert rules use too).
SEVERITY_CLASSES: tuple[tuple[float, str], ...] = tuple(
    (upper, name) for _c, name, upper in BRE251_CATEGORIES)



@dataclass(frozen=True)
class RunInfo:
    """What produced a set of cracks: model, weights, tiling and timings.

    ``tiling``: JSON-able parameters (tile size, overlap, threshold, min area...).
    ``started_at`` / ``finished_at``: aware datetimes (default: now).
    ``observable_fraction``: share of the survey's valid pixels where cracks can be seen
    (:mod:`engine.observable`), or None.
    """

    model_name: str
    model_version: str | None = None
    weights_sha256: str | None = None
    tiling: Mapping[str, Any] = field(default_factory=dict)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    megapixels_per_s: float | None = None
    observable_fraction: float | None = None

    @classmethod
    def coerce(cls, info: RunInfo | Mapping[str, Any]) -> RunInfo:
        """``info`` itself, or a ``RunInfo`` built from a mapping of its fields."""
        if isinstance(info, RunInfo):
            return info
        unknown = set(info) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(
                f"run_info has unknown keys {sorted(unknown)}; expected some of "
                f"{sorted(cls.__dataclass_fields__)}"
            )
        return cls(**info)


# --------------------------------------------------------------------------- helpers


def crack_severity(max_width_mm: float) -> str:
    """The BRE Digest 251 damage category name for a crack of this maximum width (mm).

    See :data:`SEVERITY_CLASSES`. Raises ``ValueError`` for a negative or NaN width.
    """
    return bre251_name(max_width_mm)


def source_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 (hex) of a file, or of a folder of files (a photo set).

    A folder's digest is the SHA-256 of the lines ``"<file sha256>  <relative path>\\n"``
    of its regular files, sorted by relative path (hidden files skipped), so the same photos
    give the same digest wherever the folder lies.

    Raises:
        FileNotFoundError: ``path`` does not exist.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p} does not exist; give the orthomosaic file or photo folder")
    if p.is_file():
        return _file_sha256(p)
    lines = []
    for f in sorted(q for q in p.rglob("*") if q.is_file()):
        rel = f.relative_to(p)
        if any(part.startswith(".") for part in rel.parts):
            continue
        lines.append(f"{_file_sha256(f)}  {rel.as_posix()}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def _file_sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()



# --------------------------------------------------------------------------- sites


def add_site(
    bind: Engine | Session,
    name: str,
    *,
    profile: str,
    crs_epsg: int | str | pyproj.CRS,
    lon: float | None = None,
    lat: float | None = None,
    timezone: str = "UTC",
    inbox: str | os.PathLike[str] | None = None,
    schedule: str | None = None,
    thresholds: Mapping[str, Any] | None = None,
    exist_ok: bool = False,
    model_name: str | None = None,
    check_model: Callable[[str], Any] | None = None,
) -> Site:
    """Create a site (a slope or structure) and return it.

    Args:
        name: unique site name.
        profile: ``"slope"`` or ``"structure"`` (which alert rules apply).
        crs_epsg: the site's projected CRS (metres): an EPSG code or anything
            ``pyproj.CRS.from_user_input`` reads that has an EPSG code.
        lon: WGS 84 longitude (degrees) of the site marker (give both or neither).
        lat: WGS 84 latitude (degrees) of the site marker.
        timezone: IANA timezone name of the site (for schedules and local dates).
        inbox: folder watched for new surveys.
        schedule: 5-field cron string (minute hour day month weekday), site local time.
        thresholds: alert thresholds (JSON object).
        exist_ok: if a site with this name exists with the same profile and CRS (and model,
            when ``model_name`` is given), return it.
        model_name: the model the pipeline runs on this site's surveys; ``None``: the model
            of the site's profile (decided at each run, so it follows the shipped models).
        check_model: called with ``model_name`` before anything is written; it raises when
            there is no such model (``jobs`` passes ``engine.registry.find_card``: ``geodata``
            does not import the engine). Without it the name is stored unchecked.

    Raises:
        CRSError: the CRS is geographic, not projected, not in metres, or has no EPSG code.
        ValueError: bad profile, lon/lat, timezone, schedule or model name.
        StoreError: a site of that name exists (and differs, or ``exist_ok`` is False).
        Exception: whatever ``check_model`` raises (nothing is written then).
    """
    epsg = _check_site(name, profile, crs_epsg, lon, lat, timezone, schedule)
    _check_model_name(model_name, check_model)
    with session_scope(bind, write=True) as s:
        existing = s.scalar(select(Site).where(Site.name == name))
        if existing is not None:
            if exist_ok and existing.profile == profile and existing.crs_epsg == epsg and (
                    model_name is None or existing.model_name == model_name):
                return existing
            raise StoreError(
                f"a site named {name!r} exists already (profile {existing.profile}, "
                f"EPSG:{existing.crs_epsg}); choose another name"
                + ("" if exist_ok else " or pass exist_ok=True to reuse it")
            )
        site = Site(name=name, profile=profile, crs_epsg=epsg, lon=lon, lat=lat,
                    timezone=timezone, inbox=os.fspath(inbox) if inbox is not None else None,
                    schedule=schedule, model_name=model_name,
                    thresholds=jsonable(dict(thresholds or {}), "thresholds"))
        s.add(site)
        s.flush()
        return site



def _check_site(name: str, profile: str, crs_epsg: Any, lon: float | None, lat: float | None,
                timezone: str, schedule: str | None) -> int:
    """The EPSG code of a new site's CRS, once its fields are checked (as :func:`add_site`
    raises)."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    if not name or not name.strip():
        raise ValueError("a site needs a non-empty name")
    epsg = projected_epsg(crs_epsg)
    if (lon is None) != (lat is None):
        raise ValueError(f"give both lon and lat or neither, got lon={lon}, lat={lat}")
    if lon is not None and not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise ValueError(
            f"lon/lat must be WGS 84 degrees (lon -180..180, lat -90..90), got {lon}, {lat}; "
            f"projected coordinates go in the site CRS, not here"
        )
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown timezone {timezone!r}; use an IANA name such as "
                         f"'Europe/Zurich' or 'UTC'") from exc
    if schedule is not None and len(schedule.split()) != 5:
        raise ValueError(f"schedule must be a 5-field cron string like '0 2 * * *', "
                         f"got {schedule!r}")
    return epsg


def _check_model_name(model_name: str | None,
                      check_model: Callable[[str], Any] | None) -> None:
    if model_name is None:
        return
    if not isinstance(model_name, str) or not model_name.strip() or len(model_name) > 200:
        raise ValueError(f"a model name is a non-empty string of at most 200 characters, got "
                         f"{model_name!r}; see `crackwatch models list`")
    if check_model is not None:
        check_model(model_name)


def set_site_model(
    bind: Engine | Session,
    site: int | str | Site,
    model_name: str | None,
    *,
    check_model: Callable[[str], Any] | None = None,
) -> Site:
    """Set the model the pipeline runs on ``site``'s surveys; ``None``: the model of the
    site's profile. Surveys already processed keep the runs (and model) they have.

    Args:
        check_model: as in :func:`add_site` (called first; nothing is written if it raises).

    Raises:
        RecordNotFoundError: no such site.
        ValueError: a malformed model name.
        Exception: whatever ``check_model`` raises.
    """
    _check_model_name(model_name, check_model)
    with session_scope(bind, write=True) as s:
        row = _site(s, site)
        row.model_name = model_name
        s.flush()
        return row


def set_site_tile_gate(bind: Engine | Session, site: int | str | Site,
                       tile_gate: bool | None) -> Site:
    """Turn the crack / no-crack tile gate on (``True``) or off (``False``) for ``site``'s
    surveys from their next run, or back to the rule of the site's profile and model
    (``None``; :func:`engine.crack_rules.rules_for`). A run's ``--tile-gate`` /
    ``--no-tile-gate`` still wins. Runs done keep the rules they recorded.

    Raises:
        RecordNotFoundError: no such site.
        TypeError: ``tile_gate`` is not a bool or None.
    """
    if tile_gate is not None and not isinstance(tile_gate, bool):
        raise TypeError(f"tile_gate must be True, False or None, not {tile_gate!r}")
    with session_scope(bind, write=True) as s:
        row = _site(s, site)
        row.tile_gate = tile_gate
        s.flush()
        return row


def get_site(bind: Engine | Session, site: int | str | Site) -> Site:
    """The site with this id (int) or name (str; a string of digits that names no site is
    taken as an id).

    Raises:
        RecordNotFoundError: no such site (the message lists the known names).
    """
    with session_scope(bind) as s:
        return _site(s, site)


def delete_site(bind: Engine | Session, site: int | str | Site) -> None:
    """Delete a site and everything recorded for it (surveys, runs, cracks, tracks, alerts)."""
    with session_scope(bind, write=True) as s:
        found = _site(s, site)
        s.execute(delete(Site).where(Site.id == found.id))


# --------------------------------------------------------------------------- surveys


def get_survey(bind: Engine | Session, survey_id: int) -> Survey:
    """The survey with this id. Raises RecordNotFoundError."""
    with session_scope(bind) as s:
        return _survey(s, survey_id)


def ingest_survey(
    bind: Engine | Session,
    site: int | str | Site,
    source_path: str | os.PathLike[str],
    *,
    acquired_at: datetime,
    source_type: str | None = None,
    sha256: str | None = None,
    pixel_size_m: float | None = None,
    footprint: Any = None,
    registration_error_m: float = 0.0,
    metadata: Mapping[str, Any] | None = None,
) -> Survey:
    """Record a survey of ``site``; the same source (same SHA-256) twice gives the same survey.

    Args:
        source_path: the orthomosaic file, a photo, or a photo folder (recorded as given).
        acquired_at: aware datetime of acquisition (stored in UTC).
        source_type: one of ``SOURCE_TYPES``; default: ``photos`` for a folder, ``photo``
            for a .jpg/.jpeg, ``orthomosaic`` otherwise.
        sha256: hex digest; default :func:`source_sha256` of ``source_path`` (which must then
            exist). Give it for a source that is not on this machine.
        pixel_size_m: ground size of one pixel in metres.
        footprint: covered area: a shapely geometry in the site CRS, or a GeoSeries /
            GeoDataFrame whose CRS is checked (parts are unioned).
        registration_error_m: expected misalignment to earlier surveys (m, >= 0).
        metadata: free JSON, e.g. ``{"simulated": True}``.

    Returns:
        The new survey, or the existing one with this SHA-256 for this site (unchanged: a
        second ingest never overwrites the first one's fields).

    Raises:
        RecordNotFoundError: no such site.
        FileNotFoundError: ``source_path`` missing and no ``sha256`` given.
        CRSError: footprint in another CRS.
        ValueError: naive ``acquired_at``, bad source type, sizes or digest.
    """
    acquired = utc_aware(acquired_at, "acquired_at")
    path = Path(source_path)
    if source_type is None:
        source_type = ("photos" if path.is_dir()
                       else "photo" if path.suffix.lower() in PHOTO_SUFFIXES
                       else "orthomosaic")
    if source_type not in SOURCE_TYPES:
        raise ValueError(f"source_type must be one of {SOURCE_TYPES}, got {source_type!r}")
    digest = (sha256 or source_sha256(path)).lower()
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"sha256 must be 64 hex digits, got {digest!r}")
    if pixel_size_m is not None and not (math.isfinite(pixel_size_m) and pixel_size_m > 0):
        raise ValueError(f"pixel_size_m must be a positive number of metres, got {pixel_size_m}")
    if not (math.isfinite(registration_error_m) and registration_error_m >= 0):
        raise ValueError(f"registration_error_m must be >= 0 m, got {registration_error_m}")
    meta = jsonable(dict(metadata or {}), "metadata")

    with session_scope(bind, write=True) as s:
        site_row = _site(s, site)
        existing = s.scalar(select(Survey).where(Survey.site_id == site_row.id,
                                                 Survey.sha256 == digest))
        if existing is not None:
            return existing
        survey = Survey(site_id=site_row.id, acquired_at=acquired, source_type=source_type,
                        source_path=os.fspath(source_path), sha256=digest,
                        pixel_size_m=pixel_size_m,
                        footprint=geometry_in_site_crs(footprint, site_row, "footprint"),
                        registration_error_m=float(registration_error_m), meta=meta)
        try:
            with s.begin_nested():
                s.add(survey)
        except IntegrityError:  # ingested concurrently by another process: use theirs
            existing = s.scalar(select(Survey).where(Survey.site_id == site_row.id,
                                                     Survey.sha256 == digest))
            if existing is None:
                raise
            return existing
        return survey


# --------------------------------------------------------------------------- runs


# long-function: one transaction whose steps must stay together; most lines are its docstring.
def store_run(
    bind: Engine | Session,
    survey_id: int,
    cracks: gpd.GeoDataFrame,
    skeletons: gpd.GeoSeries | None,
    run_info: RunInfo | Mapping[str, Any],
    *,
    coordinate_space: str | None = None,
    footprint: Any = None,
    track: bool = True,
    tolerance_px: float = 3.0,
    unobservable: Any = None,
) -> InferenceRun:
    """Store one inference run's cracks for a survey, in ONE transaction.

    The survey's earlier runs become ``superseded`` and their cracks are deleted, so
    re-running a survey replaces its cracks atomically; any error leaves the store exactly
    as it was. With ``track=True`` the survey (and any later surveys of the site) are
    re-tracked in the same transaction (:func:`geodata.tracking.track_survey`).

    Args:
        survey_id: the survey (see :func:`ingest_survey`).
        cracks: a crack frame as :func:`geodata.vectorise.vectorise_cracks` returns: columns
            ``length_m``, ``mean_width_mm``, ``max_width_mm``, ``area_m2`` (required),
            ``mean_probability``, ``max_probability``, ``crack_id``, ``pixel_size_m``,
            ``severity`` and ``photo``/``image_name`` (optional); geometry (Multi)Polygons.
            Map space: ``crs`` must equal the site's CRS. Image space (photos without
            georeferencing): ``crs`` None and ``attrs["coordinate_space"] == "image"`` (or
            ``coordinate_space="image"``); geometries are pixel coordinates of the photo
            named in ``photo``/``image_name`` (default: the survey's source file name).
        skeletons: ``GeoSeries`` of skeleton lines with the frame's index and CRS, or None.
        run_info: :class:`RunInfo` or a mapping of its fields.
        coordinate_space: ``"map"`` or ``"image"``; default from ``cracks.attrs`` / crs.
        footprint: update the survey's footprint (as in :func:`ingest_survey`).
        track: re-track the site from this survey on, in the same transaction.
        tolerance_px: tracking tolerance in pixels (plus the survey's registration error).
        unobservable: where the run could not see the ground (a shapely geometry in the site
            CRS, or a GeoSeries whose CRS must be the site's), stored on the run; None: none.

    Returns:
        The new ``InferenceRun`` (status ``succeeded``, ``crack_count`` set).

    Raises:
        CRSError: the frame's CRS is not the site's (the message names both and the fix).
        ValueError / TypeError: missing columns, non-finite or negative metrics, geometries
            that are not (Multi)Polygons, skeletons not aligned with the frame.
        RecordNotFoundError: no such survey.
    """
    info = RunInfo.coerce(run_info)
    if not isinstance(cracks, gpd.GeoDataFrame):
        raise TypeError(f"cracks must be a GeoDataFrame (geodata.vectorise output), got "
                        f"{type(cracks).__name__}")
    with session_scope(bind, write=True) as s:
        survey = _survey(s, survey_id, lock=True)
        site_row = s.get(Site, survey.site_id)
        assert site_row is not None
        space = frame_space(cracks, coordinate_space, site_row)
        rows = crack_rows(cracks, skeletons, site_row, survey, space)
        now = utcnow()
        # supersede earlier runs and drop their cracks (tracking rows of this survey go too)
        s.execute(update(InferenceRun)
                  .where(InferenceRun.survey_id == survey.id,
                         InferenceRun.status == "succeeded")
                  .values(status="superseded"))
        s.execute(delete(Crack).where(Crack.survey_id == survey.id))
        run = _run_row(survey.id, info, "succeeded", now, info.finished_at,
                       geometry_in_site_crs(unobservable, site_row, "unobservable"),
                       crack_count=len(rows))
        s.add(run)
        s.flush()
        _insert_cracks(s, run, rows)
        if footprint is not None:
            survey.footprint = geometry_in_site_crs(footprint, site_row, "footprint")
        px = _median_pixel_size(cracks) if space == "map" else None
        if survey.pixel_size_m is None and px is not None:
            survey.pixel_size_m = px
        s.flush()
        if track:
            from geodata.tracking import track_survey

            track_survey(s, survey.id, tolerance_px=tolerance_px)
        return run


def record_failed_run(
    bind: Engine | Session,
    survey_id: int,
    run_info: RunInfo | Mapping[str, Any],
    error: str | BaseException,
) -> InferenceRun:
    """Record a run that failed (status ``failed``, error text or traceback); cracks untouched."""
    info = RunInfo.coerce(run_info)
    if isinstance(error, BaseException):
        text = "".join(traceback.format_exception(error))
    else:
        text = str(error)
    with session_scope(bind, write=True) as s:
        survey = _survey(s, survey_id)
        now = utcnow()
        run = _run_row(survey.id, info, "failed", now, None, error=text)
        s.add(run)
        s.flush()
        return run



def _run_row(survey_id: int, info: RunInfo, status: str, now: datetime,
             finished_at: datetime | None, unobservable: Any = None,
             **fields: Any) -> InferenceRun:
    """A new ``inference_run`` row of ``info`` (times default to ``now``)."""
    return InferenceRun(
        survey_id=survey_id, model_name=info.model_name, model_version=info.model_version,
        weights_sha256=info.weights_sha256, tiling=jsonable(dict(info.tiling), "tiling"),
        status=status,
        started_at=utc_aware(info.started_at, "started_at") if info.started_at else now,
        finished_at=utc_aware(finished_at, "finished_at") if finished_at else now,
        megapixels_per_s=info.megapixels_per_s, observable_fraction=info.observable_fraction,
        unobservable=unobservable, **fields,
    )


def _median_pixel_size(cracks: gpd.GeoDataFrame) -> float | None:
    """The median of the frame's ``pixel_size_m`` column (m), or None without one."""
    if "pixel_size_m" not in cracks.columns or not len(cracks):
        return None
    px = pd.to_numeric(cracks["pixel_size_m"], errors="coerce").dropna()
    return float(px.median()) if len(px) else None


def _insert_cracks(s: Session, run: InferenceRun, rows: list[dict[str, Any]]) -> None:
    """Bulk INSERT of the crack rows for ``run`` (executemany / insertmanyvalues)."""
    if not rows:
        return
    for r in rows:
        r["run_id"] = run.id
    s.execute(insert(Crack), rows)

