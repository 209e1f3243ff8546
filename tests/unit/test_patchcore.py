"""PatchCore (engine.patchcore) and the score-map evaluation of unsupervised detectors
(engine.anomaly_eval)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.anomaly_eval import auroc, crack_free_tiles, evaluate_score_maps
from engine.data import Sample
from engine.patchcore import PatchCore, greedy_coreset


def test_auroc_is_the_mann_whitney_statistic():
    assert auroc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1])) == 1.0
    assert auroc(np.array([0.9, 0.8, 0.2, 0.1]), np.array([0, 0, 1, 1])) == 0.0
    assert auroc(np.array([0.5, 0.5, 0.5, 0.5]), np.array([0, 1, 0, 1])) == 0.5
    assert auroc(np.array([1.0, 2.0]), np.array([0, 0])) is None


def _texture(rng, shape=(128, 128)):
    """Smooth grey ground: low-pass noise, as concrete or rock looks at a few mm per px."""
    from scipy.ndimage import gaussian_filter

    noise = gaussian_filter(rng.normal(0, 1, shape), 3)
    grey = 150 + 20 * noise / noise.std()
    return np.repeat(grey[..., None], 3, axis=2).clip(0, 255).astype(np.uint8)


def _with_crack(img, row=60):
    out = img.copy()
    out[row:row + 3, 10:118] = 25
    mask = np.zeros(img.shape[:2], bool)
    mask[row:row + 3, 10:118] = True
    return out, mask


def test_best_threshold_iou_is_the_best_cut():
    from engine.anomaly_eval import best_threshold_iou

    scores = np.array([0.9, 0.8, 0.7, 0.2, 0.1])
    labels = np.array([1, 1, 0, 1, 0], bool)
    best = best_threshold_iou(scores, labels)
    # cut at 0.8: 2 of 3 cracks (IoU 2/3); at 0.2: all 3 and one false (3/4), the best
    assert best == {"iou": 0.75, "threshold": 0.2}
    assert best_threshold_iou(scores, np.zeros(5, bool)) is None


def test_crack_free_tiles_keep_away_from_cracks():
    rng = np.random.default_rng(0)
    img = _texture(rng, (256, 256))
    mask = np.zeros((256, 256), bool)
    mask[10:12, 10:60] = True  # in the top-left tile only
    tiles = crack_free_tiles([Sample("a", img, mask)], tile=128, margin=8)
    assert len(tiles) == 3 and all(t.shape == (128, 128, 3) for t in tiles)
    mask[125:127, 200:210] = True  # above the lower-right tile, within its margin
    tiles = crack_free_tiles([Sample("a", img, mask)], tile=128, margin=8)
    assert len(tiles) == 1 and np.array_equal(tiles[0], img[128:, :128])


def test_greedy_coreset_spreads_over_the_data():
    pts = torch.cat([torch.zeros(500, 8), torch.ones(5, 8) * 10])  # one far cluster
    idx = greedy_coreset(pts, 3, dims=4)
    assert len(set(idx.tolist())) == 3
    assert (pts[idx].sum(1) > 0).any()  # the far cluster is covered
    assert greedy_coreset(pts, 10_000).shape[0] == len(pts)


def test_patchcore_flags_the_crack_not_the_clean_ground(tmp_path):
    rng = np.random.default_rng(1)
    train = [_texture(rng) for _ in range(6)]
    det = PatchCore.fit(train, coreset_ratio=0.5)
    assert det.memory.shape[1] == 152 and det.card["training_images"] == 6
    val = [_texture(rng) for _ in range(3)]
    thr = det.calibrate(val)
    test = [Sample(f"c{i}", *_with_crack(_texture(rng))) for i in range(3)]
    test += [Sample(f"clean{i}", _texture(rng), np.zeros((128, 128), bool)) for i in range(2)]
    scores = det.score_map(test[0].image)
    assert scores.shape == (128, 128) and scores.dtype == np.float32
    assert scores[60:63, 30:100].mean() > thr > np.median(scores)
    report = evaluate_score_maps(det.score_map, thr, test, tile=64)
    assert report["pixel"]["auroc"] > 0.9 and report["pixel"]["recall"] > 0.3
    assert report["image"]["auroc"] > 0.9
    assert report["image"]["crack_tiles"] == 6 and report["image"]["crack_free_tiles"] == 8
    path = det.save(tmp_path / "bank.safetensors")
    again = PatchCore.load(path)
    assert again.threshold == pytest.approx(thr)
    assert torch.allclose(again.memory, det.memory, atol=1e-2, rtol=1e-2)
    assert path.with_suffix(".json").is_file()


def test_fit_without_images_is_a_clear_error():
    with pytest.raises(ValueError, match="at least one crack-free image"):
        PatchCore.fit([])
