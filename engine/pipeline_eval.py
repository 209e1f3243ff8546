"""The whole pipeline measured, not only the model: model -> threshold -> crack objects
(edge band, vegetation, shape rules of :mod:`geodata.crack_objects`), on labelled images and
on whole crack-free photos (issue 25).

* On a labelled set (DeepCrack, UAV75, rockfracture test): pooled pixel IoU at the threshold,
  and the **recall of labelled crack length**: the share of the label's skeleton pixels
  within :data:`LENGTH_TOLERANCE_PX` of a kept crack pixel. Each image is run as a photo of
  its own (its frame is the frame of the edge band), the model alone beside the pipeline.
* On whole crack-free photos (the brighton_beach test photos DJI_0018 and DJI_0030, 9 MP
  each, tiled as the pipeline tiles them, the photo's EXIF ground sample distance for the
  length rule): crack pixel percent and kept cracks per megapixel.

:func:`filter_sweep` computes the probabilities once and evaluates every
:class:`~geodata.crack_objects.ObjectFilter` of a grid on them: the trade-off table the
profiles' rules were chosen from (``crackwatch evaluate --filter-sweep``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage.morphology import skeletonize

from engine.crack_rules import CrackRules, kept_cracks
from geodata.crack_objects import ObjectFilter

__all__ = ["BRIGHTON_TEST_PHOTOS", "LENGTH_TOLERANCE_PX", "PIPELINE_SETS", "evaluate_pipeline",
           "filter_sweep"]

#: A labelled crack pixel counts as found when a kept crack pixel lies this close (the
#: tolerance of the tolerant metrics in :mod:`engine.metrics`).
LENGTH_TOLERANCE_PX = 2
#: Whole held-out crack-free photos (:mod:`engine.negatives`' test split, whole frames).
BRIGHTON_TEST_PHOTOS = ("DJI_0018.JPG", "DJI_0030.JPG")
_EIGHT = np.ones((3, 3), bool)


# ----------------------------------------------------------------------- measuring


@dataclass
class _Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    length_found: int = 0
    length_total: int = 0
    components: int = 0
    pixels: int = 0
    crack_px: int = 0

    def add(self, pred: np.ndarray, label: np.ndarray | None, skeleton: np.ndarray | None,
            components: int) -> None:
        self.pixels += pred.size
        self.crack_px += int(pred.sum())
        self.components += components
        if label is None:
            return
        self.tp += int((pred & label).sum())
        self.fp += int((pred & ~label).sum())
        self.fn += int((~pred & label).sum())
        near = ndimage.binary_dilation(pred, _EIGHT, iterations=LENGTH_TOLERANCE_PX)
        self.length_found += int((skeleton & near).sum())
        self.length_total += int(skeleton.sum())

    def report(self) -> dict:
        mp = self.pixels / 1e6
        out = {"crack_pixel_pct": round(100 * self.crack_px / max(1, self.pixels), 4),
               "components": self.components,
               "components_per_mp": round(self.components / mp, 3) if mp else None}
        if self.length_total:
            union = self.tp + self.fp + self.fn
            out.update(iou=round(self.tp / union, 4) if union else 0.0,
                       length_recall=round(self.length_found / self.length_total, 4))
        return out


def _model_alone(prob: np.ndarray, rules: CrackRules) -> tuple[np.ndarray, int]:
    """Thresholded model output, specks < ``min_area_px`` dropped (no object rules)."""
    from geodata.crack_objects import label_components

    labels, n = label_components(np.nan_to_num(prob, nan=0.0) >= rules.threshold,
                                 rules.min_area_px)
    return labels > 0, n


@dataclass
class _Cached:
    """One image's probabilities with what the sweep needs (base labels before shape rules)."""

    name: str
    prob: np.ndarray
    rgb: np.ndarray
    label: np.ndarray | None
    skeleton: np.ndarray | None
    pixel_size_m: float | None
    vegetation: np.ndarray | None = None
    no_crack: np.ndarray | None = None

    def no_crack_tiles(self) -> np.ndarray:
        if self.no_crack is None:
            from engine.tile_classifier import no_crack_tiles

            self.no_crack = no_crack_tiles(self.rgb, _gate())
        return self.no_crack

    def vegetation_mask(self) -> np.ndarray:
        if self.vegetation is None:
            from engine.observable import vegetation_mask

            self.vegetation = vegetation_mask(self.rgb)
        return self.vegetation


_GATE: list = []


def _gate():
    """The shipped tile gate, loaded once per process."""
    if not _GATE:
        from engine.tile_classifier import load_gate

        _GATE.append(load_gate())
    return _GATE[0]


