"""Conv + BatchNorm folding without torch.fx (issue 27, item 1): the EfficientNet-Lite0
U-Net of the shipped models is folded, gives the same logits, and a wrong pairing is caught."""

from __future__ import annotations

import torch
from torch import nn

from engine.fold import fold_conv_bn
from engine.models import FOLD_TOLERANCE, build_model, inference_module

LITE0 = {"family": "unet", "encoder": "efficientnet-lite0",
         "decoder_channels": [128, 64, 32, 16, 16]}  # the shipped models' architecture


def _randomise_bn(model: nn.Module) -> None:
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def test_the_lite0_unet_is_folded_with_the_same_logits():
    model = build_model(LITE0).eval()
    _randomise_bn(model)  # BatchNorms that do something
    folded, pairs = fold_conv_bn(model)
    assert pairs >= 50  # encoder (timm BatchNormAct2d after Conv2dSame too) and decoder
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    x = torch.rand(2, 3, 96, 128, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():  # float reordering only: well inside FOLD_TOLERANCE
        assert float((model(x) - folded(x)).abs().max()) <= FOLD_TOLERANCE
    fast = inference_module(model)
    assert fast is not model and not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())


class _Misleading(nn.Module):
    """A conv registered right before a BatchNorm that normalises something else."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x):
        return self.conv(x) + self.bn(x)


def test_a_pair_that_is_not_one_is_not_used():
    model = _Misleading().eval()
    _randomise_bn(model)
    model.bn.running_mean.fill_(2.0)
    fast = inference_module(model)  # the walk's folded copy differs: it is not used
    assert any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    x = torch.rand(1, 3, 16, 16)
    with torch.inference_mode():
        assert torch.allclose(fast(x.contiguous(memory_format=torch.channels_last)), model(x),
                              atol=1e-5)


def test_a_training_model_is_refused():
    import pytest

    with pytest.raises(ValueError, match="eval"):
        fold_conv_bn(nn.Sequential(nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)).train())
