"""Plausibility limits for survey metadata: what a camera, a drone or an orthomosaic can
really have recorded. Values outside them come from a broken or hostile file; a survey that
carries one is refused with the reason, never measured, and never raises an alert.

Each limit, with where it comes from:

* **Acquisition time** in ``[ACQUIRED_EARLIEST, now + ACQUIRED_FUTURE_SKEW]``: EXIF 2.1
  (JEIDA, 1998; its first version 1995) and the first consumer digital cameras are after
  1990, so an earlier ``DateTimeOriginal`` is a reset clock; a camera clock is set by hand
  in local time, so a day of skew into the future covers any time zone (UTC-12 to UTC+14)
  and a wrong DST setting, but not ``9999:12:31``.
* **Camera height above ground** in ``HEIGHT_ABOVE_GROUND_M``: the open category of drone
  flight is limited to 120 m above ground (EU Regulation 2019/947, UAS.OPEN.010; FAA 14 CFR
  107.51: 400 ft); 1,500 m leaves room for manned-aircraft photogrammetry. The lower end,
  1 cm, is a lens touching the wall.
* **Ground sample distance of a photo** in ``PHOTO_GSD_M``: a 100 mm macro lens on a
  full-frame camera at 20 cm resolves about 0.01 mm/px; a 12 MP drone camera at 1,500 m
  about 0.5 m/px, and a photo downscaled to a thumbnail more (WebODM's 48 px test photo at
  100 m: 3 m/px), so the upper end is the orthomosaic's 30 m.
* **Pixel size of an orthomosaic** in ``ORTHO_PIXEL_SIZE_M``: 0.1 mm (close-range
  photogrammetry of a wall) to 30 m (Landsat); the crack rules need 5 cm or finer anyway
  (:data:`jobs.pipeline.MAX_ALERT_PIXEL_SIZE_M`).
* **Raster size**: ``DEFAULT_MAX_RASTER_PIXELS`` (4 gigapixels, a 63,000 px square: a
  1.26 km square at 2 cm GSD); sites with bigger orthomosaics set
  ``CRACKWATCH_MAX_RASTER_PIXELS`` (or split the mosaic). A file that declares 200,000 x
  200,000 px in 1 MB is refused before anything is written.
"""

from __future__ import annotations

import math
import os
from datetime import UTC, datetime, timedelta

from geodata.errors import GeodataError

__all__ = ["ACQUIRED_EARLIEST", "ACQUIRED_FUTURE_SKEW", "DEFAULT_MAX_RASTER_PIXELS",
           "HEIGHT_ABOVE_GROUND_M", "ORTHO_PIXEL_SIZE_M", "PHOTO_GSD_M", "ImplausibleMetadata",
           "check_acquired_at", "check_height_above_ground", "check_ortho_pixel_size",
           "check_photo_gsd", "check_raster_size", "max_raster_pixels"]

ACQUIRED_EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
ACQUIRED_FUTURE_SKEW = timedelta(days=1)
HEIGHT_ABOVE_GROUND_M = (0.01, 1500.0)
PHOTO_GSD_M = (1e-5, 30.0)
ORTHO_PIXEL_SIZE_M = (1e-4, 30.0)
DEFAULT_MAX_RASTER_PIXELS = 4_000_000_000


class ImplausibleMetadata(GeodataError, ValueError):
    """A survey's metadata is outside what a real camera or orthomosaic can have (the
    message names the value, the limit and its source)."""


def check_acquired_at(when: datetime, name: str, now: datetime | None = None) -> datetime:
    """``when`` if it lies in ``[ACQUIRED_EARLIEST, now + ACQUIRED_FUTURE_SKEW]``.

    A naive ``when`` (camera-local time) is compared with a day's margin on both sides, so it
    can be checked before a time zone is attached (attaching one to ``9999-12-31`` and
    converting it to UTC overflows).

    Raises:
        ImplausibleMetadata: before 1990 or more than a day in the future.
    """
    now = now or datetime.now(UTC)
    latest = now + ACQUIRED_FUTURE_SKEW
    if when.tzinfo is None:
        early = ACQUIRED_EARLIEST.replace(tzinfo=None) - timedelta(days=1)
        late = latest.replace(tzinfo=None) + timedelta(days=1)
        ok = early <= when <= late
    else:
        try:
            ok = ACQUIRED_EARLIEST <= when.astimezone(UTC) <= latest
        except OverflowError:
            ok = False
    if not ok:
        raise ImplausibleMetadata(
            f"{name}: acquisition time {when.isoformat()} is not plausible (before "
            f"{ACQUIRED_EARLIEST.date()} or after now + {ACQUIRED_FUTURE_SKEW}); the camera "
            f"clock is wrong. Set it, or give the time (`crackwatch survey add --acquired-at "
            f"2026-06-01T10:00:00+00:00`).")
    return when


