"""Tiled inference on the real WebODM orthophoto (RGBA, striped, EPSG:32615) and the CLI."""

from __future__ import annotations

import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from builders import write_geotiff
from typer.testing import CliRunner

from engine.collar import collar_mask
from engine.infer import predict_raster
from engine.raster_read import StripedRasterWarning
from engine.registry import load_model
from jobs.cli import app
from tests.conftest import require_real_data

pytestmark = pytest.mark.realdata
runner = CliRunner()


def orthophoto() -> Path:
    return require_real_data("geo", "webodm_fixtures", "orthophoto.tif")


def test_real_orthophoto_crs_transform_alpha(tmp_path):
    src_path = orthophoto()
    model = load_model()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = predict_raster(src_path, model, out_path=tmp_path / "p.tif", tile_size=128,
                             overlap=32, progress=False)
    assert any(issubclass(w.category, StripedRasterWarning) for w in caught)
    with rasterio.open(src_path) as src, rasterio.open(res.path) as out:
        assert out.crs == src.crs and out.crs.to_epsg() == 32615
        assert out.transform == src.transform
        assert (out.width, out.height) == (src.width, src.height)
        alpha_nodata = src.dataset_mask() == 0
        out_nodata = out.read_masks(1) == 0
        assert alpha_nodata.any()
        # nodata: the alpha band's, plus the white collar the alpha band calls opaque
        collar = collar_mask(src.read([1, 2, 3]), ~alpha_nodata)
        assert 0.1 < collar.mean() < 0.3  # the white corners around the footprint
        assert np.array_equal(out_nodata, alpha_nodata | collar)
        assert out.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"


def test_cli_infer_writes_cog_and_geopackage(tmp_path):
    src_path = orthophoto()
    out = tmp_path / "out"
    r = runner.invoke(app, ["infer", str(src_path), "--out", str(out), "--tile-size", "128",
                            "--overlap", "32"])
    assert r.exit_code == 0, r.output
    assert "cracks" in r.output and "megapixels/s" in r.output
    gpkg = out / "orthophoto_cracks.gpkg"
    gdf = gpd.read_file(gpkg, layer="cracks")
    assert gdf.crs.to_epsg() == 32615
    for col in ("length_m", "max_width_mm", "area_m2", "mean_probability"):
        assert col in gdf.columns
    assert (out / "orthophoto_probability.tif").is_file()


