import pytest
import torch

from engine.models import ARCHITECTURES, build_model, pad_to_multiple, predict_proba


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


def test_pad_to_multiple():
    x = torch.arange(2 * 3 * 33 * 40, dtype=torch.float32).reshape(2, 3, 33, 40)
    y, h, w = pad_to_multiple(x, 32)
    assert y.shape == (2, 3, 64, 64) and (h, w) == (33, 40)
    assert torch.equal(y[..., :33, :40], x)
