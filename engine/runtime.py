"""Inference runtimes: the same crack model through PyTorch, ONNX Runtime or OpenVINO.

PyTorch is the training path and always present; for tiled inference on the CPU a model can
instead run through ONNX Runtime or OpenVINO, which plan the whole graph ahead (fused kernels,
their own memory layouts and thread pools). The model is converted once to ONNX
(:func:`export_onnx`, PyTorch's TorchScript-based exporter, opset :data:`ONNX_OPSET`) and the
file is cached under :func:`default_cache_dir`, named by a key of the weights' SHA-256, the
card's calibration and the exporter (:func:`cache_key`), so a new model or a new calibration
is converted again and every later process reuses the file.

Choosing: :func:`resolve_runtime` turns ``auto`` into the first installed runtime of
:data:`AUTO_ORDER` (fastest first, by ``crackwatch bench model``); a runtime that is
asked for by name but not installed is a :class:`RuntimeUnavailableError`. On CUDA only
``torch`` runs (fp16 autocast, :mod:`engine.infer`).

Same cracks: a runtime module is used only when its logits match PyTorch's within
:data:`RUNTIME_TOLERANCE` on a test input when it is built (OpenVINO is held to fp32 with
``INFERENCE_PRECISION_HINT``: on CPUs with AMX or AVX-512 BF16 its default would be bf16);
otherwise, or when conversion fails (a read-only cache folder, an exporter error), inference
falls back to PyTorch with a warning. ``tests/integration/test_runtime_identity.py`` checks the
stronger rule of issue 27 on real test images: per image, crack-mask IoU >= 0.999 and <= 0.01 %
of pixels flipping at the threshold.

Threads follow the machine: both runtimes get ``torch.get_num_threads()`` intra-op threads
(PyTorch's default is the number of physical cores; ``torch.set_num_threads`` changes both).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import threading
import weakref
from pathlib import Path

import numpy as np
import torch
from torch import nn

from engine.errors import EngineError
from engine.models import SIZE_MULTIPLE, _weights_key, inference_module

log = logging.getLogger(__name__)

#: Every runtime name ``--runtime`` accepts besides ``auto``.
RUNTIMES = ("torch", "onnxruntime", "openvino")
#: The Python package each runtime needs.
PACKAGES = {"torch": "torch", "onnxruntime": "onnxruntime", "openvino": "openvino"}
#: What ``auto`` picks: the first installed. ``crackwatch bench model`` times all three: on an
#: AVX-512 VM (issue 27) OpenVINO ran 1.7-2.0x PyTorch and ahead of ONNX Runtime; on the
#: project's AVX2 VM the three are within about 10 % (OpenVINO 1.01-1.05x of folded PyTorch
#: idle; docs: Explanation / Performance), so OpenVINO first costs nothing there.
AUTO_ORDER = ("openvino", "onnxruntime", "torch")
#: ONNX opset of the exported graphs (ONNX Runtime >= 1.12, OpenVINO >= 2022.1, Deepness).
ONNX_OPSET = 17
#: Bumped whenever :func:`export_onnx` changes what it writes: cached files are keyed by it.
EXPORT_VERSION = 1
#: Largest logit difference from PyTorch a runtime module may have on the check input (fp32
#: reordering gives ~1e-5; bf16 arithmetic gives whole tenths).
RUNTIME_TOLERANCE = 1e-2


#: Tiles a runtime module runs per call: a batch is fed one tile at a time. Measured
#: round-robin in one process on the 2-core VM (slope model, 4 x 512 px tiles): OpenVINO 1.69
#: MP/s one at a time against 1.59 as a batch of 4 (PyTorch's folded module 1.46), ONNX Runtime
#: 1.52 against 1.50; and a runtime's activation memory is planned for the largest input it
#: sees, so batches of 4 added about 500 MiB of peak RSS to `crackwatch infer` (1,900 against
#: 1,460 MiB on a 4096 px raster).
MICRO_BATCH = 1


class RuntimeUnavailableError(EngineError, ValueError):
    """A runtime was asked for by name that is unknown, not installed, or not for the device."""


def installed_runtimes() -> list[str]:
    """The runtimes of :data:`RUNTIMES` whose package is importable, in that order (``torch``
    always: it is what CrackWatch runs on)."""
    return ["torch", *(r for r in RUNTIMES[1:] if importlib.util.find_spec(PACKAGES[r])
                       is not None)]


def resolve_runtime(name: str | None = "auto", device: str | torch.device = "cpu") -> str:
    """The runtime ``name`` means on ``device``: ``auto`` (or None) is the first installed of
    :data:`AUTO_ORDER` on the CPU and ``torch`` elsewhere.

    Raises:
        RuntimeUnavailableError: an unknown name, a runtime that is not installed, or ONNX
            Runtime / OpenVINO asked for on a non-CPU device.
    """
    name = (name or "auto").strip().lower()
    if name not in (*RUNTIMES, "auto"):
        raise RuntimeUnavailableError(
            f"unknown runtime {name!r}; choose auto, {', '.join(RUNTIMES)}.")
    cpu = torch.device(device).type == "cpu"
    if name == "auto":
        if not cpu:
            return "torch"
        have = installed_runtimes()
        return next((r for r in AUTO_ORDER if r in have), "torch")
    if name != "torch" and not cpu:
        raise RuntimeUnavailableError(
            f"runtime {name} runs CrackWatch models on the CPU only; on {device} use "
            f"--runtime torch (fp16 autocast) or auto.")
    if name not in installed_runtimes():
        raise RuntimeUnavailableError(
            f"runtime {name} is not installed: pip install {PACKAGES[name]}, or use "
            f"--runtime auto (installed here: {', '.join(installed_runtimes())}).")
    return name


def default_threads() -> int:
    """Intra-op threads for a runtime: PyTorch's (its default is the physical core count)."""
    return max(1, torch.get_num_threads())


