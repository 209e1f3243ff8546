"""Per-site "what changed" (issue 29, item 3): fit a site baseline on its baseline survey(s)
and give every later survey an unsupervised "surface change" layer.

* :func:`fit_site_baseline` (``crackwatch site baseline SITE [--survey ID ...]``): reads the
  baseline orthomosaic(s) (the first on its own pixel grid, the others reprojected onto it),
  keeps their patch features (:mod:`engine.site_change`) in a safetensors file under
  ``<data folder>/baselines/``, sets the threshold, records a ``site_baseline`` row, then
  computes the layer of every later orthomosaic survey of the site.
* :func:`update_surface_change`: one later survey against the site's current baseline. The
  survey is reprojected onto the baseline grid (``rasterio.warp.reproject``, bilinear); ground
  the survey did not record (nodata) and ground its crack run marked not observable
  (vegetation, :mod:`engine.observable`) is not compared. Writes the probability-like raster
  (GeoTIFF, float32, NaN = not compared, in the baseline grid's CRS) under
  ``<data folder>/surface_change/`` and stores the polygons of ground at or above the
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

    Returns ``{"baseline_id", "threshold", "surveys", "layers": [...]}``.

    Raises:
        RecordNotFoundError: no such site or survey. SiteBaselineError: no survey, a survey of
            another site, a photo set, or baseline surveys that share no ground.
    """
    import torch
    from safetensors.torch import save_file

    from engine.site_change import fit_baseline
    from geodata.store.engine import session_scope
    from geodata.store.models import SiteBaseline, Survey

    with session_scope(bind) as s:
        site_row = _site(s, site)
        surveys = s.query(Survey).filter(Survey.site_id == site_row.id).order_by(
            Survey.acquired_at, Survey.id).all()
        if not surveys:
            raise SiteBaselineError(f"site {site_row.name} has no survey yet; ingest its "
                                    f"baseline survey first.")
        chosen = [sv for sv in surveys if sv.id in set(survey_ids)] if survey_ids \
            else surveys[:1]
        missing = set(survey_ids or []) - {sv.id for sv in chosen}
        if missing:
            raise SiteBaselineError(f"survey(s) {sorted(missing)} are not surveys of site "
                                    f"{site_row.name}; `crackwatch survey list` shows them.")
        for sv in chosen:
            if sv.source_type != "orthomosaic":
                raise SiteBaselineError(
                    f"survey {sv.id} is a {sv.source_type}: site baselines are fitted on "
                    f"orthomosaic surveys (GeoTIFF) only; choose one with --survey.")
        paths = [(sv.id, sv.source_path) for sv in chosen]
        site_id, site_name = site_row.id, site_row.name
    if progress:
        progress(f"reading {len(paths)} baseline survey(s)")
    rgb0, valid0, grid = _read_on_own_grid(paths[0][1])
    images = [(f"survey {paths[0][0]}", _masked(rgb0, valid0))]
    pairs = []
    for k, (sid, p) in enumerate(paths[1:], start=1):
        rgb, valid = _read_onto(p, grid)
        if not (valid & valid0).any():
            raise SiteBaselineError(f"baseline survey {sid} does not overlap survey "
                                    f"{paths[0][0]}: choose surveys of the same ground.")
        images.append((f"survey {sid}", _masked(rgb, valid)))
        pairs.append((k, 0, np.eye(3)))
    if progress:
        progress("computing patch features and the threshold")
    baseline = fit_baseline(images, pairs=pairs or None)
    tensors = {f"features_{k}": b.features.contiguous() for k, b in enumerate(baseline.images)}
    tensors["valid"] = torch.from_numpy(valid0.astype(np.uint8))
    path = Path(data_dir) / "baselines" / "tmp.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path))
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    final = _features_path(data_dir, site_id, sha)
    path.replace(final)
    card = {**baseline.card, "grid": {"shape": list(grid.shape),
                                      "transform": list(grid.transform)[:6],
                                      "crs": grid.crs.to_wkt()},
            "baseline_surveys": [sid for sid, _ in paths]}
    with session_scope(bind, write=True) as s:
        row = SiteBaseline(site_id=site_id, survey_ids=[sid for sid, _ in paths],
                           features_path=str(final), features_sha256=sha,
                           threshold=baseline.threshold, card=card)
        s.add(row)
        s.flush()
        baseline_id = row.id
    log.info("site %s: baseline %d fitted on surveys %s, threshold %.2f", site_name,
             baseline_id, [sid for sid, _ in paths], baseline.threshold)
    layers = []
    with session_scope(bind) as s:
        last = max(sv.acquired_at for sv in chosen)
        later = [sv.id for sv in s.query(Survey).filter(
            Survey.site_id == site_id, Survey.acquired_at > last,
            Survey.source_type == "orthomosaic").order_by(Survey.acquired_at)]
    for sid in later:
        if progress:
            progress(f"surface change of survey {sid}")
        layers.append(update_surface_change(bind, sid, data_dir))
    return {"baseline_id": baseline_id, "threshold": baseline.threshold,
            "surveys": [sid for sid, _ in paths], "threshold_rule": card["threshold_rule"],
            "layers": layers}


