"""The masks a survey's cracks are vectorised under, besides nodata and the edge band.

- vegetation (``InferenceSettings.mask_vegetation``): ground the camera cannot see, so it
  is neither crack nor intact (:mod:`engine.observable`); the share left is the survey's
  ``observable_fraction``;
- the tile gate (``InferenceSettings.tile_gate``): tiles the crack / no-crack classifier
  calls crack-free (:mod:`engine.tile_classifier`; measured in
  deploy/docs/explanation/models.md, "Tile gate").

A pixel under either mask cannot be crack; :func:`geodata.vectorise.vectorise_cracks` takes
their union as ``exclude_mask``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["map_exclusions", "photo_exclusions"]


def map_exclusions(out: Any, settings: Any, source: Path | None, shape: tuple[int, int],
                   transform: Any, crs: Any, nodata: np.ndarray) -> np.ndarray | None:
    """The (rows, cols) bool mask of an orthomosaic's probability grid where no crack may be.

    Sets ``out.observable_fraction`` (share of valid pixels not vegetation) and
    ``out.unobservable`` (a GeoSeries of the vegetation, in ``crs``) when vegetation is
    masked.

    Args:
        out: the :class:`engine.survey.SurveyInference` being filled.
        settings: its :class:`engine.survey.InferenceSettings`.
        source: the orthomosaic read for the masks (None: no mask).
        shape, transform, crs: the probability grid (rows, cols), its affine transform and CRS.
        nodata: (rows, cols) bool, True where the grid has no data.

    Returns:
        The mask, or None when nothing is masked.
    """
    if source is None:
        return None
    exclude = None
    if settings.mask_vegetation:
        import geopandas as gpd

        from engine.observable import vegetation_on_grid, vegetation_polygons

        exclude = vegetation_on_grid(source, shape, transform)
        if exclude is not None:
            valid = ~nodata
            out.observable_fraction = round(
                float((valid & ~exclude).sum() / max(1, valid.sum())), 4)
            area = vegetation_polygons(exclude & valid, transform)
            if area is not None:
                out.unobservable = gpd.GeoSeries([area], crs=crs)
    if settings.tile_gate:
        from engine.tile_classifier import no_crack_on_grid

        no_crack = no_crack_on_grid(source, shape, transform)
        if no_crack is not None:
            exclude = no_crack if exclude is None else exclude | no_crack
    return exclude


def photo_exclusions(photo: Any, rgb: np.ndarray, settings: Any,
                     gate: Any = None) -> tuple[np.ndarray | None, Any]:
    """A photo's (rows, cols) bool mask where no crack may be, and the tile gate used.

    Sets ``photo.observable_fraction`` when vegetation is masked.

    Args:
        photo: the :class:`engine.survey.PhotoInference` being filled.
        rgb: its (rows, cols, 3) uint8 pixels.
        settings: the :class:`engine.survey.InferenceSettings`.
        gate: the tile gate loaded for an earlier photo of the set (None: load it once
            here, when ``settings.tile_gate``).

    Returns:
        ``(mask or None, gate)``: pass ``gate`` back in for the next photo.

    Raises:
        What :func:`engine.tile_classifier.load_gate` raises (weights missing or changed).
    """
    exclude = None
    if settings.mask_vegetation:
        from engine.observable import vegetation_mask

        exclude = vegetation_mask(rgb)
        photo.observable_fraction = round(1.0 - float(exclude.mean()), 4)
    if settings.tile_gate:
        from engine.tile_classifier import load_gate, no_crack_tiles

        if gate is None:
            gate = load_gate()
        no_crack = no_crack_tiles(rgb, gate)
        exclude = no_crack if exclude is None else exclude | no_crack
    return exclude, gate
