"""geodata.vectorise: synthetic probability rasters with known crack geometry."""

from __future__ import annotations

import math
import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from affine import Affine
from geopandas.testing import assert_geodataframe_equal

from geodata.errors import CRSError
from geodata.vectorise import (
    CRACK_COLUMNS,
    CRACK_DTYPES,
    empty_crack_frame,
    vectorise_cracks,
    vectorise_cracks_and_skeletons,
    write_cracks_gpkg,
)

PX = 0.01  # metres per pixel
X0, Y0 = 500_000.0, 5_000_000.0
UTM = Affine(PX, 0.0, X0, 0.0, -PX, Y0)  # north-up, 1 cm pixels
CRS = "EPSG:32633"


def band(rows: int = 60, cols: int = 500, row0: int = 20, width: int = 5, col0: int = 50,
         length: int = 400, value: float = 0.9) -> np.ndarray:
    """A horizontal crack ``width`` px wide and ``length`` px long."""
    p = np.zeros((rows, cols))
    p[row0:row0 + width, col0:col0 + length] = value
    return p


def diagonal(n: int = 460, start: int = 30, steps: int = 400, half: int = 1) -> np.ndarray:
    """A 45-degree crack: pixels with |row - col| <= half along ``steps`` diagonal steps."""
    p = np.zeros((n, n))
    for i in range(start, start + steps + 1):
        p[i, max(i - half, 0):i + half + 1] = 0.8
    return p


def rel_err(measured: float, expected: float) -> float:
    return abs(measured - expected) / expected


# --------------------------------------------------------------------------- measurements


def test_straight_crack_length_width_area():
    gdf = vectorise_cracks(band(), UTM, CRS)
    assert len(gdf) == 1
    row = gdf.iloc[0]
    assert rel_err(row.length_m, 4.0) < 0.05
    assert rel_err(row.max_width_mm, 50.0) < 0.05
    assert rel_err(row.mean_width_mm, 50.0) < 0.05
    assert row.area_px == 2000
    assert row.area_m2 == pytest.approx(2000 * PX * PX)
    assert row.pixel_size_m == pytest.approx(PX)
    assert row.length_px * PX == pytest.approx(row.length_m)
    assert row.mean_probability == pytest.approx(0.9)
    assert row.max_probability == pytest.approx(0.9)
    assert gdf.attrs["coordinate_space"] == "map"


def test_diagonal_crack_length():
    steps = 400
    gdf = vectorise_cracks(diagonal(steps=steps), UTM, CRS)
    assert len(gdf) == 1
    expected_m = steps * math.sqrt(2) * PX
    assert rel_err(gdf.iloc[0].length_m, expected_m) < 0.05


@pytest.mark.parametrize("width_px", [1, 3, 5, 9])
def test_width_of_bands(width_px):
    gdf = vectorise_cracks(band(width=width_px), UTM, CRS, min_area_px=1)
    row = gdf.iloc[0]
    expected_mm = width_px * PX * 1000
    tol = max(0.05 * expected_mm, PX * 1000)  # 5 % or one pixel
    assert abs(row.max_width_mm - expected_mm) <= tol
    assert abs(row.mean_width_mm - expected_mm) <= tol
    # odd widths are exact on the centre line with the 2*dt - 1 convention
    assert row.max_width_mm == pytest.approx(expected_mm)


def test_vertical_crack_same_as_horizontal():
    h = vectorise_cracks(band(), UTM, CRS).iloc[0]
    v = vectorise_cracks(band().T.copy(), UTM, CRS).iloc[0]
    assert v.max_width_mm == pytest.approx(h.max_width_mm)
    assert v.area_m2 == pytest.approx(h.area_m2)
    # Zhang-Suen thinning is not rotation-symmetric: the skeleton ends differ by a pixel or two
    assert abs(v.length_px - h.length_px) <= 2
    assert v.mean_width_mm == pytest.approx(h.mean_width_mm, rel=0.005)


# --------------------------------------------------------------------------- cleaning


def test_two_cracks_two_rows():
    p = band()
    p[45:48, 10:200] = 0.7
    gdf = vectorise_cracks(p, UTM, CRS)
    assert len(gdf) == 2
    assert list(gdf.crack_id) == [1, 2]
    assert sorted(gdf.area_px) == [190 * 3, 2000]
    assert gdf.geometry.iloc[0].disjoint(gdf.geometry.iloc[1])