def _masked(rgb: np.ndarray, valid: np.ndarray) -> np.ndarray:
    out = rgb.copy()
    out[~valid] = 0
    return out


def _site(s, site: int | str):
    from geodata.store.lookup import _site as lookup_site

    return lookup_site(s, site)


def current_baseline(s, site_id: int):
    """The site's newest ``site_baseline`` row, or None."""
    from geodata.store.models import SiteBaseline

    return s.query(SiteBaseline).filter(SiteBaseline.site_id == site_id).order_by(
        SiteBaseline.id.desc()).first()


def update_surface_change(bind, survey_id: int, data_dir: str | Path) -> dict[str, Any] | None:
    """Compare one survey with its site's current baseline and store the layer (replacing an
    earlier one against the same baseline). None when the site has no baseline, the survey is
    part of it or older, or it is not an orthomosaic.

    Returns ``{"survey_id", "compared_m2", "changed_m2", "changed_pct", "polygons",
    "raster"}``.

    Raises:
        SiteBaselineError: the baseline's feature file is missing or altered (re-fit it).
    """
    import geopandas as gpd
    import rasterio
    import shapely
    import torch
    from rasterio.features import rasterize, shapes
    from safetensors.torch import load_file

    from engine.site_change import BORDER_PX, BaselineImage, change_probability, grid_change_scores
    from geodata.store.engine import session_scope
    from geodata.store.models import InferenceRun, Site, SurfaceChange, Survey

    with session_scope(bind) as s:
        survey = s.get(Survey, survey_id)
        if survey is None or survey.source_type != "orthomosaic":
            return None
        base = current_baseline(s, survey.site_id)
        if base is None or survey.id in base.survey_ids:
            return None
        first = min(s.get(Survey, i).acquired_at for i in base.survey_ids)
        if survey.acquired_at <= first:
            return None
        epsg = s.get(Site, survey.site_id).crs_epsg
        unobservable = s.query(InferenceRun.unobservable).filter(
            InferenceRun.survey_id == survey_id, InferenceRun.status == "succeeded").order_by(
            InferenceRun.id.desc()).limit(1).scalar()
        base_id, threshold, card = base.id, base.threshold, dict(base.card)
        features_path, sha, path = base.features_path, base.features_sha256, survey.source_path
    fpath = Path(features_path)
    if not fpath.is_file() or hashlib.sha256(fpath.read_bytes()).hexdigest() != sha:
        raise SiteBaselineError(f"the baseline's feature file {fpath} is missing or altered; "
                                f"fit the baseline again (crackwatch site baseline).")
    g = card["grid"]
    grid = Grid(tuple(g["shape"]), rasterio.Affine(*g["transform"]),
                rasterio.crs.CRS.from_wkt(g["crs"]))
    rgb, seen = _read_onto(path, grid)
    state = load_file(str(fpath))
    seen &= state.pop("valid").numpy() > 0
    rgb = _masked(rgb, seen)  # blank where either has no data, as the baseline was
    if not seen.all():  # features near a nodata edge see the blank: not compared
        import cv2

        seen = cv2.erode(seen.astype(np.uint8), np.ones((3, 3), np.uint8),
                         iterations=BORDER_PX) > 0
    if unobservable is not None and not unobservable.is_empty:
        hidden = gpd.GeoSeries([unobservable], crs=epsg).to_crs(grid.crs).iloc[0]
        seen &= rasterize([(hidden, 1)], out_shape=grid.shape, transform=grid.transform,
                          fill=0, dtype="uint8") == 0
    bases = [BaselineImage(k, state[k], grid.shape) for k in sorted(state)]
    with torch.inference_mode():
        scores = grid_change_scores(rgb, bases, seen)
    compared = np.isfinite(scores)
    changed = compared & (scores >= threshold)
    prob = np.where(compared, change_probability(np.nan_to_num(scores), threshold), np.nan)
    out_dir = Path(data_dir) / "surface_change"
    out_dir.mkdir(parents=True, exist_ok=True)
    raster = out_dir / f"survey-{survey_id}-baseline-{base_id}.tif"
    tmp = raster.with_suffix(".tmp.tif")
    with rasterio.open(tmp, "w", driver="GTiff", width=grid.shape[1], height=grid.shape[0],
                       count=1, dtype="float32", crs=grid.crs, transform=grid.transform,
                       nodata=float("nan"), compress="deflate", tiled=True, blockxsize=256,
                       blockysize=256) as dst:
        dst.write(prob.astype(np.float32), 1)
        dst.set_band_description(1, "surface change probability-like score (unsupervised)")
        dst.update_tags(CRACKWATCH_LAYER=LAYER_NAME, CRACKWATCH_BASELINE_ID=str(base_id),
                        CRACKWATCH_THRESHOLD=f"{threshold:.4f}",
                        CRACKWATCH_NOTE="0.5 = the baseline's threshold; not a crack "
                                        "probability; never used for alert levels")
    tmp.replace(raster)
    polys = [shapely.geometry.shape(geom) for geom, v in shapes(
        changed.astype(np.uint8), mask=changed, transform=grid.transform) if v == 1]
    area_px = abs(grid.transform.a * grid.transform.e - grid.transform.b * grid.transform.d)
    min_area = MIN_CHANGE_PATCHES * 64 * area_px
    polys = [p for p in polys if p.area >= min_area]
    cmp_polys = [shapely.geometry.shape(geom) for geom, v in shapes(
        compared.astype(np.uint8), mask=compared, transform=grid.transform) if v == 1]
    geom_site = gpd.GeoSeries([shapely.union_all(polys)] if polys else [], crs=grid.crs
                              ).to_crs(epsg)
    compared_m2 = float(gpd.GeoSeries(cmp_polys, crs=grid.crs).to_crs(epsg).area.sum())
    changed_m2 = float(geom_site.area.sum())
    geometry = geom_site.iloc[0] if len(geom_site) else None
    details = {"threshold": threshold, "compared_px": int(compared.sum()),
               "changed_px": int(changed.sum()), "polygons": len(polys),
               "layer": LAYER_NAME}
    with session_scope(bind, write=True) as s:
        s.query(SurfaceChange).filter(SurfaceChange.survey_id == survey_id,
                                      SurfaceChange.baseline_id == base_id).delete()
        s.add(SurfaceChange(survey_id=survey_id, baseline_id=base_id,
                            raster_path=str(raster), geometry=_in_site(geometry, epsg),
                            compared_m2=compared_m2, changed_m2=changed_m2,
                            details=details))
    pct = 100 * changed_m2 / compared_m2 if compared_m2 else 0.0
    log.info("survey %d: surface change %.3f %% of %.1f m2 compared (%d polygons)", survey_id,
             pct, compared_m2, len(polys))
    return {"survey_id": survey_id, "compared_m2": compared_m2, "changed_m2": changed_m2,
            "changed_pct": pct, "polygons": len(polys), "raster": str(raster)}


def _in_site(geometry, epsg: int):
    """A geometry in the site CRS as the store keeps it (with its SRID)."""
    import shapely

    if geometry is None:
        return None
    return shapely.set_srid(geometry, epsg)


__all__ = ["LAYER_NAME", "SiteBaselineError", "current_baseline", "fit_site_baseline",
           "update_surface_change"]
