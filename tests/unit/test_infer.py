"""Tiled raster inference: CRS/transform exactness, seamless blending, nodata, bad input."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from builders import write_geotiff
from rasterio.crs import CRS
from rasterio.transform import from_origin
from rasterio.vrt import WarpedVRT
from torch import nn

from engine.errors import BandLayoutError, CRSError, RasterReadError
from engine.infer import predict_image, predict_raster
from engine.raster_read import StripedRasterWarning
from engine.tiling import blend_weights, window_starts


class ConstantModel(nn.Module):
    """Predicts the same probability everywhere (logit of ``p``)."""

    def __init__(self, p: float):
        super().__init__()
        self.logit = float(np.log(p / (1 - p)))

    def forward(self, x):
        return torch.full_like(x[:, :1], self.logit)


class DarkModel(nn.Module):
    """'Crack' = dark pixels: a fixed, exact stand-in for a trained model."""

    def forward(self, x):
        grey = x.mean(1, keepdim=True)  # ImageNet-normalised; dark pixels are strongly negative
        return -8.0 * (grey + 1.0)


def write_raster(path: Path, data: np.ndarray, crs, transform, **extra) -> Path:
    """A GeoTIFF tiled in 64 px blocks (see builders.write_geotiff)."""
    return write_geotiff(path, data, crs=crs, transform=transform,
                         **{"tiled": True, "blockxsize": 64, "blockysize": 64, **extra})


def grey_rgb(rows: int, cols: int, value: int = 180) -> np.ndarray:
    return np.full((3, rows, cols), value, np.uint8)


def test_window_starts_cover_and_stay_inside():
    for n, tile, stride in [(1000, 256, 192), (256, 256, 192), (100, 256, 192), (513, 64, 48)]:
        starts = window_starts(n, tile, stride)
        assert starts[0] == 0
        assert starts[-1] + min(tile, n) == n
        assert all(b - a <= stride for a, b in zip(starts, starts[1:], strict=False))


def test_blend_weights_smooth_and_positive():
    w = blend_weights(64, 16)
    assert w.shape == (64, 64) and w.min() > 0 and w.max() == pytest.approx(1.0)
    assert w[0, 0] < 0.01 and w[32, 32] == 1.0
    assert np.all(np.diff(w[32, :16]) > 0)  # rises smoothly across the overlap


@pytest.mark.parametrize("epsg", [32633, 2056])
def test_projected_crs_and_transform_exact(tmp_path, epsg):
    transform = from_origin(500000.0 if epsg == 32633 else 2600000.0, 1200000.0, 0.02, 0.02)
    src = write_raster(tmp_path / "in.tif", grey_rgb(150, 230), CRS.from_epsg(epsg), transform,
                       tiled=True, blockxsize=64, blockysize=64)
    res = predict_raster(src, ConstantModel(0.3), out_path=tmp_path / "p.tif", tile_size=64,
                         overlap=16, progress=False)
    with rasterio.open(res.path) as out:
        assert out.crs == CRS.from_epsg(epsg)
        assert out.transform == transform
        assert (out.height, out.width) == (150, 230)
        assert out.profile["tiled"] and out.compression.name.lower() == "deflate"
        assert out.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
    assert res.reprojected_from is None


def test_geographic_crs_is_reprojected_to_utm_and_logged(tmp_path, caplog):
    transform = from_origin(13.19, 55.71, 1e-6, 1e-6)
    src = write_raster(tmp_path / "geo.tif", grey_rgb(120, 100), CRS.from_epsg(4326), transform)
    res = predict_raster(src, ConstantModel(0.5), out_path=tmp_path / "p.tif", tile_size=64,
                         overlap=16, progress=False)
    assert res.reprojected_from == "EPSG:4326"
    assert any("reprojected" in r.message for r in caplog.records)
    with rasterio.open(src) as s, WarpedVRT(s, crs="EPSG:32633", add_alpha=True) as vrt:
        expected_transform, expected_shape = vrt.transform, (vrt.height, vrt.width)
    with rasterio.open(res.path) as out:
        assert out.crs == CRS.from_epsg(32633)  # UTM 33N contains lon 13.19
        assert out.transform == expected_transform
        assert (out.height, out.width) == expected_shape


def test_constant_model_gives_seamless_constant_map(tmp_path):
    src = write_raster(tmp_path / "in.tif", grey_rgb(200, 300), "EPSG:32633",
                       from_origin(0, 0, 0.01, 0.01))
    res = predict_raster(src, ConstantModel(0.37), out_path=tmp_path / "f.tif", tile_size=64,
                         overlap=24, dtype="float32", progress=False)
    with rasterio.open(res.path) as out:
        p = out.read(1)
    assert np.allclose(p, 0.37, atol=1e-5)
    res8 = predict_raster(src, ConstantModel(0.37), out_path=tmp_path / "u.tif", tile_size=64,
                          overlap=24, progress=False)
    with rasterio.open(res8.path) as out:
        assert np.all(out.read(1) == round(0.37 * 255))
        assert np.all(out.read_masks(1) == 255)


def test_nodata_windows_skipped_and_masked(tmp_path):
    data = np.zeros((4, 128, 256), np.uint8)
    data[:3] = 200
    data[3, :, 128:] = 255  # alpha: left half is outside the footprint
    src = write_raster(tmp_path / "rgba.tif", data, "EPSG:32615", from_origin(0, 0, 0.5, 0.5),
                       photometric="RGB")
    with rasterio.open(src, "r+") as ds:
        ds.colorinterp = [rasterio.enums.ColorInterp.red, rasterio.enums.ColorInterp.green,
                          rasterio.enums.ColorInterp.blue, rasterio.enums.ColorInterp.alpha]
    res = predict_raster(src, ConstantModel(0.8), out_path=tmp_path / "p.tif", tile_size=64,
                         overlap=0, progress=False)
    assert res.windows_skipped == 2 * 2  # 2 rows x 2 cols of all-alpha windows
    with rasterio.open(res.path) as out:
        m = out.read_masks(1)
        p = out.read(1)
    assert np.all(m[:, :128] == 0) and np.all(m[:, 128:] == 255)
    assert np.all(p[:, 128:] == round(0.8 * 255))


def test_dark_crack_found_where_it_is(tmp_path):
    img = grey_rgb(256, 256)
    img[:, 100:103, 20:230] = 20  # a dark 3-px line
    src = write_raster(tmp_path / "c.tif", img, "EPSG:32633", from_origin(0, 0, 0.001, 0.001))
    res = predict_raster(src, DarkModel(), out_path=tmp_path / "p.tif", tile_size=64,
                         overlap=16, progress=False)
    with rasterio.open(res.path) as out:
        p = out.read(1)
    assert np.all(p[100:103, 20:230] > 200) and p[:95].max() < 10


def test_16bit_single_band_is_stretched(tmp_path):
    data = np.full((1, 80, 90), 30000, np.uint16)
    data[0, 40:42] = 1000
    src = write_raster(tmp_path / "g16.tif", data, "EPSG:32633", from_origin(0, 0, 0.01, 0.01))
    res = predict_raster(src, DarkModel(), out_path=tmp_path / "p.tif", tile_size=64,
                         overlap=16, progress=False)
    assert any("stretched" in w for w in res.warnings)
    assert any("replicated" in w for w in res.warnings)
    with rasterio.open(res.path) as out:
        p = out.read(1)
    assert p[40:42].min() > 200 and p[:30].max() < 10


def test_striped_raster_warns_with_fix(tmp_path):
    src = write_raster(tmp_path / "s.tif", grey_rgb(64, 64), "EPSG:32633",
                       from_origin(0, 0, 1, 1), tiled=False, blockysize=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        predict_raster(src, ConstantModel(0.5), out_path=tmp_path / "p.tif", tile_size=64,
                       overlap=0, progress=False)
    msgs = [str(w.message) for w in caught if issubclass(w.category, StripedRasterWarning)]
    assert msgs and "gdal_translate -of COG" in msgs[0]


def test_missing_crs_refused_unless_given(tmp_path):
    src = write_raster(tmp_path / "n.tif", grey_rgb(64, 64), None, from_origin(0, 0, 0.1, 0.1))
    with pytest.raises(CRSError, match="no CRS.*--crs"):
        predict_raster(src, ConstantModel(0.5), out_path=tmp_path / "p.tif", tile_size=64,
                       overlap=0, progress=False)
    res = predict_raster(src, ConstantModel(0.5), out_path=tmp_path / "p.tif", tile_size=64,
                         overlap=0, crs="EPSG:32633", progress=False)
    with rasterio.open(res.path) as out:
        assert out.crs == CRS.from_epsg(32633)


def test_bad_files_are_clear_errors(tmp_path):
    text = tmp_path / "notes.tif"
    text.write_text("not a raster")
    with pytest.raises(RasterReadError, match="not a readable raster"):
        predict_raster(text, ConstantModel(0.5), out_path=tmp_path / "p.tif", progress=False)
    empty = tmp_path / "empty.tif"
    empty.write_bytes(b"")
    with pytest.raises(RasterReadError):
        predict_raster(empty, ConstantModel(0.5), out_path=tmp_path / "p.tif", progress=False)
    good = write_raster(tmp_path / "g.tif", grey_rgb(256, 256), "EPSG:32633",
                        from_origin(0, 0, 1, 1), compress="deflate", tiled=True)
    data = good.read_bytes()
    trunc = tmp_path / "trunc.tif"
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(RasterReadError, match="truncated|not a readable"):
        predict_raster(trunc, ConstantModel(0.5), out_path=tmp_path / "p.tif", tile_size=64,
                       overlap=16, progress=False)
    with pytest.raises(RasterReadError, match="does not exist"):
        predict_raster(tmp_path / "nope.tif", ConstantModel(0.5), out_path=tmp_path / "p.tif")
    cplx = write_raster(tmp_path / "c.tif", np.zeros((1, 8, 8), np.complex64), "EPSG:32633",
                        from_origin(0, 0, 1, 1))
    with pytest.raises(BandLayoutError, match="complex"):
        predict_raster(cplx, ConstantModel(0.5), out_path=tmp_path / "p.tif", progress=False)
    assert not (tmp_path / "p.partial.tif").exists()


def test_each_package_error_has_one_root_and_there_is_one_crs_error(tmp_path):
    """`except EngineError` catches what the engine raises on purpose (still an OSError or
    ValueError too); a CRS problem is the one CRSError, a GeodataError, by either name."""
    from engine.errors import EngineError
    from geodata.errors import CRSError as GeodataCRSError
    from geodata.errors import GeodataError

    with pytest.raises(EngineError) as missing:
        predict_raster(tmp_path / "nope.tif", ConstantModel(0.5), out_path=tmp_path / "p.tif")
    assert isinstance(missing.value, RasterReadError) and isinstance(missing.value, OSError)
    src = write_raster(tmp_path / "n.tif", grey_rgb(64, 64), None, from_origin(0, 0, 0.1, 0.1))
    with pytest.raises(GeodataCRSError, match="no CRS") as no_crs:
        predict_raster(src, ConstantModel(0.5), out_path=tmp_path / "p.tif", tile_size=64,
                       overlap=0, progress=False)
    assert CRSError is GeodataCRSError
    assert isinstance(no_crs.value, GeodataError) and isinstance(no_crs.value, ValueError)


def test_bad_tiling_parameters(tmp_path):
    src = write_raster(tmp_path / "g.tif", grey_rgb(64, 64), "EPSG:32633", from_origin(0, 0, 1, 1))
    with pytest.raises(ValueError, match="multiple of 32"):
        predict_raster(src, ConstantModel(0.5), out_path=tmp_path / "p.tif", tile_size=100)


def test_predict_image_constant_and_valid_mask():
    img = np.full((150, 170, 3), 120, np.uint8)
    valid = np.ones((150, 170), bool)
    valid[:10] = False
    p = predict_image(img, ConstantModel(0.25), tile_size=64, overlap=16, valid=valid)
    assert p.shape == (150, 170)
    assert np.isnan(p[:10]).all() and np.allclose(p[10:], 0.25, atol=1e-5)


def test_straight_crack_measured_end_to_end(tmp_path):
    """Synthetic 400 x 5 px dark crack at 0.01 m/px: length 4 m, width 50 mm, within 5 %."""
    from geodata.vectorise import vectorise_cracks

    img = grey_rgb(300, 500)
    img[:, 150:155, 50:450] = 15
    src = write_raster(tmp_path / "c.tif", img, "EPSG:32633", from_origin(400000, 5e6, 0.01, 0.01))
    res = predict_raster(src, DarkModel(), out_path=tmp_path / "p.tif", tile_size=128,
                         overlap=32, progress=False)
    with rasterio.open(res.path) as out:
        gdf = vectorise_cracks(out.read(1), out.transform, out.crs,
                               nodata_mask=out.read_masks(1) == 0)
    assert len(gdf) == 1 and gdf.crs.to_epsg() == 32633
    crack = gdf.iloc[0]
    assert crack["length_m"] == pytest.approx(4.0, rel=0.05)
    assert crack["max_width_mm"] == pytest.approx(50.0, rel=0.05)
    assert crack["area_m2"] == pytest.approx(400 * 5 * 1e-4, rel=0.05)


def test_tta_is_recorded_and_keeps_an_equivariant_result(tmp_path):
    """DarkModel is pixel-wise, so flip TTA must give the same map; the run says it used TTA."""
    img = grey_rgb(128, 160)
    img[:, 40:43, 10:150] = 20
    src = write_raster(tmp_path / "c.tif", img, "EPSG:32633", from_origin(0, 0, 0.001, 0.001))
    plain = predict_raster(src, DarkModel(), out_path=tmp_path / "p.tif", tile_size=64,
                           overlap=16, progress=False)
    tta = predict_raster(src, DarkModel(), out_path=tmp_path / "t.tif", tile_size=64,
                         overlap=16, progress=False, tta=True)
    with rasterio.open(plain.path) as a, rasterio.open(tta.path) as b:
        assert np.array_equal(a.read(1), b.read(1))
    assert any("test-time augmentation" in n for n in tta.warnings)
    assert not any("test-time augmentation" in n for n in plain.warnings)
    p = predict_image(img.transpose(1, 2, 0).copy(), DarkModel(), tile_size=64, overlap=16,
                      tta=True)
    assert p.shape == (128, 160) and p[40:43, 10:150].min() > 0.8


def _naive_blend(rows, cols, tile, windows, dtype):
    """The blending as written before the reusable buffers: full-size num/den, fresh arrays."""
    num = np.zeros((rows, cols), np.float32)
    den = np.zeros((rows, cols), np.float32)
    for r, c, p, v, w in windows:
        wt = w * v
        num[r:r + tile, c:c + tile] += p * wt
        den[r:r + tile, c:c + tile] += wt
    prob, mask = num / np.maximum(den, 1e-12), den > 0
    if dtype == "uint8":
        return np.rint(np.clip(prob, 0, 1) * 255).astype(np.uint8), np.where(mask, 255, 0)
    return np.where(mask, prob, np.nan).astype(np.float32), None


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_row_band_blender_reuses_its_buffers_and_matches_plain_blending(dtype):
    from engine.tiling import RowBandBlender

    rng = np.random.default_rng(3)
    tile, overlap, rows, cols = 64, 16, 200, 150
    w = blend_weights(tile, overlap)
    starts_r, starts_c = window_starts(rows, tile, 48), window_starts(cols, tile, 48)
    windows = []
    for r in starts_r:
        for c in starts_c:
            valid = rng.random((tile, tile)) > 0.05
            windows.append((r, c, rng.random((tile, tile), dtype=np.float32), valid, w))
    band = RowBandBlender(tile, tile, cols, w)
    ids = {id(b) for b in band.buffers()}
    sizes = sum(b.nbytes for b in band.buffers())
    out_v = np.zeros((rows, cols), np.uint8 if dtype == "uint8" else np.float32)
    out_m = np.zeros((rows, cols), np.uint8)

    def take(upto):
        top = band.top
        got = band.take(upto, dtype)
        out_v[top:upto] = got[0]
        if got[1] is not None:
            out_m[top:upto] = got[1]
        # same arrays after every batch and flush: nothing allocated, nothing grows
        assert {id(b) for b in band.buffers()} == ids
        assert sum(b.nbytes for b in band.buffers()) == sizes

    for r, c, p, v, _ in windows:
        while r > band.top:
            take(min(r, band.top + tile))
        band.add(c, p, v)
    while band.top < rows:
        take(min(rows, band.top + tile))
    want_v, want_m = _naive_blend(rows, cols, tile, windows, dtype)
    assert np.array_equal(out_v, want_v, equal_nan=dtype == "float32")  # bitwise
    if want_m is not None:
        assert np.array_equal(out_m, want_m)
    assert band.take(band.top, dtype) is None


def test_a_killed_runs_probability_files_are_removed_by_the_next_run(tmp_path):
    """Issue 30, item 7: files of a run killed mid-prediction (dead pid, not written for 10
    minutes) go; a live run's (this pid, or a recent file that may belong to a run on another
    machine sharing the folder) and other files stay."""
    import os
    import subprocess
    import sys
    import time

    from engine.run_files import STALE_RUN_FILE_S, remove_stale_run_files

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    out = tmp_path / "ortho_prob.tif"
    old = time.time() - STALE_RUN_FILE_S - 5
    names = {f"ortho_prob.run-{dead}-ab12cd34.tif": True,
             f"ortho_prob.run-{dead}-ab12cd34.partial.tif": True,
             f"ortho_prob.run-{os.getpid()}-0000aaaa.partial.tif": False,  # this process
             f"other.run-{dead}-ab12cd34.tif": False,  # another map's
             "ortho_prob.tif": False}
    for name in names:
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, (old, old))
    recent = tmp_path / f"ortho_prob.run-{dead}-ffff0000.partial.tif"
    recent.write_bytes(b"x")  # still being written (by a run elsewhere): kept
    removed = remove_stale_run_files(out)
    assert sorted(p.name for p in removed) == sorted(n for n, gone in names.items() if gone)
    assert recent.exists()
    assert all((tmp_path / n).exists() != gone for n, gone in names.items())
