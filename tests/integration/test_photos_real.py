"""geodata.photos on the real photos under ../shared/data/geo (fails if they are missing)."""

from __future__ import annotations

import csv
import math
import re
from datetime import datetime

import pyproj
import pytest

from geodata.errors import GSDError
from geodata.photos import (
    FULL_FRAME_DIAGONAL_MM,
    ground_sample_distance_m,
    nadir_footprint,
    read_photo_metadata,
    read_photo_set,
    sensor_width_mm_for,
    utm_crs_for,
)
from tests.conftest import require_real_data

pytestmark = pytest.mark.realdata

DJI_NAME = "DJI_20251001132715_0396_D_POOR_SHARPNESS.JPG"


def _dms_text(text: str) -> float:
    """ExifTool's ``8 deg 18' 14.26" S`` -> signed degrees."""
    m = re.fullmatch(r"""(\d+) deg (\d+)' ([\d.]+)" ([NSEW])""", text.strip())
    assert m, text
    value = int(m[1]) + int(m[2]) / 60 + float(m[3]) / 3600
    return -value if m[4] in "SW" else value


def _exiftool_row(name: str) -> dict[str, str]:
    table = require_real_data("geo", "agung1_dji", "image_metadata.csv")
    with table.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["FileName"] == name]
    assert len(rows) == 1, f"{name} should have one row in {table}"
    return rows[0]


def test_dji_photo_matches_exiftool():
    path = require_real_data("geo", "agung1_dji", DJI_NAME)
    row = _exiftool_row(DJI_NAME)
    meta = read_photo_metadata(path)
    assert meta.has_gps and meta.location_source == "exif"
    # exiftool prints seconds to 0.01" (3e-6 deg)
    assert meta.lat_deg == pytest.approx(_dms_text(row["GPSLatitude"]), abs=1e-5)
    assert meta.lon_deg == pytest.approx(_dms_text(row["GPSLongitude"]), abs=1e-5)
    assert meta.lat_deg == pytest.approx(-8.30396, abs=1e-9)  # 8 18' 1782/125" S
    assert meta.lon_deg == pytest.approx(115.48416, abs=1e-9)  # 115 29' 372/125" E
    # this re-saved file carries no drone-dji XMP: exiftool's row is empty there too
    for column, value in (("AbsoluteAltitude", meta.absolute_altitude_m),
                          ("GimbalPitchDegree", meta.gimbal_pitch_deg),
                          ("FlightYawDegree", meta.yaw_deg)):
        if row[column]:
            assert value == pytest.approx(float(row[column]), abs=0.01), column
        else:
            assert value is None, column
    assert meta.relative_altitude_m is None
    assert meta.acquired_at == datetime.strptime(row["DateTimeOriginal"], "%Y:%m:%d %H:%M:%S")
    assert not meta.acquired_at_has_offset
    assert any("naive" in w for w in meta.warnings)
    assert (meta.make, meta.model) == ("DJI", "FC8482")
    assert (meta.width_px, meta.height_px) == (4032, 3024)
    assert meta.focal_length_mm == pytest.approx(6.72)
    assert meta.focal_length_35mm_equiv_mm == 24.0


def test_dji_photo_gsd_and_footprint():
    meta = read_photo_metadata(require_real_data("geo", "agung1_dji", DJI_NAME))
    # no RelativeAltitude in this file: the height above ground must be given
    with pytest.raises(GSDError, match="--altitude.*--gsd"):
        ground_sample_distance_m(meta)
    table_mm = sensor_width_mm_for(meta)
    assert table_mm == pytest.approx(9.68)  # FC8482, DJI Mini 4 Pro
    # the table agrees with the 35 mm equivalent (equal diagonals) to 0.5 %
    derived_mm = FULL_FRAME_DIAGONAL_MM * 6.72 / 24 * 4032 / math.hypot(4032, 3024)
    assert derived_mm == pytest.approx(table_mm, rel=0.005)
    gsd = ground_sample_distance_m(meta, altitude_m=100.0)
    assert gsd == pytest.approx(100 * 9.68 / (6.72 * 4032))  # 3.57 cm/px
    crs = utm_crs_for(meta.lon_deg, meta.lat_deg)
    assert crs.to_epsg() == 32750
    fp = nadir_footprint(meta, gsd, crs)
    assert fp.area == pytest.approx(4032 * gsd * 3024 * gsd, rel=1e-9)
    aoi_lon, aoi_lat = pyproj.Transformer.from_crs(crs, 4326, always_xy=True).transform(
        fp.centroid.x, fp.centroid.y)
    assert (aoi_lon, aoi_lat) == (pytest.approx(meta.lon_deg), pytest.approx(meta.lat_deg))


def test_lund_street_photos():
    folder = require_real_data("geo", "opensfm_lund")
    photos, failures = read_photo_set(folder)
    assert failures == []
    assert [p.path.name for p in photos] == [f"{i:02d}.jpg" for i in range(1, 30)]
    for p in photos:
        assert p.has_gps and p.location_source == "exif"
        assert 55.6 < p.lat_deg < 55.8 and 13.1 < p.lon_deg < 13.3
        assert (p.width_px, p.height_px) == (1024, 768)
        assert p.focal_length_mm is not None
    first = photos[0]
    assert first.lat_deg == pytest.approx(55 + 41 / 60 + 53.4 / 3600)  # 55 41' 267/5" N
    assert first.lon_deg == pytest.approx(13 + 11 / 60 + 43.4 / 3600)  # 13 11' 217/5" E
    assert first.altitude_m == pytest.approx(37.0)
    # GPS altitude is above sea level, never taken as height above ground
    with pytest.raises(GSDError, match="above sea level"):
        ground_sample_distance_m(first)
    crs = utm_crs_for(first.lon_deg, first.lat_deg)
    assert crs.to_epsg() == 32633
    centroids = [nadir_footprint(p, 0.01, crs).centroid for p in photos]
    spread_m = max(c.distance(d) for c in centroids for d in centroids)
    assert 10 < spread_m < 2000  # one street walk, not scattered over the globe


def test_webodm_tiny_drone_images():
    folder = require_real_data("geo", "webodm_fixtures")
    photos, failures = read_photo_set(folder)
    assert failures == []
    assert [p.path.name for p in photos] == ["tiny_drone_image.jpg", "tiny_drone_image_2.jpg"]
    for p in photos:
        assert (p.width_px, p.height_px) == (48, 36)
        assert p.has_gps
        assert 41.2 < p.lat_deg < 41.3 and -81.8 < p.lon_deg < -81.6  # W is negative
        assert p.model == "Canon PowerShot S110"
        assert p.focal_length_mm == pytest.approx(5.2)
    first = photos[0]
    assert first.altitude_m == pytest.approx(99907 / 228)
    assert first.acquired_at == datetime(2015, 7, 31, 14, 32, 14)
    # unknown camera without a 35 mm equivalent: the sensor width must be given
    with pytest.raises(GSDError, match="sensor_width_mm"):
        ground_sample_distance_m(first, altitude_m=100.0)
    gsd = ground_sample_distance_m(first, altitude_m=100.0, sensor_width_mm=7.44)
    assert gsd == pytest.approx(100 * 7.44 / (5.2 * 48))