def test_diagonal_touching_pixels_are_one_crack():
    p = np.zeros((40, 40))
    for i in range(5, 35):
        p[i, i] = 1.0  # 8-connected only
    gdf = vectorise_cracks(p, UTM, CRS)
    assert len(gdf) == 1
    assert gdf.iloc[0].length_px == pytest.approx(29 * math.sqrt(2))
    assert gdf.geometry.iloc[0].is_valid


def test_specks_below_min_area_removed():
    p = band()
    p[2:5, 2:5] = 1.0  # 9 px speck
    assert len(vectorise_cracks(p, UTM, CRS, min_area_px=20)) == 1
    assert len(vectorise_cracks(p, UTM, CRS, min_area_px=9)) == 2
    assert len(vectorise_cracks(p, UTM, CRS, min_area_px=10)) == 1


def test_threshold_is_inclusive():
    p = band(value=0.5)
    assert len(vectorise_cracks(p, UTM, CRS, threshold=0.5)) == 1
    assert len(vectorise_cracks(p, UTM, CRS, threshold=0.51)) == 0


def test_nodata_mask_excludes_pixels():
    p = band()
    nodata = np.zeros(p.shape, bool)
    nodata[:, 250:] = True  # right half of the crack is nodata
    gdf = vectorise_cracks(p, UTM, CRS, nodata_mask=nodata)
    assert len(gdf) == 1
    assert gdf.iloc[0].area_px == 200 * 5
    assert gdf.total_bounds[2] == pytest.approx(X0 + 250 * PX)
    # a nodata column through the crack splits it in two
    cut = np.zeros(p.shape, bool)
    cut[:, 200] = True
    assert len(vectorise_cracks(p, UTM, CRS, nodata_mask=cut)) == 2


def test_nan_is_nodata():
    p = band()
    p[:, 250:] = np.nan
    assert vectorise_cracks(p, UTM, CRS).iloc[0].area_px == 200 * 5


def test_nodata_mask_must_be_bool():
    p = band()
    with pytest.raises(ValueError, match="read_masks"):
        vectorise_cracks(p, UTM, CRS, nodata_mask=np.full(p.shape, 255, np.uint8))
    with pytest.raises(ValueError, match="shape"):
        vectorise_cracks(p, UTM, CRS, nodata_mask=np.zeros((3, 3), bool))


# --------------------------------------------------------------------------- empty / CRS


@pytest.mark.parametrize("p", [np.zeros((50, 50)), np.full((50, 50), 0.2)])
def test_nothing_found_gives_empty_frame(p):
    gdf = vectorise_cracks(p, UTM, CRS)
    assert isinstance(gdf, gpd.GeoDataFrame)
    assert len(gdf) == 0
    assert tuple(gdf.columns) == CRACK_COLUMNS
    assert gdf.geometry.name == "geometry"
    assert {c: str(t) for c, t in gdf.dtypes.items()} == CRACK_DTYPES
    assert gdf.crs == CRS
    assert gdf.attrs["coordinate_space"] == "map"
    full = vectorise_cracks(band(), UTM, CRS)
    assert (gdf.dtypes == full.dtypes).all()


def test_empty_crack_frame_helper():
    gdf = empty_crack_frame(CRS)
    assert tuple(gdf.columns) == CRACK_COLUMNS and gdf.crs == CRS and len(gdf) == 0


def test_geographic_crs_raises():
    deg = Affine(1e-7, 0, 15.0, 0, -1e-7, 45.0)
    with pytest.raises(CRSError, match="reproject") as exc:
        vectorise_cracks(band(), deg, "EPSG:4326")
    assert "degrees" in str(exc.value)
    assert isinstance(exc.value, ValueError)


@pytest.mark.parametrize("crs", [2263, "not a crs"])  # NY state plane in US feet; garbage
def test_non_metric_or_unreadable_crs_raises(crs):
    with pytest.raises(CRSError):
        vectorise_cracks(band(), UTM, crs)


def test_crs_none_needs_pixel_size():
    with pytest.raises(CRSError, match="pixel_size_m"):
        vectorise_cracks(band(), None, None)


def test_crs_forms_accepted():
    import rasterio.crs

    a = vectorise_cracks(band(), UTM, 32633)
    b = vectorise_cracks(band(), UTM, rasterio.crs.CRS.from_epsg(32633))
    assert a.crs == b.crs == CRS
    assert_geodataframe_equal(a, b)


