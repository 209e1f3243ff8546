"""Per-site "what changed" (issue 29, item 3): fit a site baseline on its baseline survey(s)
and give every later survey an unsupervised "surface change" layer.

* :func:`fit_site_baseline` (``crackwatch site baseline SITE [--survey ID ...]``): reads the
  baseline orthomosaic(s) (the first on its own pixel grid, the others reprojected onto it),
  keeps their patch features (:mod:`engine.site_change`) in a safetensors file under
  ``<work dir>/baselines/`` (the pipeline's work dir, default ``<data dir>/work``), sets the
  threshold, records a ``site_baseline`` row, then computes the layer of every later
  orthomosaic survey of the site.
* :func:`update_surface_change`: one later survey against the site's current baseline. The
  survey is reprojected onto the baseline grid (a bilinear ``WarpedVRT``); ground
  the survey did not record (nodata) and ground its crack run marked not observable
  (vegetation, :mod:`engine.observable`) is not compared. Writes the probability-like raster
  (GeoTIFF, float32, NaN = not compared, in the baseline grid's CRS) under
  ``<work dir>/surface_change/`` and stores the polygons of ground at or above the
  threshold (site CRS) in ``surface_change``. The pipeline calls it after each survey of a
  site with a baseline (:func:`jobs.pipeline.process_survey`).

The layer is never mixed with cracks and never feeds alert levels. Orthomosaic surveys only:
photo sets have no common grid with a baseline unless registered into a view, which this
does not do yet (:func:`engine.site_change.change_scores` compares registered photos; the
evaluation uses it on brighton_beach).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: Largest baseline grid read, megapixels: bigger orthomosaics are read decimated to this.
MAX_GRID_MP = 40.0
#: Connected changed areas smaller than this are dropped, patches of 8 x 8 px.
MIN_CHANGE_PATCHES = 1
LAYER_NAME = "surface change (unsupervised)"


class SiteBaselineError(ValueError):
    """A site baseline cannot be fitted or used as asked (the message says why and what to
    do)."""


@dataclass
class Grid:
    """A pixel grid: ``shape`` (rows, cols), affine ``transform``, ``crs`` (rasterio)."""

    shape: tuple[int, int]
    transform: Any
    crs: Any


def _read_on_own_grid(path: str | Path, max_mp: float = MAX_GRID_MP):
    """RGB uint8 ``(rows, cols, 3)``, valid mask and :class:`Grid` of an orthomosaic, read
    decimated to at most ``max_mp`` megapixels."""
    from rasterio.enums import Resampling

    from engine.raster_read import open_survey_raster, select_rgb_bands, stretch_limits, to_uint8

    with open_survey_raster(path) as src:
        if src.crs is None:
            raise SiteBaselineError(f"{Path(path).name} has no CRS: a site baseline compares "
                                    f"ground by position; give a georeferenced orthomosaic.")
        scale = max(1.0, (src.width * src.height / (max_mp * 1e6)) ** 0.5)
        shape = (max(1, round(src.height / scale)), max(1, round(src.width / scale)))
        bands, _ = select_rgb_bands(src.colorinterp, src.count)
        data = src.read(list(bands), out_shape=(3, *shape), resampling=Resampling.average)
        valid = src.dataset_mask(out_shape=shape) > 0
        rgb = to_uint8(data, stretch_limits(src, bands)).transpose(1, 2, 0)
        transform = src.transform @ src.transform.scale(src.width / shape[1],
                                                        src.height / shape[0])
        return np.ascontiguousarray(rgb), valid, Grid(shape, transform, src.crs)


def _read_onto(path: str | Path, grid: Grid):
    """An orthomosaic reprojected onto ``grid`` (bilinear, through a ``WarpedVRT`` so that
    memory follows the grid, not the file): RGB uint8 and its valid mask (the source's
    nodata/alpha reprojected; outside its footprint: not valid)."""
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    from engine.raster_read import (
        open_survey_raster,
        select_rgb_bands,
        stretch_limits,
        to_uint8,
    )

    with open_survey_raster(path) as src:
        if src.crs is None:
            raise SiteBaselineError(f"{Path(path).name} has no CRS; it cannot be compared "
                                    f"with the site baseline by position.")
        bands, _ = select_rgb_bands(src.colorinterp, src.count)
        limits = stretch_limits(src, bands)
        with WarpedVRT(src, crs=grid.crs, transform=grid.transform, width=grid.shape[1],
                       height=grid.shape[0], resampling=Resampling.bilinear) as vrt:
            data = vrt.read(list(bands))
            valid = vrt.dataset_mask() > 0
        rgb = to_uint8(data, limits)
    return np.ascontiguousarray(rgb.transpose(1, 2, 0)), valid


def _features_path(data_dir: Path, site_id: int, sha: str) -> Path:
    return Path(data_dir) / "baselines" / f"site-{site_id}-{sha[:12]}.safetensors"


def fit_site_baseline(bind, site: int | str, data_dir: str | Path,
                      survey_ids: list[int] | None = None, progress=None) -> dict[str, Any]:
    """Fit the site's baseline on ``survey_ids`` (default: its first survey) and compute the
    layer of every later orthomosaic survey.

    Returns ``{"baseline_id", "threshold", "surveys", "threshold_rule", "layers": [...]}``.

    Raises:
        RecordNotFoundError: no such site. SiteBaselineError: no survey, a survey of another
            site, a photo set, or baseline surveys that share no ground.
    """
    from engine.site_change import fit_baseline
    from geodata.store.change import add_site_baseline, baseline_sources, later_orthomosaics
    from geodata.store.engine import session_scope

    with session_scope(bind) as s:
        site_id, site_name, chosen, missing = baseline_sources(s, site, survey_ids)
    _check_sources(site_name, chosen, missing)
    if progress:
        progress(f"reading {len(chosen)} baseline survey(s)")
    images, valid0, grid = _baseline_images(chosen)
    if progress:
        progress("computing patch features and the threshold")
    baseline = fit_baseline(images, pairs=[(k, 0, np.eye(3)) for k in range(1, len(images))]
                            or None)
    final, sha = _save_features(baseline, valid0, data_dir, site_id)
    ids = [sv.survey_id for sv in chosen]
    card = {**baseline.card, "grid": {"shape": list(grid.shape),
                                      "transform": list(grid.transform)[:6],
                                      "crs": grid.crs.to_wkt()},
            "baseline_surveys": ids}
    with session_scope(bind, write=True) as s:
        baseline_id = add_site_baseline(s, site_id, ids, str(final), sha, baseline.threshold,
                                        card)
    log.info("site %s: baseline %d fitted on surveys %s, threshold %.2f", site_name,
             baseline_id, ids, baseline.threshold)
    with session_scope(bind) as s:
        later = later_orthomosaics(s, site_id, max(sv.acquired_at for sv in chosen))
    layers = []
    for sid in later:
        if progress:
            progress(f"surface change of survey {sid}")
        layers.append(update_surface_change(bind, sid, data_dir))
    return {"baseline_id": baseline_id, "threshold": baseline.threshold, "surveys": ids,
            "threshold_rule": card["threshold_rule"], "layers": layers}


def _check_sources(site_name: str, chosen: list, missing: list[int]) -> None:
    if missing:
        raise SiteBaselineError(f"survey(s) {missing} are not surveys of site {site_name}; "
                                f"`crackwatch survey list` shows them.")
    if not chosen:
        raise SiteBaselineError(f"site {site_name} has no survey yet; ingest its baseline "
                                f"survey first.")
    for sv in chosen:
        if sv.source_type != "orthomosaic":
            raise SiteBaselineError(
                f"survey {sv.survey_id} is a {sv.source_type}: site baselines are fitted on "
                f"orthomosaic surveys (GeoTIFF) only; choose one with --survey.")


def _baseline_images(chosen: list):
    """The baseline surveys' images, the first on its own grid and the others reprojected
    onto it, blank where they have no data; the first's valid mask and the grid."""
    rgb0, valid0, grid = _read_on_own_grid(chosen[0].path)
    images = [(f"survey {chosen[0].survey_id}", _masked(rgb0, valid0))]
    for sv in chosen[1:]:
        rgb, valid = _read_onto(sv.path, grid)
        if not (valid & valid0).any():
            raise SiteBaselineError(f"baseline survey {sv.survey_id} does not overlap survey "
                                    f"{chosen[0].survey_id}: choose surveys of the same "
                                    f"ground.")
        images.append((f"survey {sv.survey_id}", _masked(rgb, valid)))
    return images, valid0, grid


