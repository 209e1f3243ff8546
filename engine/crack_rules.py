"""The crack-object rules run after the model (issue 25): threshold, specks, edge band,
vegetation (observable ground) and object rules (:mod:`geodata.crack_objects`).

Two sources, because they depend on different things: the vegetation mask on the *site
profile* (:data:`PROFILE_MASK_VEGETATION`: slopes), the object rules on the *model*
(:data:`MODEL_OBJECT_FILTERS`): a seed probability means something only for the model whose
probabilities it was measured on (a slope site that runs the structure model gets the
structure model's rules). A model without an entry (a user's own) gets no object rules.

The survey pipeline (:func:`engine.survey.infer_survey`), ``crackwatch infer --profile`` and
the pipeline evaluation (:mod:`engine.pipeline_eval`) all take them from :func:`rules_for`,
so what a user checks by hand is what the nightly job does.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from geodata.crack_objects import ObjectFilter

__all__ = ["MODEL_OBJECT_FILTERS", "MODEL_TILE_GATE", "PROFILE_MASK_VEGETATION",
           "PROFILE_TILE_GATE", "CrackRules", "kept_cracks", "photo_object_filter", "rules_for"]


@dataclass(frozen=True)
class CrackRules:
    """What the pipeline does after the model (a site profile's and a model's rules).

    Attributes:
        threshold: crack probability threshold.
        min_area_px: specks smaller than this are dropped.
        edge_band_px: edge followers are dropped (:func:`geodata.crack_objects.
            drop_edge_followers`).
        mask_vegetation: candidates on vegetation are dropped (:mod:`engine.observable`).
        object_filter: shape rules (:class:`geodata.crack_objects.ObjectFilter`).
        tile_gate: candidates half on tiles the crack / no-crack tile classifier
            (:mod:`engine.tile_classifier`) sees no crack in are dropped.
    """

    threshold: float = 0.5
    min_area_px: int = 20
    edge_band_px: int = 8
    mask_vegetation: bool = False
    object_filter: ObjectFilter = field(default_factory=ObjectFilter)
    tile_gate: bool = False


#: Object rules per shipped model, chosen from ``crackwatch evaluate --filter-sweep`` (README,
#: "What the map shows can be trusted", has the table): on the slope model a seed of 0.75
#: (hysteresis) and 50 px of skeleton keep 92.6 % of rockfracture test's labelled fracture
#: length (pooled IoU 44.9 %, model alone 44.5 %) and cut the false cracks on the whole
#: brighton_beach test photos from 4.1 to 0.94 per MP. The structure model's probabilities
#: on DeepCrack sit near its threshold (a 0.75 seed halves DeepCrack IoU), so it gets shape
#: rules only, the most that costs DeepCrack and UAV75 <= 1 IoU point: 50 px, elongation 10.
MODEL_OBJECT_FILTERS: dict[str, ObjectFilter] = {
    # issue 26's structure model (2026-12-06 sweep, README): 30 px and elongation 6 cost
    # DeepCrack 0 and UAV75 0.4 IoU points; 50 px would cost UAV75 2.7
    "crackwatch-unet-lite0-structure": ObjectFilter(min_length_px=30, min_elongation=6.0),
    "crackwatch-unet-lite0-slope2": ObjectFilter(min_length_px=50, min_peak_probability=0.75),
    # slope6 (2026-12-07) continues the same recipe from the structure model: slope2's rules,
    # taken as they are (not re-swept on the test sets); the field suite's pipeline rows
    # measure them (models.md)
    "crackwatch-unet-lite0-slope6": ObjectFilter(min_length_px=50, min_peak_probability=0.75),
    "crackwatch-unet-mnv2-concrete-neg": ObjectFilter(min_length_px=50, min_elongation=10.0),
}
#: Whether a site profile masks vegetation (observable ground, :mod:`engine.observable`).
PROFILE_MASK_VEGETATION: dict[str, bool] = {"slope": True, "structure": False}
#: Whether a site profile runs the tile gate (:mod:`engine.tile_classifier`, trained on rock
#: fracture and crack-free terrain tiles, so never on structures: it drops UAV75's bridge
#: cracks). Chosen from ``crackwatch evaluate --filter-sweep --tile-gate --model
#: crackwatch-unet-lite0-slope2 --profile slope`` (2026-12-07): with the slope model's rules
#: the gate keeps rockfracture test at IoU 44.9 and 92.2 % of labelled fracture length
#: (92.6 % without) and cuts the whole brighton test photos from 0.090 % crack pixels and
#: 0.94 false cracks per MP to 0.050 % and 0.22. With slope6 and the same rules (field suite,
#: 2026-12-07): rockfracture test IoU 45.1 and 91.9 % of the length; brighton 0.037 % and 0.06.
PROFILE_TILE_GATE: dict[str, bool] = {"slope": True, "structure": False}
#: The models whose rules include the tile gate (where the profile runs it): those it was
#: measured with, which know the same rock fractures it does. A slope site running another
#: model (a concrete model on a retaining wall; the demo's SIMULATED growth site, whose
#: crack is a concrete one) keeps every crack its model finds: the gate would drop them.
MODEL_TILE_GATE: frozenset[str] = frozenset({"crackwatch-unet-lite0-slope2",
                                              "crackwatch-unet-lite0-slope6"})


def kept_cracks(prob: np.ndarray, rgb: np.ndarray, rules: CrackRules,
                pixel_size_m: float | None = None,
                vegetation: np.ndarray | None = None,
                no_crack: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """The crack components the pipeline keeps on one photo.

    Args:
        prob: ``(rows, cols)`` float probabilities in [0, 1], NaN = nodata (the collar).
        rgb: ``(rows, cols, 3)`` uint8, the photo (for the vegetation mask).
        rules: the rules.
        pixel_size_m: ground sample distance (m/px) for ``min_length_m``; None: not applied.
        vegetation: the photo's vegetation mask if already computed (else computed here when
            ``rules.mask_vegetation``).
        no_crack: with ``rules.tile_gate``, the tile gate's no-crack tiles
            (:func:`engine.tile_classifier.no_crack_tiles`; computed here when None).

    Returns:
        ``(labels, n)`` as :func:`geodata.vectorise.crack_labels`.
    """
    from geodata.vectorise import crack_labels

    nodata = np.isnan(prob)
    exclude = None
    if rules.mask_vegetation:
        from engine.observable import vegetation_mask

        exclude = vegetation if vegetation is not None else vegetation_mask(rgb)
    if rules.tile_gate:
        if no_crack is None:
            from engine.tile_classifier import load_gate, no_crack_tiles

            no_crack = no_crack_tiles(rgb, load_gate())
        exclude = no_crack if exclude is None else exclude | no_crack
    shape = rules.object_filter
    if pixel_size_m is None and shape.min_length_m:
        shape = replace(shape, min_length_m=0.0)
    return crack_labels(np.nan_to_num(prob, nan=0.0), threshold=rules.threshold,
                        min_area_px=rules.min_area_px,
                        nodata_mask=nodata if nodata.any() else None,
                        pixel_size_m=pixel_size_m or 1.0, edge_band_px=rules.edge_band_px,
                        exclude_mask=exclude, object_filter=shape)


def rules_for(profile: str | None, model_name: str | None = None) -> CrackRules:
    """The rules for a site of ``profile`` (None: ``structure``) running ``model_name``
    (its :data:`MODEL_OBJECT_FILTERS` entry; None or unknown: no object rules). The tile
    gate runs where the profile runs it (:data:`PROFILE_TILE_GATE`) and the model is one of
    :data:`MODEL_TILE_GATE`.

    Raises:
        ValueError: an unknown profile.
    """
    key = profile or "structure"
    if key not in PROFILE_MASK_VEGETATION:
        raise ValueError(f"unknown site profile {profile!r}; use one of "
                         f"{', '.join(PROFILE_MASK_VEGETATION)}.")
    return CrackRules(mask_vegetation=PROFILE_MASK_VEGETATION[key],
                      tile_gate=PROFILE_TILE_GATE[key] and model_name in MODEL_TILE_GATE,
                      object_filter=MODEL_OBJECT_FILTERS.get(model_name or "", ObjectFilter()))


def photo_object_filter(object_filter: ObjectFilter | None, gsd_m: float | None,
                        measure: bool) -> ObjectFilter | None:
    """``object_filter`` for a photo: its metre rule is converted to pixels with the photo's
    GSD when the cracks are not measured here (pixel units), and left out without a GSD."""
    if object_filter is None or not object_filter.min_length_m or measure:
        return object_filter
    gsd = gsd_m
    extra = object_filter.min_length_m / gsd if gsd else 0.0
    return replace(object_filter, min_length_m=0.0,
                   min_length_px=max(object_filter.min_length_px, extra))
