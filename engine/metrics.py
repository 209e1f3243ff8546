"""Pixel metrics for crack segmentation.

Conventions (all counts pooled over a dataset unless said otherwise):

- Strict: a pixel is a true positive when prediction and ground truth are both crack.
  precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = 2PR / (P + R),
  IoU = TP / (TP + FP + FN). A probability ``p`` is crack when ``p >= threshold``.
- ODS (optimal dataset scale): the single threshold that maximises the pooled F1 over the whole
  dataset, as in the HED/DeepCrack evaluation protocol.
- Boundary tolerance (CrackForest convention, Shi et al. 2016): a predicted crack pixel counts
  as correct when a ground-truth crack pixel lies within ``tolerance_px`` (Euclidean) of it, and a
  ground-truth pixel counts as found when a predicted pixel lies within ``tolerance_px``.
  Tolerant precision = correct predictions / predictions; tolerant recall = found GT / GT.
- Per-image mean IoU: IoU per image at the threshold, averaged; an image with neither ground
  truth nor prediction scores 1. ``compute()`` also lists each image's counts and IoU at 0.5
  (``"per_image"``), so a reviewer can find the images that cost the most wrong pixels.
- Thin-crack recall: recall restricted to ground-truth pixels whose local crack width is at most
  ``thin_width_px`` (3 px). Local width of a GT pixel = ``2 * d - 1`` where ``d`` is the distance
  transform value on the nearest skeleton pixel (a 1-px line has width 1).
- Planking false-positive rate (UAV75): predicted-crack pixels among planking pixels that are not
  crack, divided by those planking pixels.

Probabilities are stored quantised to uint8 (``round(p * 255)``); ``p >= 0.5`` is exactly
``u8 >= 128``, and ODS is searched over all 255 uint8 levels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from skimage.morphology import skeletonize

TOLERANCE_PX = 2
THIN_WIDTH_PX = 3


def confusion_counts(pred: np.ndarray, target: np.ndarray) -> dict[str, int]:
    """TP/FP/FN/TN of two boolean ``(rows, cols)`` arrays."""
    pred = np.asarray(pred, bool)
    target = np.asarray(target, bool)
    tp = int(np.count_nonzero(pred & target))
    fp = int(np.count_nonzero(pred & ~target))
    fn = int(np.count_nonzero(~pred & target))
    tn = int(pred.size - tp - fp - fn)
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn}


def _div(a: float, b: float) -> float:
    return float(a) / float(b) if b else 0.0


def scores(tp: int, fp: int, fn: int) -> dict[str, float]:
    """Precision, recall, F1 and IoU from counts (0 where a denominator is 0)."""
    p, r = _div(tp, tp + fp), _div(tp, tp + fn)
    return {"precision": p, "recall": r, "f1": _div(2 * p * r, p + r),
            "iou": _div(tp, tp + fp + fn)}


def within(mask: np.ndarray, tolerance_px: float) -> np.ndarray:
    """Pixels within ``tolerance_px`` (Euclidean) of any True pixel of ``mask``."""
    if not mask.any():
        return np.zeros_like(mask, bool)
    return ndimage.distance_transform_edt(~mask) <= tolerance_px


def local_width_px(target: np.ndarray) -> np.ndarray:
    """Local crack width (px) for each True pixel of ``target`` (0 elsewhere), see module doc."""
    target = np.asarray(target, bool)
    width = np.zeros(target.shape, np.float32)
    if not target.any():
        return width
    dist = ndimage.distance_transform_edt(target)
    skel = skeletonize(target)
    if not skel.any():
        skel = target
    _, (ri, ci) = ndimage.distance_transform_edt(~skel, return_indices=True)
    w = 2.0 * dist[ri, ci] - 1.0
    width[target] = w[target]
    return width


@dataclass
class _Acc:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tol_pred_ok: int = 0
    tol_pred: int = 0
    tol_gt_found: int = 0
    tol_gt: int = 0
    thin_gt: int = 0
    thin_found: int = 0
    thin_found_tol: int = 0
    plank: int = 0
    plank_fp: int = 0
    image_ious: list = field(default_factory=list)
    image_counts: list = field(default_factory=list)

    def add(self, pred: np.ndarray, target: np.ndarray, thin: np.ndarray,
            planking: np.ndarray | None, tolerance_px: float) -> None:
        c = confusion_counts(pred, target)
        self.tp += c["tp"]
        self.fp += c["fp"]
        self.fn += c["fn"]
        union = c["tp"] + c["fp"] + c["fn"]
        self.image_ious.append(c["tp"] / union if union else 1.0)
        self.image_counts.append((c["tp"], c["fp"], c["fn"]))
        near_gt = within(target, tolerance_px)
        near_pred = within(pred, tolerance_px)
        self.tol_pred += int(pred.sum())
        self.tol_pred_ok += int((pred & near_gt).sum())
        self.tol_gt += int(target.sum())
        self.tol_gt_found += int((target & near_pred).sum())
        self.thin_gt += int(thin.sum())
        self.thin_found += int((thin & pred).sum())
        self.thin_found_tol += int((thin & near_pred).sum())
        if planking is not None:
            neg = planking & ~target
            self.plank += int(neg.sum())
            self.plank_fp += int((neg & pred).sum())

    def report(self, threshold: float, has_planking: bool) -> dict:
        out = {"threshold": round(threshold, 4), **scores(self.tp, self.fp, self.fn)}
        out["counts"] = {"tp": self.tp, "fp": self.fp, "fn": self.fn}
        out["mean_image_iou"] = float(np.mean(self.image_ious)) if self.image_ious else 0.0
        tp_, tr_ = _div(self.tol_pred_ok, self.tol_pred), _div(self.tol_gt_found, self.tol_gt)
        out["tolerant"] = {
            "tolerance_px": TOLERANCE_PX,
            "precision": tp_, "recall": tr_, "f1": _div(2 * tp_ * tr_, tp_ + tr_),
        }
        out["thin_crack_recall"] = _div(self.thin_found, self.thin_gt)
        out["thin_crack_recall_tolerant"] = _div(self.thin_found_tol, self.thin_gt)
        out["thin_crack_pixels"] = self.thin_gt
        if has_planking:
            out["planking_fpr"] = _div(self.plank_fp, self.plank)
            out["planking_pixels"] = self.plank
        return out


class SegmentationMeter:
    """Accumulates probability maps and ground truth over a dataset, then reports metrics.

    ``update(prob, target, planking=None, name=None)`` takes ``prob`` ``(rows, cols)`` float in
    [0, 1] (or uint8 0-255), ``target`` and ``planking`` ``(rows, cols)`` bool, and the image's
    name (default: its index). ``compute()`` returns a dict with the metrics at threshold 0.5
    (``"at_0.5"``), at the ODS threshold (``"ods"``), and ``"per_image"``: one row per image at
    0.5, ``{"image", "tp", "fp", "fn", "iou"}`` (pixel counts; IoU 1 where the image has neither
    ground truth nor prediction), in update order.
    """

    def __init__(self, tolerance_px: float = TOLERANCE_PX, thin_width_px: float = THIN_WIDTH_PX):
        self.tolerance_px = tolerance_px
        self.thin_width_px = thin_width_px
        self._items: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]] = []
        self._names: list[str] = []
        self._pos_hist = np.zeros(256, np.int64)
        self._neg_hist = np.zeros(256, np.int64)

    def update(self, prob: np.ndarray, target: np.ndarray, planking: np.ndarray | None = None,
               name: str | None = None):
        prob = np.asarray(prob)
        if prob.shape != target.shape:
            raise ValueError(f"prob {prob.shape} and target {target.shape} differ in shape")
        u8 = prob if prob.dtype == np.uint8 else np.rint(np.clip(prob, 0, 1) * 255).astype(np.uint8)
        target = np.asarray(target, bool)
        thin = target & (local_width_px(target) <= self.thin_width_px)
        self._pos_hist += np.bincount(u8[target], minlength=256)
        self._neg_hist += np.bincount(u8[~target], minlength=256)
        plank = None if planking is None else np.asarray(planking, bool)
        self._items.append((u8, target, thin, plank))
        self._names.append(str(len(self._names)) if name is None else name)

    def ods_level(self) -> int:
        """uint8 level ``k`` (prediction ``u8 >= k``) maximising pooled F1."""
        tp = np.cumsum(self._pos_hist[::-1])[::-1]  # tp[k] = #positives with u8 >= k
        fp = np.cumsum(self._neg_hist[::-1])[::-1]
        fn = self._pos_hist.sum() - tp
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
        f1[0] = -1  # level 0 predicts everything
        return int(np.argmax(f1))

    def compute(self) -> dict:
        has_planking = any(p is not None for *_, p in self._items)
        out = {"images": len(self._items)}
        for key, level, thr in (
            ("at_0.5", 128, 0.5),
            ("ods", self.ods_level(), None),
        ):
            acc = _Acc()
            for u8, target, thin, plank in self._items:
                acc.add(u8 >= level, target, thin, plank, self.tolerance_px)
            out[key] = acc.report(thr if thr is not None else (level - 0.5) / 255, has_planking)
            if key == "at_0.5":
                out["per_image"] = [
                    {"image": n, "tp": tp, "fp": fp, "fn": fn, "iou": round(iou, 4)}
                    for n, (tp, fp, fn), iou in zip(self._names, acc.image_counts,
                                                     acc.image_ious, strict=True)]
        return out