def _save_features(baseline, valid0: np.ndarray, data_dir: str | Path,
                   site_id: int) -> tuple[Path, str]:
    """Write the baseline's patch features (fp16) and valid mask; returns the file (named by
    its SHA-256) and the SHA-256."""
    import torch
    from safetensors.torch import save_file

    tensors = {f"features_{k}": b.features.contiguous() for k, b in enumerate(baseline.images)}
    tensors["valid"] = torch.from_numpy(valid0.astype(np.uint8))
    tmp = Path(data_dir) / "baselines" / "tmp.safetensors"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(tmp))
    sha = hashlib.sha256(tmp.read_bytes()).hexdigest()
    final = _features_path(data_dir, site_id, sha)
    tmp.replace(final)
    return final, sha


def _masked(rgb: np.ndarray, valid: np.ndarray) -> np.ndarray:
    out = rgb.copy()
    out[~valid] = 0
    return out


def update_surface_change(bind, survey_id: int, data_dir: str | Path) -> dict[str, Any] | None:
    """Compare one survey with its site's current baseline and store the layer (replacing an
    earlier one against the same baseline). None when the site has no baseline, the survey is
    part of it or older, or it is not an orthomosaic.

    Returns ``{"survey_id", "compared_m2", "changed_m2", "changed_pct", "polygons",
    "raster"}``.

    Raises:
        SiteBaselineError: the baseline's feature file is missing or altered (re-fit it).
    """
    from geodata.store.change import replace_surface_change, survey_to_compare
    from geodata.store.engine import session_scope

    with session_scope(bind) as s:
        job = survey_to_compare(s, survey_id)
    if job is None:
        return None
    scores, grid = _scores(job)
    raster = _write_layer_raster(job, scores, grid, data_dir)
    compared = np.isfinite(scores)
    changed = compared & (scores >= job.threshold)
    geometry, polygons, compared_m2 = _polygons(changed, compared, grid, job.site_epsg)
    changed_m2 = float(geometry.area) if geometry is not None else 0.0
    details = {"threshold": job.threshold, "compared_px": int(compared.sum()),
               "changed_px": int(changed.sum()), "polygons": polygons, "layer": LAYER_NAME}
    with session_scope(bind, write=True) as s:
        replace_surface_change(s, survey_id, job.baseline_id, str(raster),
                               _in_site(geometry, job.site_epsg), compared_m2, changed_m2,
                               details)
    pct = 100 * changed_m2 / compared_m2 if compared_m2 else 0.0
    log.info("survey %d: surface change %.3f %% of %.1f m2 compared (%d polygons)", survey_id,
             pct, compared_m2, polygons)
    return {"survey_id": survey_id, "compared_m2": compared_m2, "changed_m2": changed_m2,
            "changed_pct": pct, "polygons": polygons, "raster": str(raster)}


