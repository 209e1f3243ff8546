from pathlib import Path

import numpy as np
import pytest
import torch

from engine.data import (
    CrackSegDataset,
    dataset_samples,
    load_sample,
    pair_images_masks,
)
from engine.errors import DataNotFoundError, ImageReadError, MaskShapeError, PairingError
from tests.conftest import write_pair


def test_pairs_by_stem_sorted(tiny_dataset: Path):
    pairs = pair_images_masks(tiny_dataset / "images", tiny_dataset / "masks",
                              tiny_dataset / "planking")
    assert [p.stem for p in pairs] == ["img0", "img1", "img2"]
    for p in pairs:
        assert p.image.stem == p.mask.stem == p.planking.stem == p.stem
        assert p.image.suffix == ".jpg" and p.mask.suffix == ".png"


def test_folder_dataset_detects_planking(tiny_dataset: Path):
    samples, spec = dataset_samples(tiny_dataset)
    assert spec.has_planking and len(samples) == 3
    s = load_sample(samples[0])
    assert s.image.shape == (48, 64, 3) and s.image.dtype == np.uint8
    assert s.mask.shape == (48, 64) and s.mask.dtype == bool
    assert s.mask[10:12].all() and not s.mask[:10].any()
    assert s.planking[:, 5:8].all()


def test_missing_folder_names_path_and_fix(tmp_path: Path):
    with pytest.raises(DataNotFoundError, match="data-root"):
        pair_images_masks(tmp_path / "nope" / "images", tmp_path / "nope" / "masks")
    with pytest.raises(DataNotFoundError, match="neither a dataset name"):
        dataset_samples(tmp_path / "missing")


def test_image_without_mask_is_named(tiny_dataset: Path):
    (tiny_dataset / "masks" / "img1.png").unlink()
    with pytest.raises(PairingError, match=r"img1\.jpg"):
        pair_images_masks(tiny_dataset / "images", tiny_dataset / "masks")


def test_mask_of_other_size(tmp_path: Path):
    write_pair(tmp_path, "bad", size=(64, 48), mask_size=(32, 48))
    (p,) = pair_images_masks(tmp_path / "images", tmp_path / "masks")
    with pytest.raises(MaskShapeError, match=r"bad\.png.*32x48.*64x48"):
        load_sample(p)


def test_corrupt_image(tiny_dataset: Path):
    path = tiny_dataset / "images" / "img2.jpg"
    path.write_bytes(path.read_bytes()[:40])  # truncated JPEG
    (p,) = [p for p in pair_images_masks(tiny_dataset / "images", tiny_dataset / "masks")
            if p.stem == "img2"]
    with pytest.raises(ImageReadError, match=r"img2\.jpg"):
        load_sample(p)


def test_augmented_item_shapes_and_weights(tiny_dataset: Path):
    samples = [load_sample(p) for p in dataset_samples(tiny_dataset)[0]]
    ds = CrackSegDataset(samples, crop_size=96, zoom_range=(1.0, 1.0), planking_weight=3.0)
    torch.manual_seed(0)
    item = ds[0]
    assert item["image"].shape == (3, 96, 96) and item["image"].dtype == torch.float32
    assert item["mask"].shape == (1, 96, 96) and item["weight"].shape == (1, 96, 96)
    assert set(item["mask"].unique().tolist()) <= {0.0, 1.0}
    # the 64x48 image is padded to 96x96: padding pixels carry weight 0
    assert (item["weight"] == 0).sum() >= 96 * 96 - 64 * 48 - 200
    assert (item["weight"] == 3.0).any()  # planking pixels up-weighted
    # crack pixels survive the geometric transforms (nearest interpolation on masks)
    assert item["mask"].sum() >= 64


def test_whole_image_item_unaugmented(tiny_dataset: Path):
    samples = [load_sample(p) for p in dataset_samples(tiny_dataset)[0]]
    item = CrackSegDataset(samples, crop_size=None)[1]
    assert item["image"].shape == (3, 48, 64)
    assert torch.equal(item["mask"][0].bool(), torch.from_numpy(samples[1].mask))


def test_style_augmentation_recompresses_and_blurs_and_keeps_the_labels(tiny_dataset: Path):
    """Issue 26: --style-augment adds JPEG re-compression and stronger blur and colour; the
    mask goes through the geometry only (still 0/1, crack pixels kept)."""
    from torchvision.transforms import v2

    from engine.data import build_augmentation, load_dataset

    kinds = {type(t).__name__ for t in build_augmentation(64, style=True).transforms}
    inner = {type(t.transforms[0]).__name__ for t in build_augmentation(64, style=True)
             .transforms if isinstance(t, v2.RandomApply)}
    assert "ColorJitter" in kinds and {"JPEG", "GaussianBlur"} <= inner
    assert "JPEG" not in {type(t.transforms[0]).__name__ for t in build_augmentation(64)
                          .transforms if isinstance(t, v2.RandomApply)}
    samples, _ = load_dataset(tiny_dataset)
    ds = CrackSegDataset(samples, crop_size=32, zoom_range=(0.5, 1.6), style_augment=True)
    torch.manual_seed(0)
    for i in range(len(ds)):
        item = ds[i]
        assert item["image"].shape == (3, 32, 32)
        assert set(item["mask"].unique().tolist()) <= {0.0, 1.0}


def test_a_bad_zoom_range_is_one_error_line():
    from typer.testing import CliRunner

    from jobs.cli import app

    r = CliRunner().invoke(app, ["train", "segment", "--zoom", "1.5,0.5"])
    assert r.exit_code == 2 and "--zoom '1.5,0.5': expected LO,HI" in r.output
