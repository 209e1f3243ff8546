"""Evaluation of a crack segmentation model on a labelled dataset.

``evaluate_model`` runs whole-image inference (reflect-padded to a multiple of 32) and reports
the metrics of :mod:`engine.metrics` at threshold 0.5 and at the dataset-wide best threshold
(ODS), strict and with a 2-pixel tolerance, thin-crack recall, and on UAV75 the false-positive
rate on planking pixels. ``PAPER_BASELINES`` holds the numbers the papers report, for printing
beside ours.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from engine.data import Sample, dataset_samples, load_sample, normalise
from engine.metrics import SegmentationMeter
from engine.models import predict_proba

# UP-CrackNet (Ma et al., IEEE T-ITS), Table IV: DeepCrack test set, percent.
PAPER_BASELINES: dict[str, list[dict]] = {
    "deepcrack-test": [
        {"method": "U-Net (supervised)", "precision": 46.530, "recall": 88.690,
         "f1": 61.038, "iou": 43.924},
        {"method": "DeepLabv3+ (supervised)", "precision": 68.078, "recall": 79.690,
         "f1": 73.428, "iou": 58.013},
        {"method": "Deepcrack19 (supervised)", "precision": 88.785, "recall": 68.923,
         "f1": 77.603, "iou": 63.403},
        {"method": "Deepcrack18 (supervised)", "precision": 71.720, "recall": 88.403,
         "f1": 79.192, "iou": 65.552},
        {"method": "UP-CrackNet (unsupervised)", "precision": 63.412, "recall": 88.852,
         "f1": 74.006, "iou": 58.738},
    ],
}
PAPER_SOURCE = "UP-CrackNet (Ma et al.), Table IV, DeepCrack test set"


def iter_probabilities(
    model: nn.Module, samples: Sequence[Sample], device: str | torch.device = "cpu",
    progress: bool = False, desc: str = "predict", tta: bool = False,
) -> Iterator[tuple[Sample, np.ndarray]]:
    """Yield ``(sample, prob)``, ``prob`` ``(rows, cols)`` float32 in [0, 1], image by image.

    ``tta``: average over flips (:func:`engine.models.forward_proba`).
    """
    model.eval()
    for s in tqdm(samples, desc=desc, disable=not progress, unit="img", leave=False):
        x = normalise(torch.from_numpy(s.image).permute(2, 0, 1))[None].to(device)
        yield s, predict_proba(model, x, tta)[0].cpu().numpy()


def evaluate_model(
    model: nn.Module,
    dataset: str | Path,
    *,
    data_root: Path | None = None,
    device: str | torch.device = "cpu",
    limit: int | None = None,
    progress: bool = True,
    tta: bool = False,
) -> dict:
    """Evaluate ``model`` on a catalogue dataset (``deepcrack-test``, ``uav75-test``, ...) or a
    folder holding ``images/`` and ``masks/`` (and optionally ``planking/``).

    ``tta``: test-time augmentation, the probability averaged over four flips (4x compute).

    Returns a JSON-ready report: dataset, image count, metrics at 0.5 and ODS, timing,
    ``tta``, ``per_image`` counts at 0.5 and, for datasets cut from larger photos (DeepCrack),
    ``per_photo``: the same counts summed over each source photo's tiles.

    Raises:
        DataNotFoundError, PairingError, ImageReadError, MaskShapeError: bad dataset input.
    """
    paths, spec = dataset_samples(dataset, data_root)
    if limit:
        paths = paths[:limit]
    meter = SegmentationMeter()
    t0 = time.perf_counter()
    pixels = 0
    samples = (load_sample(p, spec.domain) for p in paths)
    for s, prob in iter_probabilities(model, list(samples), device, progress,
                                        desc=spec.name, tta=tta):
        meter.update(prob, s.mask, s.planking, name=s.stem)
        pixels += prob.size
    seconds = time.perf_counter() - t0
    report = {
        "dataset": spec.name,
        "dataset_license": spec.license,
        "images": len(paths),
        "tta": tta,
        **{k: v for k, v in meter.compute().items() if k != "images"},
        "seconds": round(seconds, 2),
        "megapixels_per_s": round(pixels / 1e6 / seconds, 3) if seconds else None,
        "device": str(device),
        "host": platform.node() and f"{platform.machine()} {torch.get_num_threads()} threads",
    }
    if spec.tile_suffix:  # tiles of one source photo: also report per photo
        photos: dict[str, dict] = {}
        for row in report["per_image"]:
            ph = photos.setdefault(spec.source_photo(row["image"]),
                                   {"images": 0, "tp": 0, "fp": 0, "fn": 0})
            ph["images"] += 1
            for k in ("tp", "fp", "fn"):
                ph[k] += row[k]
        report["per_photo"] = [
            {"photo": name, **v, "iou": round(v["tp"] / max(1, v["tp"] + v["fp"] + v["fn"]), 4)}
            for name, v in photos.items()]
    if spec.name in PAPER_BASELINES:
        report["paper_baselines"] = {"source": PAPER_SOURCE, "rows": PAPER_BASELINES[spec.name]}
    return report


def pooled_iou(model: nn.Module, samples: Sequence[Sample], device="cpu") -> float:
    """Pooled pixel IoU at threshold 0.5 (fast; used for early stopping)."""
    tp = fp = fn = 0
    for s, prob in iter_probabilities(model, samples, device):
        pred = prob >= 0.5
        tp += int((pred & s.mask).sum())
        fp += int((pred & ~s.mask).sum())
        fn += int((~pred & s.mask).sum())
    return tp / (tp + fp + fn) if tp + fp + fn else 0.0


def crack_fraction(model: nn.Module, samples: Sequence[Sample], device="cpu",
                   threshold: float = 0.5) -> float:
    """Fraction of all pixels of ``samples`` predicted crack at ``threshold`` (on crack-free
    negatives, the false-positive rate)."""
    crack = total = 0
    for _, prob in iter_probabilities(model, samples, device):
        crack += int((prob >= threshold).sum())
        total += prob.size
    return crack / total if total else 0.0


#: ``crackwatch evaluate --suite field``: the labelled test sets, and the held-out crack-free
#: terrain (:mod:`engine.negatives`, test photos).
FIELD_SUITE = ("deepcrack-test", "uav75-test", "rockfracture-test")
FIELD_NEGATIVES = "terrain-negatives-test"
#: A predicted component at least this large (8-connected pixels) counts as a false crack on
#: the negatives; smaller specks are below what the pipeline vectorises into a crack.
MIN_COMPONENT_PX = 50


def negatives_report(model: nn.Module, samples: Sequence[Sample],
                     device: str | torch.device = "cpu", threshold: float = 0.5,
                     min_component_px: int = MIN_COMPONENT_PX) -> dict:
    """False positives of ``model`` on crack-free ``samples`` at ``threshold``.

    Returns ``{"images", "megapixels", "crack_pixel_pct", "components", "components_per_mp",
    "worst"}``: the percentage of all pixels predicted crack, the 8-connected predicted
    components of at least ``min_component_px`` pixels (counted per image, so a component cut
    by an image edge counts once per image) in total and per megapixel, and the five images
    with the most crack pixels.
    """
    from skimage.measure import label

    crack = total = comps = 0
    per_image = []
    for s, prob in iter_probabilities(model, samples, device):
        pred = prob >= threshold
        n_px = int(pred.sum())
        n_comp = 0
        if n_px >= min_component_px:
            lab = label(pred, connectivity=2)
            n_comp = int((np.bincount(lab.ravel())[1:] >= min_component_px).sum())
        crack += n_px
        total += pred.size
        comps += n_comp
        per_image.append({"image": s.stem, "crack_px": n_px, "components": n_comp})
    mp = total / 1e6
    return {
        "images": len(per_image),
        "megapixels": round(mp, 3),
        "threshold": threshold,
        "crack_pixel_pct": round(100 * crack / total, 4) if total else None,
        "components": comps,
        "min_component_px": min_component_px,
        "components_per_mp": round(comps / mp, 3) if mp else None,
        "worst": sorted(per_image, key=lambda r: -r["crack_px"])[:5],
    }


def evaluate_field_suite(model: nn.Module, *, data_root: Path | None = None,
                         device: str | torch.device = "cpu", limit: int | None = None,
                         progress: bool = True) -> dict:
    """Every labelled test set of :data:`FIELD_SUITE` (pooled IoU/F1 at 0.5 and ODS) and the
    held-out terrain negatives (:func:`negatives_report`), one JSON-ready report.

    ``limit``: the first N images of each set (smoke runs; the report says so).

    Raises:
        DataNotFoundError, PairingError, ImageReadError, MaskShapeError: bad dataset input.
    """
    from engine.data import load_dataset

    t0 = time.perf_counter()
    sets = {}
    for name in FIELD_SUITE:
        r = evaluate_model(model, name, data_root=data_root, device=device, limit=limit,
                           progress=progress)
        sets[name] = {"images": r["images"],
                      "at_0.5": {k: r["at_0.5"][k] for k in ("precision", "recall", "f1", "iou")},
                      "ods": {k: r["ods"][k] for k in ("threshold", "precision", "recall", "f1",
                                                        "iou")}}
    neg, _ = load_dataset(FIELD_NEGATIVES, data_root, limit)
    return {
        "model": getattr(model, "card", {}).get("name", "unnamed"),
        "calibration": getattr(model, "card", {}).get("calibration"),
        "limit": limit,
        "sets": sets,
        "negatives": {"dataset": FIELD_NEGATIVES, **negatives_report(model, neg, device)},
        "seconds": round(time.perf_counter() - t0, 1),
        "device": str(device),
    }
