import pytest
import torch

from engine.errors import ModelCardError
from engine.models import (
    ARCHITECTURES,
    build_model,
    get_model,
    list_models,
    pad_to_multiple,
    predict_proba,
)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_forward_shapes_and_size(arch):
    model = build_model(ARCHITECTURES[arch]).eval()
    n = sum(p.numel() for p in model.parameters())
    assert n * 2 < 10e6, "fp16 checkpoint must stay under ~10 MB"
    with torch.inference_mode():
        y = model(torch.randn(2, 3, 64, 96))
    assert y.shape == (2, 1, 64, 96)
    probs = predict_proba(model, torch.randn(1, 3, 50, 70))  # not a multiple of 32
    assert probs.shape == (1, 50, 70) and 0 <= probs.min() and probs.max() <= 1


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_dropout_present_and_only_in_training(arch):
    model = build_model(ARCHITECTURES[arch])
    drops = [m for m in model.modules() if isinstance(m, torch.nn.Dropout2d)]
    assert drops and max(d.p for d in drops) == pytest.approx(0.3)
    x = torch.randn(1, 3, 64, 64)
    model.eval()
    with torch.inference_mode():
        assert torch.equal(model(x), model(x))


def test_resnet18_unet_with_four_stages_drops_the_unused_stage():
    """encoder_depth 4: bottleneck at stride 16, ResNet's layer4 (8.4 M parameters) removed, so
    the fp16 checkpoint fits the ~10 MB budget; the stride-16 features keep dropout 0.3."""
    arch = {"family": "unet", "encoder": "resnet18", "decoder_channels": [64, 32, 16, 16],
            "encoder_depth": 4}
    model = build_model(arch).eval()
    assert not hasattr(model.net.encoder, "layer4")
    n = sum(p.numel() for p in model.parameters())
    assert 2.5e6 < n < 3.5e6 and n * 2 < 10e6
    assert model.encoder_dropout[-1].p == pytest.approx(0.3)
    with torch.inference_mode():
        assert model(torch.randn(1, 3, 64, 96)).shape == (1, 1, 64, 96)
    # the card's architecture block rebuilds the same state dict
    assert build_model(arch).state_dict().keys() == model.state_dict().keys()


@pytest.mark.parametrize("arch, match", [
    ({"family": "unet", "encoder": "resnet18", "decoder_channels": [64, 32, 16, 16, 16],
      "encoder_depth": 4}, "needs 4"),
    ({"family": "unet", "encoder": "resnet18", "decoder_channels": [16, 16],
      "encoder_depth": 2}, "must be 3, 4 or 5"),
    ({"family": "deeplabv3plus", "encoder": "mobilenet_v2", "decoder_channels": 128,
      "encoder_depth": 4}, "U-Net only"),
])
def test_bad_encoder_depth_is_a_card_error(arch, match):
    with pytest.raises(ModelCardError, match=match):
        build_model(arch)


def test_architectures_are_built_and_listed_by_name():
    assert list_models() == sorted(ARCHITECTURES) == ["deeplabv3plus", "unet"]
    torch.manual_seed(0)
    by_name = get_model("unet")
    torch.manual_seed(0)
    from_card = build_model(ARCHITECTURES["unet"])
    assert all(torch.equal(a, b) for a, b in zip(by_name.state_dict().values(),
                                                 from_card.state_dict().values(), strict=True))
    small = get_model("unet", encoder="resnet18", encoder_depth=4,
                      decoder_channels=[64, 32, 16, 16])
    assert not hasattr(small.net.encoder, "layer4")
    with pytest.raises(ModelCardError, match="expected one of deeplabv3plus, unet"):
        get_model("segformer")
    with pytest.raises(ModelCardError, match="expected one of deeplabv3plus, unet"):
        build_model({"family": "segformer", "encoder": "mobilenet_v2", "decoder_channels": 8})
    with pytest.raises(ModelCardError, match="not dropout"):
        get_model("unet", dropout=0.5)


def test_a_new_architecture_is_one_registered_builder():
    """Registering a builder makes it buildable by name and from a card, and listed; nothing
    else is edited."""
    import segmentation_models_pytorch as smp

    from engine import architectures
    from engine.architectures import Parts, register_model

    @register_model("fpn-test", encoder="resnet18", decoder_channels=32)
    def _fpn(encoder, decoder_channels, encoder_depth):
        net = smp.FPN(encoder, encoder_weights=None, classes=1, decoder_segmentation_channels=
                      decoder_channels, decoder_pyramid_channels=decoder_channels)
        n = len(net.encoder.out_channels)
        return Parts(net, torch.nn.ModuleList([torch.nn.Identity()] * n), torch.nn.Identity())

    try:
        assert "fpn-test" in list_models()
        model = get_model("fpn-test").eval()
        with torch.inference_mode():
            assert predict_proba(model, torch.randn(1, 3, 40, 50)).shape == (1, 40, 50)
        card_block = ARCHITECTURES["fpn-test"]
        assert card_block == {"family": "fpn-test", "encoder": "resnet18", "decoder_channels": 32}
        assert build_model(card_block).state_dict().keys() == model.state_dict().keys()
        with pytest.raises(ValueError, match="registered already"):
            register_model("fpn-test", encoder="resnet18", decoder_channels=32)(_fpn)
    finally:
        architectures._BUILDERS.pop("fpn-test", None)
        ARCHITECTURES.pop("fpn-test", None)


