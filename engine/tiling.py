"""Windows over a raster and their blending: where the tiler's windows start
(:func:`window_starts`, :func:`aligned_stride`), the smooth weight window that blends them
(:func:`blend_weights`), and the row-band accumulator that blends one row of windows in
buffers allocated once (:class:`RowBandBlender`). Pure numpy; used by :mod:`engine.infer`
and :mod:`engine.banded`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["RowBandBlender", "aligned_stride", "blend_weights", "window_starts"]


def window_starts(n: int, tile: int, stride: int) -> list[int]:
    """Start offsets of windows of length ``tile`` covering ``0..n`` with step ``stride``.

    The last window is aligned to the end, so every window lies inside ``0..n`` when
    ``n >= tile``; a single window at 0 when ``n <= tile``.
    """
    if n <= tile:
        return [0]
    starts = list(range(0, n - tile + 1, stride))
    if starts[-1] + tile < n:
        starts.append(n - tile)
    return starts


def aligned_stride(tile: int, overlap: int, block: int, n: int) -> int:
    """Window step: ``tile - overlap``, rounded down to a multiple of the block size when the
    raster is tiled in blocks smaller than the tile (so reads start on block edges)."""
    stride = tile - overlap
    if 1 < block < tile and block < n and stride >= block:
        stride = (stride // block) * block
    return max(1, stride)


def blend_weights(tile: int, overlap: int, eps: float = 1e-3) -> np.ndarray:
    """Smooth ``(tile, tile)`` float32 weight window for overlap blending.

    Separable: each axis ramps up over ``overlap`` pixels at both ends with a squared sine
    (``sin^2``, the Hann taper) from ``eps`` to 1 and is 1 in the middle. Outputs are blended as
    ``sum(w * p) / sum(w)``, so any positive weight gives an exact partition of unity: a
    constant prediction stays constant, and seams vanish because the weights fall smoothly to
    near zero at each window's edge.
    """
    i = np.arange(tile, dtype=np.float64)
    if overlap > 0:
        ramp = np.clip((np.minimum(i, tile - 1 - i) + 0.5) / overlap, 0.0, 1.0)
        w1 = np.maximum(np.sin(0.5 * np.pi * ramp) ** 2, eps)
    else:
        w1 = np.ones(tile)
    return np.outer(w1, w1).astype(np.float32)


class RowBandBlender:
    """Weighted blending of one row of windows, in buffers allocated once and reused.

    Holds ``num = sum(w * p)`` and ``den = sum(w)`` for raster rows ``[top, top + rows)``
    (``rows`` = the window height), all ``cols`` columns, float32. :meth:`add` blends one
    window's probabilities; :meth:`take` turns the first rows into final output and moves the
    band down. Every array (the two accumulators, the per-window weight scratch, the validity
    and uint8 output rows) is allocated in ``__init__``; nothing is allocated per window or
    per flush, and the band is shifted in place, so a whole raster is blended in the same
    ``~ (2 * 4 + 3) * rows * cols`` bytes (issue 14: no allocator churn, memory flat in the
    raster's height). The arithmetic is the same, in the same order, as
    ``num += p * (w * valid); den += w * valid; out = num / max(den, 1e-12)``.

    Args:
        rows: window height (px); tile_cols: window width (px); cols: raster width (px).
        weights: ``(rows, tile_cols)`` float32 blending window (:func:`blend_weights`).
    """

    def __init__(self, rows: int, tile_cols: int, cols: int, weights: np.ndarray):
        if weights.shape != (rows, tile_cols):
            raise ValueError(f"weights must be ({rows}, {tile_cols}), got {weights.shape}.")
        self.rows, self.tile_cols, self.cols = rows, tile_cols, cols
        self.weights = weights.astype(np.float32, copy=False)
        self.top = 0
        self._num = np.zeros((rows, cols), np.float32)
        self._den = np.zeros((rows, cols), np.float32)
        self._wt = np.empty((rows, tile_cols), np.float32)
        self._valid = np.empty((rows, cols), bool)
        self._u8 = np.empty((rows, cols), np.uint8)
        self._mask_u8 = np.empty((rows, cols), np.uint8)
        self._pending = 0  # rows taken but not yet shifted out (their views are still in use)

    def buffers(self) -> tuple[np.ndarray, ...]:
        """Every array the blender owns (for tests: they are the same objects for its life)."""
        return (self._num, self._den, self._wt, self._valid, self._u8, self._mask_u8)

    def _shift(self) -> None:
        """Move rows ``[n, rows)`` to the top and zero the rest (``n`` = rows last taken), in
        place: copies of at most ``n`` rows, which never overlap, so numpy makes no temporary."""
        n, self._pending = self._pending, 0
        if n == 0:
            return
        keep = self.rows - n
        for a in (self._num, self._den):
            for i in range(0, keep, n):
                m = min(n, keep - i)
                a[i:i + m] = a[i + n:i + n + m]
            a[keep:] = 0

    def add(self, col: int, prob: np.ndarray, valid: np.ndarray) -> None:
        """Blend a window at columns ``[col, col + tile_cols)`` of the band's rows.

        ``prob``: ``(rows, tile_cols)`` float32 probabilities; ``valid``: same-shape bool mask
        (False pixels get weight 0).
        """
        self._shift()
        wt = self._wt
        np.multiply(self.weights, valid, out=wt)
        self._den[:, col:col + self.tile_cols] += wt
        np.multiply(prob, wt, out=wt)
        self._num[:, col:col + self.tile_cols] += wt

    def take(self, upto: int, dtype: str = "uint8"):
        """Final values of rows ``[top, upto)``; the band then starts at ``upto``.

        Returns ``(values, mask)`` for ``dtype="uint8"`` (probability x 255 rounded, and the
        GDAL mask 0/255), ``(values, None)`` for ``"float32"`` (NaN where no window covered a
        pixel), or None when ``upto <= top``. The arrays are views into the blender's
        buffers: valid until the next :meth:`add` or :meth:`take`.

        Raises:
            ValueError: more rows than the band holds.
        """
        self._shift()
        n = upto - self.top
        if n <= 0:
            return None
        if n > self.rows:
            raise ValueError(f"Cannot take {n} rows from a band of {self.rows}.")
        num, den, valid = self._num[:n], self._den[:n], self._valid[:n]
        np.greater(den, 0, out=valid)
        # These rows are final: compute the probability in place in ``num``.
        np.maximum(den, 1e-12, out=den)
        np.divide(num, den, out=num)
        if dtype == "uint8":
            np.clip(num, 0, 1, out=num)
            np.multiply(num, 255, out=num)
            np.rint(num, out=num)
            values = self._u8[:n]
            values[...] = num
            mask = self._mask_u8[:n]
            np.multiply(valid, 255, out=mask, casting="unsafe")
            out = (values, mask)
        else:
            np.logical_not(valid, out=valid)
            np.copyto(num, np.float32(np.nan), where=valid)
            out = (num, None)
        self._pending = n
        self.top = upto
        return out
