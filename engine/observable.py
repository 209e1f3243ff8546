"""Observable ground: where a crack in the soil or rock can be seen at all (issue 25).

On a vegetated slope the crack model fires on the dark gaps between trees and bushes (the Mt
Agung demo photo: 175 "cracks", none real). Published UAV fissure mapping masks vegetation
first with an RGB index; ExG and GLI were the best of 12 on rocky slopes (Remote Sens.
15:3254, 2023). Here:

* vegetation = Excess Green ``ExG = 2g - r - b`` on chromatic coordinates (``r = R / (R + G +
  B)``, ...; Woebbecke et al. 1995) above :data:`EXG_THRESHOLD`, then a morphological
  opening (:data:`OPENING_PX` square) that removes plants narrower than that (a plant
  growing in a fracture stays observable ground), then a dilation (:data:`DILATION_PX`
  square) that covers the shadowed gaps at the edges of the canopy;
* a crack candidate with half its pixels or more on vegetation is not reported.

Measured (a numpy check of the labels, no model; README "What the map shows can be
trusted"): on the labelled rockfracture sets this mask covers 0.0 % (val), 1.2 % (test) and
1.6 % (train) of the fracture pixels; on the Mt Agung photo it covers 77 % of the image and
keeps 9 of the slope model's 175 candidates. The plain ``ExG > 0.08`` + dark-as-shadow mask
the issue warned of covers 19-27 % of the fracture pixels; a dark-shadow mask (max RGB < 40,
31 px opening) covers 24 % of rockfracture val's fracture pixels, so shadow is not masked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

__all__ = ["DILATION_PX", "EXG_THRESHOLD", "OPENING_PX", "POLYGON_MAX_SIDE_PX",
           "read_vegetation_mask", "vegetation_mask", "vegetation_on_grid",
           "vegetation_polygons"]

#: ExG (chromatic coordinates) above which a pixel is vegetation.
EXG_THRESHOLD = 0.10
#: Side (px) of the square opening: vegetation patches narrower than this are ground.
OPENING_PX = 15
#: Side (px) of the square dilation that covers the canopy's edge and its shadowed gaps.
DILATION_PX = 7
#: The "not observable" map layer is drawn from the mask reduced to at most this many pixels
#: on its longer side (majority of each block), so that a 20,000 px orthomosaic gives a
#: layer of kilobytes, not of megabytes.
POLYGON_MAX_SIDE_PX = 1024


def vegetation_mask(rgb: np.ndarray) -> np.ndarray:
    """Vegetation (not observable ground) of an RGB image.

    Args:
        rgb: ``(rows, cols, 3)`` or ``(3, rows, cols)`` uint8.

    Returns:
        ``(rows, cols)`` bool, True on vegetation.

    Raises:
        ValueError: not a 3-band uint8 image.
    """
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or 3 not in (rgb.shape[0], rgb.shape[2]):
        raise ValueError(f"rgb must be (rows, cols, 3) or (3, rows, cols) uint8, got "
                         f"{rgb.shape} {rgb.dtype}")
    bands = rgb if rgb.shape[0] == 3 and rgb.shape[2] != 3 else rgb.transpose(2, 0, 1)
    r, g, b = (bands[i].astype(np.float32) for i in range(3))
    exg = (2 * g - r - b) / np.maximum(r + g + b, 1.0)
    veg = ndimage.binary_opening(exg > EXG_THRESHOLD, np.ones((OPENING_PX, OPENING_PX), bool))
    return ndimage.binary_dilation(veg, np.ones((DILATION_PX, DILATION_PX), bool))


def read_vegetation_mask(path: str, window_rows: int = 2048) -> np.ndarray:
    """:func:`vegetation_mask` of a survey raster (its RGB bands, 8-bit), computed in row
    bands of ``window_rows`` with an overlap that keeps the morphology exact; ``(rows, cols)``
    bool on the raster's own grid. Pixels outside the raster's data are False.

    Raises:
        RasterReadError / RasterRefusedError: as :func:`engine.raster_read.open_survey_raster`.
    """
    from rasterio.windows import Window

    from engine.raster_read import open_survey_raster, select_rgb_bands, stretch_limits, to_uint8

    halo = OPENING_PX + DILATION_PX
    with open_survey_raster(path) as src:
        bands, _ = select_rgb_bands(src.colorinterp, src.count)
        limits = stretch_limits(src, bands)
        out = np.zeros((src.height, src.width), bool)
        for top in range(0, src.height, window_rows):
            a, b = max(0, top - halo), min(src.height, top + window_rows + halo)
            win = Window(0, a, src.width, b - a)
            rgb = to_uint8(src.read(list(bands), window=win), limits)
            veg = vegetation_mask(rgb) & (src.dataset_mask(window=win) > 0)
            stop = min(src.height, top + window_rows)
            out[top:stop] = veg[top - a:stop - a]
    return out


def vegetation_on_grid(source: Path, shape: tuple[int, int], transform: Any
                       ) -> np.ndarray | None:
    """The source orthomosaic's vegetation mask (:func:`engine.observable.
    read_vegetation_mask`) when the probability map is on its grid (None when it was
    reprojected: no mask then)."""
    import rasterio

    from engine.raster_read import SURVEY_RASTER_DRIVERS

    with rasterio.open(source, driver=SURVEY_RASTER_DRIVERS.get(source.suffix.lower())) as src:
        same = (src.height, src.width) == shape and src.transform == transform
    return read_vegetation_mask(str(source)) if same else None


def vegetation_polygons(mask: np.ndarray, transform: Any, *,
                        max_side_px: int = POLYGON_MAX_SIDE_PX) -> Any:
    """The not-observable ground of a map as one (Multi)Polygon, for the map layer.

    Args:
        mask: ``(rows, cols)`` bool, True where not observable (:func:`vegetation_mask` on
            the map's grid).
        transform: the map's affine geotransform (pixel -> map CRS).
        max_side_px: the mask is reduced by whole blocks (majority vote) until its longer
            side is at most this, polygonised there (``rasterio.features.shapes``) and
            simplified by one reduced pixel; patches smaller than 4 reduced pixels are left
            out.

    Returns:
        A shapely geometry in the map's CRS (units of ``transform``), or None when nothing
        is masked.
    """
    import shapely
    from affine import Affine
    from rasterio import features

    if not mask.any():
        return None
    f = max(1, int(np.ceil(max(mask.shape) / max_side_px)))
    rows, cols = (mask.shape[0] // f) * f, (mask.shape[1] // f) * f
    if f > 1 and rows and cols:
        coarse = mask[:rows, :cols].reshape(rows // f, f, cols // f, f).mean(axis=(1, 3)) >= 0.5
    else:
        coarse = mask
    grid = transform @ Affine.scale(f, f)
    polys = [shapely.geometry.shape(g) for g, v in
             features.shapes(coarse.astype(np.uint8), mask=coarse, transform=grid) if v]
    pixel = abs(grid.a * grid.e - grid.b * grid.d)
    polys = [p for p in polys if p.area >= 4 * pixel]
    if not polys:
        return None
    return shapely.simplify(shapely.union_all(polys), pixel ** 0.5, preserve_topology=True)