def default_cache_dir() -> Path:
    """Where converted models are cached: ``$XDG_CACHE_HOME/crackwatch/runtime`` (default
    ``~/.cache/crackwatch/runtime``); ``CRACKWATCH_RUNTIME_CACHE`` replaces the whole path."""
    explicit = os.environ.get("CRACKWATCH_RUNTIME_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "crackwatch" / "runtime"


def cache_key(model: nn.Module) -> str:
    """Hex SHA-256 of what the converted graph depends on: the weights' SHA-256 (from the
    model card; a model without a card is keyed by its parameters' bytes), the calibration
    ``scale``/``bias``, :data:`EXPORT_VERSION`, :data:`ONNX_OPSET` and the torch version."""
    card = getattr(model, "card", None) or {}
    weights = (card.get("weights") or {}).get("sha256")
    if not weights:
        h = hashlib.sha256()
        for t in model.state_dict().values():
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        weights = h.hexdigest()
    blob = json.dumps({
        "weights_sha256": weights,
        "logit_scale": float(getattr(model, "logit_scale", 1.0)),
        "logit_bias": float(getattr(model, "logit_bias", 0.0)),
        "export_version": EXPORT_VERSION, "opset": ONNX_OPSET,
        "torch": torch.__version__.split("+")[0],
    }, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


class _Probabilities(nn.Module):
    """``sigmoid`` of a segmenter's (calibrated) logits: the graph QGIS/Deepness runs."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(x))


def export_onnx(model: nn.Module, path: str | Path, *, probabilities: bool = False,
                tile_size: int | None = None) -> Path:
    """Write ``model`` as an ONNX graph (opset :data:`ONNX_OPSET`), atomically.

    The exported graph is the folded inference module (:func:`engine.models.inference_module`:
    each Conv + BatchNorm one convolution) with the card's calibration inside (the
    ``logit_scale`` / ``logit_bias`` of :class:`engine.models.CrackSegmenter`).

    Args:
        model: a segmenter in ``eval()`` mode (any device; exported from a CPU copy).
        path: the ``.onnx`` file to write (its folder is created).
        probabilities: output ``sigmoid`` probabilities in [0, 1] (input ``image``, output
            ``crack_probability``); otherwise logits (output ``logits``).
        tile_size: fix height and width to this many pixels (Deepness needs square static
            tiles); None: height and width are dynamic (multiples of 32). The batch axis is
            always dynamic.

    Input ``image``: ``(N, 3, H, W)`` float32, RGB scaled to [0, 1] and standardised with the
    card's ImageNet mean and std. Output ``(N, 1, H, W)`` float32.

    Raises:
        OSError: the file cannot be written.
    """
    import copy


    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cpu_model = model if next(model.parameters()).device.type == "cpu" else \
        copy.deepcopy(model).cpu()
    net = inference_module(cpu_model.eval(), "cpu")
    if probabilities:
        net = _Probabilities(net)
    side = tile_size or 2 * SIZE_MULTIPLE * 4
    x = torch.zeros(1, 3, side, side)
    output = "crack_probability" if probabilities else "logits"
    axes = {0: "batch"} if tile_size else {0: "batch", 2: "height", 3: "width"}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
    try:
        import warnings

        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(net, (x,), str(tmp), dynamo=False, opset_version=ONNX_OPSET,
                              input_names=["image"], output_names=[output],
                              dynamic_axes={"image": axes, output: axes},
                              do_constant_folding=True)
        _name_output_shape(tmp, tile_size)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _name_output_shape(path: Path, tile_size: int | None) -> None:
    """Give the exported graph's output its true shape, ``(batch, 1, H, W)`` with H and W the
    tile size or named like the input's (the exporter leaves it partly unnamed)."""
    import onnx

    graph = onnx.load(str(path))
    side = [tile_size, tile_size] if tile_size else ["height", "width"]
    dims = graph.graph.output[0].type.tensor_type.shape.dim
    del dims[:]
    for value in ("batch", 1, *side):
        d = dims.add()
        if isinstance(value, int):
            d.dim_value = value
        else:
            d.dim_param = value
    onnx.checker.check_model(graph)
    onnx.save(graph, str(path))


class RuntimeModule:
    """A converted model as a callable: ``(B, 3, H, W)`` normalised float tensor ->
    ``(B, 1, H, W)`` float32 logits tensor, like the :class:`torch.nn.Module` it replaces
    (:func:`engine.models.forward_proba` calls it the same way). ``channels_last`` is False:
    feed it plain NCHW. Calls are serialised by a lock (one inference request)."""

    channels_last = False
    runtime = "torch"
    #: Set once its logits were checked against PyTorch (:func:`runtime_module_for`).
    checked = False

    def __init__(self, path: Path, threads: int):
        self.path, self.threads = Path(path), threads
        self._lock = threading.Lock()

    def run(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        arr = np.ascontiguousarray(x.detach().cpu().float().numpy())
        with self._lock:  # one tile at a time (MICRO_BATCH)
            out = np.concatenate([self.run(arr[i:i + MICRO_BATCH])
                                  for i in range(0, arr.shape[0], MICRO_BATCH)])
        return torch.from_numpy(np.asarray(out, dtype=np.float32))

    def eval(self) -> RuntimeModule:
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path.name}, threads={self.threads})"


