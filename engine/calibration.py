"""Probability calibration: one threshold (0.5) for every domain.

A segmentation network trained with Dice + BCE on a few domains puts its F1-optimal threshold
wherever its training mix pushed it: on the old default it ran from 0.006 (cross-dataset
pavement) to 0.95 depending on the test set. The pipeline, the alerts and the dashboard use a
single threshold, so the probabilities must be brought to a common scale.

Method: a Platt-form affine map of the logit, ``p = sigmoid(scale * z + bias)`` (Platt 1999,
"Probabilistic outputs for support vector machines"), fitted not by likelihood but so that
the F1-optimal threshold (ODS) of each validation set lands near 0.5:

* each labelled validation set ``i`` gives its ODS threshold ``t_i`` on the raw probabilities
  (:meth:`engine.metrics.SegmentationMeter.ods_level`);
* ``bias`` centres the mean of ``logit(t_i)`` on 0 (probability 0.5);
* ``scale`` (<= 1) compresses only as much as needed to put every ``logit(t_i)`` inside
  ``MARGIN`` of ``logit(0.7)`` (so the calibrated thresholds lie in [0.3, 0.7]).

The map is monotone: the ranking of pixels, and therefore ODS F1, IoU at ODS and every
precision-recall curve, are unchanged; only which probability 0.5 means moves. Likelihood
fitting (plain Platt scaling / temperature) was not used because at ~1-3 % crack pixels a
calibrated probability's F1-optimal threshold sits near F1*/2 (Lipton et al. 2014, "Thresholding
classifiers to maximize F1"), i.e. well below 0.3 on hard domains.

The fitted map lives in the model card (``calibration``), not in the weights: the weights' sha
stays that of the trained network. :func:`engine.registry.load_model` applies it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from engine.data import Sample
from engine.evaluate import iter_probabilities
from engine.metrics import SegmentationMeter

TARGET_RANGE = (0.3, 0.7)
#: Calibrated thresholds are placed within this fraction of the [0.3, 0.7] half-width.
MARGIN = 0.8
METHOD = ("Platt-form logit map sigmoid(scale*z + bias), fitted so that each validation set's "
          "F1-optimal threshold lands near 0.5 (engine.calibration)")


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def fit_from_thresholds(thresholds: Mapping[str, float]) -> dict:
    """The logit map that brings every raw F1-optimal threshold into [0.3, 0.7].

    Args:
        thresholds: validation set name -> ODS threshold on raw probabilities, in (0, 1).

    Returns:
        ``{"method", "scale", "bias", "raw_ods_threshold", "calibrated_ods_threshold"}``.

    Raises:
        ValueError: no thresholds, or one outside (0, 1).
    """
    if not thresholds:
        raise ValueError("calibration needs at least one labelled validation set")
    for name, t in thresholds.items():
        if not 0.0 < t < 1.0:
            raise ValueError(f"ODS threshold of {name} is {t}; expected a value in (0, 1)")
    z = {n: _logit(t) for n, t in thresholds.items()}
    centre = sum(z.values()) / len(z)
    half_width = _logit(TARGET_RANGE[1]) * MARGIN
    spread = max(abs(v - centre) for v in z.values())
    scale = min(1.0, half_width / spread) if spread > 0 else 1.0
    bias = -scale * centre
    return {
        "method": METHOD,
        "scale": round(scale, 6),
        "bias": round(bias, 6),
        "raw_ods_threshold": {n: round(t, 4) for n, t in thresholds.items()},
        "calibrated_ods_threshold": {n: round(_sigmoid(round(scale, 6) * v + round(bias, 6)), 4)
                                     for n, v in z.items()},
    }


def ods_threshold(model: nn.Module, samples: Sequence[Sample],
                  device: str | torch.device = "cpu") -> float:
    """The pooled F1-optimal threshold of ``model`` on labelled ``samples`` (ODS)."""
    meter = SegmentationMeter()
    for s, prob in iter_probabilities(model, samples, device):
        meter.update(prob, s.mask, s.planking)
    return (meter.ods_level() - 0.5) / 255


def fit_calibration(model: nn.Module, val_sets: Mapping[str, Sequence[Sample]],
                    device: str | torch.device = "cpu") -> dict:
    """Fit the logit map of ``model`` (with its calibration off) on labelled validation sets.

    Returns the card's ``calibration`` block (:func:`fit_from_thresholds`) with the
    validation set sizes.

    Raises:
        ValueError: no labelled validation set.
    """
    old = (getattr(model, "logit_scale", 1.0), getattr(model, "logit_bias", 0.0))
    set_calibration(model, 1.0, 0.0)
    try:
        thresholds = {n: ods_threshold(model, s, device) for n, s in val_sets.items() if s}
    finally:
        set_calibration(model, *old)
    out = fit_from_thresholds(thresholds)
    out["validation_images"] = {n: len(s) for n, s in val_sets.items()}
    return out


def set_calibration(model: nn.Module, scale: float = 1.0, bias: float = 0.0) -> None:
    """Make ``model`` output ``scale * logit + bias`` (a :class:`engine.models.CrackSegmenter`
    applies it in ``forward``; identity by default)."""
    model.logit_scale = float(scale)
    model.logit_bias = float(bias)
