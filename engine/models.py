"""Crack segmentation networks from segmentation-models-pytorch, by architecture name.

The architectures (U-Net and DeepLabV3+ today) are registered by name in
:mod:`engine.architectures` (with their dropout, after Sulaiman et al.); :func:`get_model`
builds one by name, :func:`list_models` lists them, :func:`build_model` builds one from a model
card's ``architecture`` block. Every model is a plain ``nn.Module`` mapping ``(B, 3, H, W)``
ImageNet-normalised float images to ``(B, 1, H, W)`` crack logits (apply ``sigmoid`` for
probabilities). ``H`` and ``W`` must be multiples of :data:`SIZE_MULTIPLE`;
:func:`pad_to_multiple` does that.

Encoders are built with ``encoder_weights=None``: nothing is downloaded, every weight comes
from our own training on ``../shared/data``.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from engine.architectures import (  # noqa: F401 - the dropout rates are re-exported
    ARCHITECTURES,
    DEEPLAB_DECODER_DROPOUT,
    DEEPLAB_ENCODER_DROPOUT,
    UNET_DECODER_DROPOUT,
    UNET_ENCODER_DROPOUT,
    build_parts,
    list_models,
    register_model,
)
from engine.errors import ModelCardError

log = logging.getLogger(__name__)

SIZE_MULTIPLE = 32


class CrackSegmenter(nn.Module):
    """An smp encoder-decoder with dropout on encoder features and in the decoder.

    Args:
        architecture: a registered architecture name (:func:`list_models`: ``"unet"``,
            ``"deeplabv3plus"``).
        encoder: an smp encoder name, e.g. ``"mobilenet_v2"``, ``"resnet18"``, or a name of
            :data:`engine.pretrained.ENCODER_ALIASES` (``"efficientnet-lite0"``).
        decoder_channels: U-Net: one int per decoder block; DeepLabV3+: a single int.
        encoder_depth: U-Net only: encoder stages used, 3-5 (5: down to stride 32). With 4 the
            bottleneck is at stride 16 and, for ResNet encoders, the unused last stage is
            removed (ResNet-18's ``layer4`` holds 8.4 M of its 11.2 M parameters; other
            encoders keep their unused weights), so a ResNet-18 U-Net with decoder channels
            (64, 32, 16, 16) is 3.1 M parameters, a 6.2 MB fp16 checkpoint.
            ``decoder_channels`` needs one entry per stage.

    Input ``(B, 3, H, W)`` normalised float, output ``(B, 1, H, W)`` logits.
    """

    def __init__(
        self,
        architecture: str = "unet",
        encoder: str = "mobilenet_v2",
        decoder_channels: int | tuple[int, ...] | list[int] = (128, 64, 32, 16, 16),
        encoder_depth: int = 5,
    ):
        super().__init__()
        self.architecture = architecture
        #: Calibration of the output logits, ``scale * z + bias`` (:mod:`engine.calibration`;
        #: set from the model card by :func:`engine.registry.load_model`). Identity: 1, 0.
        self.logit_scale = 1.0
        self.logit_bias = 0.0
        self.net, self.encoder_dropout, self.decoder_dropout = build_parts(
            architecture, encoder=encoder, decoder_channels=decoder_channels,
            encoder_depth=encoder_depth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.net.encoder(x)
        features = [d(f) for d, f in zip(self.encoder_dropout, features, strict=True)]
        out = self.decoder_dropout(self.net.decoder(features))
        logits = self.net.segmentation_head(out)
        if self.logit_scale != 1.0 or self.logit_bias != 0.0:
            logits = logits * self.logit_scale + self.logit_bias
        return logits


def build_model(architecture: dict[str, Any]) -> CrackSegmenter:
    """Build an untrained model from a model card's ``architecture`` block.

    Raises:
        ModelCardError: a required key is missing or the architecture is unknown.
    """
    try:
        family, encoder = architecture["family"], architecture["encoder"]
        decoder_channels = architecture["decoder_channels"]
    except KeyError as exc:
        raise ModelCardError(
            f"Model card architecture lacks {exc}; expected family, encoder, decoder_channels."
        ) from exc
    return CrackSegmenter(architecture=family, encoder=encoder, decoder_channels=decoder_channels,
                          encoder_depth=architecture.get("encoder_depth", 5))


def get_model(name: str, **kwargs: Any) -> CrackSegmenter:
    """An untrained model of architecture ``name`` (:func:`list_models`) in its shipped
    configuration (:data:`ARCHITECTURES`, small enough for fp16 checkpoints of a few MB),
    with ``kwargs`` (``encoder``, ``decoder_channels``, ``encoder_depth``) replacing entries.

    Raises:
        ModelCardError: unknown architecture, encoder or option.
    """
    if name not in ARCHITECTURES:
        raise ModelCardError(f"Unknown architecture {name!r}; expected one of "
                             f"{', '.join(list_models())}.")
    unknown = set(kwargs) - {"encoder", "decoder_channels", "encoder_depth"}
    if unknown:
        raise ModelCardError(f"get_model({name!r}) takes encoder, decoder_channels and "
                             f"encoder_depth, not {', '.join(sorted(unknown))}.")
    return build_model({**ARCHITECTURES[name], **kwargs})


def pad_to_multiple(
    x: torch.Tensor, multiple: int = SIZE_MULTIPLE
) -> tuple[torch.Tensor, int, int]:
    """Reflect-pad ``(B, C, H, W)`` at bottom/right to multiples of ``multiple``.

    Returns the padded tensor and the original ``H``, ``W`` (crop the output back with them).
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, h, w


