"""One large orthomosaic split into row bands that run apart (on other workers) and are
stitched into the same probability COG as one :func:`engine.infer.predict_raster` run.

A band is a range of output rows ``[first, stop)``. :func:`predict_band` runs every window of
the whole raster's grid that touches the band (the windows of :func:`engine.tiling.
window_starts` with the tiler's block-aligned stride and overlap), in the whole run's order,
and blends them with the same weights (:func:`engine.tiling.blend_weights`); so each output
pixel gets the same window contributions, summed in the same order, and the stitched map
equals the whole run's (the same windows, the same arithmetic). The price is that a window
row straddling a band edge runs in both bands: about ``tile / (band rows)`` extra work per
edge (tile 512, bands of 4096 rows: 1 window row in 9).

Band edges are multiples of :data:`BAND_ALIGN_PX` (the output's 256-px block, and the input's
block height when it is tiled), so each band's file is whole blocks and the stitch copies
blocks. Parts are plain tiled GeoTIFFs (``rows`` of :func:`engine.infer.predict_raster`);
:func:`stitch_bands` writes them, in row order, into one tiled file and converts it to the
COG with :data:`engine.infer.COG_OPTIONS`, as the whole run does.

Nothing here needs Ray: :mod:`jobs.executor` sends :func:`predict_band` calls to Ray workers
and :func:`stitch_bands` runs where the parts can be read (a shared folder).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from engine.infer import COG_OPTIONS, PredictionResult, predict_raster

__all__ = ["BAND_ALIGN_PX", "band_alignment", "plan_bands", "predict_band",
           "merge_band_results", "predict_raster_banded", "stitch_bands"]

#: Output block height of the probability map's working file (engine.infer writes 256-px
#: blocks): band edges are multiples of it.
BAND_ALIGN_PX = 256


def band_alignment(block_rows: int = 0) -> int:
    """Row multiple for band edges: lcm of :data:`BAND_ALIGN_PX` and the input's block height
    (``block_rows``; 0 or 1 for a striped or untiled input)."""
    return math.lcm(BAND_ALIGN_PX, block_rows) if block_rows > 1 else BAND_ALIGN_PX


def plan_bands(rows: int, n_bands: int, *, min_rows: int = 2048,
               block_rows: int = 0) -> list[tuple[int, int]]:
    """Split ``rows`` output rows into at most ``n_bands`` bands of near-equal height.

    Edges are multiples of :func:`band_alignment` (``block_rows``: the input's block height);
    no band is shorter than ``min_rows`` (rounded up to the alignment), so a raster with
    fewer than ``2 * min_rows`` rows is one band ``[(0, rows)]``.

    Returns:
        ``[(first, stop), ...]`` covering ``0 .. rows`` in order.

    Raises:
        ValueError: ``rows < 1`` or ``n_bands < 1``.
    """
    if rows < 1 or n_bands < 1:
        raise ValueError(f"rows and n_bands must be >= 1, got {rows} and {n_bands}.")
    align = band_alignment(block_rows)
    min_rows = max(align, math.ceil(max(1, min_rows) / align) * align)
    n = max(1, min(n_bands, rows // min_rows))
    blocks = math.ceil(rows / align)
    n = min(n, blocks)
    edges = [min(rows, round(k * blocks / n) * align) for k in range(n)] + [rows]
    return [(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def predict_band(path: str | Path, model, band: tuple[int, int], *, out_path: str | Path,
                 **kwargs) -> PredictionResult:
    """Predict output rows ``band = (first, stop)`` of ``path`` into the GeoTIFF ``out_path``
    (:func:`engine.infer.predict_raster` with ``rows=band``; ``kwargs`` as there). The
    result's ``height`` is the band's, its ``transform`` the band's (shifted by ``first``
    rows)."""
    return predict_raster(path, model, out_path=out_path, rows=band, **kwargs)


def stitch_bands(parts: Sequence[str | Path], out_path: str | Path, *,
                 chunk_rows: int = 1024) -> Path:
    """Stitch band files (:func:`predict_band`, in row order) into one probability COG.

    Copies the parts' values (and, for uint8, their mask) ``chunk_rows`` rows at a time into
    a tiled working file with the whole raster's grid, then converts it to a COG with
    :data:`engine.infer.COG_OPTIONS`, as :func:`engine.infer.predict_raster` does. The
    working file is removed whatever happens.

    Raises:
        ValueError: no parts, or parts that do not tile one grid (different width, CRS,
            dtype, or a gap/overlap between consecutive bands).
    """
    import rasterio
    from rasterio.shutil import copy as rio_copy
    from rasterio.windows import Window

    from engine.infer import GDAL_CACHE_MB

    parts = [Path(p) for p in parts]
    if not parts:
        raise ValueError("stitch_bands needs at least one band file.")
    out_path = Path(out_path)
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB):
        metas = []
        for p in parts:
            with rasterio.open(p) as src:
                metas.append((src.width, src.height, src.crs, src.dtypes[0], src.transform,
                              src.profile.get("nodata")))
        width, _, crs, dtype, transform, nodata = metas[0]
        height = 0
        for (w, h, c, d, t, _), p in zip(metas, parts, strict=True):
            expected = transform * (0, height)
            if w != width or c != crs or d != dtype or \
                    abs(t.c - expected[0]) > 1e-6 * abs(t.a) or \
                    abs(t.f - expected[1]) > 1e-6 * abs(t.e):
                raise ValueError(f"band file {p} does not continue the grid of {parts[0]} "
                                 f"(width {w} vs {width}, CRS {c} vs {crs}, dtype {d} vs "
                                 f"{dtype}, origin {t.c, t.f} vs {expected}); stitch the "
                                 f"bands of one raster, in row order.")
            height += h
        profile = {"driver": "GTiff", "width": width, "height": height, "count": 1,
                   "dtype": dtype, "crs": crs, "transform": transform, "tiled": True,
                   "blockxsize": 256, "blockysize": 256, "compress": "NONE",
                   "BIGTIFF": "IF_SAFER"}
        if dtype == "float32":
            profile["nodata"] = nodata if nodata is not None else float("nan")
        out_path.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = out_path.with_name(out_path.stem + ".partial.tif")
        try:
            with rasterio.open(tmp_path, "w", **profile) as dst:
                top = 0
                for p in parts:
                    with rasterio.open(p) as src:
                        for r in range(0, src.height, chunk_rows):
                            n = min(chunk_rows, src.height - r)
                            win = Window(0, r, width, n)
                            out_win = Window(0, top + r, width, n)
                            dst.write(src.read(1, window=win), 1, window=out_win)
                            if dtype == "uint8":
                                dst.write_mask(src.read_masks(1, window=win), window=out_win)
                        top += src.height
            rio_copy(tmp_path, out_path, **COG_OPTIONS)
        finally:
            tmp_path.unlink(missing_ok=True)
    return out_path


def predict_raster_banded(path: str | Path, model, *, out_path: str | Path, n_bands: int,
                          min_rows: int = 2048, **kwargs) -> PredictionResult:
    """:func:`engine.infer.predict_raster` done band by band in this process, then stitched.

    The reference for the distributed run (:class:`jobs.executor.RayExecutor` runs the same
    bands on workers); its output equals ``predict_raster``'s. Band files sit beside
    ``out_path`` and are removed afterwards. ``kwargs`` as for ``predict_raster``.
    """
    from engine.raster_read import open_survey_raster

    out_path = Path(out_path)
    with open_survey_raster(path) as src:
        rows, block_rows = src.height, (src.block_shapes[0][0]
                                        if src.profile.get("tiled") else 0)
    bands = plan_bands(rows, n_bands, min_rows=min_rows, block_rows=block_rows)
    parts = [out_path.with_name(f"{out_path.stem}.band{k}.tif") for k in range(len(bands))]
    t0 = time.perf_counter()
    try:
        results = [predict_band(path, model, b, out_path=p, **kwargs)
                   for b, p in zip(bands, parts, strict=True)]
        stitch_bands(parts, out_path)
    finally:
        for p in parts:
            p.unlink(missing_ok=True)
    return merge_band_results(results, out_path, time.perf_counter() - t0)


def merge_band_results(results: Sequence[PredictionResult], out_path: Path,
                       seconds: float) -> PredictionResult:
    """One :class:`~engine.infer.PredictionResult` for the stitched map from its bands'
    (windows and model time summed; ``seconds`` the wall time of the whole; windows that
    straddle a band edge count once per band)."""
    first = results[0]
    height = sum(r.height for r in results)
    notes = list(dict.fromkeys(w for r in results for w in r.warnings))
    notes.append(f"predicted in {len(results)} row bands of "
                 f"{', '.join(str(r.height) for r in results)} rows, stitched")
    return replace(
        first, path=out_path, height=height,
        windows_total=sum(r.windows_total for r in results),
        windows_skipped=sum(r.windows_skipped for r in results),
        seconds=round(seconds, 3), model_seconds=round(sum(r.model_seconds for r in results), 3),
        megapixels_per_s=round(first.width * height / 1e6 / seconds, 3) if seconds else 0.0,
        processed_megapixels=sum(r.processed_megapixels for r in results), warnings=notes)
