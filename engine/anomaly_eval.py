"""Evaluating crack detectors that give a score map rather than a probability (PatchCore and
the other unsupervised detectors of issue 29), the same way for every method.

* **Crack-free training tiles** (:func:`crack_free_tiles`): square tiles of labelled images
  whose mask, dilated by a margin, holds no crack pixel; with the terrain negatives these are
  all an unsupervised detector may learn from (never a test image).
* **Figures** (:func:`evaluate_score_maps`), pooled over a test set: pixel IoU and F1 at the
  method's own threshold, pixel AUROC (every 7th pixel of every image), and image-level AUROC
  of tiles: a tile is a crack tile with at least :data:`CRACK_TILE_MIN_PX` crack pixels, a
  crack-free tile with none within the margin, its score the map's maximum over the tile.

AUROC is the Mann-Whitney statistic (rank sum, ties averaged; ``scipy.stats.rankdata``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

#: Side of the tiles of the image-level figures and of crack-free training tiles, px.
TILE = 128
#: A tile is a crack tile with at least this many crack pixels.
CRACK_TILE_MIN_PX = 20
#: Crack-free means no crack pixel within this many pixels of the tile.
MARGIN_PX = 8


def auroc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Area under the ROC curve of ``scores`` for binary ``labels`` (Mann-Whitney U / n1 n0);
    None when one class is missing."""
    from scipy.stats import rankdata

    labels = np.asarray(labels, bool).ravel()
    scores = np.asarray(scores, np.float64).ravel()
    n1 = int(labels.sum())
    n0 = labels.size - n1
    if n1 == 0 or n0 == 0:
        return None
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def best_threshold_iou(scores: np.ndarray, labels: np.ndarray) -> dict | None:
    """The best pooled IoU over every threshold, and that threshold: an oracle upper bound
    (it looks at the test labels), for reading a method's own rule against. None without
    crack pixels."""
    labels = np.asarray(labels, bool).ravel()
    if not labels.any():
        return None
    order = np.argsort(-np.asarray(scores, np.float64).ravel(), kind="stable")
    s, y = np.asarray(scores).ravel()[order], labels[order]
    tp = np.cumsum(y)
    fp = np.cumsum(~y)
    iou = tp / (labels.sum() + fp)
    last = np.r_[s[1:] != s[:-1], True]  # only where the threshold can actually cut
    i = int(np.argmax(np.where(last, iou, -1)))
    return {"iou": float(iou[i]), "threshold": float(s[i])}


def _dilated(mask: np.ndarray, px: int) -> np.ndarray:
    from scipy.ndimage import binary_dilation

    return binary_dilation(mask, iterations=px) if px else mask


def _tiles(shape: tuple[int, int], tile: int) -> list[tuple[int, int]]:
    rows, cols = shape
    return [(r, c) for r in range(0, rows - tile + 1, tile)
            for c in range(0, cols - tile + 1, tile)]


def crack_free_tiles(samples: Iterable, tile: int = TILE,
                     margin: int = MARGIN_PX) -> list[np.ndarray]:
    """``(tile, tile, 3)`` uint8 tiles of labelled ``samples`` (:class:`engine.data.Sample`)
    with no crack pixel within ``margin`` px: crack-free ground of the dataset's own domain.
    Negative samples (all-background masks) give every tile."""
    out = []
    for s in samples:
        near = _dilated(s.mask, margin)
        for r, c in _tiles(s.mask.shape, tile):
            if not near[r:r + tile, c:c + tile].any():
                out.append(np.ascontiguousarray(s.image[r:r + tile, c:c + tile]))
    return out


def evaluate_score_maps(score_map: Callable[[np.ndarray], np.ndarray],
                        threshold: float | Callable[[np.ndarray], float],
                        samples: Sequence, tile: int = TILE,
                        tile_score: Callable[[np.ndarray], float] | None = None) -> dict:
    """Pooled figures of a detector on labelled ``samples``: ``score_map(rgb)`` gives a
    ``(rows, cols)`` score per pixel (higher: more anomalous), ``threshold`` its rule's cut:
    a number, or a function of the image's score map (a per-image rule such as Otsu's).

    ``tile_score`` turns a tile's scores into the tile's (image-level) score: the method's own
    image-score rule; default the maximum.

    Returns ``pixel`` (``iou``, ``f1``, ``precision``, ``recall`` at the threshold, ``auroc``,
    ``flagged_pct``: the share of all pixels at or above the threshold, ``best_threshold_iou``
    (:func:`best_threshold_iou`, on every 7th pixel), counts) and ``image``
    (``auroc`` of crack vs crack-free tiles and the tile counts).
    """
    tp = fp = fn = total = 0
    pix_scores, pix_labels, tile_scores, tile_labels = [], [], [], []
    for s in samples:
        m = score_map(s.image)
        gt = s.mask.astype(bool)
        pred = m >= (threshold(m) if callable(threshold) else threshold)
        tp += int((pred & gt).sum())
        fp += int((pred & ~gt).sum())
        fn += int((~pred & gt).sum())
        total += gt.size
        pix_scores.append(m.ravel()[::7])
        pix_labels.append(gt.ravel()[::7])
        near = _dilated(gt, MARGIN_PX)
        for r, c in _tiles(gt.shape, tile):
            n = int(gt[r:r + tile, c:c + tile].sum())
            if n >= CRACK_TILE_MIN_PX or not near[r:r + tile, c:c + tile].any():
                t = m[r:r + tile, c:c + tile]
                tile_scores.append(float(tile_score(t) if tile_score else t.max()))
                tile_labels.append(n >= CRACK_TILE_MIN_PX)
    best = best_threshold_iou(np.concatenate(pix_scores), np.concatenate(pix_labels)) \
        if pix_scores else None
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    return {
        "images": len(samples),
        "threshold": "per image" if callable(threshold) else threshold,
        "pixel": {"iou": tp / (tp + fp + fn) if tp + fp + fn else 0.0,
                  "f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0,
                  "precision": prec, "recall": rec,
                  "auroc": auroc(np.concatenate(pix_scores), np.concatenate(pix_labels))
                  if pix_scores else None,
                  "flagged_pct": 100 * (tp + fp) / total if total else 0.0,
                  "best_threshold_iou": best,
                  "tp": tp, "fp": fp, "fn": fn},
        "image": {"auroc": auroc(np.array(tile_scores), np.array(tile_labels)),
                  "crack_tiles": int(sum(tile_labels)),
                  "crack_free_tiles": int(len(tile_labels) - sum(tile_labels)),
                  "tile_px": tile},
    }


__all__ = ["CRACK_TILE_MIN_PX", "MARGIN_PX", "TILE", "auroc", "crack_free_tiles",
           "best_threshold_iou", "evaluate_score_maps"]
