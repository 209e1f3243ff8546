"""Site/drone photo metadata (EXIF + DJI XMP), ground sample distance and nadir footprints.

Units and frames are in the names: ``*_deg`` are WGS 84 degrees (EPSG:4326, longitude east
positive, latitude north positive), ``*_m`` metres, ``*_mm`` millimetres on the sensor,
``*_px`` pixels. ``width_px`` / ``height_px`` are the stored image's ``(cols, rows)`` as the
JPEG holds them (an EXIF Orientation rotation is *not* applied; a warning says so).

Reading never guesses silently: anything missing or corrupt in a photo's metadata becomes a
``None`` field plus a human-readable string in ``PhotoMetadata.warnings``. Only a file that is
not a readable JPEG raises :class:`~geodata.errors.PhotoMetadataError`.

Sources:

- EXIF 2.32 (CIPA DC-008): GPS IFD tags (degrees/minutes/seconds rationals signed by the
  N/S and E/W refs; ``GPSAltitudeRef`` 1 = below sea level), ``DateTimeOriginal`` +
  ``OffsetTimeOriginal``, ``FocalLength``, ``FocalLengthIn35mmFilm``.
- DJI XMP (namespace ``http://www.dji.com/drone-dji/1.0/``, prefix ``drone-dji``):
  ``RelativeAltitude`` (m above the take-off point), ``AbsoluteAltitude`` (m above sea level),
  ``GimbalPitchDegree`` (-90 = nadir), ``GimbalYawDegree`` / ``FlightYawDegree`` (degrees
  clockwise from north).
- Ground sample distance: the scale of a vertical photograph, S = f / H (Wolf, Dewitt &
  Wilkinson, *Elements of Photogrammetry*, ch. "Vertical photographs"), applied to one pixel
  of pitch ``sensor_width / image_width``; the same formula Pix4D documents as
  ``GSD = Sw * H / (Fr * imW)``.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import pyproj
from pyproj.exceptions import CRSError as PyprojCRSError
from shapely.geometry import Polygon

from geodata.crs import lon_lat_pair, utm_crs_for
from geodata.errors import CRSError, GSDError, PhotoMetadataError
from geodata.photo_tags import (
    dji_xmp_fields,
    exif_acquired_at,
    gps_altitude,
    gps_img_direction,
    gps_position,
    jpeg_size,
    orientation_warning,
    positive_tag,
    read_exif_tags,
    scan_jpeg_segments,
    text_tag,
    xmp_float,
)
from geodata.plausibility import ImplausibleMetadata, check_height_above_ground, check_photo_gsd

__all__ = [
    "KNOWN_SENSORS",
    "PHOTO_SOURCE_TYPES",
    "PHOTO_SUFFIXES",
    "LocationSource",
    "PhotoMetadata",
    "SensorSpec",
    "ground_sample_distance_m",
    "nadir_footprint",
    "read_photo_metadata",
    "read_photo_set",
    "sensor_width_mm_for",
    "utm_crs_for",
]

LocationSource = Literal["exif", "site", "none"]

#: File name suffixes (compared lower-case) that :func:`read_photo_set` picks from a folder.
PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg"})
#: ``Survey.source_type`` values of photo-set surveys (anything else is an orthomosaic).
PHOTO_SOURCE_TYPES = ("photo", "photos")

#: Diagonal of the 36 x 24 mm full frame, the reference of 35 mm-equivalent focal lengths.
FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)  # 43.27 mm

#: A gimbal pitch further than this from -90 deg makes :func:`nadir_footprint` warn.
OFF_NADIR_WARN_DEG = 10.0


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class PhotoMetadata:
    """What one photo says about where, when and how it was taken.

    Attributes:
        path: the photo file.
        width_px, height_px: stored image size, ``(cols, rows)``.
        make, model: EXIF ``Make`` / ``Model`` (e.g. ``"DJI"``, ``"FC8482"``), stripped.
        focal_length_mm: EXIF ``FocalLength``, the real lens focal length.
        focal_length_35mm_equiv_mm: EXIF ``FocalLengthIn35mmFilm`` (0 = unknown -> ``None``).
        lat_deg, lon_deg: position in WGS 84 degrees (EPSG:4326). From EXIF GPS when
            ``location_source == "exif"``, from the site when ``"site"``; ``None`` when
            ``"none"``.
        altitude_m: EXIF ``GPSAltitude`` in metres above sea level (negative below it).
            Not a height above ground.
        absolute_altitude_m: DJI XMP ``AbsoluteAltitude``, metres above sea level.
        relative_altitude_m: DJI XMP ``RelativeAltitude``, metres above the take-off point.
        gimbal_pitch_deg: DJI XMP ``GimbalPitchDegree``; -90 is straight down (nadir).
        yaw_deg: camera heading, degrees clockwise from true north in [0, 360): DJI
            ``GimbalYawDegree``, else ``FlightYawDegree``, else EXIF ``GPSImgDirection``.
        acquired_at: ``DateTimeOriginal`` (+ ``SubSecTimeOriginal``); timezone-aware when
            ``OffsetTimeOriginal`` is present, else naive camera-local time (and a warning).
        has_gps: the photo's own EXIF holds a usable position (False for a site location).
        location_source: ``"exif"``, ``"site"`` (from ``read_photo_set(site_location=...)``)
            or ``"none"``.
        warnings: one sentence per problem found (missing/corrupt metadata, assumptions).
    """

    path: Path
    width_px: int
    height_px: int
    make: str | None = None
    model: str | None = None
    focal_length_mm: float | None = None
    focal_length_35mm_equiv_mm: float | None = None
    lat_deg: float | None = None
    lon_deg: float | None = None
    altitude_m: float | None = None
    absolute_altitude_m: float | None = None
    relative_altitude_m: float | None = None
    gimbal_pitch_deg: float | None = None
    yaw_deg: float | None = None
    acquired_at: datetime | None = None
    has_gps: bool = False
    location_source: LocationSource = "none"
    warnings: tuple[str, ...] = ()

    @property
    def acquired_at_has_offset(self) -> bool:
        """True when ``acquired_at`` is timezone-aware (the EXIF gave a UTC offset)."""
        return self.acquired_at is not None and self.acquired_at.utcoffset() is not None


@dataclass(frozen=True)
class SensorSpec:
    """Full active sensor area of a camera, in millimetres, and where the numbers come from."""

    width_mm: float
    height_mm: float
    camera: str
    source: str


_ONE_INCH = "1-inch type CMOS, nominal 13.2 x 8.8 mm"
_ONE_OVER_2_3 = "1/2.3-inch type CMOS, nominal 6.17 x 4.55 mm"
_ONE_OVER_1_3 = ("1/1.3-inch CMOS with 2.4 um 4-in-1 (binned) pixels: 4032 x 3024 px x 2.4 um "
                 "= 9.68 x 7.26 mm; agrees with 6.72 mm = 24 mm equivalent by diagonal (9.69 mm)")

#: Known cameras by upper-case EXIF ``Model``. Sizes are the manufacturer's sensor type (DJI
#: product specification pages) turned into millimetres as noted in ``source``.
KNOWN_SENSORS: dict[str, SensorSpec] = {
    "FC6310": SensorSpec(13.2, 8.8, "DJI Phantom 4 Pro",
                         f"DJI spec: {_ONE_INCH}, 5472 x 3648 px; OpenSfM sensor_data.json 13.2"),
    "FC6310S": SensorSpec(13.2, 8.8, "DJI Phantom 4 Pro V2.0", f"DJI spec: {_ONE_INCH}"),
    "FC6310R": SensorSpec(13.2, 8.8, "DJI Phantom 4 RTK", f"DJI spec: {_ONE_INCH}"),
    "L1D-20C": SensorSpec(13.2, 8.8, "DJI Mavic 2 Pro (Hasselblad L1D-20c)",
                          f"DJI spec: {_ONE_INCH}"),
    "FC3411": SensorSpec(13.2, 8.8, "DJI Air 2S", f"DJI spec: {_ONE_INCH}, 5472 x 3648 px"),
    "FC220": SensorSpec(6.17, 4.55, "DJI Mavic Pro",
                        f"DJI spec: {_ONE_OVER_2_3}; OpenSfM sensor_data.json 6.17"),
    "FC330": SensorSpec(6.17, 4.55, "DJI Phantom 4",
                        f"DJI spec: {_ONE_OVER_2_3} (OpenSfM sensor_data.json lists 6.25)"),
    "FC3582": SensorSpec(9.68, 7.26, "DJI Mini 3 Pro", f"DJI spec: {_ONE_OVER_1_3}"),
    "FC8482": SensorSpec(9.68, 7.26, "DJI Mini 4 Pro", f"DJI spec: {_ONE_OVER_1_3}"),
}


# --------------------------------------------------------------------------- reading


def read_photo_metadata(path: str | os.PathLike[str]) -> PhotoMetadata:
    """Read one JPEG's EXIF (via ``exifread``) and DJI XMP into a :class:`PhotoMetadata`.

    Args:
        path: a ``.jpg``/``.jpeg`` file.

    Returns:
        The metadata. Corrupt or missing EXIF/XMP does **not** raise: the affected fields are
        ``None``, ``has_gps`` is False when no usable position was read, and each problem is a
        sentence in ``warnings`` (e.g. ``"EXIF block present but unreadable (corrupt) ..."``).
        GPS (0, 0) is treated as "no fix". A missing GPS hemisphere ref is treated as corrupt
        rather than guessed.

    Raises:
        PhotoMetadataError: the file cannot be opened, or is not a JPEG image (the message
            names the file and what to do).
    """
    p = Path(path)
    try:
        fh = p.open("rb")
    except OSError as exc:
        raise PhotoMetadataError(
            f"cannot open photo {p}: {exc.strerror or exc}; check the path exists and is "
            f"readable") from exc
    warns: list[str] = []
    with fh:
        width_px, height_px = jpeg_size(fh, p)
        has_exif_block, xmp_packet = scan_jpeg_segments(fh)
        tags = read_exif_tags(fh, has_exif_block, warns)

    make = text_tag(tags, "Image Make")
    model = text_tag(tags, "Image Model")
    focal_mm = positive_tag(tags, "EXIF FocalLength", "focal length", warns)
    focal35 = positive_tag(tags, "EXIF FocalLengthIn35mmFilm", None, warns)
    lat, lon = gps_position(tags, warns)
    altitude_m = gps_altitude(tags, warns)
    acquired_at = exif_acquired_at(tags, warns)
    orientation_warning(tags, warns)

    dji = dji_xmp_fields(xmp_packet) if xmp_packet else {}
    relative_m = xmp_float(dji, "RelativeAltitude", warns)
    absolute_m = xmp_float(dji, "AbsoluteAltitude", warns)
    pitch_deg = xmp_float(dji, "GimbalPitchDegree", warns)
    yaw = xmp_float(dji, "GimbalYawDegree", warns)
    if yaw is None:
        yaw = xmp_float(dji, "FlightYawDegree", warns)
    if yaw is None:
        yaw = gps_img_direction(tags, warns)

    has_gps = lat is not None and lon is not None
    return PhotoMetadata(
        path=p, width_px=width_px, height_px=height_px, make=make, model=model,
        focal_length_mm=focal_mm, focal_length_35mm_equiv_mm=focal35,
        lat_deg=lat, lon_deg=lon, altitude_m=altitude_m,
        absolute_altitude_m=absolute_m, relative_altitude_m=relative_m,
        gimbal_pitch_deg=pitch_deg, yaw_deg=None if yaw is None else yaw % 360.0,
        acquired_at=acquired_at, has_gps=has_gps,
        location_source="exif" if has_gps else "none", warnings=tuple(warns))


def read_photo_set(
    folder_or_paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    site_location: tuple[float, float] | None = None,
) -> tuple[list[PhotoMetadata], list[tuple[Path, str]]]:
    """Read every photo of a folder (or of a list of files); one bad photo does not stop it.

    Args:
        folder_or_paths: a folder, whose ``*.jpg``/``*.jpeg`` files (any case, not recursive,
            hidden ``.*`` files such as macOS ``._DJI_0001.JPG`` skipped) are read; or one
            file; or an iterable of files (all read, whatever their suffix).
        site_location: ``(lon, lat)`` in WGS 84 degrees -- longitude first. Photos without a
            usable EXIF position get it, with ``location_source="site"``, ``has_gps=False``
            and a warning saying so. Without it such photos keep ``location_source="none"``.

    Returns:
        ``(photos, failures)``: the readable photos sorted by path, and ``(path, reason)`` for
        each file that is not a readable JPEG. Both lists are empty for an empty folder.

    Raises:
        FileNotFoundError: ``folder_or_paths`` is a path that does not exist.
        ValueError: ``site_location`` is not a ``(lon, lat)`` pair in range.
    """
    site = None if site_location is None else lon_lat_pair(site_location)
    photos: list[PhotoMetadata] = []
    failures: list[tuple[Path, str]] = []
    for p in _photo_paths(folder_or_paths):
        try:
            meta = read_photo_metadata(p)
        except PhotoMetadataError as exc:
            failures.append((p, str(exc)))
            continue
        if not meta.has_gps and site is not None:
            lon, lat = site
            meta = replace(
                meta, lon_deg=lon, lat_deg=lat, location_source="site",
                warnings=meta.warnings + (
                    f"no usable GPS position: located at the site location (lon {lon}, "
                    f"lat {lat}); its footprint is only as good as that location",))
        photos.append(meta)
    return photos, failures


# --------------------------------------------------------------------------- GSD


def sensor_width_mm_for(meta: PhotoMetadata) -> float:
    """Sensor width (mm) spanned by the image's ``width_px``, from what the photo says.

    Order: :data:`KNOWN_SENSORS` by EXIF model (manufacturer spec); else derived from the
    35 mm-equivalent focal length by the equal-diagonal convention (the one ExifTool's
    ``ScaleFactor35efl`` uses): ``sensor_diagonal = 43.27 mm * f / f35`` and
    ``sensor_width = sensor_diagonal * cols / hypot(cols, rows)``. For a 3:2 image that is
    exactly ``36 mm * f / f35``; for a 4:3 image it is about 4 % smaller. It assumes the stored
    image spans the whole sensor with square pixels (no digital zoom / crop).

    For a table camera whose image aspect differs by more than 5 % from the sensor's (e.g.
    4:3 photos from the 3:2 Phantom 4 Pro, 16:9 from a 4:3 sensor), the image is taken as a
    centred crop spanning the full sensor height (narrower image) or width (wider image).
    A downscaled image needs no correction: the GSD formula divides by ``width_px``.

    Raises:
        GSDError: unknown camera and no usable 35 mm-equivalent focal length.
    """
    spec = KNOWN_SENSORS.get((meta.model or "").strip().upper())
    if spec is not None:
        return _sensor_width_for_image(spec, meta.width_px, meta.height_px)
    f, f35 = meta.focal_length_mm, meta.focal_length_35mm_equiv_mm
    if f is not None and f35 is not None:
        diagonal_mm = FULL_FRAME_DIAGONAL_MM * f / f35
        return diagonal_mm * meta.width_px / math.hypot(meta.width_px, meta.height_px)
    make, model = meta.make or "", meta.model or ""
    camera = (model if make and model.startswith(make) else f"{make} {model}").strip()
    raise GSDError(
        f"{meta.path.name}: cannot tell the sensor width of camera {camera or '?'!r} "
        f"(not in KNOWN_SENSORS and no 35 mm-equivalent "
        f"focal length in EXIF); pass sensor_width_mm (the sensor width in mm from the "
        f"camera's spec sheet), or the GSD: --gsd-m M (m/px; `crackwatch infer` and "
        f"`crackwatch survey add`)")


def ground_sample_distance_m(
    meta: PhotoMetadata,
    *,
    sensor_width_mm: float | None = None,
    altitude_m: float | None = None,
    gsd_m: float | None = None,
) -> float:
    """Ground sample distance (metres of ground per pixel) of a nadir photo over flat ground.

    ``GSD = H * sensor_width / (f * image_width_px)``: the pinhole scale of a vertical
    photograph S = f / H (Wolf, Dewitt & Wilkinson, *Elements of Photogrammetry*, ch.
    "Vertical photographs") applied to one pixel of pitch ``sensor_width / image_width``; Pix4D
    documents the same formula as ``GSD = Sw * H / (Fr * imW)``. With H in m and the sensor
    width and focal length both in mm, the mm cancel and the result is in m/px.

    Precedence: ``gsd_m`` (user given) wins over everything. Sensor width: ``sensor_width_mm``
    > :func:`sensor_width_mm_for` (known camera, else 35 mm equivalent). Height above ground
    H: ``altitude_m`` > DJI ``RelativeAltitude`` (height above the *take-off point*: wrong
    where the ground under the photo is higher or lower than the take-off point, e.g. on a
    slope) > error. GPS / DJI absolute altitudes are above sea level, not above ground, and
    are never used.

    Args:
        meta: the photo's metadata (``focal_length_mm`` and ``width_px`` are used).
        sensor_width_mm: sensor width in mm, overriding the lookup.
        altitude_m: camera height above the ground in m, overriding the XMP.
        gsd_m: a GSD in m/px to use as is.

    Returns:
        The GSD in metres per pixel.

    Raises:
        GSDError: a given value is not a positive finite number, or the focal length, sensor
            width or height above ground cannot be found (the message says to pass
            ``--altitude-m`` or ``--gsd-m``), or the height or GSD is outside what a camera
            records (:mod:`geodata.plausibility`: e.g. an XMP ``RelativeAltitude`` of 1e30 m).
    """
    name = meta.path.name
    if gsd_m is not None:
        return _plausible(check_photo_gsd, _positive("gsd_m", gsd_m), name)
    if sensor_width_mm is not None:
        sensor_width_mm = _positive("sensor_width_mm", sensor_width_mm)
    height_source = "given"
    if altitude_m is not None:
        altitude_m = _positive("altitude_m", altitude_m)
    focal_mm = meta.focal_length_mm
    if focal_mm is None:
        raise GSDError(f"{name}: no focal length in EXIF, so the GSD cannot be derived; pass "
                       f"--gsd-m (metres per pixel; `crackwatch infer` and `crackwatch survey "
                       f"add`)")
    if altitude_m is None:
        altitude_m, height_source = meta.relative_altitude_m, "DJI XMP RelativeAltitude"
        if altitude_m is None:
            asl = next((a for a in (meta.absolute_altitude_m, meta.altitude_m)
                        if a is not None), None)
            seen = "" if asl is None else (
                f" (the photo has {asl:.2f} m above sea level, which is not height above "
                f"ground)")
            raise GSDError(
                f"{name}: no height above ground: no DJI RelativeAltitude in the XMP{seen}; "
                f"pass --altitude-m (camera height above the ground in m; `crackwatch infer`) "
                f"or --gsd-m (m/px; `crackwatch infer` and `crackwatch survey add`)")
        if not (math.isfinite(altitude_m) and altitude_m > 0):
            raise GSDError(
                f"{name}: DJI RelativeAltitude is {altitude_m} m, at or below the take-off "
                f"point, so it cannot be the camera height above ground; pass --altitude-m "
                f"(height above the ground in m; `crackwatch infer`) or --gsd-m (m/px; "
                f"`crackwatch infer` and `crackwatch survey add`)")
    _plausible(check_height_above_ground, altitude_m, name, height_source)
    if sensor_width_mm is None:
        sensor_width_mm = sensor_width_mm_for(meta)
    return _plausible(check_photo_gsd,
                      altitude_m * sensor_width_mm / (focal_mm * meta.width_px), name)


# --------------------------------------------------------------------------- geometry


def nadir_footprint(meta: PhotoMetadata, gsd_m: float, crs: Any) -> Polygon:
    """The ground rectangle a nadir photo covers, as a polygon in a projected ``crs``.

    A ``width_px * gsd_m`` by ``height_px * gsd_m`` metre rectangle centred on the photo's
    position (``lon_deg``, ``lat_deg`` transformed EPSG:4326 -> ``crs`` with
    ``always_xy=True``), its image "up" edge turned to ``yaw_deg`` clockwise from true north
    (grid convergence at the point is corrected, so the top edge points at true north when
    yaw is 0; a missing yaw is taken as 0). Assumptions: nadir camera (pitch and roll
    ignored; warns when ``gimbal_pitch_deg`` is more than 10 deg off -90), flat ground at
    the height the GSD was computed for, GPS position at the image centre, no lens
    distortion, and the CRS's scale factor taken as 1 (UTM: within 0.1 %).

    Args:
        meta: needs ``lat_deg``/``lon_deg``, ``width_px``, ``height_px``.
        gsd_m: ground sample distance in m/px (see :func:`ground_sample_distance_m`).
        crs: a projected CRS, anything ``pyproj.CRS.from_user_input`` accepts (e.g.
            ``utm_crs_for(lon, lat)``, ``"EPSG:32633"``). Non-metre units are converted.

    Returns:
        A shapely ``Polygon`` (counter-clockwise ring) in ``crs`` coordinates.

    Raises:
        CRSError: ``crs`` is unknown, geographic (degrees) or otherwise not projected, or the
            position lies outside it.
        GSDError: ``gsd_m`` is not a positive finite number.
        PhotoMetadataError: the photo has no position (pass ``site_location`` to
            :func:`read_photo_set`).
    """
    gsd_m = _positive("gsd_m", gsd_m)
    crs_obj = _projected_crs(crs)
    if meta.lat_deg is None or meta.lon_deg is None:
        raise PhotoMetadataError(
            f"{meta.path.name} has no position (no usable EXIF GPS); give the photo set a "
            f"site location (read_photo_set(..., site_location=(lon, lat))) to place it")
    pitch = meta.gimbal_pitch_deg
    if pitch is not None and abs(pitch + 90.0) > OFF_NADIR_WARN_DEG:
        warnings.warn(
            f"{meta.path.name}: gimbal pitch {pitch} deg is not nadir (-90); "
            f"the nadir footprint misplaces and undersizes an oblique photo's ground cover",
            UserWarning, stacklevel=2)
    lon, lat = meta.lon_deg, meta.lat_deg
    to_crs = pyproj.Transformer.from_crs("EPSG:4326", crs_obj, always_xy=True)
    cx, cy = to_crs.transform(lon, lat)
    step = 1e-4  # degrees of latitude, ~11 m, to find true north's grid direction
    if lat + step <= 90.0:
        nx, ny = to_crs.transform(lon, lat + step)
        north = (nx - cx, ny - cy)
    else:
        sx, sy = to_crs.transform(lon, lat - step)
        north = (cx - sx, cy - sy)
    if not all(math.isfinite(v) for v in (cx, cy, *north)) or north == (0.0, 0.0):
        raise CRSError(f"{meta.path.name}: position lon {lon}, lat {lat} is outside "
                       f"{crs_obj.name}; use utm_crs_for(lon, lat) or the site's CRS")
    bearing = math.radians((meta.yaw_deg or 0.0) + math.degrees(math.atan2(*north)))
    metres_per_unit = crs_obj.axis_info[0].unit_conversion_factor
    half_w = meta.width_px * gsd_m / 2.0 / metres_per_unit
    half_h = meta.height_px * gsd_m / 2.0 / metres_per_unit
    sin_b, cos_b = math.sin(bearing), math.cos(bearing)
    corners = []
    for u, v in ((-half_w, -half_h), (half_w, -half_h), (half_w, half_h), (-half_w, half_h)):
        # image right (u) -> (cos b, -sin b); image up (v) -> (sin b, cos b)
        corners.append((cx + u * cos_b + v * sin_b, cy - u * sin_b + v * cos_b))
    return Polygon(corners)


# --------------------------------------------------------------------------- helpers


def _plausible(check: Any, value: float, *args: str) -> float:
    """``check(value, *args)`` (:mod:`geodata.plausibility`) with its refusal as a
    :class:`GSDError`, so that every caller that handles a missing GSD handles an absurd one."""
    try:
        return check(value, *args)
    except ImplausibleMetadata as exc:
        raise GSDError(str(exc)) from exc


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise GSDError(f"{name} must be a positive number, got {value!r}")
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise GSDError(f"{name} must be a positive finite number, got {value}")
    return value


def _projected_crs(crs: Any) -> pyproj.CRS:
    try:
        crs_obj = pyproj.CRS.from_user_input(crs)
    except PyprojCRSError as exc:
        raise CRSError(f"unknown CRS {crs!r} ({exc}); pass a projected CRS such as "
                       f"utm_crs_for(lon, lat) or 'EPSG:32633'") from exc
    if crs_obj.is_geographic or not crs_obj.is_projected:
        kind = "geographic (degrees)" if crs_obj.is_geographic else "not projected"
        raise CRSError(f"CRS {crs_obj.name} is {kind}: footprints are measured in a projected "
                       f"CRS; pass utm_crs_for(lon, lat) or the site's projected CRS")
    return crs_obj


def _photo_paths(folder_or_paths: Any) -> list[Path]:
    if isinstance(folder_or_paths, str | os.PathLike):
        root = Path(folder_or_paths)
        if root.is_dir():
            found = [c for c in root.iterdir() if c.is_file() and not c.name.startswith(".")
                     and c.suffix.lower() in PHOTO_SUFFIXES]
            return sorted(found)
        if root.is_file():
            return [root]
        raise FileNotFoundError(f"photo folder {root} does not exist; pass a folder of "
                                f".jpg/.jpeg photos or a list of photo files")
    return sorted(dict.fromkeys(Path(p) for p in folder_or_paths))



def _sensor_width_for_image(spec: SensorSpec, cols: int, rows: int) -> float:
    sensor_long = max(spec.width_mm, spec.height_mm)
    sensor_short = min(spec.width_mm, spec.height_mm)
    image_aspect = max(cols, rows) / min(cols, rows)
    sensor_aspect = sensor_long / sensor_short
    long_mm, short_mm = sensor_long, sensor_short
    if abs(image_aspect / sensor_aspect - 1.0) > 0.05:
        if image_aspect < sensor_aspect:  # narrower image: full sensor height, cropped width
            long_mm = sensor_short * image_aspect
        else:  # wider image: full sensor width, cropped height
            short_mm = sensor_long / image_aspect
    return long_mm if cols >= rows else short_mm