def test_cli_offers_the_registered_architectures():
    from typer.testing import CliRunner

    from jobs.cli import app

    out = CliRunner().invoke(app, ["train", "segment", "--help"], env={"COLUMNS": "200"}).output
    assert " | ".join(list_models()) in out
    r = CliRunner().invoke(app, ["train", "segment", "--architecture", "segformer",
                                 "--epochs", "1"])
    assert r.exit_code == 2 and "Unknown architecture 'segformer'" in r.output


def test_pad_to_multiple():
    x = torch.arange(2 * 3 * 33 * 40, dtype=torch.float32).reshape(2, 3, 33, 40)
    y, h, w = pad_to_multiple(x, 32)
    assert y.shape == (2, 3, 64, 64) and (h, w) == (33, 40)
    assert torch.equal(y[..., :33, :40], x)


class LeftEdgeModel(torch.nn.Module):
    """Not flip-equivariant: logit 4 in the first 8 columns, -4 elsewhere."""

    def forward(self, x):
        out = torch.full_like(x[:, :1], -4.0)
        out[..., :8] = 4.0
        return out


def test_tta_averages_the_four_flips():
    x = torch.randn(2, 3, 40, 50)  # not a multiple of 32: padded and cropped back
    plain = predict_proba(LeftEdgeModel(), x)
    assert plain.shape == (2, 40, 50)
    tta = predict_proba(LeftEdgeModel(), x, tta=True)
    assert tta.shape == (2, 40, 50)
    hi, lo = torch.sigmoid(torch.tensor(4.0)), torch.sigmoid(torch.tensor(-4.0))
    # Unflipped and up-down-flipped passes put the hot band on the left; the two left-right
    # flips put it at the right edge of the *padded* 64-px width, which is cropped away.
    assert torch.allclose(tta[..., :8], (hi + lo) / 2)
    assert torch.allclose(tta[..., 8:], lo)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_tta_of_a_real_network_is_flip_invariant(arch):
    model = build_model(ARCHITECTURES[arch]).eval()
    x = torch.randn(1, 3, 64, 64)
    p = predict_proba(model, x, tta=True)
    p_flipped = predict_proba(model, x.flip(-1), tta=True).flip(-1)
    assert torch.allclose(p, p_flipped, atol=1e-5)


@pytest.mark.parametrize("tta", [False, True])
def test_bench_model_prints_figures(tta):
    from engine.bench import bench_model

    r = bench_model(build_model(ARCHITECTURES["unet"]), tile_size=64, batch_size=1,
                    iterations=1, tta=tta)
    assert r["tta"] is tta and r["megapixels_per_s"] > 0 and r["peak_rss_mib"] > 0


@pytest.mark.parametrize("arch", ["unet", "deeplabv3plus"])
def test_inference_module_folds_batchnorm_and_keeps_the_function(arch):
    from engine.models import inference_module

    torch.manual_seed(0)
    model = build_model(ARCHITECTURES[arch])
    # non-trivial BatchNorm statistics, as in a trained model
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    model.eval()
    net = inference_module(model)
    assert net is not model
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert next(net.parameters()).is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 64, 96)
    with torch.inference_mode():
        want = model(x)
        got = net(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(got, want, atol=1e-4, rtol=1e-4)
    assert inference_module(model) is net  # cached


def test_inference_module_follows_weight_changes_and_training_mode():
    from engine.models import inference_module

    model = build_model(ARCHITECTURES["unet"]).eval()
    first = inference_module(model)
    with torch.no_grad():
        model.net.segmentation_head[0].bias.add_(1.0)  # an optimiser step, in place
    second = inference_module(model)
    assert second is not first
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        assert torch.allclose(second(x), model(x), atol=1e-4)
    model.train()
    assert inference_module(model) is model
    assert inference_module(model.eval(), "meta") is model  # only the CPU is rewritten


def test_bench_model_reports_cpu_share_and_both_paths():
    from engine.bench import bench_model

    r = bench_model(build_model(ARCHITECTURES["unet"]), tile_size=64, batch_size=1,
                    iterations=1)
    assert r["conv_bn_folded_channels_last"] is True
    assert r["megapixels_per_s_unfused"] > 0 and r["user_s"] >= 0 and r["sys_s"] >= 0
    assert 0.0 <= r["sys_share_of_cpu"] <= 1.0 and 0.0 <= r["sys_share_of_cpu_unfused"] <= 1.0
    assert r["allocator"] in ("tuned", "user-env", "disabled", "not-glibc")
