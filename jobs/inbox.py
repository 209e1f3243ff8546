"""Survey intake: registering an orthomosaic, a photo or a photo folder as a survey
(:func:`ingest`, idempotent by SHA-256, with its acquisition time read from the file), and
taking what has settled in a site's inbox folder (:func:`scan_inbox`). The monitoring
pipeline (:func:`jobs.pipeline.run_site`) scans the inbox before it processes a site.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from engine.errors import RasterRefusedError
from geodata.photos import PHOTO_SUFFIXES
from geodata.plausibility import ImplausibleMetadata
from geodata.store.api import get_site, ingest_survey

if TYPE_CHECKING:
    from geodata.store.models import Survey

log = logging.getLogger(__name__)

__all__ = ["INBOX_SETTLE_S", "RASTER_SUFFIXES", "REFUSED_RASTER_SUFFIXES", "InboxRefusal",
           "ingest", "scan_inbox"]

#: Raster files an inbox takes (:data:`engine.raster_read.SURVEY_RASTER_DRIVERS`); a ``.vrt``
#: or ``.img`` is refused with the reason, since it can make GDAL read other files or URLs.
RASTER_SUFFIXES = {".tif", ".tiff", ".jp2"}
REFUSED_RASTER_SUFFIXES = {".vrt", ".img"}

#: Seconds a file in an inbox must have been left alone (no write, no change of size, time or
#: attributes: its ``st_ctime`` and ``st_mtime``) before it is taken; a copy in progress
#: keeps changing them. ``PipelineOptions.inbox_settle_s`` overrides it per run.
INBOX_SETTLE_S = 60.0


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
        from engine.raster_read import open_survey_raster

        with open_survey_raster(path) as src:  # refuses VRTs and absurd sizes (issue 30)
            stamp = src.tags().get("TIFFTAG_DATETIME")
            _check_raster_pixel_size(src, path)
        if stamp:
            try:
                return datetime.strptime(stamp, "%Y:%m:%d %H:%M:%S"), "TIFFTAG_DATETIME"
            except ValueError:
                pass
    return (datetime.fromtimestamp(path.stat().st_mtime, UTC),
            "file modification time (no acquisition time in the file)")


def _check_raster_pixel_size(src: Any, path: Path) -> None:
    """Refuse an orthomosaic whose pixel size is outside
    :data:`geodata.plausibility.ORTHO_PIXEL_SIZE_M` (metres; degrees at 111,320 m each).

    Raises:
        ImplausibleMetadata: an absurd pixel size.
    """
    from geodata.plausibility import check_ortho_pixel_size

    if src.crs is None or src.transform.is_identity:
        return  # no georeferencing: the run says so (engine.raster_read.source_crs)
    size = abs(src.transform.determinant) ** 0.5
    if src.crs.is_geographic:
        size *= 111_320.0  # metres per degree of latitude (WGS 84, rounded)
    else:
        size *= src.crs.linear_units_factor[1]
    check_ortho_pixel_size(size, path.name)


def ingest(
    bind: Engine | Session,
    site: int | str,
    path: str | Path,
    *,
    acquired_at: datetime | None = None,
    pixel_size_m: float | None = None,
    registration_error_m: float = 0.0,
    metadata: dict[str, Any] | None = None,
) -> Survey:
    """Register an orthomosaic, a photo or a photo folder as a survey of ``site``.

    Idempotent: the same file (SHA-256) twice is one survey. ``acquired_at`` defaults to the
    EXIF time (photos), the GeoTIFF ``TIFFTAG_DATETIME`` (rasters), both read in the site's
    time zone, or else the file's modification time; which one was used is recorded in the
    survey metadata (``acquired_at_source``).

    Refused before anything is stored (issue 30): a raster that is not a GeoTIFF or JPEG 2000
    file (a VRT can point at other files or URLs), one with an absurd size or pixel size, and
    an acquisition time before 1990 or in the future (:mod:`geodata.plausibility`).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        RecordNotFoundError: no such site. ValueError: a naive ``acquired_at``.
        ImplausibleMetadata: an impossible acquisition time, size or pixel size.
        RasterReadError: not a survey raster format, or unreadable.
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

    from geodata.plausibility import check_acquired_at

    meta = dict(metadata or {})
    if acquired_at is None:
        acquired_at, source = _acquired_at_of(path)
        check_acquired_at(acquired_at, path.name)  # naive: before a zone can overflow it
        if acquired_at.tzinfo is None:  # camera-local time: the site's time zone
            tz = get_site(bind, site).timezone
            acquired_at = acquired_at.replace(tzinfo=ZoneInfo(tz))
            source += f" (camera-local time, read in the site's time zone {tz})"
    else:
        source = "given"
    check_acquired_at(acquired_at, path.name)
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

    from engine.raster_read import open_survey_raster

    try:
        with open_survey_raster(path) as src:
            src.read(1, window=Window(0, src.height - 1, src.width, 1))  # the last row
    except RasterRefusedError:
        raise  # not a half-copied file: refused for good by the scan
    except (rasterio.errors.RasterioError, OSError) as exc:
        return f"{path.name} does not read completely ({exc})"
    return None


def scan_inbox(bind: Engine, site: int | str, *, settle_s: float = INBOX_SETTLE_S,
               refused: list[InboxRefusal] | None = None) -> list[Survey]:
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
        elif p.suffix.lower() in REFUSED_RASTER_SUFFIXES:
            refuse(p, f"{p.suffix} files are not taken: they can make GDAL read other files or "
                      f"URLs; convert it to a GeoTIFF (gdal_translate -of COG)", False)
            continue
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
        except (RasterRefusedError, ImplausibleMetadata) as exc:
            refuse(p, str(exc), False)  # the next scan refuses it again; the rest go on
        except (OSError, ValueError, OverflowError) as exc:
            log.error("inbox %s: cannot ingest %s: %s", inbox, p, exc)
    return found
