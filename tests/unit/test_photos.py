"""geodata.photos on tiny JPEGs built in tmp_path: EXIF/XMP parsing, GSD, footprints, sets."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pyproj
import pytest
from builders import dms, make_jpeg, with_app1
from PIL import Image
from PIL.TiffImagePlugin import IFDRational as R

from geodata.errors import CRSError, GSDError, PhotoMetadataError
from geodata.photos import (
    KNOWN_SENSORS,
    PhotoMetadata,
    ground_sample_distance_m,
    nadir_footprint,
    read_photo_metadata,
    read_photo_set,
    sensor_width_mm_for,
    utm_crs_for,
)

DJI_XMP_ATTRS = b"""<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF
 xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about=""
 xmlns:drone-dji="http://www.dji.com/drone-dji/1.0/"
 drone-dji:AbsoluteAltitude="+1068.45" drone-dji:RelativeAltitude="+43.10"
 drone-dji:GimbalRollDegree="+0.00" drone-dji:GimbalYawDegree="-12.50"
 drone-dji:GimbalPitchDegree="-89.90" drone-dji:FlightYawDegree="+170.20"/>
</rdf:RDF></x:xmpmeta>"""


# --------------------------------------------------------------------------- EXIF


@pytest.mark.parametrize("lat, lon", [(55.7, 13.19), (-8.30396, 115.48416), (41.2264, -81.7055),
                                      (-33.8688, -151.2093)])
def test_gps_is_signed_by_the_hemisphere_refs(tmp_path, lat, lon):
    meta = read_photo_metadata(make_jpeg(tmp_path / "a.jpg", lat=lat, lon=lon))
    assert meta.has_gps and meta.location_source == "exif"
    assert meta.lat_deg == pytest.approx(lat, abs=1e-7)
    assert meta.lon_deg == pytest.approx(lon, abs=1e-7)


def test_dms_rationals_are_summed_exactly(tmp_path):
    gps = {1: "S", 2: (R(8), R(18), R(1782, 125)), 3: "E", 4: (R(115), R(29), R(372, 125))}
    meta = read_photo_metadata(make_jpeg(tmp_path / "a.jpg", gps_raw=gps))
    assert meta.lat_deg == pytest.approx(-(8 + 18 / 60 + 14.256 / 3600), abs=1e-12)
    assert meta.lon_deg == pytest.approx(115 + 29 / 60 + 2.976 / 3600, abs=1e-12)


@pytest.mark.parametrize("below, expected", [(False, 12.3), (True, -12.3)])
def test_gps_altitude_ref_below_sea_level_is_negative(tmp_path, below, expected):
    meta = read_photo_metadata(make_jpeg(tmp_path / "a.jpg", lat=1.0, lon=2.0, altitude=12.3,
                                         below_sea_level=below))
    assert meta.altitude_m == pytest.approx(expected)


def test_camera_fields_and_size(tmp_path):
    meta = read_photo_metadata(make_jpeg(tmp_path / "a.jpg", size=(64, 48), make="DJI",
                                         model="FC6310", focal_mm=8.8, focal35=24))
    assert (meta.width_px, meta.height_px) == (64, 48)
    assert (meta.make, meta.model) == ("DJI", "FC6310")
    assert meta.focal_length_mm == pytest.approx(8.8)
    assert meta.focal_length_35mm_equiv_mm == 24.0
    assert meta.path == tmp_path / "a.jpg"


def test_time_with_offset_is_timezone_aware(tmp_path):
    meta = read_photo_metadata(make_jpeg(tmp_path / "a.jpg", offset="+08:00"))
    assert meta.acquired_at == datetime(2024, 5, 1, 10, 20, 30,
                                        tzinfo=timezone(timedelta(hours=8)))
    assert meta.acquired_at_has_offset
    assert meta.acquired_at.astimezone(UTC).hour == 2
    assert not any("naive" in w for w in meta.warnings)


def test_negative_offset(tmp_path):
    meta = read_photo_metadata(make_jpeg(tmp_path / "a.jpg", offset="-03:30"))
    assert meta.acquired_at.utcoffset() == -timedelta(hours=3, minutes=30)


def test_time_without_offset_is_naive_and_flagged(tmp_path):
    meta = read_photo_metadata(make_jpeg(tmp_path / "a.jpg"))
    assert meta.acquired_at == datetime(2024, 5, 1, 10, 20, 30)
    assert meta.acquired_at.tzinfo is None and not meta.acquired_at_has_offset
    assert any("naive" in w and "OffsetTimeOriginal" in w for w in meta.warnings)


def test_unparseable_time_is_none_with_warning(tmp_path):
    meta = read_photo_metadata(make_jpeg(tmp_path / "a.jpg", taken="    :  :     :  :  "))
    assert meta.acquired_at is None
    assert any("DateTimeOriginal" in w for w in meta.warnings)


def test_photo_without_gps(tmp_path):
    meta = read_photo_metadata(make_jpeg(tmp_path / "a.jpg", make="Canon"))
    assert not meta.has_gps and meta.location_source == "none"
    assert meta.lat_deg is None and meta.lon_deg is None
    assert any("no GPS" in w for w in meta.warnings)


def test_photo_without_any_exif(tmp_path):
    meta = read_photo_metadata(make_jpeg(tmp_path / "a.jpg", exif=False))
    assert not meta.has_gps and meta.acquired_at is None and meta.make is None
    assert any("no EXIF" in w for w in meta.warnings)


# --------------------------------------------------------------------------- corrupt EXIF


def test_corrupt_exif_block_does_not_raise(tmp_path):
    path = make_jpeg(tmp_path / "a.jpg", exif=False)
    path.write_bytes(with_app1(path.read_bytes(), b"Exif\x00\x00" + b"\x13\x37garbage" * 8))
    meta = read_photo_metadata(path)
    assert not meta.has_gps and meta.lat_deg is None
    assert (meta.width_px, meta.height_px) == (40, 30)
    assert any("corrupt" in w for w in meta.warnings)


def test_exif_with_a_bad_ifd_offset_does_not_raise(tmp_path):
    path = make_jpeg(tmp_path / "a.jpg", exif=False)
    payload = b"Exif\x00\x00MM\x00\x2a\x7f\xff\xff\xff" + b"\x00" * 20
    path.write_bytes(with_app1(path.read_bytes(), payload))
    meta = read_photo_metadata(path)
    assert not meta.has_gps
    assert any("corrupt" in w for w in meta.warnings)


def test_gps_with_zero_denominator_is_dropped_with_warning(tmp_path):
    gps = {1: "N", 2: (R(8), R(18), R(1, 0)), 3: "E", 4: (R(115), R(29), R(3))}
    meta = read_photo_metadata(make_jpeg(tmp_path / "a.jpg", gps_raw=gps, make="DJI"))
    assert not meta.has_gps and meta.lat_deg is None
    assert meta.make == "DJI"  # the rest of the EXIF still read
    assert any("GPS position corrupt" in w for w in meta.warnings)


def test_missing_hemisphere_ref_is_not_guessed(tmp_path):
    gps = {2: dms(8.3), 4: dms(115.5)}
    meta = read_photo_metadata(make_jpeg(tmp_path / "a.jpg", gps_raw=gps))
    assert not meta.has_gps
    assert any("hemisphere not guessed" in w for w in meta.warnings)


def test_gps_zero_zero_means_no_fix(tmp_path):
    gps = {1: "N", 2: (R(0), R(0), R(0)), 3: "E", 4: (R(0), R(0), R(0))}
    meta = read_photo_metadata(make_jpeg(tmp_path / "a.jpg", gps_raw=gps))
    assert not meta.has_gps
    assert any("(0, 0)" in w for w in meta.warnings)


# --------------------------------------------------------------------------- not images


def test_text_file_raises_naming_the_file(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("not a photo")
    with pytest.raises(PhotoMetadataError, match="notes.jpg.*not a readable image.*JPEG"):
        read_photo_metadata(path)


def test_empty_file_raises(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(PhotoMetadataError, match="empty.jpg"):
        read_photo_metadata(path)


def test_png_is_refused(tmp_path):
    path = tmp_path / "pic.jpg"
    Image.new("RGB", (8, 8)).save(path, "PNG")
    with pytest.raises(PhotoMetadataError, match="pic.jpg is a PNG image, expected a JPEG"):
        read_photo_metadata(path)


def test_missing_file_raises(tmp_path):
    with pytest.raises(PhotoMetadataError, match="cannot open photo .*nope.jpg"):
        read_photo_metadata(tmp_path / "nope.jpg")


def test_photo_errors_reach_a_valueerror_handler_saying_what_to_fix(tmp_path):
    """`crackwatch infer` on photos catches ValueError around reading and the GSD: an unreadable
    photo and a missing GSD input both get there, naming the file or the input to give, and
    are GeodataErrors."""
    from geodata.errors import GeodataError

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 12)  # a JPEG start, then nothing
    with pytest.raises(ValueError, match="broken.jpg") as unreadable:
        read_photo_metadata(broken)
    assert isinstance(unreadable.value, PhotoMetadataError)
    assert isinstance(unreadable.value, GeodataError)
    with pytest.raises(ValueError, match="no focal length.*--gsd") as no_gsd:
        ground_sample_distance_m(_meta(focal_length_mm=None), altitude_m=100.0,
                                 sensor_width_mm=13.2)
    assert isinstance(no_gsd.value, GSDError) and isinstance(no_gsd.value, GeodataError)


# --------------------------------------------------------------------------- DJI XMP


def test_dji_xmp_attributes(tmp_path):
    meta = read_photo_metadata(make_jpeg(tmp_path / "a.jpg", lat=1, lon=2, xmp=DJI_XMP_ATTRS))
    assert meta.relative_altitude_m == pytest.approx(43.10)
    assert meta.absolute_altitude_m == pytest.approx(1068.45)
    assert meta.gimbal_pitch_deg == pytest.approx(-89.90)
    assert meta.yaw_deg == pytest.approx(347.5)  # gimbal yaw -12.5 preferred, put in [0, 360)


def test_dji_xmp_elements_and_flight_yaw_fallback(tmp_path):
    xmp = b"""<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description
     xmlns:drone-dji="http://www.dji.com/drone-dji/1.0/">
     <drone-dji:RelativeAltitude>+60.5</drone-dji:RelativeAltitude>
     <drone-dji:FlightYawDegree>+91.2</drone-dji:FlightYawDegree>
     <drone-dji:GimbalPitchDegree>bogus</drone-dji:GimbalPitchDegree>
     </rdf:Description></rdf:RDF></x:xmpmeta>"""
    meta = read_photo_metadata(make_jpeg(tmp_path / "a.jpg", xmp=xmp))
    assert meta.relative_altitude_m == pytest.approx(60.5)
    assert meta.yaw_deg == pytest.approx(91.2)
    assert meta.gimbal_pitch_deg is None
    assert any("GimbalPitchDegree" in w for w in meta.warnings)


def test_xmp_without_dji_fields(tmp_path):
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
    meta = read_photo_metadata(make_jpeg(tmp_path / "a.jpg", xmp=xmp))
    assert meta.relative_altitude_m is None and meta.yaw_deg is None


# --------------------------------------------------------------------------- photo sets


def _mixed_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "survey"
    folder.mkdir()
    make_jpeg(folder / "b.jpg", lat=55.7, lon=13.19)
    make_jpeg(folder / "A.JPG", lat=55.71, lon=13.2)
    make_jpeg(folder / "c.Jpeg", make="Canon")  # no GPS
    (folder / "d.jpg").write_text("not a jpeg")
    (folder / "notes.txt").write_text("ignored")
    (folder / "._b.jpg").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")
    return folder


def test_photo_set_sorted_and_bad_photo_reported(tmp_path):
    folder = _mixed_folder(tmp_path)
    photos, failures = read_photo_set(folder)
    assert [p.path.name for p in photos] == ["A.JPG", "b.jpg", "c.Jpeg"]
    assert [(p.name, "not a readable image" in why) for p, why in failures] == [("d.jpg", True)]
    no_gps = photos[2]
    assert no_gps.location_source == "none" and no_gps.lat_deg is None


def test_photo_without_gps_gets_the_site_location(tmp_path):
    folder = _mixed_folder(tmp_path)
    photos, _ = read_photo_set(folder, site_location=(13.195, 55.698))
    by_name = {p.path.name: p for p in photos}
    site = by_name["c.Jpeg"]
    assert (site.lon_deg, site.lat_deg) == (13.195, 55.698)
    assert site.location_source == "site" and not site.has_gps
    assert any("site location" in w for w in site.warnings)
    gps = by_name["b.jpg"]  # a photo with GPS keeps its own position
    assert gps.location_source == "exif" and gps.lat_deg == pytest.approx(55.7)


def test_photo_set_from_paths(tmp_path):
    folder = _mixed_folder(tmp_path)
    photos, failures = read_photo_set([folder / "b.jpg", str(folder / "A.JPG"),
                                       folder / "notes.txt", folder / "b.jpg"])
    assert [p.path.name for p in photos] == ["A.JPG", "b.jpg"]
    assert [p.name for p, _ in failures] == ["notes.txt"]


def test_empty_and_missing_folders(tmp_path):
    assert read_photo_set(tmp_path) == ([], [])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_photo_set(tmp_path / "missing")


@pytest.mark.parametrize("bad", [(200.0, 10.0), (10.0, 95.0), ("x", 1), (1.0,), (math.nan, 1)])
def test_bad_site_location(tmp_path, bad):
    with pytest.raises(ValueError, match="lon"):
        read_photo_set(tmp_path, site_location=bad)


# --------------------------------------------------------------------------- GSD


def _meta(**kw) -> PhotoMetadata:
    base = dict(path=Path("x.jpg"), width_px=5472, height_px=3648, focal_length_mm=8.8)
    base.update(kw)
    return PhotoMetadata(**base)


def test_gsd_formula_against_hand_value():
    # 100 m * 13.2 mm / (8.8 mm * 5472 px) = 1320 / 48153.6 m/px
    gsd = ground_sample_distance_m(_meta(), sensor_width_mm=13.2, altitude_m=100.0)
    assert gsd == pytest.approx(0.027412280701754386, rel=1e-12)


def test_gsd_uses_known_camera_and_dji_relative_altitude():
    meta = _meta(model="FC6310", relative_altitude_m=100.0, absolute_altitude_m=1100.0)
    assert ground_sample_distance_m(meta) == pytest.approx(0.027412280701754386, rel=1e-12)
    # an explicit altitude wins over the XMP
    assert ground_sample_distance_m(meta, altitude_m=50.0) == pytest.approx(0.0137061403508772)


def test_known_camera_4_3_crop_keeps_the_pixel_pitch():
    # Phantom 4 Pro 4:3 photos are 4864 x 3648: full sensor height, cropped width
    crop = _meta(model="FC6310", width_px=4864, height_px=3648, relative_altitude_m=100.0)
    assert sensor_width_mm_for(crop) == pytest.approx(8.8 * 4 / 3)
    assert ground_sample_distance_m(crop) == pytest.approx(0.027412280701754386, rel=1e-9)


def test_known_camera_lookup_is_case_and_space_insensitive():
    assert sensor_width_mm_for(_meta(model=" fc6310s ")) == pytest.approx(13.2)
    assert "FC8482" in KNOWN_SENSORS and KNOWN_SENSORS["FC8482"].source


def test_sensor_width_from_35mm_equivalent():
    # 3:2 image: equal diagonals give exactly 36 mm * f / f35
    three_two = _meta(focal_length_35mm_equiv_mm=24.0)
    assert sensor_width_mm_for(three_two) == pytest.approx(36.0 * 8.8 / 24.0)
    # 4:3 image: diagonal 43.27 mm * f / f35, width 4/5 of it
    four_three = _meta(width_px=4000, height_px=3000, focal_length_35mm_equiv_mm=24.0)
    assert sensor_width_mm_for(four_three) == pytest.approx(math.hypot(36, 24) * 8.8 / 24 * 0.8)
    gsd = ground_sample_distance_m(four_three, altitude_m=100.0)
    assert gsd == pytest.approx(100.0 * sensor_width_mm_for(four_three) / (8.8 * 4000))


def test_explicit_sensor_width_wins_over_the_table():
    meta = _meta(model="FC6310")
    assert ground_sample_distance_m(meta, sensor_width_mm=6.6, altitude_m=100.0) == \
        pytest.approx(0.027412280701754386 / 2)


def test_user_gsd_wins_over_everything():
    assert ground_sample_distance_m(_meta(focal_length_mm=None), gsd_m=0.02) == 0.02


def test_absolute_altitude_is_not_height_above_ground():
    meta = _meta(model="FC6310", absolute_altitude_m=1068.45, altitude_m=1068.4)
    with pytest.raises(GSDError, match=r"above sea level.*--altitude.*--gsd"):
        ground_sample_distance_m(meta)


def test_relative_altitude_at_or_below_takeoff_is_refused():
    with pytest.raises(GSDError, match="take-off point.*--altitude"):
        ground_sample_distance_m(_meta(model="FC6310", relative_altitude_m=-2.0))


def test_unknown_camera_without_35mm_equivalent():
    meta = _meta(make="Canon", model="Canon PowerShot S110", width_px=48, height_px=36)
    with pytest.raises(GSDError, match="'Canon PowerShot S110'.*sensor_width_mm"):
        ground_sample_distance_m(meta, altitude_m=100.0)


def test_no_focal_length():
    with pytest.raises(GSDError, match="no focal length.*--gsd"):
        ground_sample_distance_m(_meta(focal_length_mm=None), altitude_m=100.0,
                                 sensor_width_mm=13.2)


@pytest.mark.parametrize("kwarg", ["sensor_width_mm", "altitude_m", "gsd_m"])
@pytest.mark.parametrize("bad", [0, -1.0, math.nan, math.inf, "10", True])
def test_gsd_arguments_must_be_positive(kwarg, bad):
    args = {"sensor_width_mm": 13.2, "altitude_m": 100.0}
    args[kwarg] = bad
    with pytest.raises(GSDError, match=kwarg):
        ground_sample_distance_m(_meta(), **args)


# --------------------------------------------------------------------------- geometry


def test_utm_crs_for():
    assert utm_crs_for(13.19, 55.7).to_epsg() == 32633
    assert utm_crs_for(115.48, -8.3).to_epsg() == 32750
    assert utm_crs_for(-81.7, 41.2).to_epsg() == 32617
    assert utm_crs_for(12.0, 50.0).to_epsg() == 32633  # boundary: eastern zone
    assert utm_crs_for(0.0, 0.0).to_epsg() == 32631  # eastern zone, equator is north
    assert utm_crs_for(180.0, 0.0).to_epsg() == 32601  # the 180th meridian starts zone 1
    assert utm_crs_for(179.9, -10.0).to_epsg() == 32760
    # The UTM grid's exceptions: zone 32V widened west over Norway (Bergen), Svalbard's X zones.
    assert utm_crs_for(5.32, 60.39).to_epsg() == 32632
    assert utm_crs_for(5.32, 55.9).to_epsg() == 32631  # south of 56 N: the standard zone
    assert utm_crs_for(15.63, 78.22).to_epsg() == 32633  # Longyearbyen
    assert utm_crs_for(8.0, 78.9).to_epsg() == 32631  # zone 31X spans 0-9 E
    assert utm_crs_for(25.0, 79.0).to_epsg() == 32635
    with pytest.raises(CRSError, match="80 S to 84 N"):
        utm_crs_for(10.0, 85.0)
    with pytest.raises(ValueError, match="out of range"):
        utm_crs_for(10.0, 95.0)


def _placed(lon=15.0, lat=55.7, yaw=None, pitch=None, size=(400, 300)) -> PhotoMetadata:
    return PhotoMetadata(path=Path("p.jpg"), width_px=size[0], height_px=size[1],
                         lon_deg=lon, lat_deg=lat, yaw_deg=yaw, gimbal_pitch_deg=pitch,
                         has_gps=True, location_source="exif")


@pytest.mark.parametrize("lon, lat, yaw", [(15.0, 55.7, None), (17.9, 55.7, 33.0),
                                           (115.48, -8.3, 250.0)])
def test_footprint_area_and_centroid(lon, lat, yaw):
    meta, gsd = _placed(lon, lat, yaw), 0.05
    crs = utm_crs_for(lon, lat)
    fp = nadir_footprint(meta, gsd, crs)
    assert fp.is_valid and len(fp.exterior.coords) == 5 and fp.exterior.is_ccw
    assert fp.area == pytest.approx((400 * gsd) * (300 * gsd), rel=1e-9)
    x, y = pyproj.Transformer.from_crs(4326, crs, always_xy=True).transform(lon, lat)
    assert fp.centroid.x == pytest.approx(x, abs=1e-6)
    assert fp.centroid.y == pytest.approx(y, abs=1e-6)


def test_footprint_yaw_rotates_clockwise_from_north():
    # on the central meridian of UTM 33N (15 E) grid north is true north
    north_up = nadir_footprint(_placed(yaw=0.0), 0.1, "EPSG:32633").bounds
    assert north_up[2] - north_up[0] == pytest.approx(40.0)  # width 400 px * 0.1 m east-west
    assert north_up[3] - north_up[1] == pytest.approx(30.0)
    facing_east = nadir_footprint(_placed(yaw=90.0), 0.1, "EPSG:32633")
    minx, miny, maxx, maxy = facing_east.bounds
    assert maxx - minx == pytest.approx(30.0) and maxy - miny == pytest.approx(40.0)
    # corner order: bottom-left, bottom-right, top-right, top-left of the image;
    # facing east, the image top edge is the eastern edge
    top_right, top_left = facing_east.exterior.coords[2], facing_east.exterior.coords[3]
    assert top_right[0] == pytest.approx(maxx) and top_left[0] == pytest.approx(maxx)
    assert top_right[1] < top_left[1]  # facing east, the image's right is south


def test_footprint_top_edge_points_at_true_north_off_the_central_meridian():
    meta = _placed(lon=17.9, lat=55.7, yaw=0.0)  # ~2.4 deg of grid convergence here
    fp = nadir_footprint(meta, 0.5, "EPSG:32633")
    (x2, y2), (x3, y3) = fp.exterior.coords[2], fp.exterior.coords[3]
    to_geo = pyproj.Transformer.from_crs(32633, 4326, always_xy=True)
    top_mid_lon, top_mid_lat = to_geo.transform((x2 + x3) / 2, (y2 + y3) / 2)
    assert top_mid_lon == pytest.approx(17.9, abs=1e-7)
    assert top_mid_lat > 55.7


def test_footprint_in_feet():
    meta = _placed(lon=-74.0, lat=40.7, size=(100, 50))
    fp = nadir_footprint(meta, 0.3048006096012192, "EPSG:2263")  # NY Long Island, US ft
    assert fp.area == pytest.approx(100 * 50, rel=1e-9)


def test_footprint_refuses_geographic_and_unknown_crs():
    with pytest.raises(CRSError, match="geographic"):
        nadir_footprint(_placed(), 0.1, "EPSG:4326")
    with pytest.raises(CRSError, match="not projected"):
        nadir_footprint(_placed(), 0.1, "EPSG:4978")
    with pytest.raises(CRSError, match="unknown CRS"):
        nadir_footprint(_placed(), 0.1, "not-a-crs")


def test_footprint_needs_a_position_and_a_positive_gsd():
    meta = PhotoMetadata(path=Path("p.jpg"), width_px=10, height_px=10)
    with pytest.raises(PhotoMetadataError, match="no position.*site_location"):
        nadir_footprint(meta, 0.1, "EPSG:32633")
    with pytest.raises(GSDError, match="gsd_m"):
        nadir_footprint(_placed(), 0.0, "EPSG:32633")


def test_footprint_warns_for_oblique_photos():
    with pytest.warns(UserWarning, match="not nadir"):
        nadir_footprint(_placed(pitch=-45.0), 0.1, "EPSG:32633")


def test_footprint_of_a_site_located_photo(tmp_path):
    make_jpeg(tmp_path / "a.jpg", size=(40, 30))
    (meta,), _ = read_photo_set(tmp_path, site_location=(13.19, 55.7))
    fp = nadir_footprint(meta, 0.5, utm_crs_for(13.19, 55.7))
    assert fp.area == pytest.approx(20.0 * 15.0)
