"""The shipped default model, loaded offline, on a few real test images."""

import numpy as np
import pytest

from engine.data import dataset_samples, load_sample
from engine.evaluate import evaluate_model
from engine.registry import DEFAULT_MODEL, list_cards, load_model
from tests.conftest import DATA_ROOT, require_real_data

pytestmark = pytest.mark.realdata


def test_shipped_cards_are_complete_and_verified():
    cards = {c["name"]: c for c in list_cards()}
    assert DEFAULT_MODEL in cards
    for card in cards.values():
        assert card["weights"]["bytes"] < 10.5e6
        assert "deepcrack-test" in card["metrics"] and "uav75-test" in card["metrics"]
        load_model(card["name"])  # sha256 verified on load


def test_default_model_far_above_trivial_on_deepcrack_test():
    require_real_data("segmentation", "deepcrack", "test")
    model = load_model(DEFAULT_MODEL)
    report = evaluate_model(model, "deepcrack-test", data_root=DATA_ROOT, limit=8,
                            progress=False)
    paths, _ = dataset_samples("deepcrack-test", DATA_ROOT)
    crack_fraction = np.mean([load_sample(p).mask.mean() for p in paths[:8]])
    trivial_iou = crack_fraction  # predicting "crack" everywhere
    assert report["images"] == 8
    assert report["at_0.5"]["iou"] > 0.5
    assert report["at_0.5"]["iou"] > 5 * trivial_iou
