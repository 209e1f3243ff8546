"""Builders shared by the unit and integration tests: synthetic GeoTIFFs and crack frames.

Import them as ``from builders import ...`` (``tests/`` is on ``sys.path`` through
``tests/conftest.py``).
"""

from __future__ import annotations

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
