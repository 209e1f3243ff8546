"""Hostile and absurd input (issue 30), on SQLite and PostGIS: no file read or URL fetched
outside the inbox, no survey from a 200,000 x 200,000 px declaration, no traceback or silenced
site from a year-9999 photo, no RED alert from a camera 1e30 m above ground."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import numpy as np
import pytest
import rasterio
from builders import http_server, make_jpeg, write_geotiff
from rasterio.transform import from_origin
from sqlalchemy import select

from engine.errors import RasterReadError, RasterRefusedError
from geodata import store
from geodata.plausibility import ImplausibleMetadata
from geodata.store import models as m
from geodata.store.engine import session_scope
from jobs.inbox import InboxRefusal, ingest, scan_inbox

EPSG = 32633
T = from_origin(500_000, 6_600_000, 0.002, 0.002)


def _vrt(target: str) -> str:
    return (f'<VRTDataset rasterXSize="64" rasterYSize="64"><SRS>EPSG:{EPSG}</SRS>'
            f'<GeoTransform>500000, 0.002, 0, 6600000, 0, -0.002</GeoTransform>'
            f'<VRTRasterBand dataType="Byte" band="1"><SimpleSource><SourceFilename '
            f'relativeToVRT="0">{target}</SourceFilename><SourceBand>1</SourceBand>'
            f'</SimpleSource></VRTRasterBand></VRTDataset>')


class _Counting(BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_HEAD(self):  # noqa: N802 (http.server's names)
        _Counting.requests.append(f"HEAD {self.path}")
        self.send_response(404)
        self.end_headers()

    def do_GET(self):  # noqa: N802
        _Counting.requests.append(f"GET {self.path}")
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args):
        pass


def _inbox_site(engine, tmp_path: Path, tz: str = "UTC") -> Path:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    store.add_site(engine, "cut", profile="slope", crs_epsg=EPSG, inbox=str(inbox), timezone=tz)
    return inbox


def _good_ortho(path: Path) -> Path:
    data = np.full((3, 64, 64), 120, np.uint8)
    return write_geotiff(path, data, crs=f"EPSG:{EPSG}", transform=T,
                         tags={"TIFFTAG_DATETIME": "2026:06:01 10:00:00"})


def _surveys(engine) -> list[str]:
    with session_scope(engine) as s:
        return [Path(p).name for p in s.scalars(select(m.Survey.source_path))]


def test_inbox_rasters_are_data_never_references_to_files_or_urls(engine, tmp_path):
    inbox = _inbox_site(engine, tmp_path)
    secret = _good_ortho(tmp_path / "secret.tif")  # outside the inbox
    _Counting.requests = []
    with http_server(_Counting, "/remote.tif") as url:
        (inbox / "a_points_at_secret.vrt").write_text(_vrt(str(secret)))
        (inbox / "b_vrt_named.img").write_text(_vrt(str(secret)))
        (inbox / "c_vrt_named.tif").write_text(_vrt(f"/vsicurl/{url}"))
        (inbox / "d_vrt_named.jp2").write_text(_vrt(str(secret)))
        _good_ortho(inbox / "e_real.tif")
        refused: list[InboxRefusal] = []
        found = scan_inbox(engine, "cut", settle_s=0, refused=refused)
        time.sleep(0.2)
    assert [Path(sv.source_path).name for sv in found] == ["e_real.tif"]
    assert _surveys(engine) == ["e_real.tif"]
    assert _Counting.requests == []  # GDAL never fetched the URL
    why = {r.path.name: r for r in refused}
    assert set(why) == {"a_points_at_secret.vrt", "b_vrt_named.img", "c_vrt_named.tif",
                        "d_vrt_named.jp2"}
    assert "other files or URLs" in why["a_points_at_secret.vrt"].reason
    assert not why["a_points_at_secret.vrt"].retried
    # `survey add` and `crackwatch infer` open through the same rule
    for name in ("a_points_at_secret.vrt", "c_vrt_named.tif"):
        with pytest.raises(RasterReadError):
            ingest(engine, "cut", inbox / name)
    from engine.raster_read import open_raster

    with pytest.raises(RasterRefusedError, match="VRT"):
        open_raster(inbox / "a_points_at_secret.vrt")
    assert _Counting.requests == []


def _sparse(path: Path, size: int) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=3,
                       dtype="uint8", crs=f"EPSG:{EPSG}", transform=T, tiled=True,
                       blockxsize=2048, blockysize=2048, sparse_ok=True, compress="deflate",
                       BIGTIFF="YES"):
        pass  # nothing written: every tile is sparse
    return path


def test_a_200000_px_square_declared_in_a_small_file_is_refused_before_anything_runs(
        engine, tmp_path):
    inbox = _inbox_site(engine, tmp_path)
    big = _sparse(inbox / "huge.tif", 200_000)
    assert big.stat().st_size < 5e6
    _good_ortho(inbox / "real.tif")
    refused: list[InboxRefusal] = []
    t0 = time.perf_counter()
    found = scan_inbox(engine, "cut", settle_s=0, refused=refused)
    assert time.perf_counter() - t0 < 30
    assert [Path(sv.source_path).name for sv in found] == ["real.tif"]
    [r] = refused
    assert r.path.name == "huge.tif" and "gigapixels" in r.reason and not r.retried
    with pytest.raises(RasterRefusedError, match="CRACKWATCH_MAX_RASTER_PIXELS"):
        ingest(engine, "cut", big)


def test_an_absurd_pixel_size_is_refused(engine, tmp_path):
    _inbox_site(engine, tmp_path)
    path = write_geotiff(tmp_path / "wide.tif", np.zeros((3, 8, 8), np.uint8),
                         crs=f"EPSG:{EPSG}", transform=from_origin(0, 0, 1e9, 1e9))
    with pytest.raises(ImplausibleMetadata, match="pixel size"):
        ingest(engine, "cut", path)
    assert _surveys(engine) == []


@pytest.mark.parametrize("tz", ["America/Los_Angeles", "UTC"])
def test_a_year_9999_photo_is_refused_and_the_inbox_goes_on(engine, tmp_path, tz):
    inbox = _inbox_site(engine, tmp_path, tz)
    make_jpeg(inbox / "a_future.jpg", taken="9999:12:31 23:59:59")
    make_jpeg(inbox / "b_past.jpg", taken="1970:01:01 00:00:00")
    make_jpeg(inbox / "c_good.jpg", taken="2026:06:01 10:00:00")
    with pytest.raises(ImplausibleMetadata, match="acquisition time"):
        ingest(engine, "cut", inbox / "a_future.jpg")
    refused: list[InboxRefusal] = []
    found = scan_inbox(engine, "cut", settle_s=0, refused=refused)
    assert [Path(sv.source_path).name for sv in found] == ["c_good.jpg"]
    assert {r.path.name for r in refused} == {"a_future.jpg", "b_past.jpg"}
    assert all("camera clock" in r.reason and not r.retried for r in refused)
    with pytest.raises(ImplausibleMetadata):  # a given time is checked too
        ingest(engine, "cut", inbox / "c_good.jpg",
               acquired_at=datetime.now(UTC) + timedelta(days=30))


DJI_XMP = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
           'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
           'rdf:about="" xmlns:drone-dji="http://www.dji.com/drone-dji/1.0/" '
           'drone-dji:RelativeAltitude="{alt}"/></rdf:RDF></x:xmpmeta>')


def test_a_camera_1e30_m_above_ground_raises_no_alert_and_sets_no_view_scale(engine, tmp_path):
    from test_views import _photo, _source

    from jobs.pipeline import PipelineOptions, process_survey

    site = store.add_site(engine, "bridge", profile="structure", crs_epsg=32632)
    t0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    opt = PipelineOptions(work_dir=tmp_path / "work")
    results = []
    for k, alt in enumerate(("+1e30", "+1.5")):
        folder = tmp_path / f"i{k}"
        folder.mkdir()
        make_jpeg(folder / "wall.jpg", pixels=_photo(_source(), k), make="DJI",
                  model="FC6310", focal_mm=8.8, xmp=DJI_XMP.format(alt=alt).encode())
        sv = ingest(engine, site.id, folder, acquired_at=t0 + timedelta(days=28 * k))
        results.append(process_survey(engine, sv.id, opt))
    # the first photo has no plausible scale: nothing of it is measured or stored
    assert results[0].status != "succeeded" and "1e+30 m" in results[0].error
    assert "outside 0.01-1500 m" in results[0].error
    assert results[1].status == "succeeded", results[1].error
    with session_scope(engine) as s:
        alerts = s.scalars(select(m.Alert).where(m.Alert.site_id == site.id)).all()
        widths = s.scalars(select(m.Crack.max_width_mm)).all()
    assert [a.level for a in alerts if a.level == "red"] == []
    # the second photo measures with its own 1.5 m height (2.2 mm/px), never with 1e30 m
    assert widths and max(widths) < 200, widths
