"""Issue 25: the demo's rock cut (four real rockfracture test photos, shipped in
``jobs/demo_data/rockfracture``) through the slope profile's whole pipeline -- the slope
model, vegetation mask, edge band and object rules, as ``crackwatch demo`` runs it -- finds
at least 70 % of the labelled fracture length."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio.features
from affine import Affine
from PIL import Image
from scipy import ndimage
from skimage.morphology import skeletonize

from engine.crack_rules import rules_for
from engine.pipeline_eval import LENGTH_TOLERANCE_PX
from engine.registry import PROFILE_MODELS, load_model
from engine.survey import InferenceSettings, infer_photos
from jobs.demo import DEMO_DATA, ROCKCUT_ASSUMED_GSD_M

ROCK = DEMO_DATA / "rockfracture"


@pytest.fixture(scope="module")
def slope_run():
    model = load_model(PROFILE_MODELS["slope"])
    settings = InferenceSettings().for_profile("slope", PROFILE_MODELS["slope"])
    photos = sorted((ROCK / "photos").glob("*.jpg"))
    return infer_photos(photos, model, settings, gsd_m=ROCKCUT_ASSUMED_GSD_M, measure=False)


def test_the_slope_pipeline_finds_the_rock_cuts_fractures(slope_run):
    found = total = 0
    for photo in slope_run.photos:
        label = np.asarray(Image.open(ROCK / "masks" / f"{photo.path.stem}.png").convert("L")) > 127
        assert photo.cracks is not None and len(photo.cracks), photo.name
        kept = rasterio.features.rasterize(
            [(g, 1) for g in photo.cracks.geometry], out_shape=label.shape,
            transform=Affine.identity(), all_touched=False).astype(bool)
        near = ndimage.binary_dilation(kept, np.ones((3, 3), bool),
                                       iterations=LENGTH_TOLERANCE_PX)
        skel = skeletonize(label)
        found += int((skel & near).sum())
        total += int(skel.sum())
    recall = found / total
    assert recall >= 0.70, f"recall of labelled fracture length {recall:.3f}"


def test_the_run_records_the_slope_rules_and_observable_ground(slope_run):
    rules = slope_run.as_dict()["infer"]["crack_rules"]
    assert rules["mask_vegetation"] is True
    assert rules["object_filter"]["min_peak_probability"] == \
        rules_for("slope", PROFILE_MODELS["slope"]).object_filter.min_peak_probability
    fractions = slope_run.as_dict()["infer"]["observable_fraction_per_photo"]
    assert len(fractions) == 4 and all(f > 0.9 for f in fractions.values()), fractions
