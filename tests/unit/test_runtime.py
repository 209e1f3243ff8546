"""engine.runtime: choosing a runtime, converting once, the same logits, falling back."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from engine.architectures import ARCHITECTURES
from engine.models import build_model
from engine.runtime import (
    AUTO_ORDER,
    OnnxRuntimeModule,
    OpenVINOModule,
    RuntimeUnavailableError,
    cache_key,
    installed_runtimes,
    module_for_inference,
    resolve_runtime,
    set_runtime,
)


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model(ARCHITECTURES["unet"])
    for m in model.modules():  # trained-looking BatchNorm statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_both_runtimes_are_installed_with_the_project():
    assert installed_runtimes() == ["torch", "onnxruntime", "openvino"]


def test_auto_picks_the_first_installed_of_the_measured_order(monkeypatch):
    assert resolve_runtime("auto") == AUTO_ORDER[0] == "openvino"
    assert resolve_runtime(None) == "openvino"
    monkeypatch.setattr("engine.runtime.installed_runtimes", lambda: ["torch", "onnxruntime"])
    assert resolve_runtime("auto") == "onnxruntime"
    monkeypatch.setattr("engine.runtime.installed_runtimes", lambda: ["torch"])
    assert resolve_runtime("AUTO") == "torch"
    with pytest.raises(RuntimeUnavailableError, match="pip install openvino"):
        resolve_runtime("openvino")


def test_bad_runtime_names_and_devices_are_clear_errors():
    with pytest.raises(RuntimeUnavailableError, match="unknown runtime 'tensorrt'"):
        resolve_runtime("tensorrt")
    assert resolve_runtime("auto", "cuda") == "torch"  # on CUDA PyTorch runs (fp16 autocast)
    with pytest.raises(RuntimeUnavailableError, match="CPU only"):
        resolve_runtime("openvino", "cuda:0")


@pytest.mark.parametrize("runtime, kind", [("onnxruntime", OnnxRuntimeModule),
                                           ("openvino", OpenVINOModule)])
def test_a_runtime_gives_pytorchs_logits_and_probabilities(runtime, kind):
    from engine.infer import predict_image

    model = _model()
    rgb = np.random.default_rng(0).integers(0, 255, (150, 200, 3), dtype=np.uint8)
    want = predict_image(rgb, model, tile_size=64, overlap=16)  # no runtime set: PyTorch
    assert set_runtime(model, runtime) == runtime
    net = module_for_inference(model)
    assert isinstance(net, kind) and net.channels_last is False
    x = torch.randn(3, 3, 64, 96)  # another batch and size than the conversion saw
    with torch.inference_mode():
        assert torch.allclose(net(x), model(x), atol=1e-4)
    got = predict_image(rgb, model, tile_size=64, overlap=16, tta=True)
    want_tta = predict_image(rgb, _reset(model), tile_size=64, overlap=16, tta=True)
    assert np.allclose(got, want_tta, atol=1e-5)
    assert not np.allclose(want, want_tta)  # tta really changed something: it ran
    set_runtime(model, runtime)
    assert module_for_inference(model) is net  # converted and compiled once per process


def _reset(model):
    set_runtime(model, "torch")
    return model


def test_the_converted_file_is_cached_by_weights_and_calibration(tmp_path, monkeypatch):
    from engine.calibration import set_calibration

    monkeypatch.setenv("CRACKWATCH_RUNTIME_CACHE", str(tmp_path))
    model = _model()
    key = cache_key(model)
    set_calibration(model, 0.5, 0.1)
    assert cache_key(model) != key  # the calibration is inside the graph
    set_runtime(model, "onnxruntime")
    first = module_for_inference(model)
    files = list(tmp_path.glob("*.onnx"))
    assert len(files) == 1 and first.path == files[0]
    again = _model()  # the same weights, loaded again: the same file, not converted again
    set_calibration(again, 0.5, 0.1)
    set_runtime(again, "onnxruntime")
    mtime = files[0].stat().st_mtime_ns
    assert module_for_inference(again).path == files[0]
    assert files[0].stat().st_mtime_ns == mtime


def test_a_model_whose_weights_change_runs_in_pytorch_again():
    model = _model()
    set_runtime(model, "openvino")
    assert isinstance(module_for_inference(model), OpenVINOModule)
    with torch.no_grad():
        model.net.segmentation_head[0].bias.add_(1.0)  # trained further, in place
    net = module_for_inference(model)
    assert not hasattr(net, "runtime") or net.runtime == "torch"
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        assert torch.allclose(net(x.contiguous(memory_format=torch.channels_last)), model(x),
                              atol=1e-4)


def test_a_failed_conversion_falls_back_to_pytorch_with_a_warning(tmp_path, monkeypatch,
                                                                  caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("CRACKWATCH_RUNTIME_CACHE", str(blocker / "cache"))
    model = _model(seed=3)
    set_runtime(model, "onnxruntime")
    with caplog.at_level(logging.WARNING, logger="engine.runtime"):
        net = module_for_inference(model)
    assert getattr(net, "runtime", "torch") == "torch" and model.runtime == "torch"
    assert "inference runs in PyTorch" in caplog.text
    assert "set CRACKWATCH_RUNTIME_CACHE to a writable folder" in caplog.text


def test_bench_model_times_every_runtime_round_robin_with_flops_and_peak():
    from engine.bench import bench_model

    model = _model()
    set_runtime(model, "auto")
    r = bench_model(model, tile_size=64, batch_size=1, iterations=1,
                    runtimes=installed_runtimes())
    assert r["runtime"] == "openvino" and r["conv_bn_folded_channels_last"] is False
    assert set(r["megapixels_per_s_by_runtime"]) == {"torch", "onnxruntime", "openvino"}
    assert r["megapixels_per_s_by_runtime"]["openvino"] == r["megapixels_per_s"]
    assert all(v > 0 for v in r["speedup_over_unfused_torch"].values())
    assert r["gflops_per_megapixel"] > 1 and r["matmul_peak_gflops"] > 1
    assert 0 < r["percent_of_matmul_peak"]