def _in_range(value: float, limits: tuple[float, float]) -> bool:
    return math.isfinite(value) and limits[0] <= value <= limits[1]


def check_height_above_ground(height_m: float, name: str, source: str) -> float:
    """``height_m`` if within :data:`HEIGHT_ABOVE_GROUND_M`.

    Raises:
        ImplausibleMetadata: outside it (``source`` says where the value came from).
    """
    if not _in_range(height_m, HEIGHT_ABOVE_GROUND_M):
        lo, hi = HEIGHT_ABOVE_GROUND_M
        raise ImplausibleMetadata(
            f"{name}: camera height above ground {height_m:g} m ({source}) is outside "
            f"{lo:g}-{hi:g} m (drones fly below 120 m, EU 2019/947 and FAA Part 107); the "
            f"metadata is wrong. Pass --gsd-m (m/px) for this photo.")
    return height_m


def check_photo_gsd(gsd_m: float, name: str) -> float:
    """``gsd_m`` (m/px) if within :data:`PHOTO_GSD_M`.

    Raises:
        ImplausibleMetadata: outside it.
    """
    if not _in_range(gsd_m, PHOTO_GSD_M):
        lo, hi = PHOTO_GSD_M
        raise ImplausibleMetadata(
            f"{name}: ground sample distance {gsd_m:g} m/px is outside {lo:g}-{hi:g} m/px, "
            f"which no camera records; check the focal length, sensor and height, or pass "
            f"--gsd-m.")
    return gsd_m


def check_ortho_pixel_size(pixel_size_m: float, name: str) -> float:
    """``pixel_size_m`` (m) if within :data:`ORTHO_PIXEL_SIZE_M`.

    Raises:
        ImplausibleMetadata: outside it.
    """
    if not _in_range(pixel_size_m, ORTHO_PIXEL_SIZE_M):
        lo, hi = ORTHO_PIXEL_SIZE_M
        raise ImplausibleMetadata(
            f"{name}: pixel size {pixel_size_m:g} m is outside {lo:g}-{hi:g} m; the "
            f"geotransform is wrong. Re-export the orthomosaic with its real georeferencing.")
    return pixel_size_m


def max_raster_pixels() -> int:
    """``CRACKWATCH_MAX_RASTER_PIXELS`` if set (a positive integer), else
    :data:`DEFAULT_MAX_RASTER_PIXELS`.

    Raises:
        ValueError: the variable is not a positive integer.
    """
    raw = os.environ.get("CRACKWATCH_MAX_RASTER_PIXELS")
    if not raw:
        return DEFAULT_MAX_RASTER_PIXELS
    try:
        value = int(float(raw))
    except ValueError:
        value = 0
    if value <= 0:
        raise ValueError(f"CRACKWATCH_MAX_RASTER_PIXELS={raw!r}: expected a positive number "
                         f"of pixels, e.g. 8e9.")
    return value


def check_raster_size(width: int, height: int, name: str) -> None:
    """Refuse a raster whose declared ``width`` x ``height`` exceeds :func:`max_raster_pixels`.

    Raises:
        ImplausibleMetadata: too many pixels (the message says how to raise the limit).
    """
    limit = max_raster_pixels()
    if width * height > limit:
        raise ImplausibleMetadata(
            f"{name}: declared size {width} x {height} px ({width * height / 1e9:.1f} "
            f"gigapixels) is over the limit of {limit / 1e9:g} gigapixels; split the "
            f"orthomosaic into tiles, or raise CRACKWATCH_MAX_RASTER_PIXELS if it is real.")