# --------------------------------------------------------------------------- geometry


def test_geometry_in_map_coordinates_exact():
    gdf = vectorise_cracks(band(), UTM, CRS)  # a rectangle: simplify changes nothing
    geom = gdf.geometry.iloc[0]
    assert geom.geom_type == "MultiPolygon"
    x0, y1 = UTM @ (50, 20)
    x1, y0 = UTM @ (450, 25)
    assert geom.bounds == (x0, y0, x1, y1)
    assert geom.equals(shapely.box(x0, y0, x1, y1))
    assert geom.area == pytest.approx(gdf.iloc[0].area_m2)


def test_simplify_smooths_staircase_and_stays_valid():
    p = diagonal(half=3)
    exact = vectorise_cracks(p, UTM, CRS, simplify_px=0).geometry.iloc[0]
    simple = vectorise_cracks(p, UTM, CRS, simplify_px=1.0).geometry.iloc[0]
    assert simple.is_valid and exact.is_valid
    assert shapely.get_num_coordinates(simple) < shapely.get_num_coordinates(exact) / 10
    assert simple.symmetric_difference(exact).area < 0.1 * exact.area


def test_rotated_transform_uses_sqrt_det():
    theta = math.radians(30)
    rot = Affine(PX * math.cos(theta), -PX * math.sin(theta), X0,
                 -PX * math.sin(theta), -PX * math.cos(theta), Y0)
    gdf = vectorise_cracks(band(), rot, CRS)
    ref = vectorise_cracks(band(), UTM, CRS)
    assert gdf.iloc[0].pixel_size_m == pytest.approx(PX)
    assert gdf.iloc[0].length_m == pytest.approx(ref.iloc[0].length_m)
    assert gdf.geometry.iloc[0].area == pytest.approx(ref.iloc[0].area_m2)


def test_non_square_pixels_warn():
    rect = Affine(0.01, 0, X0, 0, -0.02, Y0)
    with pytest.warns(UserWarning, match="not square"):
        gdf = vectorise_cracks(band(), rect, CRS)
    assert gdf.iloc[0].pixel_size_m == pytest.approx(math.sqrt(0.01 * 0.02))


