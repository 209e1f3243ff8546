"""JPEG headers, EXIF tags and DJI XMP fields of a photo, read for
:func:`geodata.photos.read_photo_metadata` (sources in :mod:`geodata.photos`).

Nothing here raises on bad metadata except :func:`jpeg_size` (not a readable JPEG): each
problem is appended to the ``warns`` list as a sentence and the value is None.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, BinaryIO

import exifread
from PIL import Image

from geodata.errors import PhotoMetadataError

__all__ = [
    "dji_xmp_fields",
    "exif_acquired_at",
    "gps_altitude",
    "gps_img_direction",
    "gps_position",
    "jpeg_size",
    "orientation_warning",
    "positive_tag",
    "read_exif_tags",
    "scan_jpeg_segments",
    "text_tag",
    "xmp_float",
]

_JPEG_FORMATS = ("JPEG", "MPO")  # Pillow reports JPEGs with an MPF (multi-picture) block as MPO
_EXIF_HEADER = b"Exif\x00\x00"
_XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
_MAX_HEADER_SCAN_BYTES = 32 * 1024 * 1024


def jpeg_size(fh: BinaryIO, path: Path) -> tuple[int, int]:
    """``(cols, rows)`` of the stored JPEG (Orientation not applied).

    Raises:
        PhotoMetadataError: not a readable image, or not a JPEG (the message names the fix).
    """
    fix = "re-export it as a JPEG (keeping its EXIF) or remove it from the photo set"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns on corrupt EXIF; reported below
            with Image.open(fh) as im:
                fmt, size = im.format, im.size
    except Exception as exc:  # Pillow raises assorted errors on non-images and truncation
        raise PhotoMetadataError(
            f"{path} is not a readable image ({type(exc).__name__}: {exc}); expected a JPEG "
            f"photo: {fix}") from exc
    if fmt not in _JPEG_FORMATS:
        raise PhotoMetadataError(f"{path} is a {fmt} image, expected a JPEG photo with EXIF: "
                                 f"{fix}")
    return int(size[0]), int(size[1])


def scan_jpeg_segments(fh: BinaryIO) -> tuple[bool, bytes | None]:
    """(has an EXIF APP1 block, first XMP packet) from the markers before start-of-scan.

    Never raises on bad data: a broken marker chain just ends the scan.
    """
    has_exif, xmp = False, None
    fh.seek(0)
    if fh.read(2) != b"\xff\xd8":
        return has_exif, xmp
    while fh.tell() < _MAX_HEADER_SCAN_BYTES:
        if fh.read(1) != b"\xff":
            break
        marker = fh.read(1)
        while marker == b"\xff":  # fill bytes
            marker = fh.read(1)
        if not marker or marker[0] in (0xD9, 0xDA):  # end of file / image, start of scan
            break
        if 0xD0 <= marker[0] <= 0xD7 or marker[0] == 0x01:  # markers without a length
            continue
        length_bytes = fh.read(2)
        if len(length_bytes) < 2 or int.from_bytes(length_bytes, "big") < 2:
            break
        length = int.from_bytes(length_bytes, "big") - 2
        if marker[0] != 0xE1:
            fh.seek(length, os.SEEK_CUR)
            continue
        payload = fh.read(length)
        if payload.startswith(_EXIF_HEADER):
            has_exif = True
        elif payload.startswith(_XMP_HEADER) and xmp is None:
            xmp = payload[len(_XMP_HEADER):]
    return has_exif, xmp


def read_exif_tags(fh: BinaryIO, has_exif_block: bool, warns: list[str]) -> dict[str, Any]:
    """The EXIF tags by ``exifread`` name (``"GPS GPSLatitude"``...); ``{}`` when there are
    none or they are corrupt (a warning says which)."""
    tags: dict[str, Any] = {}
    try:
        fh.seek(0)
        tags = exifread.process_file(fh, details=False, extract_thumbnail=False)
    except Exception as exc:  # exifread raises assorted errors on corrupt IFDs
        warns.append(f"EXIF is corrupt and was ignored ({type(exc).__name__}: {exc}); no "
                     f"position, time or camera data read from it")
        return {}
    if not has_exif_block and not tags:
        warns.append("no EXIF metadata: no position, time or camera data")
    elif not tags:
        warns.append("EXIF block present but unreadable (corrupt): no position, time or "
                     "camera data read from it")
    return tags


def _values(tags: dict[str, Any], key: str) -> Any:
    tag = tags.get(key)
    return None if tag is None else tag.values


def _number(value: Any) -> float:
    if isinstance(value, list):
        if len(value) != 1:
            raise ValueError(f"expected one value, got {value!r}")
        value = value[0]
    try:
        out = float(value)
    except (TypeError, ValueError, ZeroDivisionError) as exc:
        raise ValueError(f"not a number: {value!r}") from exc
    if not math.isfinite(out):
        raise ValueError(f"not a finite number: {value!r}")
    return out


def text_tag(tags: dict[str, Any], key: str) -> str | None:
    """The tag as stripped text without NULs, or None."""
    value = _values(tags, key)
    if not isinstance(value, str):
        return None
    value = value.replace("\x00", "").strip()
    return value or None


def positive_tag(tags: dict[str, Any], key: str, label: str | None,
                 warns: list[str]) -> float | None:
    """The tag as a positive number, or None (with a warning naming ``label`` when given;
    0 means unknown)."""
    raw = _values(tags, key)
    if raw is None:
        if label is not None:
            warns.append(f"no {label} in EXIF")
        return None
    try:
        value = _number(raw)
    except ValueError:
        warns.append(f"EXIF {key.split()[-1]} {raw!r} is unreadable and was ignored")
        return None
    if value <= 0:  # FocalLengthIn35mmFilm 0 means unknown (EXIF spec)
        if label is not None:
            warns.append(f"EXIF {key.split()[-1]} is {value}: {label} unknown")
        return None
    return value


def _dms_degrees(values: Any) -> float:
    if not isinstance(values, list) or not 1 <= len(values) <= 3:
        raise ValueError(f"expected 1-3 degree/minute/second values, got {values!r}")
    return sum(abs(_number(v)) / 60.0 ** i for i, v in enumerate(values))


def gps_position(tags: dict[str, Any], warns: list[str]) -> tuple[float | None, float | None]:
    """``(lat_deg, lon_deg)`` in WGS 84 degrees (signed by the N/S, E/W refs), or
    ``(None, None)``: no position, a missing ref, out of range or (0, 0)."""
    lat_v, lon_v = _values(tags, "GPS GPSLatitude"), _values(tags, "GPS GPSLongitude")
    if lat_v is None or lon_v is None:
        if any(k.startswith("GPS ") for k in tags) or "Image GPSInfo" in tags:
            warns.append("GPS block present but latitude/longitude missing: no position")
        elif tags:
            warns.append("no GPS position in EXIF")
        return None, None
    lat_ref = (text_tag(tags, "GPS GPSLatitudeRef") or "").upper()
    lon_ref = (text_tag(tags, "GPS GPSLongitudeRef") or "").upper()
    if lat_ref not in ("N", "S") or lon_ref not in ("E", "W"):
        warns.append(f"GPS position corrupt: latitude/longitude refs are {lat_ref!r}/"
                     f"{lon_ref!r}, expected N/S and E/W; hemisphere not guessed, no position")
        return None, None
    try:
        lat = _dms_degrees(lat_v) * (-1.0 if lat_ref == "S" else 1.0)
        lon = _dms_degrees(lon_v) * (-1.0 if lon_ref == "W" else 1.0)
    except ValueError as exc:
        warns.append(f"GPS position corrupt ({exc}): no position")
        return None, None
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        warns.append(f"GPS position out of range (lat {lat}, lon {lon}): no position")
        return None, None
    if lat == 0.0 and lon == 0.0:
        warns.append("GPS position is exactly (0, 0), the usual 'no fix' value: no position")
        return None, None
    return lat, lon


def gps_altitude(tags: dict[str, Any], warns: list[str]) -> float | None:
    """GPS altitude (m above sea level; negative below, ``GPSAltitudeRef`` 1), or None."""
    raw = _values(tags, "GPS GPSAltitude")
    if raw is None:
        return None
    try:
        altitude = _number(raw)
        ref_raw = _values(tags, "GPS GPSAltitudeRef")
        ref = 0 if ref_raw is None else int(_number(ref_raw))
    except ValueError as exc:
        warns.append(f"GPS altitude corrupt ({exc}) and ignored")
        return None
    if ref not in (0, 1):
        warns.append(f"GPSAltitudeRef is {ref}, expected 0 (above) or 1 (below sea level); "
                     f"GPS altitude ignored")
        return None
    return -abs(altitude) if ref == 1 else altitude


def gps_img_direction(tags: dict[str, Any], warns: list[str]) -> float | None:
    """Camera heading (degrees clockwise from north, ``GPSImgDirection``), or None."""
    raw = _values(tags, "GPS GPSImgDirection")
    if raw is None:
        return None
    try:
        direction = _number(raw)
    except ValueError:
        warns.append(f"GPSImgDirection {raw!r} is unreadable and was ignored")
        return None
    if (text_tag(tags, "GPS GPSImgDirectionRef") or "T").upper() == "M":
        warns.append("camera heading (GPSImgDirection) is magnetic, not true north; used "
                     "as yaw without a declination correction")
    return direction


_EXIF_DATETIME = re.compile(r"(\d{4})[:-](\d{2})[:-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_UTC_OFFSET = re.compile(r"([+-])(\d{2}):(\d{2})")


def exif_acquired_at(tags: dict[str, Any], warns: list[str]) -> datetime | None:
    """``DateTimeOriginal`` (+ sub-seconds), aware when ``OffsetTimeOriginal`` is given,
    else naive camera-local time (with a warning); None when missing or malformed."""
    raw = text_tag(tags, "EXIF DateTimeOriginal")
    if raw is None:
        if tags:
            warns.append("no DateTimeOriginal in EXIF: acquisition time unknown")
        return None
    m = _EXIF_DATETIME.match(raw)
    try:
        if m is None:
            raise ValueError(raw)
        when = datetime(*(int(g) for g in m.groups()))
    except ValueError:
        warns.append(f"DateTimeOriginal {raw!r} is not 'YYYY:MM:DD HH:MM:SS': acquisition "
                     f"time unknown")
        return None
    sub = text_tag(tags, "EXIF SubSecTimeOriginal")
    if sub and sub.isdigit():
        when = when.replace(microsecond=int(sub[:6].ljust(6, "0")))
    offset = text_tag(tags, "EXIF OffsetTimeOriginal")
    om = _UTC_OFFSET.fullmatch(offset) if offset else None
    if om is not None and int(om.group(2)) <= 14 and int(om.group(3)) < 60:
        delta = timedelta(hours=int(om.group(2)), minutes=int(om.group(3)))
        return when.replace(tzinfo=timezone(-delta if om.group(1) == "-" else delta))
    why = f"OffsetTimeOriginal {offset!r} is not +HH:MM" if offset else "no OffsetTimeOriginal"
    warns.append(f"{why}: acquired_at is naive camera-local time (time zone unknown); attach "
                 f"the site's time zone before converting to UTC")
    return when


def orientation_warning(tags: dict[str, Any], warns: list[str]) -> None:
    """Warn when EXIF Orientation rotates the picture by 90 degrees for display."""
    raw = _values(tags, "Image Orientation")
    try:
        orientation = None if raw is None else int(_number(raw))
    except ValueError:
        return
    if orientation is not None and orientation >= 5:
        warns.append(f"EXIF Orientation {orientation} rotates the picture by 90 deg for "
                     f"display; width_px/height_px are the stored (unrotated) cols/rows")


_DJI_ATTR = re.compile(r"""drone-dji:(\w+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_DJI_ELEMENT = re.compile(r"<drone-dji:(\w+)>\s*([^<]*?)\s*</drone-dji:\1>")


def dji_xmp_fields(packet: bytes) -> dict[str, str]:
    """``drone-dji:Name`` -> text, from attributes or elements of an XMP packet (no XML parse)."""
    text = packet.decode("utf-8", errors="replace")
    fields: dict[str, str] = {}
    for m in _DJI_ATTR.finditer(text):
        fields.setdefault(m.group(1), m.group(2) if m.group(2) is not None else m.group(3))
    for m in _DJI_ELEMENT.finditer(text):
        fields.setdefault(m.group(1), m.group(2))
    return fields


def xmp_float(fields: dict[str, str], name: str, warns: list[str]) -> float | None:
    """DJI XMP field ``name`` as a finite number, or None (a warning when not a number)."""
    raw = fields.get(name)
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        warns.append(f"DJI XMP {name}={raw!r} is not a number and was ignored")
        return None
    return value
