"""Measurements of crack components, and the length and line of a crack skeleton on its
8-neighbour pixel graph (see
:mod:`geodata.vectorise` for the measuring conventions: an orthogonal link is 1 px, a
diagonal link sqrt(2) px, every link counted once, and a diagonal link skipped where an
orthogonal corner already joins its ends)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import shapely
from affine import Affine
from scipy import ndimage
from skimage.morphology import skeletonize

__all__ = ["measure_components", "skeleton_length_px", "skeleton_line", "skeleton_links"]

_SQRT2 = math.sqrt(2.0)


def skeleton_links(skel: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Links of the skeleton's pixel graph as (rows, cols) of start pixels plus step.

    ``skel`` must have a background border (one zero pixel all round). Returns a list of
    ``(rows, cols, (dr, dc))`` with one entry per link direction: right, down, down-right,
    down-left. Diagonal links are kept only where neither orthogonal corner pixel is set.
    """
    s = skel
    core = s[1:-1, 1:-1]
    right = core & s[1:-1, 2:]
    down = core & s[2:, 1:-1]
    down_right = core & s[2:, 2:] & ~s[1:-1, 2:] & ~s[2:, 1:-1]
    down_left = core & s[2:, :-2] & ~s[1:-1, :-2] & ~s[2:, 1:-1]
    out = []
    for m, step in ((right, (0, 1)), (down, (1, 0)), (down_right, (1, 1)), (down_left, (1, -1))):
        r, c = np.nonzero(m)
        out.append((r + 1, c + 1, np.array(step)))
    return out


def skeleton_length_px(skel: np.ndarray) -> float:
    """Skeleton length in pixels: orthogonal links 1, diagonal links sqrt(2), each once."""
    links = skeleton_links(skel)
    n_orth = len(links[0][0]) + len(links[1][0])
    n_diag = len(links[2][0]) + len(links[3][0])
    return float(n_orth + _SQRT2 * n_diag)


def skeleton_line(skel: np.ndarray, row_off: int, col_off: int, transform: Affine) -> Any:
    """The skeleton's links as merged lines through pixel centres in map coordinates."""

    def to_xy(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        x = cols + col_off + 0.5
        y = rows + row_off + 0.5
        a, b, c, d, e, f = transform[:6]
        return np.stack([a * x + b * y + c, d * x + e * y + f], axis=-1)

    segments = []
    for rows, cols, (dr, dc) in skeleton_links(skel):
        if len(rows):
            segments.append(np.stack([to_xy(rows, cols), to_xy(rows + dr, cols + dc)], axis=1))
    if not segments:
        r, c = np.nonzero(skel)
        x, y = to_xy(r[:1], c[:1])[0]
        return shapely.Point(x, y)
    lines = shapely.linestrings(np.concatenate(segments))
    return shapely.line_merge(shapely.MultiLineString(list(lines)))


def measure_components(labels: np.ndarray, raw: np.ndarray, scale: float, measure_px_m: float,
                       skeleton_transform: Affine | None, columns: tuple[str, ...]
                       ) -> tuple[dict[str, list], list]:
    """Per labelled component (``labels`` 1..n): the frame's columns but the geometry, as lists
    (``rows``), and, with ``skeleton_transform``, its skeleton line in those coordinates
    (empty list without). Length from the skeleton, widths from the distance transform on
    it, probabilities from ``raw / scale`` (see :mod:`geodata.vectorise`); ``columns`` are
    the crack frame's (:data:`geodata.vectorise.CRACK_COLUMNS`)."""
    rows: dict[str, list] = {c: [] for c in columns if c != "geometry"}
    skeleton_geoms: list = []
    pixel_area_m2 = measure_px_m * measure_px_m
    for lab, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:  # cannot happen after sequential relabelling; keep labels aligned
            continue
        r0, c0 = sl[0].start, sl[1].start
        # pad by one background pixel so the bbox edge is background for thinning and EDT
        comp = np.pad(labels[sl] == lab, 1)
        skel = skeletonize(comp)
        if not skel.any():  # defensive: thinning keeps >= 1 pixel of a non-empty component
            skel = comp.copy()
        dt = ndimage.distance_transform_edt(comp)
        widths_px = 2.0 * dt[skel] - 1.0
        length_px = skeleton_length_px(skel)
        values = raw[sl][comp[1:-1, 1:-1]].astype(np.float64) / scale
        area_px = int(comp.sum())

        rows["crack_id"].append(lab)
        rows["length_m"].append(length_px * measure_px_m)
        rows["mean_width_mm"].append(float(widths_px.mean()) * measure_px_m * 1000.0)
        rows["max_width_mm"].append(float(widths_px.max()) * measure_px_m * 1000.0)
        rows["area_m2"].append(area_px * pixel_area_m2)
        rows["mean_probability"].append(float(values.mean()))
        rows["max_probability"].append(float(values.max()))
        rows["length_px"].append(length_px)
        rows["area_px"].append(area_px)
        rows["pixel_size_m"].append(measure_px_m)
        if skeleton_transform is not None:
            # padded (r, c) -> raster (r0 + r - 1, c0 + c - 1)
            skeleton_geoms.append(skeleton_line(skel, r0 - 1, c0 - 1, skeleton_transform))
    return rows, skeleton_geoms