def test_square_within_one_percent_does_not_warn():
    almost = Affine(0.01, 0, X0, 0, -0.01005, Y0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vectorise_cracks(band(), almost, CRS)


def test_skeletons_separate_geoseries():
    gdf, skel = vectorise_cracks_and_skeletons(band(), UTM, CRS)
    assert isinstance(skel, gpd.GeoSeries) and skel.crs == CRS
    assert skel.index.equals(gdf.index)
    line = skel.iloc[0]
    assert line.geom_type == "LineString"
    assert line.length == pytest.approx(gdf.iloc[0].length_m)
    assert gdf.geometry.iloc[0].contains(line)
    assert list(gdf.columns) == list(CRACK_COLUMNS)  # still one geometry column
    _, empty = vectorise_cracks_and_skeletons(np.zeros((9, 9)), UTM, CRS)
    assert len(empty) == 0 and empty.crs == CRS


def test_frames_concat():
    a = vectorise_cracks(band(), UTM, CRS)
    b = vectorise_cracks(band(row0=30), UTM, CRS)
    assert len(pd.concat([a, b], ignore_index=True)) == 2


# --------------------------------------------------------------------------- input forms


def test_uint8_equals_float():
    rng = np.random.default_rng(0)
    u8 = np.zeros((80, 300), np.uint8)
    u8[20:27, 20:280] = rng.integers(100, 256, size=(7, 260))
    u8[50:53, 30:120] = 200
    a = vectorise_cracks(u8, UTM, CRS)
    b = vectorise_cracks(u8 / 255.0, UTM, CRS)
    assert len(a) >= 2
    assert_geodataframe_equal(a, b)


def test_probability_scale_and_range_checks():
    p16 = (band() * 65535).astype(np.uint16)
    with pytest.raises(ValueError, match="probability_scale"):
        vectorise_cracks(p16, UTM, CRS)
    gdf = vectorise_cracks(p16, UTM, CRS, probability_scale=65535)
    assert gdf.iloc[0].mean_probability == pytest.approx(0.9, abs=1e-4)
    with pytest.raises(ValueError, match="probability_scale"):
        vectorise_cracks(band() * 100, UTM, CRS)
    pct = vectorise_cracks(band() * 100, UTM, CRS, probability_scale=100)
    assert pct.iloc[0].mean_probability == pytest.approx(0.9)


def test_bad_arguments():
    with pytest.raises(ValueError, match="rows, cols"):
        vectorise_cracks(np.zeros((2, 5, 5)), UTM, CRS)
    with pytest.raises(ValueError, match="threshold"):
        vectorise_cracks(band(), UTM, CRS, threshold=0)
    with pytest.raises(TypeError, match="Affine"):
        vectorise_cracks(band(), UTM.to_gdal(), CRS)


def test_single_band_stack_accepted():
    a = vectorise_cracks(band()[None], UTM, CRS)
    assert_geodataframe_equal(a, vectorise_cracks(band(), UTM, CRS))


# --------------------------------------------------------------------------- image mode


def test_image_coordinates_with_pixel_size():
    gsd = 0.002  # 2 mm per pixel
    gdf = vectorise_cracks(band(), None, None, pixel_size_m=gsd)
    assert gdf.crs is None
    assert gdf.attrs["coordinate_space"] == "image"
    assert gdf.geometry.iloc[0].bounds == (50.0, 20.0, 450.0, 25.0)  # (col, row) pixels
    row = gdf.iloc[0]
    assert row.pixel_size_m == gsd
    assert rel_err(row.length_m, 400 * gsd) < 0.05
    assert row.max_width_mm == pytest.approx(5 * gsd * 1000)
    assert row.area_m2 == pytest.approx(2000 * gsd * gsd)
    assert_geodataframe_equal(gdf, vectorise_cracks(band(), Affine.identity(), None,
                                                    pixel_size_m=gsd))
    empty = vectorise_cracks(np.zeros((5, 5)), None, None, pixel_size_m=gsd)
    assert empty.crs is None and tuple(empty.columns) == CRACK_COLUMNS


def test_image_mode_rejects_map_transform():
    with pytest.raises(ValueError, match="identity"):
        vectorise_cracks(band(), UTM, None, pixel_size_m=0.002)


def test_pixel_size_override_with_crs():
    with pytest.warns(UserWarning, match="differs"):
        gdf = vectorise_cracks(band(), UTM, CRS, pixel_size_m=0.02)
    ref = vectorise_cracks(band(), UTM, CRS)
    assert gdf.iloc[0].length_m == pytest.approx(2 * ref.iloc[0].length_m)
    assert gdf.geometry.iloc[0].equals(ref.geometry.iloc[0])  # geometry stays in the CRS


# --------------------------------------------------------------------------- GeoPackage


def test_gpkg_round_trip(tmp_path):
    p = band()
    p[45:48, 10:200] = 0.7
    gdf = vectorise_cracks(p, UTM, CRS)
    path = write_cracks_gpkg(gdf, tmp_path / "out" / "cracks.gpkg")
    back = gpd.read_file(path, layer="cracks")
    assert_geodataframe_equal(back, gdf)
    # overwriting the layer keeps other layers
    write_cracks_gpkg(gdf.iloc[:1], path, layer="first")
    write_cracks_gpkg(gdf, path)
    assert {name for name, _ in pyogrio.list_layers(path)} == {"cracks", "first"}
    assert_geodataframe_equal(gpd.read_file(path, layer="cracks"), gdf)


def test_gpkg_round_trip_empty_and_image(tmp_path):
    empty = vectorise_cracks(np.zeros((10, 10)), UTM, CRS)
    path = write_cracks_gpkg(empty, tmp_path / "e.gpkg")
    assert_geodataframe_equal(gpd.read_file(path), empty, check_index_type=False)
    img = vectorise_cracks(band(), None, None, pixel_size_m=0.002)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = write_cracks_gpkg(img, tmp_path / "i.gpkg")
    back = gpd.read_file(path)
    assert back.crs is None
    assert_geodataframe_equal(back, img)


def test_gpkg_rejects_second_geometry_column(tmp_path):
    gdf, skel = vectorise_cracks_and_skeletons(band(), UTM, CRS)
    gdf["skeleton"] = skel
    with pytest.raises(ValueError, match="one geometry column"):
        write_cracks_gpkg(gdf, tmp_path / "x.gpkg")
