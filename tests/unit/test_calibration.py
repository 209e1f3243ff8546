"""Calibration: one logit map brings every validation set's best threshold into [0.3, 0.7]."""

import math

import numpy as np
import pytest
import torch

from engine.calibration import fit_calibration, fit_from_thresholds, set_calibration
from engine.data import Sample
from engine.models import ARCHITECTURES, build_model, inference_module


def test_thresholds_far_apart_all_land_in_range_and_keep_their_order():
    raw = {"pavement": 0.006, "bridge": 0.2, "rock": 0.95}
    cal = fit_from_thresholds(raw)
    after = cal["calibrated_ods_threshold"]
    assert all(0.3 <= t <= 0.7 for t in after.values())
    assert after["pavement"] < after["bridge"] < after["rock"]  # monotone map
    assert 0 < cal["scale"] <= 1


def test_single_threshold_is_moved_to_one_half_without_compression():
    cal = fit_from_thresholds({"val": 0.1})
    assert cal["scale"] == 1.0
    assert cal["calibrated_ods_threshold"]["val"] == pytest.approx(0.5, abs=1e-3)
    assert cal["bias"] == pytest.approx(-math.log(0.1 / 0.9), abs=1e-4)


def test_thresholds_already_in_range_are_not_compressed():
    cal = fit_from_thresholds({"a": 0.45, "b": 0.55})
    assert cal["scale"] == 1.0


@pytest.mark.parametrize("bad", [{}, {"a": 0.0}, {"a": 1.0}])
def test_bad_thresholds_raise(bad):
    with pytest.raises(ValueError):
        fit_from_thresholds(bad)


def test_model_applies_the_map_and_the_cpu_fast_path_follows_it():
    torch.manual_seed(0)
    model = build_model(ARCHITECTURES["unet"]).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        raw = model(x)
        fused_raw = inference_module(model)(x)
        set_calibration(model, 0.5, -1.0)
        cal = model(x)
        fused_cal = inference_module(model)(x)  # the cached fused copy must be rebuilt
    torch.testing.assert_close(cal, raw * 0.5 - 1.0)
    torch.testing.assert_close(fused_cal, fused_raw * 0.5 - 1.0, atol=1e-4, rtol=1e-4)


class _ConstantLogit(torch.nn.Module):
    """A 'model' whose probability on crack pixels is 0.05 and elsewhere 0.01: its best
    threshold is far below 0.5, like an under-confident network on a new domain."""

    def __init__(self):
        super().__init__()
        self.logit_scale, self.logit_bias = 1.0, 0.0

    def forward(self, x):
        z = torch.where(x[:, :1] > 0, math.log(0.05 / 0.95), math.log(0.01 / 0.99))
        return z * self.logit_scale + self.logit_bias


def test_fitted_map_moves_the_validation_best_threshold_into_range():
    rng = np.random.default_rng(0)
    samples = []
    for i in range(3):
        mask = np.zeros((64, 64), bool)
        mask[20 + i, :] = True
        img = np.full((64, 64, 3), 30, np.uint8)
        img[mask] = 255  # bright crack pixels normalise to > 0
        img[rng.random((64, 64)) < 0.002] = 255  # a few false positives
        samples.append(Sample(f"s{i}", img, mask))
    model = _ConstantLogit().eval()
    from engine.calibration import ods_threshold

    before = ods_threshold(model, samples)
    assert before < 0.1
    cal = fit_calibration(model, {"val": samples})
    set_calibration(model, cal["scale"], cal["bias"])
    after = ods_threshold(model, samples)
    assert 0.3 <= after <= 0.7
    assert cal["calibrated_ods_threshold"]["val"] == pytest.approx(0.5, abs=0.01)
