"""Crack segmentation architectures by name: the one table a new architecture is added to.

As torchgeo's ``models/api.py`` does for its models, every architecture is registered under a
name, with :func:`register_model`, and :func:`list_models` lists them; ``get_model(name)``
(:mod:`engine.models`) builds one. The name is what a model card's ``architecture.family``
and ``crackwatch train segment --architecture`` say. Adding an architecture is one decorated
builder below: its name, the shipped configuration (the card's ``architecture`` block), and
the function that builds its parts.

A builder gets ``encoder``, ``decoder_channels`` and ``encoder_depth`` and returns
:class:`Parts`: a segmentation-models-pytorch encoder-decoder with one output class, the
dropout applied to each encoder feature, and the dropout after the decoder. Dropout follows
Sulaiman et al. (U-Net vs DeepLabV3+ for concrete cracks, Sect. 2.7): in the U-Net 0.1 in the
first blocks, 0.2 in the middle blocks and 0.3 at the bottleneck, with the same rates mirrored
in the decoder; in DeepLabV3+ 0.3 after the last encoder block and 0.2 after the decoder. We
use channel-wise (``Dropout2d``) dropout, the usual choice for conv feature maps.

This module imports neither torch nor smp until a builder runs, so the CLI lists the names
(``--architecture`` help) without loading the model stack.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from engine.errors import ModelCardError

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

__all__ = [
    "ARCHITECTURES",
    "DEEPLAB_DECODER_DROPOUT",
    "DEEPLAB_ENCODER_DROPOUT",
    "UNET_DECODER_DROPOUT",
    "UNET_ENCODER_DROPOUT",
    "Parts",
    "build_parts",
    "list_models",
    "register_model",
]

# Dropout per encoder feature (stride 1, 2, 4, 8, 16, 32) and per U-Net decoder block (deep to
# shallow), after Sulaiman et al. Sect. 2.7.
UNET_ENCODER_DROPOUT = (0.0, 0.0, 0.1, 0.1, 0.2, 0.3)
UNET_DECODER_DROPOUT = (0.2, 0.2, 0.1, 0.1, 0.0)
DEEPLAB_ENCODER_DROPOUT = 0.3
DEEPLAB_DECODER_DROPOUT = 0.2


class Parts(NamedTuple):
    """What a builder returns (all ``torch.nn`` modules)."""

    #: smp encoder-decoder: ``.encoder``, ``.decoder``, ``.segmentation_head`` (1 class).
    net: nn.Module
    #: One module per encoder feature (``Dropout2d`` or ``Identity``).
    encoder_dropout: nn.ModuleList
    #: Applied to the decoder output before the segmentation head.
    decoder_dropout: nn.Module


Builder = Callable[[str, Any, int], Parts]

#: Architecture name -> the shipped configuration, a model card's ``architecture`` block
#: (``family``, ``encoder``, ``decoder_channels``). Filled by :func:`register_model`.
ARCHITECTURES: dict[str, dict[str, Any]] = {}
_BUILDERS: dict[str, Builder] = {}


def register_model(name: str, *, encoder: str,
                   decoder_channels: int | Sequence[int]) -> Callable[[Builder], Builder]:
    """Register the decorated builder as architecture ``name`` with its shipped configuration.

    Raises:
        ValueError: ``name`` is registered already.
    """
    def register(builder: Builder) -> Builder:
        if name in _BUILDERS:
            raise ValueError(f"architecture {name!r} is registered already")
        _BUILDERS[name] = builder
        dc = decoder_channels if isinstance(decoder_channels, int) else list(decoder_channels)
        ARCHITECTURES[name] = {"family": name, "encoder": encoder, "decoder_channels": dc}
        return builder
    return register


def list_models() -> list[str]:
    """The registered architecture names, sorted."""
    return sorted(_BUILDERS)


def build_parts(name: str, *, encoder: str, decoder_channels: int | Sequence[int],
                encoder_depth: int = 5) -> Parts:
    """The parts of architecture ``name`` (random weights, 3 input channels, 1 class).

    Raises:
        ModelCardError: unknown architecture or encoder, or a configuration it cannot take.
    """
    try:
        builder = _BUILDERS[name]
    except (KeyError, TypeError):
        raise ModelCardError(f"Unknown architecture {name!r}; expected one of "
                             f"{', '.join(list_models())}.") from None
    return builder(encoder, decoder_channels, encoder_depth)


def _smp_model(cls: type, encoder: str, **kwargs: Any) -> nn.Module:
    """``cls(encoder, ...)`` with random weights, 3 input channels, 1 class; an unknown encoder
    name is a :class:`ModelCardError`."""
    from engine.pretrained import ENCODER_ALIASES

    try:
        return cls(ENCODER_ALIASES.get(encoder, encoder), encoder_weights=None, in_channels=3,
                   classes=1, **kwargs)
    except (KeyError, RuntimeError) as exc:
        raise ModelCardError(
            f"Unknown encoder {encoder!r} ({str(exc)[:120]}...); use a "
            "segmentation-models-pytorch encoder name, e.g. mobilenet_v2 or resnet18 "
            "(segmentation_models_pytorch.encoders.get_encoder_names())."
        ) from exc


@register_model("unet", encoder="mobilenet_v2", decoder_channels=(128, 64, 32, 16, 16))
def _unet(encoder: str, decoder_channels: int | Sequence[int], encoder_depth: int) -> Parts:
    """U-Net; ``encoder_depth`` 3-5 stages, ``decoder_channels`` one int per stage (or one
    int for all). Stages beyond the depth are removed (ResNet's ``layer4`` at depth 4)."""
    import segmentation_models_pytorch as smp
    from torch import nn

    if not 3 <= encoder_depth <= 5:
        raise ModelCardError(f"encoder_depth must be 3, 4 or 5; got {encoder_depth}.")
    dc = tuple(decoder_channels) if not isinstance(decoder_channels, int) else (
        decoder_channels,) * encoder_depth
    if len(dc) != encoder_depth:
        raise ModelCardError(
            f"decoder_channels {list(dc)} has {len(dc)} entries; a U-Net with "
            f"encoder_depth {encoder_depth} needs {encoder_depth}.")
    net = _smp_model(smp.Unet, encoder, decoder_channels=dc, encoder_depth=encoder_depth)
    # smp builds every stage and skips the unused ones in forward: drop their weights.
    for stage in range(encoder_depth, 5):
        if hasattr(net.encoder, f"layer{stage}"):
            delattr(net.encoder, f"layer{stage}")
    # Per-stride rates, with the bottleneck's 0.3 on the deepest stage used.
    rates = UNET_ENCODER_DROPOUT[:encoder_depth] + UNET_ENCODER_DROPOUT[-1:]
    encoder_dropout = nn.ModuleList(nn.Dropout2d(p) if p > 0 else nn.Identity() for p in rates)
    # attention2 is an Identity when attention_type=None: a parameter-free slot right after
    # each decoder block's second conv.
    for block, p in zip(net.decoder.blocks, UNET_DECODER_DROPOUT, strict=False):
        if p > 0:
            block.attention2 = nn.Dropout2d(p)
    return Parts(net, encoder_dropout, nn.Identity())


@register_model("deeplabv3plus", encoder="mobilenet_v2", decoder_channels=128)
def _deeplabv3plus(encoder: str, decoder_channels: int | Sequence[int],
                   encoder_depth: int) -> Parts:
    """DeepLabV3+ on the whole encoder; ``decoder_channels`` one int (a list: its first)."""
    import segmentation_models_pytorch as smp
    from torch import nn

    if encoder_depth != 5:
        raise ModelCardError("encoder_depth applies to the U-Net only; DeepLabV3+ uses "
                             f"the whole encoder (got {encoder_depth}).")
    dc = decoder_channels if isinstance(decoder_channels, int) else decoder_channels[0]
    net = _smp_model(smp.DeepLabV3Plus, encoder, decoder_channels=dc)
    n = len(net.encoder.out_channels)
    encoder_dropout = nn.ModuleList(
        [nn.Identity()] * (n - 1) + [nn.Dropout2d(DEEPLAB_ENCODER_DROPOUT)])
    return Parts(net, encoder_dropout, nn.Dropout2d(DEEPLAB_DECODER_DROPOUT))