def _scores(job) -> tuple[np.ndarray, Grid]:
    """The survey's change scores on the baseline grid (NaN: not compared) and the grid."""
    import geopandas as gpd
    import rasterio
    import torch
    from rasterio.features import rasterize
    from safetensors.torch import load as load_safetensors

    from engine.site_change import BORDER_PX, BaselineImage, grid_change_scores

    fpath = Path(job.features_path)
    data = fpath.read_bytes() if fpath.is_file() else b""
    if hashlib.sha256(data).hexdigest() != job.features_sha256:  # read once: checked, loaded
        raise SiteBaselineError(f"the baseline's feature file {fpath} is missing or altered; "
                                f"fit the baseline again (crackwatch site baseline).")
    g = job.card["grid"]
    grid = Grid(tuple(g["shape"]), rasterio.Affine(*g["transform"]),
                rasterio.crs.CRS.from_wkt(g["crs"]))
    rgb, seen = _read_onto(job.path, grid)
    state = load_safetensors(data)
    seen &= state.pop("valid").numpy() > 0
    rgb = _masked(rgb, seen)  # blank where either has no data, as the baseline was
    if not seen.all():  # features near a nodata edge see the blank: not compared
        import cv2

        seen = cv2.erode(seen.astype(np.uint8), np.ones((3, 3), np.uint8),
                         iterations=BORDER_PX) > 0
    if job.unobservable is not None and not job.unobservable.is_empty:
        hidden = gpd.GeoSeries([job.unobservable], crs=job.site_epsg).to_crs(grid.crs).iloc[0]
        seen &= rasterize([(hidden, 1)], out_shape=grid.shape, transform=grid.transform,
                          fill=0, dtype="uint8") == 0
    bases = [BaselineImage(k, state[k], grid.shape) for k in sorted(state)]
    with torch.inference_mode():
        return grid_change_scores(rgb, bases, seen), grid


