"""Conv + BatchNorm folding for inference that does not need ``torch.fx`` (issue 27, item 1).

``torch.fx.experimental.optimization.fuse`` folds ``Conv2d`` + ``BatchNorm2d`` pairs it can
trace, but the EfficientNet-Lite0 encoder of both shipped models cannot be traced (timm's
``Conv2dSame`` computes TensorFlow "same" padding per call, control flow fx refuses), and its
normalisation layers are timm ``BatchNormAct2d`` (BatchNorm, dropout and activation in one
module), which that pattern does not match either. So the shipped models ran unfused.

:func:`fold_conv_bn` walks the module tree instead: in every parent, a convolution directly
followed (in registration order) by a ``BatchNorm2d`` or ``BatchNormAct2d`` sibling is a
pair, as in timm's blocks (``conv_pw``/``bn1``, ``conv_dw``/``bn2``, ...) and smp's
``Conv2dReLU`` (``Sequential(conv, bn, relu)``). The BatchNorm's affine transform is folded
into the convolution's weight and bias (``torch.nn.utils.fusion.fuse_conv_bn_weights``) and
the BatchNorm is replaced by what remains of it (its dropout and activation, or nothing).
Registration order is not proof of data flow, so the caller checks the folded copy against
the original on an input (:func:`engine.models.inference_module` does) before using it.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

__all__ = ["fold_conv_bn"]


def _is_bn(module: nn.Module) -> bool:
    return isinstance(module, nn.BatchNorm2d) and module.track_running_stats \
        and module.running_mean is not None


def _remainder(bn: nn.Module) -> nn.Module:
    """What a BatchNorm module does after its normalisation: timm ``BatchNormAct2d`` keeps
    ``drop`` and ``act``; a plain ``BatchNorm2d`` nothing."""
    parts = [m for m in (getattr(bn, "drop", None), getattr(bn, "act", None))
             if m is not None and not isinstance(m, nn.Identity)]
    if not parts:
        return nn.Identity()
    return parts[0] if len(parts) == 1 else nn.Sequential(*parts)


@torch.no_grad()
def fold_conv_bn(model: nn.Module) -> tuple[nn.Module, int]:
    """``(copy, pairs)``: an eval-mode copy of ``model`` with every convolution + BatchNorm
    sibling pair folded into the convolution, and how many pairs were folded.

    Args:
        model: a model in ``eval()`` mode (running statistics are what gets folded).

    Raises:
        ValueError: ``model`` is in training mode (its BatchNorms normalise by the batch).
    """
    if model.training:
        raise ValueError("fold_conv_bn needs a model in eval() mode: a training model's "
                         "BatchNorm normalises by batch statistics, which cannot be folded")
    folded = copy.deepcopy(model)
    pairs = 0
    for parent in list(folded.modules()):
        names = list(parent._modules)
        for first, second in zip(names, names[1:], strict=False):
            conv, bn = parent._modules[first], parent._modules[second]
            if not isinstance(conv, nn.Conv2d) or bn is None or not _is_bn(bn) \
                    or bn.num_features != conv.out_channels:
                continue
            conv.weight, conv.bias = fuse_conv_bn_weights(
                conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps,
                bn.weight, bn.bias)
            parent._modules[second] = _remainder(bn)
            pairs += 1
    return folded.eval(), pairs
