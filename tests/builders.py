"""Builders shared by the unit and integration tests: synthetic GeoTIFFs, crack frames and
JPEGs with the EXIF/XMP asked for.

Import them as ``from builders import ...`` (``tests/`` is on ``sys.path`` through
``tests/conftest.py``).
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import rasterio
import shapely
from PIL import Image
from PIL.TiffImagePlugin import IFDRational as R


def write_geotiff(path: Path, data: np.ndarray, *, crs: Any, transform: Any,
                  tags: dict[str, str] | None = None, **profile: Any) -> Path:
    """Write ``data`` (``(bands, rows, cols)``, its dtype kept) as a GeoTIFF at ``path``.

    ``crs`` and ``transform`` place it (anything rasterio takes, e.g. ``"EPSG:32633"`` and
    ``rasterio.transform.from_origin(...)``); ``tags`` are written as dataset tags (e.g.
    ``TIFFTAG_DATETIME``); ``profile`` adds or overrides creation options (``tiled=True``,
    ``blockxsize=...``, ``photometric="RGB"``, ``alpha="YES"``, ``nodata=...``).
    """
    bands, rows, cols = data.shape
    with rasterio.open(path, "w", **{"driver": "GTiff", "width": cols, "height": rows,
                                     "count": bands, "dtype": str(data.dtype), "crs": crs,
                                     "transform": transform, **profile}) as dst:
        dst.write(data)
        if tags:
            dst.update_tags(**tags)
    return path


def crack_frame(geoms: list[shapely.Geometry], *, crs: Any, pixel_size_m: float = 0.002,
                **extra: Any) -> gpd.GeoDataFrame:
    """A crack frame as :func:`geodata.vectorise.vectorise_cracks_and_skeletons` returns it,
    one row per polygon, with metrics taken from each polygon's extent: ``length_m`` = x
    extent, ``max_width_mm`` = y extent in mm (``mean_width_mm`` 80 % of it), ``area_m2``,
    fixed probabilities 0.8 (mean) and 0.97 (max), ``pixel_size_m``; ``extra`` adds columns.
    """
    n = len(geoms)
    data = {
        "crack_id": np.arange(1, n + 1),
        "length_m": [g.bounds[2] - g.bounds[0] for g in geoms],
        "mean_width_mm": [(g.bounds[3] - g.bounds[1]) * 800 for g in geoms],
        "max_width_mm": [(g.bounds[3] - g.bounds[1]) * 1000 for g in geoms],
        "area_m2": [g.area for g in geoms],
        "mean_probability": [0.8] * n,
        "max_probability": [0.97] * n,
        "pixel_size_m": [pixel_size_m] * n,
        **extra,
    }
    return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(geoms, crs=crs), crs=crs)


@contextmanager
def http_server(handler: type[BaseHTTPRequestHandler], path: str = "/", port: int = 0
                ) -> Iterator[str]:
    """A local HTTP server (one thread per request) answering with ``handler``, on
    127.0.0.1 at ``port`` (0: a free one); yields its URL ending in ``path``. Shut down on
    exit."""
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{path}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


GPS_IFD, EXIF_IFD = 0x8825, 0x8769


def dms(value_deg: float) -> tuple[R, R, R]:
    """Degrees -> (deg, min, sec) rationals with the seconds to 1e-4 s."""
    value_deg = abs(value_deg)
    d = int(value_deg)
    m = int((value_deg - d) * 60)
    s = round(((value_deg - d) * 60 - m) * 60 * 10000)
    return R(d), R(m), R(s, 10000)


def with_app1(jpeg: bytes, payload: bytes) -> bytes:
    """Insert an APP1 segment holding ``payload`` right after the SOI marker."""
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:2] + segment + jpeg[2:]


def make_jpeg(path: Path, size=(40, 30), *, lat=None, lon=None, lat_ref=None, lon_ref=None,
              gps_raw=None, altitude=None, below_sea_level=False, make=None, model=None,
              focal_mm=None, focal35=None, taken="2024:05:01 10:20:30", offset=None,
              xmp: bytes | None = None, exif: bool = True,
              pixels: np.ndarray | None = None) -> Path:
    """A grey JPEG of ``size`` = (cols, rows) (or of the RGB ``pixels``, shape (rows, cols,
    3)) with the EXIF/XMP asked for."""
    im = Image.new("RGB", size, (120, 120, 120)) if pixels is None else Image.fromarray(pixels)
    ex = Image.Exif()
    if make:
        ex[0x010F] = make
    if model:
        ex[0x0110] = model
    sub = ex.get_ifd(EXIF_IFD)
    if taken:
        sub[0x9003] = taken
    if offset:
        sub[0x9011] = offset
    if focal_mm is not None:
        sub[0x920A] = R(round(focal_mm * 100), 100)
    if focal35 is not None:
        sub[0xA405] = focal35
    if lat is not None or gps_raw is not None:
        gps = ex.get_ifd(GPS_IFD)
        if gps_raw is not None:
            gps.update(gps_raw)
        else:
            gps[1] = lat_ref if lat_ref is not None else ("N" if lat >= 0 else "S")
            gps[2] = dms(lat)
            gps[3] = lon_ref if lon_ref is not None else ("E" if lon >= 0 else "W")
            gps[4] = dms(lon)
        if altitude is not None:
            gps[5] = b"\x01" if below_sea_level else b"\x00"
            gps[6] = R(round(altitude * 100), 100)
    kwargs = {"exif": ex} if exif else {}
    im.save(path, "JPEG", **kwargs)
    if xmp is not None:
        packet = b"http://ns.adobe.com/xap/1.0/\x00" + xmp
        path.write_bytes(with_app1(path.read_bytes(), packet))
    return path
