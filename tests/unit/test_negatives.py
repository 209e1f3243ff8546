"""Terrain negatives: reviewed cells of whole photos become all-background samples."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine import negatives
from engine.data import DATASETS, dataset_samples, load_dataset
from engine.errors import DataNotFoundError


def _fake_root(tmp_path: Path, photos) -> Path:
    folder = tmp_path / negatives.FOLDER
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for p in photos:
        w, h = negatives.PHOTO_SIZE
        # a gradient image: each cell's content tells where it was cut from
        img = np.zeros((h, w, 3), np.uint8)
        img[..., 0] = (np.arange(w) * 255 // w)[None, :]
        img[..., 1] = (np.arange(h) * 255 // h)[:, None]
        img[..., 2] = rng.integers(0, 255)
        Image.fromarray(img).save(folder / f"{p}.JPG", quality=95)
    return tmp_path


def test_splits_are_disjoint_and_cover_every_listed_photo():
    seen = [p for photos in negatives.NEGATIVE_SPLITS.values() for p in photos]
    assert len(seen) == len(set(seen))
    assert set(seen) == set(negatives.NEGATIVE_CELLS)
    for cells in negatives.NEGATIVE_CELLS.values():
        for c, r, kind in cells:
            assert 0 <= c < negatives.GRID[0] and 0 <= r < negatives.GRID[1] and kind


def test_negatives_loader_yields_all_background_cells(tmp_path):
    root = _fake_root(tmp_path, negatives.NEGATIVE_SPLITS["test"])
    samples, spec = load_dataset("terrain-negatives-test", root)
    assert spec.negatives and spec.has_val_split
    expected = sum(len(negatives.NEGATIVE_CELLS[p]) for p in negatives.NEGATIVE_SPLITS["test"])
    assert len(samples) == expected
    for s in samples:
        assert s.image.shape == (negatives.CELL_ROWS, negatives.CELL_COLS, 3)
        assert s.mask.shape == s.image.shape[:2] and not s.mask.any()
        # the crop comes from the listed cell: red ramps with the column, green with the row
        c, r = s.meta["column"], s.meta["row"]
        assert abs(int(s.image[0, 0, 0]) - c * negatives.CELL_COLS * 255 // 4000) <= 6
        assert abs(int(s.image[0, 0, 1]) - r * negatives.CELL_ROWS * 255 // 2250) <= 6


def test_missing_photo_is_a_clear_error(tmp_path):
    (tmp_path / negatives.FOLDER).mkdir(parents=True)
    with pytest.raises(DataNotFoundError, match="brighton_beach"):
        load_dataset("terrain-negatives-val", tmp_path)


def test_negatives_are_not_a_folder_dataset():
    assert DATASETS["terrain-negatives-train"].negatives
    with pytest.raises(ValueError, match="load_dataset"):
        dataset_samples("terrain-negatives-train")
