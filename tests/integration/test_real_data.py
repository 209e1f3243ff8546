"""Every catalogue dataset under ../shared/data pairs cleanly and its masks fit its images."""

import pytest

from engine.data import DATASETS, dataset_samples, read_mask
from tests.conftest import DATA_ROOT, require_real_data

pytestmark = pytest.mark.realdata

EXPECTED = {"deepcrack-train": 300, "deepcrack-test": 237, "uav75-train": 50, "uav75-val": 10,
            "uav75-test": 15, "masonry": 240}


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_catalogue_dataset_pairs(name):
    require_real_data("segmentation")
    samples, spec = dataset_samples(name, DATA_ROOT)
    assert len(samples) == EXPECTED[name]
    if spec.has_planking:
        assert all(s.planking is not None for s in samples)
    from PIL import Image

    for s in samples[:: max(1, len(samples) // 10)]:
        with Image.open(s.image) as im:
            assert read_mask(s.mask).shape == (im.height, im.width)
