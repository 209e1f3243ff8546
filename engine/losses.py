"""Training losses for crack segmentation (kept apart from the models)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def dice_bce_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    dice_weight: float = 1.0,
    bce_weight: float = 1.0,
    smooth: float = 1.0,
    per_sample: bool = True,
) -> torch.Tensor:
    """Soft Dice (Milletari et al. 2016) plus pixel-weighted BCE.

    With ``per_sample`` (default) the Dice term is computed per image and averaged, so a crop
    with a 1-px drone crack (UAV75, ~200 crack pixels) counts as much as a DeepCrack crop with
    thousands; pooled over the batch, the wide cracks dominate and thin ones are ignored.

    Args:
        logits: ``(B, 1, H, W)`` raw model outputs.
        target: ``(B, 1, H, W)`` float in {0, 1}.
        weight: ``(B, 1, H, W)`` per-pixel loss weights (0 = ignore, e.g. padding; >1 = hard
            negatives such as UAV75 planking). ``None`` means all ones.
        smooth: additive smoothing of the Dice ratio.
        per_sample: Dice per image then mean (True) or pooled over the batch (False).

    Returns a scalar tensor.
    """
    if weight is None:
        weight = torch.ones_like(target)
    bce = F.binary_cross_entropy_with_logits(logits, target, weight=weight, reduction="sum")
    bce = bce / weight.sum().clamp_min(1.0)
    valid = (weight > 0).to(logits.dtype)
    prob = torch.sigmoid(logits) * valid
    tgt = target * valid
    dims = (1, 2, 3) if per_sample else (0, 1, 2, 3)
    inter = (prob * tgt).sum(dims)
    dice = 1.0 - (2.0 * inter + smooth) / (prob.sum(dims) + tgt.sum(dims) + smooth)
    return bce_weight * bce + dice_weight * dice.mean()