def _write_layer_raster(job, scores: np.ndarray, grid: Grid, data_dir: str | Path) -> Path:
    """The probability-like GeoTIFF (float32, NaN = not compared) of the layer."""
    import rasterio

    from engine.site_change import change_probability

    prob = change_probability(scores, job.threshold)  # NaN (not compared) stays NaN
    out_dir = Path(data_dir) / "surface_change"
    out_dir.mkdir(parents=True, exist_ok=True)
    raster = out_dir / f"survey-{job.survey_id}-baseline-{job.baseline_id}.tif"
    tmp = raster.with_suffix(".tmp.tif")
    with rasterio.open(tmp, "w", driver="GTiff", width=grid.shape[1], height=grid.shape[0],
                       count=1, dtype="float32", crs=grid.crs, transform=grid.transform,
                       nodata=float("nan"), compress="deflate", tiled=True, blockxsize=256,
                       blockysize=256) as dst:
        dst.write(prob.astype(np.float32), 1)
        dst.set_band_description(1, "surface change probability-like score (unsupervised)")
        dst.update_tags(SURFACE_CHANGE_LAYER=LAYER_NAME,
                        SURFACE_CHANGE_BASELINE_ID=str(job.baseline_id),
                        SURFACE_CHANGE_THRESHOLD=f"{job.threshold:.4f}",
                        SURFACE_CHANGE_NOTE="0.5 = the baseline's threshold; not a crack "
                                            "probability; never used for alert levels")
    tmp.replace(raster)
    return raster


def _polygons(changed: np.ndarray, compared: np.ndarray, grid: Grid, epsg: int):
    """``(changed ground as one geometry in the site CRS or None, polygon count, compared
    area m2)``; changed areas under :data:`MIN_CHANGE_PATCHES` patches are dropped."""
    import geopandas as gpd
    import shapely
    from rasterio.features import shapes

    def polys(mask: np.ndarray) -> list:
        return [shapely.geometry.shape(geom) for geom, v in shapes(
            mask.astype(np.uint8), mask=mask, transform=grid.transform) if v == 1]

    t = grid.transform
    min_area = MIN_CHANGE_PATCHES * 64 * abs(t.a * t.e - t.b * t.d)
    found = [p for p in polys(changed) if p.area >= min_area]
    site = gpd.GeoSeries([shapely.union_all(found)] if found else [], crs=grid.crs).to_crs(epsg)
    compared_m2 = float(gpd.GeoSeries(polys(compared), crs=grid.crs).to_crs(epsg).area.sum())
    return (site.iloc[0] if len(site) else None), len(found), compared_m2


def surface_change_after_run(bind, survey_id: int, work_dir: str | Path) -> None:
    """The pipeline's step after a survey's crack results are stored: its layer when the site
    has a baseline (:func:`update_surface_change`). A secondary layer: a failure is logged with
    the fix and never fails the survey (its cracks stand)."""
    try:
        update_surface_change(bind, survey_id, work_dir)
    except Exception as exc:  # noqa: BLE001 - logged; the crack results stand
        log.warning("survey %d: surface change layer not computed (%s); re-run it with "
                    "`crackwatch site baseline`", survey_id, exc)


def _in_site(geometry, epsg: int):
    """A geometry in the site CRS as the store keeps it (with its SRID)."""
    import shapely

    if geometry is None:
        return None
    return shapely.set_srid(geometry, epsg)


__all__ = ["LAYER_NAME", "SiteBaselineError", "fit_site_baseline", "surface_change_after_run",
           "update_surface_change"]
