"""Issue 29: the unsupervised detectors' building blocks (VAE + Grad-CAM, UP-CrackNet, the
per-site surface change), on small synthetic inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch


def _texture(rows=128, cols=128, seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(120 + 25 * rng.standard_normal((rows, cols, 3)), 0, 255).astype(np.uint8)


def test_square_masks_remove_half_of_the_squares():
    from engine.upcracknet import square_mask

    g = torch.Generator().manual_seed(0)
    for k in (64, 32, 16):
        m = square_mask((128, 128), k, g)
        assert m.shape == (128, 128) and set(m.unique().tolist()) == {0.0, 1.0}
        assert m.mean().item() == pytest.approx(0.5)
        # constant on each k x k square
        blocks = m.view(128 // k, k, 128 // k, k)
        assert torch.all(blocks.amax((1, 3)) == blocks.amin((1, 3)))


def test_restoration_losses_are_zero_for_identical_images_and_grow_with_damage():
    from engine.upcracknet import msgms_loss, ssim_loss

    x = torch.from_numpy(_texture()).permute(2, 0, 1)[None].float() / 255
    y = x.clone()
    y[..., 60:68, :] = 0  # a dark line
    assert msgms_loss(x, x).item() == pytest.approx(0, abs=1e-6)
    assert ssim_loss(x, x).item() == pytest.approx(0, abs=1e-4)
    assert msgms_loss(x, y).item() > 0.01 and ssim_loss(x, y).item() > 0.01


def test_the_generator_keeps_the_shape_and_restore_hides_every_pixel_once():
    from engine.upcracknet import MASK_SCALES, Generator, UPCrackNet

    g = Generator()
    x = torch.rand(2, 3, 128, 128)
    assert g(x).shape == x.shape
    det = UPCrackNet(g)
    rgb = _texture(100, 150)  # not a multiple of 64: padded and cropped back
    restored = det.restore(rgb)
    assert restored.shape == (len(MASK_SCALES), 3, 100, 150)
    m = det.error_map(rgb)
    assert m.shape == (100, 150) and np.isfinite(m).all()
    assert det.detect(rgb).dtype == bool


def test_log_barrier_is_continuous_and_grows_with_violation():
    from engine.vae_gradcam import BARRIER_T, log_barrier

    t = BARRIER_T
    z = torch.tensor([-1.0, -0.5, -1 / t ** 2 - 1e-6, -1 / t ** 2 + 1e-6, 0.0, 0.5])
    v = log_barrier(z)
    assert torch.all(v[1:] >= v[:-1])  # monotone
    assert v[2].item() == pytest.approx(v[3].item(), abs=1e-3)  # continuous at -1/t^2


def test_vae_gradcam_trains_scores_calibrates_and_round_trips(tmp_path):
    from engine.vae_gradcam import VAEGradCAM

    tiles = [_texture(seed=i) for i in range(8)]
    det = VAEGradCAM.fit(tiles, minutes=0.05, batch_size=4)
    assert det.card["steps"] >= 1
    img_t, pix_t = det.calibrate(tiles[:4])
    m = det.score_map(_texture(200, 170, seed=9))
    assert m.shape == (200, 170) and ((m > 0) & (m < 1)).all()
    path = det.save(tmp_path / "vae.safetensors")
    again = VAEGradCAM.load(path)
    assert again.pixel_threshold == pytest.approx(pix_t)
    assert again.image_threshold == pytest.approx(img_t)
    np.testing.assert_allclose(again.score_map(tiles[0]), det.score_map(tiles[0]), atol=2e-3)


def test_site_change_finds_a_new_line_and_nothing_on_the_same_image():
    from engine.site_change import (
        change_probability,
        change_scores,
        fit_baseline,
        grid_change_scores,
    )

    base_img = _texture(384, 384)
    later = base_img.copy()
    later[192:195, 120:260] = 20  # a new dark crack
    base = fit_baseline([("b", base_img)])
    assert base.threshold > 0 and "own patch left out" in base.card["threshold_rule"]
    same = grid_change_scores(base_img, base.images)
    assert np.nanmax(same) < 0.01 * base.threshold  # (the bank is kept in fp16)
    s = grid_change_scores(later, base.images)
    assert (s[193, 130:250] >= base.threshold).mean() > 0.9
    # ground far from it (beyond the features' reach) is not flagged
    assert (s[:40] >= base.threshold).mean() < 0.01
    p = change_probability(s, base.threshold)
    assert p.min() >= 0 and p.max() <= 1
    # a shifted copy registered by a translation: compared in the baseline's frame, NaN
    # where the baseline did not see the ground
    h = np.array([[1, 0, 10], [0, 1, 0], [0, 0, 1.0]])  # later px -> baseline px
    shifted = np.roll(base_img, -10, axis=1)
    s2 = change_scores(shifted, base.images[0], h)
    assert np.isnan(s2[:, -5:]).all()
    seen = np.isfinite(s2)
    assert seen.mean() > 0.5 and (s2[seen] >= base.threshold).mean() < 0.02
    # a patch grid from another image size is refused
    with pytest.raises(ValueError, match="patch grid"):
        grid_change_scores(_texture(64, 64), base.images)


def test_shipped_detectors_are_checked_against_their_cards(tmp_path):
    import shutil

    from engine.anomaly_registry import (
        ANOMALY_DETECTORS,
        ANOMALY_DIR,
        AnomalyWeightsError,
        anomaly_card,
        load_anomaly_detector,
    )

    for name in ANOMALY_DETECTORS:
        card = anomaly_card(name)
        assert card["sha256"] and card["bytes"] == (ANOMALY_DIR / card["weights"]).stat().st_size
        assert card.get("threshold_rule")
    det = load_anomaly_detector("vae-gradcam-deepcrack")
    assert det.threshold is not None and det.card["training_tiles"] > 0
    # an altered copy is refused before anything is loaded
    for f in ANOMALY_DIR.glob("vae-gradcam-deepcrack.*"):
        shutil.copy(f, tmp_path / f.name)
    w = tmp_path / "vae-gradcam-deepcrack.safetensors"
    w.write_bytes(w.read_bytes()[:-4] + b"evil")
    with pytest.raises(AnomalyWeightsError, match="SHA-256"):
        load_anomaly_detector("vae-gradcam-deepcrack", weights_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown unsupervised detector"):
        anomaly_card("nope")
