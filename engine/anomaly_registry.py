"""The shipped unsupervised detectors of issue 29 (``engine/weights/anomaly/``): each a fp16
safetensors file with its card (JSON) beside it, the card holding the file's SHA-256, which
:func:`load_anomaly_detector` checks before anything is loaded.

=========================  ==============================================================
name                       what
=========================  ==============================================================
``upcracknet-deepcrack``   UP-CrackNet generator (:mod:`engine.upcracknet`), trained on
                           crack-free 128 px tiles of DeepCrack train
``vae-gradcam-deepcrack``  VAE + Grad-CAM (:mod:`engine.vae_gradcam`), same tiles
``patchcore-deepcrack``    PatchCore memory bank (:mod:`engine.patchcore`), same source
=========================  ==============================================================

Each was fitted only on crack-free imagery; none is a crack segmentation model and none is
used by the pipeline's crack layer or alert levels.
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.checkpoint import sha256_file

ANOMALY_DIR = Path(__file__).parent / "weights" / "anomaly"
#: Shipped detector name -> its method.
ANOMALY_DETECTORS = {"upcracknet-deepcrack": "upcracknet",
                     "vae-gradcam-deepcrack": "vae-gradcam",
                     "patchcore-deepcrack": "patchcore"}


class AnomalyWeightsError(RuntimeError):
    """A shipped detector's file is missing or does not match its card's SHA-256."""


def anomaly_card(name: str, weights_dir: Path | None = None) -> dict:
    """The card (JSON) of a shipped detector.

    Raises:
        ValueError: unknown name. AnomalyWeightsError: the card is missing.
    """
    if name not in ANOMALY_DETECTORS:
        raise ValueError(f"unknown unsupervised detector {name!r}; shipped: "
                         f"{', '.join(ANOMALY_DETECTORS)}.")
    path = (weights_dir or ANOMALY_DIR) / f"{name}.json"
    if not path.is_file():
        raise AnomalyWeightsError(f"{path} is missing: the detector {name!r} is not shipped "
                                  f"in this checkout (reinstall CrackWatch).")
    return json.loads(path.read_text())


def load_anomaly_detector(name: str, weights_dir: Path | None = None):
    """A shipped detector (:class:`engine.upcracknet.UPCrackNet`,
    :class:`engine.vae_gradcam.VAEGradCAM` or :class:`engine.patchcore.PatchCore`), its file
    checked against the card's SHA-256.

    Raises:
        ValueError: unknown name. AnomalyWeightsError: missing or altered file.
    """
    card = anomaly_card(name, weights_dir)
    path = (weights_dir or ANOMALY_DIR) / card["weights"]
    if not path.is_file() or sha256_file(path) != card.get("sha256"):
        raise AnomalyWeightsError(f"{path} is missing or does not match the SHA-256 in its "
                                  f"card: reinstall CrackWatch or re-fit the detector.")
    method = ANOMALY_DETECTORS[name]
    if method == "upcracknet":
        from engine.upcracknet import UPCrackNet as cls
    elif method == "vae-gradcam":
        from engine.vae_gradcam import VAEGradCAM as cls
    else:
        from engine.patchcore import PatchCore as cls
    return cls.load(path)


def ship_detector(det, name: str, weights_dir: Path | None = None) -> Path:
    """Save a fitted detector as shipped detector ``name``: the file, then its SHA-256 and
    size into the card."""
    if name not in ANOMALY_DETECTORS:
        raise ValueError(f"unknown unsupervised detector {name!r}")
    path = det.save((weights_dir or ANOMALY_DIR) / f"{name}.safetensors")
    card_path = path.with_suffix(".json")
    card = json.loads(card_path.read_text())
    card.update({"name": name, "sha256": sha256_file(path), "bytes": path.stat().st_size})
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    return path


__all__ = ["ANOMALY_DETECTORS", "ANOMALY_DIR", "AnomalyWeightsError", "anomaly_card",
           "load_anomaly_detector", "ship_detector"]
