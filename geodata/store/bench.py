"""Store benchmark: insert N crack polygons, then fetch one survey's cracks for display.

Figures are printed by ``crackwatch bench store``; nothing is asserted. Synthetic cracks are
thin, wavy polygons of about 25 vertices (a 12-point random polyline buffered by 1-10 mm,
flat caps), about what :func:`geodata.vectorise.vectorise_cracks` gives for a real crack after
simplification; every survey holds the same cracks, as a re-surveyed site would. Cracks go in
through :func:`geodata.store.store_run` (validation, one transaction per survey, bulk INSERT;
tracking off so only storing is timed), ``per_survey`` cracks per survey. Tracking is timed
apart, over the last two surveys.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely

from geodata.store.api import add_site, delete_site, ingest_survey, store_run
from geodata.store.engine import connect, sqlite_url
from geodata.store.migrate import upgrade

__all__ = ["bench_store", "synthetic_cracks"]

_EPSG = 32633  # WGS 84 / UTM 33N


def synthetic_cracks(n: int, *, seed: int = 0, origin: tuple[float, float] = (500_000.0,
                     5_100_000.0), extent_m: float = 500.0) -> gpd.GeoDataFrame:
    """``n`` crack-like polygons in EPSG:32633 with plausible metrics (a crack frame)."""
    rng = np.random.default_rng(seed)
    start = rng.uniform(0, extent_m, size=(n, 2)) + np.asarray(origin)
    heading = rng.uniform(0, 2 * math.pi, size=n)
    steps = rng.uniform(0.05, 0.3, size=(n, 11))
    turn = np.cumsum(rng.normal(0, 0.35, size=(n, 11)), axis=1) + heading[:, None]
    xy = np.concatenate([start[:, None, :],
                         start[:, None, :] + np.cumsum(
                             np.stack([steps * np.cos(turn), steps * np.sin(turn)], -1), 1)], 1)
    lines = shapely.linestrings(xy)
    width_m = rng.uniform(0.001, 0.01, size=n)
    polys = shapely.buffer(lines, width_m / 2, cap_style="flat", join_style="mitre",
                           quad_segs=1)
    polys = np.array([shapely.MultiPolygon([p]) if p.geom_type == "Polygon" else p
                      for p in polys], dtype=object)
    length = shapely.length(lines)
    return gpd.GeoDataFrame({
        "crack_id": np.arange(1, n + 1),
        "length_m": length,
        "mean_width_mm": width_m * 1000 * 0.7,
        "max_width_mm": width_m * 1000,
        "area_m2": shapely.area(polys),
        "mean_probability": rng.uniform(0.5, 0.9, size=n),
        "max_probability": rng.uniform(0.9, 1.0, size=n),
    }, geometry=gpd.GeoSeries(polys, crs=_EPSG), crs=_EPSG)


def bench_store(url: str | None = None, n: int = 100_000, *, per_survey: int = 1000,
                seed: int = 0, keep: bool = False) -> dict[str, Any]:
    """Insert ``n`` cracks (``per_survey`` per survey) and time a display fetch.

    Args:
        url: the store to benchmark (schema upgraded first; a throw-away site is created and
            deleted afterwards unless ``keep``). None: a temporary SQLite file.
        n: number of crack polygons to insert.

    Returns:
        ``backend``, ``n_cracks``, ``surveys``, ``per_survey``, ``insert_seconds``,
        ``insert_rows_per_s``, ``fetch_rows`` (one survey), ``fetch_frame_seconds``
        (:func:`geodata.queries.survey_cracks`), ``fetch_geojson_seconds``
        (:func:`geodata.queries.survey_cracks_geojson`, simplified, EPSG:4326),
        ``geojson_bytes``, ``track_seconds`` (:func:`geodata.tracking.track_survey` over the
        last ``track_surveys`` surveys, i.e. matching ``per_survey`` cracks to as many),
        ``mean_vertices``, ``db_bytes`` (SQLite), ``machine``.
    """
    from geodata.queries import survey_cracks, survey_cracks_geojson
    from geodata.tracking import track_survey

    if n < 1 or per_survey < 1:
        raise ValueError(f"n and per_survey must be >= 1, got {n}, {per_survey}")
    tmp = None
    if url is None:
        tmp = Path(tempfile.mkdtemp(prefix="crackwatch-bench-"))
        url = sqlite_url(tmp / "bench.db")
    engine = connect(url)
    try:
        upgrade(engine)
        site = add_site(engine, f"bench-{uuid.uuid4().hex[:8]}", profile="structure",
                        crs_epsg=_EPSG)
        sizes = [per_survey] * (n // per_survey) + ([n % per_survey] if n % per_survey else [])
        # the same cracks in every survey, as a site re-surveyed (tracking then matches them)
        frames = [synthetic_cracks(k, seed=seed) for k in sizes]
        survey_ids, insert_s = _insert_surveys(engine, site.id, frames)

        target = survey_ids[len(survey_ids) // 2]
        start = time.perf_counter()
        gdf = survey_cracks(engine, target)
        fetch_s = time.perf_counter() - start
        start = time.perf_counter()
        fc = survey_cracks_geojson(engine, target)
        geojson_s = time.perf_counter() - start
        start = time.perf_counter()
        tracked = track_survey(engine, survey_ids[-2] if len(survey_ids) > 1 else
                               survey_ids[-1])
        track_s = time.perf_counter() - start
        result = {
            "backend": engine.url.get_backend_name(),
            "url": engine.url.render_as_string(hide_password=True),
            "n_cracks": n,
            "surveys": len(sizes),
            "per_survey": per_survey,
            "insert_seconds": round(insert_s, 3),
            "insert_rows_per_s": round(n / insert_s, 1),
            "fetch_rows": len(gdf),
            "fetch_frame_seconds": round(fetch_s, 4),
            "fetch_geojson_seconds": round(geojson_s, 4),
            "geojson_bytes": len(json.dumps(fc)),
            "track_surveys": tracked["surveys_tracked"],
            "track_seconds": round(track_s, 3),
            "mean_vertices": round(float(np.mean(shapely.get_num_coordinates(
                gdf.geometry.values))), 1) if len(gdf) else 0.0,
            "db_bytes": _sqlite_bytes(engine),
            "machine": _machine(),
        }
        if not keep:
            delete_site(engine, site.id)
        return result
    finally:
        engine.dispose()
        if tmp is not None and not keep:
            shutil.rmtree(tmp, ignore_errors=True)


def _insert_surveys(engine: Any, site_id: int, frames: list[gpd.GeoDataFrame]
                    ) -> tuple[list[int], float]:
    """Ingest one survey per frame (a day apart) and store its cracks untracked:
    (survey ids, seconds taken)."""
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    survey_ids = []
    start = time.perf_counter()
    for i, frame in enumerate(frames):
        sv = ingest_survey(engine, site_id, f"bench/{i}.tif", acquired_at=t0 + timedelta(i),
                           sha256=uuid.uuid4().hex * 2, pixel_size_m=0.002)
        store_run(engine, sv.id, frame, None, {"model_name": "bench"}, track=False)
        survey_ids.append(sv.id)
    return survey_ids, time.perf_counter() - start


def _sqlite_bytes(engine: Any) -> int | None:
    """Bytes of a SQLite store's files (database, WAL, shared memory); None for others."""
    if engine.url.get_backend_name() != "sqlite":
        return None
    return sum(os.path.getsize(p) for p in Path(engine.url.database).parent.glob(
        Path(engine.url.database).name + "*"))


def _machine() -> str:
    """The machine in words: host, architecture, CPUs, operating system."""
    return (f"{platform.node()} {platform.machine()} {platform.processor() or ''} "
            f"{os.cpu_count()} logical CPUs, {platform.system()} "
            f"{platform.release()}").replace("  ", " ")
