"""The unsupervised table (issue 29): each detector against the shipped supervised U-Nets on
DeepCrack test, UAV75 test, rockfracture test and the terrain negatives, with one set of
figures (:func:`engine.anomaly_eval.evaluate_score_maps`).

PatchCore (no training) is fitted per test set on crack-free ground of that set's own
training split (:data:`CRACK_FREE_SOURCES`: crack-free tiles of the labelled training images,
the terrain negatives' training cells) and its threshold set on crack-free tiles of the
validation split. UP-CrackNet and VAE + Grad-CAM are trained once, on crack-free tiles of
DeepCrack train (the shipped detectors, :mod:`engine.anomaly_registry`; their papers train per
dataset, which the 2-core budget does not allow), and scored on every set: on the other three
sets that is a cross-domain figure. A test image is never seen before it is scored.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

#: Test set -> (crack-free training source, crack-free validation source). DeepCrack has no
#: validation split: every 5th training image is held out for the threshold instead.
CRACK_FREE_SOURCES = {
    "deepcrack-test": ("deepcrack-train", None),
    "uav75-test": ("uav75-train", "uav75-val"),
    "rockfracture-test": ("rockfracture-train", "rockfracture-val"),
    "terrain-negatives-test": ("terrain-negatives-train", "terrain-negatives-val"),
}
#: Unsupervised methods of the table -> their names.
METHODS = {"patchcore": "PatchCore", "upcracknet": "UP-CrackNet",
           "vae-gradcam": "VAE + Grad-CAM"}
#: At most this many crack-free training tiles per set (a seeded random choice).
MAX_TRAIN_TILES = 2000
#: At most this many crack-free validation tiles per set.
MAX_VAL_TILES = 150


def _crack_free(name: str | None, data_root: Path | None, rng: np.random.Generator,
                cap: int, holdout: str | None = None) -> list[np.ndarray]:
    """Crack-free tiles of split ``name`` (``holdout``: ``"train"`` all but every 5th image,
    ``"val"`` every 5th), at most ``cap``, seeded."""
    from engine.anomaly_eval import crack_free_tiles
    from engine.data import load_dataset

    samples = load_dataset(name, data_root)[0]
    if holdout == "train":
        samples = [s for i, s in enumerate(samples) if i % 5]
    elif holdout == "val":
        samples = samples[::5]
    tiles = crack_free_tiles(samples)
    if len(tiles) > cap:
        tiles = [tiles[i] for i in sorted(rng.choice(len(tiles), cap, replace=False))]
    return tiles


def fit_patchcore_for(test_set: str, data_root: Path | None = None, seed: int = 0):
    """A PatchCore detector for ``test_set`` (:data:`CRACK_FREE_SOURCES`), fitted and
    calibrated; its card records the data and the time taken.

    Raises:
        ValueError: an unknown test set. DataNotFoundError: the data is missing.
    """
    from engine.patchcore import PatchCore

    if test_set not in CRACK_FREE_SOURCES:
        raise ValueError(f"no crack-free sources for {test_set!r}; choose from "
                         f"{', '.join(CRACK_FREE_SOURCES)}.")
    train, val = CRACK_FREE_SOURCES[test_set]
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    fit_tiles = _crack_free(train, data_root, rng, MAX_TRAIN_TILES,
                            "train" if val is None else None)
    val_tiles = _crack_free(val or train, data_root, rng, MAX_VAL_TILES,
                            "val" if val is None else None)
    det = PatchCore.fit(fit_tiles, seed=seed)
    det.calibrate(val_tiles)
    det.card.update({
        "test_set": test_set,
        "crack_free_training": f"{len(fit_tiles)} crack-free 128 px tiles of {train}"
                               + (" (all but every 5th image)" if val is None else ""),
        "crack_free_validation": f"{len(val_tiles)} crack-free 128 px tiles of "
                                 + (f"{train} (every 5th image)" if val is None else val),
        "fit_and_calibrate_seconds": round(time.perf_counter() - t0, 1),
    })
    return det


def _shipped_patchcore(test_set: str):
    """The shipped PatchCore bank when it is the one :func:`fit_patchcore_for` fits for
    ``test_set`` (``patchcore-deepcrack``: same data, seed and settings), else None."""
    from engine.anomaly_registry import AnomalyWeightsError, load_anomaly_detector
    from engine.patchcore import MAX_BANK

    if test_set != "deepcrack-test":
        return None
    try:
        det = load_anomaly_detector("patchcore-deepcrack")
    except AnomalyWeightsError:
        return None
    return det if det.card.get("memory_bank", 0) <= MAX_BANK and \
        det.card.get("test_set") == test_set else None


def _supervised_row(model_name: str, test_set: str, samples, data_root) -> dict:
    """The shipped model's figures on ``samples`` with the same evaluation (threshold 0.5 on
    its calibrated probability)."""
    from engine.anomaly_eval import evaluate_score_maps
    from engine.infer import predict_image
    from engine.registry import load_model

    model = load_model(model_name)

    def prob(rgb):
        return np.nan_to_num(predict_image(rgb, model), nan=0.0)

    t0 = time.perf_counter()
    rep = evaluate_score_maps(prob, 0.5, samples)
    return {"method": f"U-Net (supervised, {model_name})", "set": test_set,
            "threshold_rule": "0.5 on the calibrated probability", **rep,
            "score_seconds": round(time.perf_counter() - t0, 1)}


def anomaly_suite(methods: list[str], sets: list[str] | None = None,
                  data_root: Path | None = None, limit: int | None = None,
                  supervised: list[str] | None = None, progress=None) -> list[dict]:
    """One row per method x test set. ``methods``: keys of :data:`METHODS`; ``supervised``: shipped
    model names evaluated the same way; ``limit``: the first N test images per set.

    Raises:
        ValueError: an unknown method or set. DataNotFoundError: the data is missing.
    """
    from engine.anomaly_eval import evaluate_score_maps
    from engine.data import load_dataset

    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown unsupervised method(s) {', '.join(sorted(unknown))}; "
                         f"available: {', '.join(METHODS)}.")
    shipped = {}
    for method in ("upcracknet", "vae-gradcam"):
        if method in methods:
            from engine.anomaly_registry import load_anomaly_detector

            shipped[method] = load_anomaly_detector(f"{method}-deepcrack")
    rows = []
    for test_set in sets or list(CRACK_FREE_SOURCES):
        samples = load_dataset(test_set, data_root, limit)[0]
        for name in supervised or []:
            if progress:
                progress(f"{name} on {test_set}")
            rows.append(_supervised_row(name, test_set, samples, data_root))
        if "patchcore" in methods:
            if progress:
                progress(f"PatchCore on {test_set} (fitted on its crack-free training tiles)")
            det = _shipped_patchcore(test_set) or fit_patchcore_for(test_set, data_root)
            t0 = time.perf_counter()
            rep = evaluate_score_maps(det.score_map, det.threshold, samples,
                                      tile_score=det.image_score)
            rows.append({"method": "PatchCore (unsupervised)", "set": test_set,
                         "threshold_rule": det.card["threshold_rule"], **rep,
                         "card": det.card, "score_seconds": round(time.perf_counter() - t0, 1)})
        for method, det in shipped.items():
            if progress:
                progress(f"{METHODS[method]} on {test_set}")
            t0 = time.perf_counter()
            rep = evaluate_score_maps(det.score_map, det.threshold, samples)
            card = {k: v for k, v in det.card.items() if k != "log"}
            rows.append({"method": f"{METHODS[method]} (unsupervised, trained on DeepCrack)",
                         "set": test_set, "threshold_rule": det.card.get("threshold_rule"),
                         **rep, "card": card,
                         "score_seconds": round(time.perf_counter() - t0, 1)})
    return rows


__all__ = ["CRACK_FREE_SOURCES", "METHODS", "anomaly_suite", "fit_patchcore_for"]
