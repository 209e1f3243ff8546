"""Export a CrackWatch model as an ONNX file the QGIS plugin Deepness runs.

Deepness (PUTvision/qgis-plugin-deepness, "Adding metadata to ONNX model" in its documentation)
runs ONNX segmentation models tile by tile over a raster layer. It reads the model's
parameters from the ONNX ``metadata_props``, each value JSON-encoded:

* ``model_type`` ``"Segmentor"``; ``class_names`` ``{"0": "background", "1": "crack"}`` (a
  single-channel output is a binary mask: class 1 where the probability reaches the
  threshold);
* ``resolution``: the ground resolution the model expects, **cm per pixel** (Deepness
  resamples the layer to it);
* ``tiles_size`` (``tile_size`` too: the documentation and the plugin's reader spell it
  differently) and ``tiles_overlap`` in **percent** of the tile;
* ``seg_thresh``: the probability threshold, here the model card's (0.5 after our
  calibration, :mod:`engine.calibration`, folded into the graph);
* ``seg_small_segment``: 1. Deepness median-blurs the class mask with this size; its usual
  7 would erase cracks a few pixels wide;
* ``standardization_mean`` / ``_std``: Deepness scales pixels to [0, 1] and then standardises
  with these (the card's ImageNet ``normalisation``).

The graph: input ``image`` ``(N, 3, T, T)`` float32 (N dynamic, T the tile size: Deepness
needs square static tiles), output ``crack_probability`` ``(N, 1, T, T)`` float32 in [0, 1]
(sigmoid of the calibrated logits, :func:`engine.runtime.export_onnx`). CrackWatch keys
(``crackwatch_*``) record the model, its weights' SHA-256, calibration and limitations.
"""

from __future__ import annotations

import json
from pathlib import Path

from torch import nn

#: The ground resolution written by default, cm/px, per site profile the model serves: the
#: GSDs the demo assumes for the imagery of that profile (jobs/demo.py: UAV75 bridge photos
#: 0.25 mm/px, the rock cut 2.5 mm/px). Neither training set publishes its GSD: give your
#: imagery's with ``--resolution-cm``.
DEFAULT_RESOLUTION_CM = {"structure": 0.025, "slope": 0.25}
#: Deepness's class names for a single-channel output.
CLASS_NAMES = {"0": "background", "1": "crack"}
#: The metadata keys Deepness reads for a segmentation model (its documentation's table).
DEEPNESS_KEYS = ("model_type", "class_names", "resolution", "tiles_size", "tile_size",
                 "tiles_overlap", "seg_thresh", "seg_small_segment", "standardization_mean",
                 "standardization_std")


def deepness_metadata(card: dict, *, tile_size: int, overlap_px: int,
                      resolution_cm: float | None = None) -> dict[str, object]:
    """The metadata of an exported model, as Python values (JSON-encoded when written).

    Args:
        card: the model card (``normalisation``, ``threshold``, ``site_profile``, ...).
        tile_size: tile side, px. overlap_px: overlap of neighbouring tiles, px.
        resolution_cm: ground resolution, cm/px; None: :data:`DEFAULT_RESOLUTION_CM` of the
            card's site profile (structure when it names none).

    Raises:
        ValueError: a non-positive resolution or tile size, or an overlap outside
            ``0 .. tile_size / 2``.
    """
    if tile_size <= 0:
        raise ValueError(f"tile_size must be positive, got {tile_size}.")
    if not 0 <= overlap_px <= tile_size // 2:
        raise ValueError(f"overlap must be 0..{tile_size // 2} px, got {overlap_px}.")
    profile = card.get("site_profile") or "structure"
    resolution = resolution_cm if resolution_cm is not None else \
        DEFAULT_RESOLUTION_CM.get(profile, DEFAULT_RESOLUTION_CM["structure"])
    if not resolution > 0:
        raise ValueError(f"resolution must be a positive number of cm per pixel, got "
                         f"{resolution}.")
    norm = card.get("normalisation") or {}
    cal = card.get("calibration") or {}
    return {
        "model_type": "Segmentor",
        "class_names": CLASS_NAMES,
        "resolution": float(resolution),
        "tiles_size": int(tile_size),
        "tile_size": int(tile_size),
        "tiles_overlap": int(round(100 * overlap_px / tile_size)),
        "seg_thresh": float(card.get("threshold", 0.5)),
        "seg_small_segment": 1,
        "standardization_mean": [float(v) for v in norm.get("mean", (0.485, 0.456, 0.406))],
        "standardization_std": [float(v) for v in norm.get("std", (0.229, 0.224, 0.225))],
        "crackwatch_model": card.get("name", "model"),
        "crackwatch_weights_sha256": (card.get("weights") or {}).get("sha256"),
        "crackwatch_calibration": {"scale": cal.get("scale", 1.0),
                                   "bias": cal.get("bias", 0.0), "folded_into_graph": True},
        "crackwatch_resolution_source": (
            "given by the user" if resolution_cm is not None else
            f"default for the {profile} profile: an assumed GSD (the training imagery "
            f"publishes none); set it to your imagery's"),
        "crackwatch_site_profile": profile,
        "crackwatch_limitations": card.get("limitations", ""),
        "license": "AGPL-3.0-or-later",
    }


def export_for_deepness(model: nn.Module, path: str | Path, *, tile_size: int = 512,
                        overlap_px: int = 64, resolution_cm: float | None = None) -> dict:
    """Write ``model`` (with its ``card``, as :func:`engine.registry.load_model` returns it) as
    an ONNX file for Deepness: the probability graph (:func:`engine.runtime.export_onnx` with
    ``probabilities=True`` and a static square tile) and :func:`deepness_metadata`.

    Returns the metadata written (Python values).

    Raises:
        ValueError: bad tile size, overlap or resolution (:func:`deepness_metadata`), or a
            tile size that is not a multiple of 32.
        OSError: the file cannot be written.
    """
    import onnx

    from engine.models import SIZE_MULTIPLE
    from engine.runtime import export_onnx

    if tile_size % SIZE_MULTIPLE:
        raise ValueError(f"tile_size must be a multiple of {SIZE_MULTIPLE}, got {tile_size}.")
    card = getattr(model, "card", None) or {}
    meta = deepness_metadata(card, tile_size=tile_size, overlap_px=overlap_px,
                             resolution_cm=resolution_cm)
    path = Path(path)
    export_onnx(model, path, probabilities=True, tile_size=tile_size)
    graph = onnx.load(str(path))
    del graph.metadata_props[:]
    for key, value in meta.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    graph.producer_name = "crackwatch"
    graph.doc_string = (f"CrackWatch {meta['crackwatch_model']}: crack probability per pixel "
                        f"(sigmoid of calibrated logits). {meta['crackwatch_limitations']}")
    onnx.checker.check_model(graph)
    onnx.save(graph, str(path))
    return meta


def read_metadata(path: str | Path) -> dict[str, object]:
    """The ``metadata_props`` of an ONNX file, each value JSON-decoded (as Deepness does)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False)
    return {p.key: json.loads(p.value) for p in graph.metadata_props}


__all__ = ["CLASS_NAMES", "DEEPNESS_KEYS", "DEFAULT_RESOLUTION_CM", "deepness_metadata",
           "export_for_deepness", "read_metadata"]