class OnnxRuntimeModule(RuntimeModule):
    """The model through ONNX Runtime's CPU execution provider (all graph optimisations)."""

    runtime = "onnxruntime"

    def __init__(self, path: Path, threads: int):
        import onnxruntime as ort

        super().__init__(path, threads)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        self._session = ort.InferenceSession(str(path), opts,
                                             providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def run(self, x: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._input: x})[0]


class OpenVINOModule(RuntimeModule):
    """The model through OpenVINO's CPU plugin: latency hint, fp32 inference precision (the
    same numbers on every CPU), ``threads`` inference threads; dynamic batch and size."""

    runtime = "openvino"

    def __init__(self, path: Path, threads: int):
        import openvino as ov

        super().__init__(path, threads)
        core = ov.Core()
        self._compiled = core.compile_model(core.read_model(str(path)), "CPU", {
            "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads,
            "INFERENCE_PRECISION_HINT": "f32"})
        self._request = self._compiled.create_infer_request()

    def run(self, x: np.ndarray) -> np.ndarray:
        return self._request.infer({0: x})[0].copy()


_MODULES = {"onnxruntime": OnnxRuntimeModule, "openvino": OpenVINOModule}


def build_runtime_module(model: nn.Module, runtime: str, *, cache_dir: Path | None = None,
                         threads: int | None = None) -> RuntimeModule:
    """``model`` converted for ``runtime`` (``onnxruntime`` or ``openvino``): the cached ONNX
    file (:func:`cache_key`) is written first when missing.

    Raises:
        RuntimeUnavailableError: ``runtime`` is ``torch``, unknown or not installed.
        OSError: the cache folder cannot be written.
    """
    if runtime not in _MODULES:
        raise RuntimeUnavailableError(
            f"no converted module for runtime {runtime!r}; expected one of "
            f"{', '.join(_MODULES)}.")
    resolve_runtime(runtime, "cpu")  # installed?
    card = getattr(model, "card", None) or {}
    path = (cache_dir or default_cache_dir()) / \
        f"{card.get('name', 'model')}-{cache_key(model)[:16]}.onnx"
    threads = threads or default_threads()
    key = (runtime, str(path), threads)
    with _BUILD_LOCK:
        if key in _BUILT and path.is_file():
            return _BUILT[key]
        if not path.is_file():
            log.info("converting %s to ONNX for %s: %s", card.get("name", "the model"),
                     runtime, path)
            export_onnx(model, path)
        module = _MODULES[runtime](path, threads)
        _BUILT[key] = module
        return module