def _labelled(model, dataset: str, data_root: Path | None, device: str, limit: int | None,
              progress: bool) -> Iterable[_Cached]:
    from engine.data import load_dataset
    from engine.evaluate import iter_probabilities

    samples, _ = load_dataset(dataset, data_root, limit)
    for s, prob in iter_probabilities(model, samples, device, progress, desc=dataset):
        yield _Cached(s.stem, prob, s.image, s.mask, skeletonize(s.mask), None)


def _whole_photos(model, folder: Path, names: Sequence[str], device: str,
                  progress: bool) -> Iterable[_Cached]:
    from engine.data import read_rgb
    from engine.infer import predict_image
    from geodata.errors import GeodataError
    from geodata.photos import ground_sample_distance_m, read_photo_metadata

    for name in names:
        path = folder / name
        rgb = read_rgb(path)
        try:
            gsd = ground_sample_distance_m(read_photo_metadata(path))
        except GeodataError:  # no usable EXIF: the metre rule is then not applied
            gsd = None
        prob = predict_image(rgb, model, device=device)
        yield _Cached(name, prob, rgb, None, None, gsd)


def _sources(model, data_root: Path | None, device: str, limit: int | None, progress: bool,
             sets: Sequence[str]) -> dict[str, list[_Cached]]:
    from engine.data import default_data_root

    root = Path(data_root) if data_root else default_data_root()
    out: dict[str, list[_Cached]] = {}
    for name in sets:
        if name == "brighton-test-photos":
            folder = root / "geo" / "brighton_beach"
            out[name] = list(_whole_photos(model, folder, BRIGHTON_TEST_PHOTOS[:limit or None],
                                           device, progress))
        else:
            out[name] = list(_labelled(model, name, data_root, device, limit, progress))
    return out


#: The sets of :func:`evaluate_pipeline` and :func:`filter_sweep`.
PIPELINE_SETS = ("deepcrack-test", "uav75-test", "rockfracture-test", "brighton-test-photos")


def _measure_set(items: Sequence[_Cached], rules: CrackRules | None) -> dict:
    counts = _Counts()
    for it in items:
        if rules is None:
            pred, n = _model_alone(it.prob, CrackRules())
        else:
            labels, n = kept_cracks(it.prob, it.rgb, rules, it.pixel_size_m,
                                    it.vegetation_mask() if rules.mask_vegetation else None,
                                    it.no_crack_tiles() if rules.tile_gate else None)
            pred = labels > 0
        counts.add(pred, it.label, it.skeleton, n)
    return counts.report()


def evaluate_pipeline(model, rules: CrackRules, *, data_root: Path | None = None,
                      device: str = "cpu", limit: int | None = None, progress: bool = True,
                      sets: Sequence[str] = PIPELINE_SETS) -> dict:
    """The model alone and the whole pipeline with ``rules`` on each of ``sets``.

    Returns ``{"sets": {name: {"model": {...}, "pipeline": {...}}}, "seconds"}`` with, per
    side, ``crack_pixel_pct``, ``components``, ``components_per_mp`` and, on labelled sets,
    ``iou`` and ``length_recall``.

    Raises:
        DataNotFoundError, ImageReadError, ...: as :func:`engine.data.load_dataset`.
    """
    t0 = time.perf_counter()
    data = _sources(model, data_root, device, limit, progress, sets)
    return {"sets": {name: {"model": _measure_set(items, None),
                            "pipeline": _measure_set(items, rules)}
                     for name, items in data.items()},
            "seconds": round(time.perf_counter() - t0, 1)}


def filter_sweep(model, base: CrackRules, filters: Sequence[ObjectFilter], *,
                 data_root: Path | None = None, device: str = "cpu", limit: int | None = None,
                 progress: bool = True, sets: Sequence[str] = PIPELINE_SETS,
                 tile_gate: bool = False) -> list[dict]:
    """``base`` with each of ``filters`` on every set, the probabilities computed once.

    Returns one row per filter: ``{"filter": {...}, name: {...}}`` with the measures of
    :func:`evaluate_pipeline` per set; with ``tile_gate`` a second row per filter with the
    shipped tile gate (:mod:`engine.tile_classifier`) on (``filter["tile_gate"]``).
    """
    data = _sources(model, data_root, device, limit, progress, sets)
    rows = []
    for f in filters:
        for gate in ((False, True) if tile_gate else (False,)):
            rules = replace(base, object_filter=f, tile_gate=gate)
            rows.append({"filter": {"min_length_m": f.min_length_m,
                                    "min_length_px": f.min_length_px,
                                    "min_elongation": f.min_elongation,
                                    "min_peak_probability": f.min_peak_probability,
                                    **({"tile_gate": True} if gate else {})},
                         **{name: _measure_set(items, rules) for name, items in data.items()}})
    return rows
