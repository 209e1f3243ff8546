"""Crack objects: which connected components of a thresholded crack map are kept as cracks.

A pixel classifier fires on more than cracks; published UAV crack and fissure mapping
filters the candidates as objects (issue 25: a terrain-following-UAV slope study removed
82.7 % of its noise by length, direction and linearity). Each rule here drops a whole
8-connected component, never part of one:

* **specks**: fewer than ``min_area_px`` pixels (:func:`label_components`);
* **edge followers**: at least :data:`EDGE_FRACTION` of the pixels within ``band_px`` of
  nodata or of the frame (:func:`drop_edge_followers`): the step from ground to no ground,
  an orthomosaic's collar or a photo's frame, is the strongest edge in an image;
* **unobservable ground**: at least :data:`EDGE_FRACTION` of the pixels on an exclusion mask
  such as vegetation (:func:`drop_excluded`, :mod:`engine.observable`);
* **object rules** (:class:`ObjectFilter`): shorter than a minimum skeleton length (in
  metres at the survey's ground sample distance, and in pixels), less elongated than a
  minimum length-to-mean-width ratio, or with no pixel above a peak probability (hysteresis
  thresholding: J. Canny, "A computational approach to edge detection", IEEE TPAMI 8(6),
  1986; ``skimage.filters.apply_hysteresis_threshold`` keeps the same components).

The thresholds each shipped model uses (:data:`engine.crack_rules.MODEL_OBJECT_FILTERS`), and the
trade-off they were chosen from (recall of labelled crack length kept against false
components per megapixel on crack-free terrain), are in the README ("What the map shows can
be trusted") with the command that measured them (``crackwatch evaluate --filter-sweep``).

Labels are ``int32`` arrays, 0 = background and 1..n the components in raster scan order of
their first pixel; every function returns them renumbered 1..kept in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = ["EDGE_FRACTION", "ObjectFilter", "apply_object_filter", "drop_edge_followers",
           "drop_excluded", "label_components", "relabel"]

#: A component with at least this fraction of its pixels in the edge band, or on the
#: exclusion mask, is dropped (measured: issue 25, README "What the map shows can be trusted").
EDGE_FRACTION = 0.5

_EIGHT = np.ones((3, 3), bool)


@dataclass(frozen=True)
class ObjectFilter:
    """Rules a crack candidate must pass as a whole object (0 disables a rule).

    Attributes:
        min_length_m: minimum skeleton length in metres (ground units; ignored where the
            ground sample distance is unknown).
        min_length_px: minimum skeleton length in pixels.
        min_elongation: minimum skeleton length / mean width (both in pixels; a disc reads
            below 1, a 3 px wide, 60 px long crack 20).
        min_peak_probability: the component's highest probability must reach this
            (hysteresis: the threshold grows a crack, this seeds it); 0 or anything <= the
            threshold: off.
    """

    min_length_m: float = 0.0
    min_length_px: float = 0.0
    min_elongation: float = 0.0
    min_peak_probability: float = 0.0

    def __post_init__(self) -> None:
        for name in ("min_length_m", "min_length_px", "min_elongation",
                     "min_peak_probability"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"ObjectFilter.{name} must be a finite number >= 0, got {value}")

    @property
    def active(self) -> bool:
        return bool(self.min_length_m or self.min_length_px or self.min_elongation
                    or self.min_peak_probability)

    def keep(self, length_px: np.ndarray, mean_width_px: np.ndarray,
             pixel_size_m: float | None, max_probability: np.ndarray | None = None
             ) -> np.ndarray:
        """Bool per component: True where it passes every rule.

        Args:
            length_px, mean_width_px: ``(n,)`` skeleton length and mean width in pixels.
            pixel_size_m: ground size of a pixel in metres; None: ``min_length_m`` is not
                applied (a photo without a ground sample distance).
            max_probability: ``(n,)`` each component's highest probability in [0, 1]
                (needed by ``min_peak_probability``).
        """
        length_px = np.asarray(length_px, float)
        width = np.maximum(np.asarray(mean_width_px, float), 1.0)
        ok = length_px >= self.min_length_px
        if self.min_length_m and pixel_size_m:
            ok &= length_px * pixel_size_m >= self.min_length_m
        if self.min_elongation:
            ok &= length_px / width >= self.min_elongation
        if self.min_peak_probability and max_probability is not None:
            ok &= np.asarray(max_probability, float) >= self.min_peak_probability
        return ok


def label_components(mask: np.ndarray, min_area_px: int) -> tuple[np.ndarray, int]:
    """8-connected labels of ``mask`` (int32, 1..n) without components < ``min_area_px``."""
    labels = np.zeros(mask.shape, np.int32)
    n = ndimage.label(mask, structure=_EIGHT, output=labels)
    if n == 0:
        return labels, 0
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = sizes >= min_area_px
    keep[0] = False
    return relabel(labels, n, keep)


def relabel(labels: np.ndarray, n: int, keep: np.ndarray) -> tuple[np.ndarray, int]:
    """``labels`` (1..n) with only the labels where ``keep`` (length n + 1, ``keep[0]``
    False), renumbered 1..kept in the same order."""
    if keep[1:].all():
        return labels, n
    mapping = np.zeros(n + 1, np.int32)
    kept = int(keep.sum())
    mapping[keep] = np.arange(1, kept + 1, dtype=np.int32)
    return mapping[labels], kept


def drop_excluded(labels: np.ndarray, n: int, exclude: np.ndarray) -> tuple[np.ndarray, int]:
    """``labels`` without the components of which at least :data:`EDGE_FRACTION` of the
    pixels are ``exclude``.

    Raises:
        ValueError: ``exclude`` has another shape than ``labels``.
    """
    exclude = np.asarray(exclude, bool)
    if exclude.shape != labels.shape:
        raise ValueError(f"exclude_mask shape {exclude.shape} does not match probability "
                         f"shape {labels.shape}")
    share = np.asarray(ndimage.mean(exclude, labels, np.arange(1, n + 1)), float)
    keep = np.concatenate([[False], share < EDGE_FRACTION])
    return relabel(labels, n, keep)


def drop_edge_followers(labels: np.ndarray, n: int, invalid: np.ndarray,
                        band_px: int) -> tuple[np.ndarray, int]:
    """``labels`` without the components of which at least :data:`EDGE_FRACTION` of the
    pixels lie within ``band_px`` pixels (Euclidean) of an ``invalid`` pixel or of the
    array's frame. Works per component on its bounding box grown by ``band_px`` (no
    whole-raster distance map)."""
    padded = np.pad(invalid, band_px, constant_values=True)  # the frame counts as nodata
    keep = np.ones(n + 1, bool)
    keep[0] = False
    for lab, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        r0, r1, c0, c1 = sl[0].start, sl[0].stop, sl[1].start, sl[1].stop
        near = padded[r0:r1 + 2 * band_px, c0:c1 + 2 * band_px]
        if not near.any():
            continue
        close = ndimage.distance_transform_edt(~near)[band_px:-band_px, band_px:-band_px]
        comp = labels[sl] == lab
        if (close[comp] <= band_px).mean() >= EDGE_FRACTION:
            keep[lab] = False
    return relabel(labels, n, keep)


def apply_object_filter(object_filter: ObjectFilter, labels: np.ndarray, n: int,
                        rows: dict[str, list], skeleton_geoms: list,
                        pixel_size_m: float | None):
    """(labels, n, rows, skeleton_geoms) of the components that pass ``object_filter``,
    renumbered 1..kept (``crack_id`` too). ``rows`` holds per component (in label order)
    at least ``length_px``, ``mean_width_mm``, ``pixel_size_m`` and ``max_probability``
    (:func:`geodata.vectorise.vectorise_cracks`' measurements)."""
    length_px = np.asarray(rows["length_px"], float)
    width_px = np.asarray(rows["mean_width_mm"], float) / (np.asarray(rows["pixel_size_m"])
                                                           * 1000.0)
    ok = object_filter.keep(length_px, width_px, pixel_size_m, rows["max_probability"])
    if ok.all():
        return labels, n, rows, skeleton_geoms
    labels, kept = relabel(labels, n, np.concatenate([[False], ok]))
    idx = np.flatnonzero(ok)
    rows = {c: [v[i] for i in idx] for c, v in rows.items()}
    rows["crack_id"] = list(range(1, kept + 1))
    skeleton_geoms = [skeleton_geoms[i] for i in idx] if skeleton_geoms else skeleton_geoms
    return labels, kept, rows, skeleton_geoms
