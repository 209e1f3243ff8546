"""Every catalogue dataset under ../shared/data pairs cleanly and its masks fit its images."""

import pytest

from engine.data import DATASETS, dataset_samples, load_dataset, read_mask
from tests.conftest import DATA_ROOT, require_real_data

pytestmark = pytest.mark.realdata

EXPECTED = {"deepcrack-train": 300, "deepcrack-test": 237, "uav75-train": 50, "uav75-val": 10,
            "uav75-test": 15, "masonry": 240, "rockfracture-train": 84, "rockfracture-val": 15,
            "rockfracture-test": 44, "terrain-negatives-train": 168,
            "terrain-negatives-val": 49, "terrain-negatives-test": 43}


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_catalogue_dataset_pairs(name):
    require_real_data("segmentation")
    if DATASETS[name].negatives:
        require_real_data("geo/brighton_beach")
        samples, spec = load_dataset(name, DATA_ROOT)
        assert len(samples) == EXPECTED[name]
        assert not any(s.mask.any() for s in samples)  # all background
        assert all(s.image.shape == (562, 500, 3) for s in samples)
        return
    samples, spec = dataset_samples(name, DATA_ROOT)
    assert len(samples) == EXPECTED[name]
    if spec.has_planking:
        assert all(s.planking is not None for s in samples)
    from PIL import Image

    for s in samples[:: max(1, len(samples) // 10)]:
        with Image.open(s.image) as im:
            assert read_mask(s.mask).shape == (im.height, im.width)


def test_training_holdout_is_rebuilt_from_a_card():
    """models calibrate validates on the hold-out the run chose its epochs on: same photos."""
    require_real_data("segmentation")
    from engine.train import _load, _split, holdout_samples

    training = {"holdout_by": "photo", "holdout_fraction": 0.1, "seed": 0}
    hold = holdout_samples("deepcrack-train-holdout", training, DATA_ROOT)
    spec = DATASETS["deepcrack-train"]
    train, expected = _split(_load("deepcrack-train", DATA_ROOT, None), 0.1, 0, spec.source_photo)
    assert [s.stem for s in hold] == [s.stem for s in expected] and len(hold) >= 30
    assert not {spec.source_photo(s.stem) for s in hold} & {spec.source_photo(s.stem)
                                                             for s in train}
    with pytest.raises(ValueError, match="not a training hold-out"):
        holdout_samples("uav75-train-holdout", training, DATA_ROOT)
