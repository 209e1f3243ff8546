"""Batched on-device crops (engine.batch_augment): geometry exact, labels aligned, weights."""

import math

import numpy as np
import pytest
import torch

from engine.batch_augment import BatchCropSampler
from engine.data import IMAGENET_MEAN, IMAGENET_STD, Sample


def _sample(h: int, w: int, seed: int = 0, planking: bool = False) -> Sample:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = rng.random((h, w)) < 0.2
    plank = (rng.random((h, w)) < 0.3) if planking else None
    return Sample(stem=f"s{seed}", image=image, mask=mask, planking=plank, domain="test")


def _denorm(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return torch.round((x * std + mean) * 255)


def _params(b: int, zoom=1.0, theta=0.0, fx=1.0, fy=1.0, u=(0.0, 0.0)) -> dict:
    return {"zoom": torch.full((b,), zoom), "theta": torch.full((b,), theta),
            "fx": torch.full((b,), fx), "fy": torch.full((b,), fy),
            "centre_u": torch.tensor([u] * b, dtype=torch.float32)}


def test_plain_crop_is_the_exact_image_window():
    s = _sample(100, 120)
    crops = BatchCropSampler([([s], 1.0, (1.0, 1.0))], crop_size=32)
    out = crops.make_batch(torch.tensor([0]), _params(1, u=(0.0, 0.0)), colour=False)
    # centre_u 0: the centre at its lowest allowed position, 16 px from the top-left corner
    img = _denorm(out["image"])[0].permute(1, 2, 0).numpy()
    assert np.array_equal(img, s.image[:32, :32])
    assert np.array_equal(out["mask"][0, 0].numpy().astype(bool), s.mask[:32, :32])
    assert torch.all(out["weight"] == 1)
    out = crops.make_batch(torch.tensor([0]), _params(1, u=(1.0, 1.0)), colour=False)
    assert np.array_equal(_denorm(out["image"])[0].permute(1, 2, 0).numpy(), s.image[-32:, -32:])


def test_quarter_turn_and_flip_stay_pixel_exact():
    s = _sample(64, 64, seed=1)
    crops = BatchCropSampler([([s], 1.0, (1.0, 1.0))], crop_size=64)
    out = crops.make_batch(torch.tensor([0]), _params(1, theta=math.pi / 2, fx=-1.0),
                           colour=False)
    mask = out["mask"][0, 0].numpy().astype(bool)
    img = _denorm(out["image"])[0].permute(1, 2, 0).numpy()
    # the output is the source seen through a 90-degree turn and a flip: the same pixels,
    # rearranged, with the mask still on its own image pixels
    cands = [np.rot90(np.fliplr(s.mask) if f else s.mask, k) for k in range(4) for f in (0, 1)]
    hit = [i for i, m in enumerate(cands) if np.array_equal(mask, m)]
    assert len(hit) == 1
    k, f = divmod(hit[0], 2)
    src_img = np.rot90(np.fliplr(s.image) if f else s.image, k)
    assert np.array_equal(img, src_img)


def test_image_smaller_than_the_crop_is_padded_with_weight_zero():
    s = _sample(20, 24, seed=2)
    crops = BatchCropSampler([([s], 1.0, (1.0, 1.0))], crop_size=32)
    for _ in range(5):
        out = crops.make_batch(torch.tensor([0]))       # random geometry and colour
        w = out["weight"][0, 0]
        # with no zoom the whole image lands in the crop (up to a free rotation of <= 12 deg)
        assert 0.85 * 20 * 24 <= float((w > 0).sum()) <= 20 * 24 * 1.05
        assert torch.all(out["mask"][0, 0][w == 0] == 0)


def test_planking_pixels_get_the_planking_weight():
    s = _sample(40, 40, seed=3, planking=True)
    crops = BatchCropSampler([([s], 1.0, (1.0, 1.0))], crop_size=40, planking_weight=3.0)
    out = crops.make_batch(torch.tensor([0]), _params(1), colour=False)
    w = out["weight"][0, 0].numpy()
    plank = s.planking & ~s.mask
    assert np.all(w[plank] == 3.0) and np.all(w[~plank] == 1.0)


def test_random_batches_have_loader_shapes_and_sane_values():
    a, b = _sample(64, 80, seed=4), _sample(48, 48, seed=5, planking=True)
    crops = BatchCropSampler([([a], 0.5, (0.75, 1.33)), ([b], 0.5, (1.0, 1.0))], crop_size=32,
                             seed=7)
    batches = list(crops.batches(3, 6))
    assert len(batches) == 3
    for batch in batches:
        assert batch["image"].shape == (6, 3, 32, 32) and batch["image"].dtype == torch.float32
        assert batch["mask"].shape == batch["weight"].shape == (6, 1, 32, 32)
        assert torch.isfinite(batch["image"]).all()
        assert set(batch["mask"].unique().tolist()) <= {0.0, 1.0}
        assert set(batch["weight"].unique().tolist()) <= {0.0, 1.0, 3.0}
    again = list(BatchCropSampler([([a], 0.5, (0.75, 1.33)), ([b], 0.5, (1.0, 1.0))],
                                  crop_size=32, seed=7).batches(3, 6))
    assert all(torch.equal(x["image"], y["image"]) for x, y in zip(batches, again, strict=True))


def test_zoom_scales_the_crack():
    # a vertical 4-px band: at zoom 2 it is 8 px wide in the crop
    image = np.zeros((64, 64, 3), np.uint8)
    mask = np.zeros((64, 64), bool)
    mask[:, 30:34] = True
    image[mask] = 255
    s = Sample(stem="band", image=image, mask=mask, planking=None, domain="test")
    crops = BatchCropSampler([([s], 1.0, (2.0, 2.0))], crop_size=32)
    out = crops.make_batch(torch.tensor([0]), _params(1, zoom=2.0, u=(0.5, 0.5)), colour=False)
    assert out["mask"][0, 0].sum(1).unique().tolist() == [8.0]


def test_bad_arguments_are_clear_errors():
    s = _sample(10, 10)
    with pytest.raises(ValueError, match="sampling weight"):
        BatchCropSampler([([s], 0.0, (1.0, 1.0))])
    with pytest.raises(ValueError, match="zoom range"):
        BatchCropSampler([([s], 1.0, (1.5, 1.0))])
    with pytest.raises(ValueError, match="at least one"):
        BatchCropSampler([([], 1.0, (1.0, 1.0))])


def test_hue_rotation_keeps_grey_and_zero_angle_is_identity():
    from engine.batch_augment import _hue_matrices, _rotate_hue

    m = _hue_matrices(torch.device("cpu"))
    x = torch.rand(2, 3, 4, 4)
    assert torch.allclose(_rotate_hue(x, torch.zeros(2), *m), x, atol=1e-5)
    grey = torch.full((1, 3, 2, 2), 0.4)
    assert torch.allclose(_rotate_hue(grey, torch.tensor([0.5]), *m), grey, atol=1e-5)