#: Test-time augmentation: the flips averaged by :func:`forward_proba` with ``tta=True``
#: (identity, left-right, up-down, both). Rotations by 90 degrees added nothing on validation
#: data (UAV75 val and the DeepCrack hold-out, pooled IoU within 0.002 of flips alone).
TTA_FLIPS: tuple[tuple[int, ...], ...] = ((), (-1,), (-2,), (-2, -1))


def forward_proba(model: nn.Module, x: torch.Tensor, tta: bool = False) -> torch.Tensor:
    """Sigmoid crack probability ``(B, H, W)`` float32 of a padded batch ``(B, 3, H, W)``.

    ``H`` and ``W`` must already be multiples of :data:`SIZE_MULTIPLE`. With ``tta`` the model
    runs on the four flips of :data:`TTA_FLIPS` and the probabilities are averaged (test-time
    augmentation; four times the compute). Call it under ``torch.inference_mode()``.
    """
    if not tta:
        return torch.sigmoid(model(x)[:, 0].float())
    total = None
    for dims in TTA_FLIPS:
        xi = x.flip(dims) if dims else x
        p = torch.sigmoid(model(xi)[:, 0].float())
        p = p.flip(dims) if dims else p
        total = p if total is None else total + p
    return total / len(TTA_FLIPS)


_INFERENCE_MODULES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _weights_key(model: nn.Module) -> tuple:
    """Identity and in-place version counter of every parameter and buffer: changes whenever
    an optimiser step or a BatchNorm update touches the model, or its calibration changes."""
    return (getattr(model, "logit_scale", 1.0), getattr(model, "logit_bias", 0.0),
            *((id(t), t._version) for t in (*model.parameters(), *model.buffers())))


#: Largest difference in logits a folded module may have from the model it was folded from
#: (float reordering gives a few 1e-5; a wrongly paired conv and BatchNorm gives whole units).
FOLD_TOLERANCE = 1e-3


def _folded(model: nn.Module) -> nn.Module:
    """``model`` with its Conv + BatchNorm pairs folded by ``torch.fx``'s ``fuse``, or where
    fx cannot trace it (the EfficientNet-Lite0 models) by :func:`engine.fold.fold_conv_bn`,
    checked against ``model`` on one input, in channels_last; or ``model`` itself when
    neither gives the same logits."""
    from engine.fold import fold_conv_bn

    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        reference = model(x)

    def close(candidate: nn.Module) -> bool:
        with torch.inference_mode():
            got = candidate(x.contiguous(memory_format=torch.channels_last))
        return bool((got - reference).abs().max() <= FOLD_TOLERANCE)

    def walk() -> tuple[str, nn.Module]:
        folded, pairs = fold_conv_bn(model)
        return f"{pairs} Conv+BatchNorm pairs folded", folded

    def traced() -> tuple[str, nn.Module]:
        from torch.fx.experimental.optimization import fuse

        return "torch.fx fuse", fuse(model, inplace=False)

    for way in (traced, walk):  # fx where it traces (pattern-matched); else the module walk
        try:
            how, candidate = way()
        except Exception as exc:  # noqa: BLE001 - any failure: try the next way
            log.info("Conv-BN folding (%s) not applied: %s", way.__name__, exc)
            continue
        candidate = candidate.to(memory_format=torch.channels_last).eval()
        if close(candidate):
            log.info("inference module: %s", how)
            return candidate
        log.info("inference module: %s changes the logits; not used", how)
    return model


def inference_module(model: nn.Module, device: str | torch.device = "cpu") -> nn.Module:
    """The PyTorch module tiled inference runs: on the CPU, ``model`` with every Conv2d +
    BatchNorm2d pair folded into one convolution (``torch.fx.experimental.optimization.fuse``)
    and its weights in channels_last (NHWC) layout, oneDNN's fast path; elsewhere ``model``
    itself. (ONNX Runtime / OpenVINO, when chosen, replace it: :func:`engine.runtime.
    module_for_inference`.)

    Same function, fewer and faster kernels: on the shipped U-Net (MobileNetV2) the logits
    differ from ``model``'s by a few 1e-5 (float reordering), and a forward pass on a
    ``(8, 3, 512, 512)`` batch needs about 35-40 % less CPU time on the project's 2-core AVX2
    VM (``crackwatch bench model`` prints both). Feed it channels_last input
    (``x.contiguous(memory_format=torch.channels_last)``) for the full gain.

    The folded copy is cached per model and rebuilt when any parameter or buffer of ``model``
    changes (an optimiser step, a BatchNorm update), so validation during training never sees
    stale weights. Folding walks the module tree (:mod:`engine.fold`; the EfficientNet-Lite0
    encoder of the shipped models cannot be fx-traced), falls back to ``torch.fx``, and a
    folded copy is used only when its logits match the model's within
    :data:`FOLD_TOLERANCE` on a test input. A model in training mode, or one neither way
    folds, is returned unchanged (logged once).
    """
    if torch.device(device).type != "cpu" or model.training:
        return model
    key = _weights_key(model)
    cached = _INFERENCE_MODULES.get(model)
    if cached is not None and cached[0] == key:
        return cached[1]
    fused = _folded(model)
    _INFERENCE_MODULES[model] = (key, fused)
    return fused


@torch.inference_mode()
def predict_proba(model: nn.Module, images: torch.Tensor, tta: bool = False) -> torch.Tensor:
    """Crack probabilities for a normalised batch ``(B, 3, H, W)`` of any size -> ``(B, H, W)``.

    Pads to :data:`SIZE_MULTIPLE` and crops back. The model must already be in ``eval()`` mode
    and on the images' device. ``tta``: average over flips (see :func:`forward_proba`).
    """
    x, h, w = pad_to_multiple(images)
    return forward_proba(model, x, tta)[:, :h, :w]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