def test_cli_infer_bad_input(tmp_path):
    bad = tmp_path / "bad.tif"
    bad.write_text("nope")
    r = runner.invoke(app, ["infer", str(bad), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "not a readable raster" in r.output
    r = runner.invoke(app, ["infer", str(tmp_path / "missing.tif")])
    assert r.exit_code == 2 and "does not exist" in r.output


def test_cli_infer_photo_set_survives_a_bad_photo(tmp_path):
    import shutil

    src = require_real_data("geo", "webodm_fixtures")
    photos = tmp_path / "photos"
    photos.mkdir()
    for p in sorted(src.glob("tiny_drone_image*.jpg")):
        shutil.copy(p, photos / p.name)
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    out = tmp_path / "out"
    r = runner.invoke(app, ["infer", str(photos), "--out", str(out), "--gsd-m", "0.005"])
    assert r.exit_code == 0, r.output
    assert "broken.jpg" in r.output
    gpkg = out / "photos_cracks.gpkg"
    layers = gpd.list_layers(gpkg)["name"].tolist()
    assert {"cracks", "photos"} <= set(layers)
    photos_layer = gpd.read_file(gpkg, layer="photos")
    assert len(photos_layer) == 2 and photos_layer.crs.is_projected
    assert (photos_layer["gsd_m"] == 0.005).all()


def test_real_photo_same_probabilities_before_and_after_the_cpu_rewrite(tmp_path, monkeypatch):
    """Issue 14: Conv-BN folding, channels_last and the reused blending buffers change float
    rounding only. A real UAV75 bridge photo (with an assigned, not surveyed, geotransform)
    is inferred with the model as loaded ("before") and as tiled inference now runs it (the
    default runtime: OpenVINO where installed, engine.runtime)."""
    from PIL import Image
    from rasterio.transform import from_origin

    import engine.infer

    photo = Path(__file__).resolve().parents[2] / "jobs/demo_data/uav75/photos/DSC00550.jpg"
    rgb = np.asarray(Image.open(photo).convert("RGB")).transpose(2, 0, 1)
    tif = tmp_path / "uav75_DSC00550_assigned_geotransform.tif"
    write_geotiff(tif, rgb, crs="EPSG:32633",
                  transform=from_origin(500000, 5000000, 0.00025, 0.00025))
    model = load_model()
    after = predict_raster(tif, model, out_path=tmp_path / "after.tif", tile_size=256,
                           overlap=64, progress=False, dtype="float32")
    monkeypatch.setattr(engine.infer, "module_for_inference", lambda m, device: m)
    before = predict_raster(tif, model, out_path=tmp_path / "before.tif", tile_size=256,
                            overlap=64, progress=False, dtype="float32")
    with rasterio.open(before.path) as b, rasterio.open(after.path) as a:
        pb, pa = b.read(1), a.read(1)
    assert np.isfinite(pb).all() and (pb > 0.5).sum() > 500  # the photo has real cracks
    assert np.abs(pa - pb).max() < 1e-3
    assert ((pa > 0.5) != (pb > 0.5)).sum() <= 10  # of 262,144 pixels


def _edge_share(cracks: gpd.GeoDataFrame, invalid: np.ndarray, transform, band_px: int
                ) -> list[float]:
    """Per crack polygon, the share of its pixels within ``band_px`` of ``invalid`` or the
    frame (measured here independently of the vectoriser)."""
    from rasterio.features import rasterize
    from scipy import ndimage

    near = ndimage.distance_transform_edt(~np.pad(invalid, 1, constant_values=True))[
        1:-1, 1:-1] <= band_px
    shares = []
    for geom in cracks.geometry:
        px = rasterize([geom], out_shape=invalid.shape, transform=transform) > 0
        shares.append(float(near[px].mean()) if px.any() else 0.0)
    return shares


def test_no_crack_follows_the_webodm_footprint_edge(tmp_path):
    from engine.survey import InferenceSettings, infer_orthomosaic

    src_path = orthophoto()
    model = load_model("crackwatch-unet-mnv2-concrete-neg")
    with rasterio.open(src_path) as src:
        invalid = src.dataset_mask() == 0
        invalid |= collar_mask(src.read([1, 2, 3]), ~invalid)
        transform = src.transform
    found = {}
    for band in (0, 8):
        out = infer_orthomosaic(src_path, model, InferenceSettings(tile_size=256, overlap=32,
                                                                   edge_band_px=band),
                                out_path=tmp_path / f"p{band}.tif", progress=False)
        found[band] = _edge_share(out.cracks, invalid, transform, 8)
    assert sum(s >= 0.5 for s in found[0]) >= 3  # without the rule: cracks along the edge
    assert all(s < 0.5 for s in found[8])  # with it (the default): none
    assert len(found[8]) < len(found[0])


def test_a_real_crack_inside_a_feathered_alpha_collar_stays(tmp_path):
    """A real UAV75 crack photo (demo data, GPL-3.0) as an RGBA orthomosaic whose footprint
    ends in a 6 px white collar and a 12 px feathered alpha ramp: the crack is found as on
    the bare photo, nothing along the collar."""
    from PIL import Image
    from rasterio.transform import from_origin

    from engine.survey import InferenceSettings, infer_orthomosaic
    from jobs.demo import DEMO_DATA

    src = DEMO_DATA / "uav75" / "growth_source"
    rgb = np.asarray(Image.open(src / "DSC00555b.jpg").convert("RGB"))
    label = np.asarray(Image.open(src / "DSC00555b.png").convert("L")) > 127
    pad, n = 40, rgb.shape[0]
    size = n + 2 * pad
    data = np.zeros((4, size, size), np.uint8)
    data[:3] = 255
    data[:3, pad:pad + n, pad:pad + n] = rgb.transpose(2, 0, 1)
    data[:3, pad:pad + 6, pad:pad + n] = 255  # white collar on two sides, inside the data
    data[:3, pad:pad + n, pad:pad + 6] = 255
    yy, xx = np.mgrid[:size, :size]
    dist = np.minimum.reduce([yy - (pad - 12), xx - (pad - 12), pad + n - 1 - yy,
                              pad + n - 1 - xx])
    data[3] = np.clip(dist * 255 / 12, 0, 255).astype(np.uint8)  # feathered alpha
    path = write_geotiff(tmp_path / "collar.tif", data, crs="EPSG:32633",
                         transform=from_origin(500_000, 6_600_000, 0.0005, 0.0005),
                         photometric="RGB", alpha="YES")
    bare = write_geotiff(tmp_path / "bare.tif", rgb.transpose(2, 0, 1), crs="EPSG:32633",
                         transform=from_origin(500_000 + pad * 0.0005,
                                               6_600_000 - pad * 0.0005, 0.0005, 0.0005))
    model = load_model("crackwatch-unet-mnv2-concrete-neg")
    settings = InferenceSettings(tile_size=256, overlap=32)
    with_collar = infer_orthomosaic(path, model, settings, out_path=tmp_path / "a.tif",
                                    progress=False)
    alone = infer_orthomosaic(bare, model, settings, out_path=tmp_path / "b.tif",
                              progress=False)
    crack = shapely_union(alone.cracks)
    found = shapely_union(with_collar.cracks)
    assert crack.area > 0
    assert found.intersection(crack).area / crack.area > 0.9  # the crack stays
    assert label[found_mask(with_collar.cracks, size, pad)].mean() > 0.5  # on the label
    with rasterio.open(path) as ds:
        invalid = ds.dataset_mask() == 0
        invalid |= collar_mask(ds.read([1, 2, 3]), ~invalid)
        assert all(s < 0.5 for s in _edge_share(with_collar.cracks, invalid, ds.transform, 8))


def found_mask(cracks: gpd.GeoDataFrame, size: int, pad: int) -> np.ndarray:
    """The cracks' pixels in the bare photo's frame (the orthomosaic less ``pad``)."""
    from rasterio.features import rasterize
    from rasterio.transform import from_origin

    px = rasterize(list(cracks.geometry), out_shape=(size, size),
                   transform=from_origin(500_000, 6_600_000, 0.0005, 0.0005)) > 0
    return px[pad:size - pad, pad:size - pad]


def shapely_union(cracks: gpd.GeoDataFrame):
    import shapely

    return shapely.union_all(np.asarray(cracks.geometry.values))
