"""The collar of an orthomosaic (engine.collar) and cracks that follow the edge of the data
(geodata.vectorise ``edge_band_px``), issue 25."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine

from engine.collar import collar_mask
from geodata.vectorise import vectorise_cracks

T = Affine(0.002, 0, 500_000, 0, -0.002, 6_600_000)


def _scene() -> tuple[np.ndarray, np.ndarray]:
    """(3, 100, 100) ground with a 10 px white collar on the left (valid), nodata left of it,
    and a white square in the middle (a white wall: not collar)."""
    rgb = np.full((3, 100, 100), 110, np.uint8)
    valid = np.ones((100, 100), bool)
    valid[:, :5] = False
    rgb[:, :, :15] = 255
    rgb[:, 40:60, 40:60] = 255
    return rgb, valid


def test_collar_is_saturated_and_reaches_nodata_or_the_frame():
    rgb, valid = _scene()
    c = collar_mask(rgb, valid)
    assert c[:, 5:15].all() and not c[:, :5].any()  # invalid pixels are not collar
    assert not c[40:60, 40:60].any()  # a white wall inside the image is ground
    assert not c[:, 15:].any()
    black = np.zeros((3, 50, 50), np.uint8)
    black[:, 10:40, 10:40] = 120
    assert collar_mask(black).sum() == 50 * 50 - 30 * 30  # a black frame, no mask
    # a window inside an orthomosaic: its inner sides are not the frame
    assert not collar_mask(black, frame=(False, False, False, False)).any()
    with pytest.raises(ValueError, match="uint8"):
        collar_mask(black.astype(np.float32))


def test_cracks_that_follow_the_edge_of_the_data_are_dropped_and_crossing_ones_kept():
    prob = np.zeros((100, 100), np.float32)
    prob[:, :5] = np.nan  # nodata
    prob[10:45, 7:10] = 0.9  # along the nodata edge, 2-4 px from it
    prob[50:53, 6:80] = 0.9  # starts at the edge and runs into the image
    prob[20:80, 96:99] = 0.9  # along the raster frame
    prob[30:33, 30:70] = 0.9  # in the middle
    all_ = vectorise_cracks(prob, T, "EPSG:32633", min_area_px=5)
    kept = vectorise_cracks(prob, T, "EPSG:32633", min_area_px=5, edge_band_px=8)
    assert sorted(all_["area_px"]) == [3 * 35, 3 * 40, 3 * 60, 3 * 74]
    assert sorted(kept["area_px"]) == [3 * 40, 3 * 74]
    assert list(kept["crack_id"]) == [1, 2]  # renumbered
    assert len(vectorise_cracks(prob, T, "EPSG:32633", min_area_px=5, edge_band_px=0)) == 4


def test_vegetation_is_not_observable_ground_but_a_plant_in_a_fracture_is():
    from engine.observable import vegetation_mask

    rgb = np.full((120, 120, 3), 120, np.uint8)  # grey rock
    rgb[:, :60] = (60, 140, 50)  # a bush covering the left half
    rgb[80:84, 60:] = (20, 20, 20)  # a fracture ...
    rgb[80:84, 90:100] = (60, 140, 50)  # ... with a plant growing in it
    veg = vegetation_mask(rgb)
    assert veg[:, :60].all() and veg[:, 60:63].all()  # the canopy's edge too
    assert not veg[:, 70:].any()  # the plant in the fracture is narrower than the opening
    assert np.array_equal(veg, vegetation_mask(np.ascontiguousarray(rgb.transpose(2, 0, 1))))
    prob = np.zeros((120, 120), np.float32)
    prob[30:33, 5:55] = 0.9  # a dark gap in the canopy
    prob[80:84, 62:118] = 0.9  # the fracture
    kept = vectorise_cracks(prob, T, "EPSG:32633", min_area_px=5, exclude_mask=veg)
    assert list(kept["area_px"]) == [4 * 56]
    with pytest.raises(ValueError, match="exclude_mask shape"):
        vectorise_cracks(prob, T, "EPSG:32633", exclude_mask=veg[:10])


def test_the_not_observable_layer_is_the_mask_as_polygons_in_map_units():
    from engine.observable import vegetation_polygons

    t = Affine(0.05, 0, 500000, 0, -0.05, 4000000)  # 5 cm pixels, UTM metres
    mask = np.zeros((3000, 2000), bool)
    mask[:1000, :1000] = True  # a 50 x 50 m bush
    mask[2000:2003, 1500:1503] = True  # a 3 px speck: below the layer's resolution
    geom = vegetation_polygons(mask, t)
    assert geom.area == pytest.approx(50 * 50, rel=0.01)
    minx, miny, maxx, maxy = geom.bounds
    assert (minx, maxy) == pytest.approx((500000, 4000000)) and maxx == pytest.approx(500050)
    assert vegetation_polygons(np.zeros((10, 10), bool), t) is None
    # the reduced grid keeps the layer small: at most ~1024 px a side are polygonised
    ring = len(geom.exterior.coords) if geom.geom_type == "Polygon" else 0
    assert 0 < ring <= 10