#: Built modules by (runtime, ONNX file, threads): a model loaded again (each survey run, each
#: test) reuses the compiled graph instead of compiling it again.
_BUILT: dict[tuple[str, str, int], RuntimeModule] = {}
_BUILD_LOCK = threading.Lock()


def set_runtime(model: nn.Module, runtime: str | None = "auto") -> str:
    """Make tiled inference on the CPU run ``model`` through ``runtime``
    (:func:`resolve_runtime`; :func:`module_for_inference` reads it). Returns the
    resolved name.

    The choice holds while the weights and calibration stay as they are now: a model trained
    further runs in PyTorch again.

    Raises:
        RuntimeUnavailableError: as :func:`resolve_runtime`.
    """
    first = next(model.parameters(), None)
    resolved = resolve_runtime(runtime, first.device if first is not None else "cpu")
    model.runtime = resolved
    model.runtime_weights_key = _weights_key(model)
    _RUNTIME_MODULES.pop(model, None)
    return resolved


_RUNTIME_MODULES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def runtime_module_for(model: nn.Module) -> RuntimeModule | None:
    """The converted module :func:`set_runtime` chose for ``model``, built once and checked
    against PyTorch (:data:`RUNTIME_TOLERANCE`); None when the model runs in PyTorch (its
    runtime is ``torch``, its weights changed since, or conversion or the check failed: then
    it is logged once and the model stays on PyTorch)."""
    runtime = getattr(model, "runtime", "torch")
    if runtime == "torch" or model.training:
        return None
    if _weights_key(model) != getattr(model, "runtime_weights_key", None):
        return None
    cached = _RUNTIME_MODULES.get(model)
    if cached is not None:
        return cached or None
    try:
        module = build_runtime_module(model, runtime)
        if not module.checked:  # once per converted graph (same weights and calibration)
            diff = _max_logit_difference(model, module)
            if diff > RUNTIME_TOLERANCE:
                raise ValueError(f"its logits differ from PyTorch's by {diff:.3g} "
                                 f"(> {RUNTIME_TOLERANCE})")
            module.checked = True
    except Exception as exc:  # noqa: BLE001 - any failure: stay on PyTorch, say so
        hint = (f" (the converted-model cache {default_cache_dir()} cannot be written: set "
                f"CRACKWATCH_RUNTIME_CACHE to a writable folder)"
                if isinstance(exc, OSError) else "")
        log.warning("runtime %s not used for %s, inference runs in PyTorch: %s%s", runtime,
                    (getattr(model, "card", None) or {}).get("name", "the model"), exc, hint)
        model.runtime = "torch"
        _RUNTIME_MODULES[model] = False
        return None
    log.info("inference runtime: %s (%s)", runtime, module)
    _RUNTIME_MODULES[model] = module
    return module


def module_for_inference(model: nn.Module, device: str | torch.device = "cpu"):
    """What tiled inference calls: on the CPU the converted module :func:`set_runtime` chose
    for ``model`` (:func:`runtime_module_for`; a :class:`RuntimeModule`, fed plain NCHW),
    else PyTorch's :func:`engine.models.inference_module` (Conv+BN folded, channels_last)."""
    if torch.device(device).type == "cpu" and getattr(model, "runtime", "torch") != "torch":
        converted = runtime_module_for(model)
        if converted is not None:
            return converted
    return inference_module(model, device)


def _max_logit_difference(model: nn.Module, module: RuntimeModule) -> float:
    """Largest |logit| difference of ``module`` from ``model`` on one fixed 2 x 3 x 96 x 128
    input (a batch and a non-square size, as tiled inference feeds)."""
    x = torch.rand(2, 3, 96, 128, generator=torch.Generator().manual_seed(0)) * 4 - 2
    with torch.inference_mode():
        ref = model(x)
    return float((module(x) - ref).abs().max())


__all__ = [
    "AUTO_ORDER", "ONNX_OPSET", "RUNTIMES", "RUNTIME_TOLERANCE", "OnnxRuntimeModule",
    "OpenVINOModule", "RuntimeModule", "RuntimeUnavailableError", "build_runtime_module",
    "cache_key", "default_cache_dir", "default_threads", "export_onnx", "installed_runtimes",
    "module_for_inference", "resolve_runtime", "runtime_module_for", "set_runtime",
]
