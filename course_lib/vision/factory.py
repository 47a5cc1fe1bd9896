"""Build a vision attention module by name, and the two families (gates, residual self-attention). Lesson 12."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from course_lib.vision.cbam import CBAM, ChannelGate, SpatialGate
from course_lib.vision.danet import ChannelSelfAttention, PositionAttention
from course_lib.vision.eca import ECA
from course_lib.vision.non_local import NonLocalBlock
from course_lib.vision.polarized import PolarizedSelfAttention
from course_lib.vision.sagan import SelfAttention2d
from course_lib.vision.squeeze_excite import SEBlock
from course_lib.vision.yolo_sam import YoloSAM

__all__ = ["ATTENTION_NAMES", "create_attention", "GATING_MODULES", "RESIDUAL_MODULES"]

#: Modules with ``y = x * gate(x)`` (each exposes ``gate``).
GATING_MODULES = (SEBlock, ChannelGate, SpatialGate, CBAM, YoloSAM, ECA, PolarizedSelfAttention)
#: Modules with ``y = x + gamma * attn(x)``, the identity at init (each exposes ``attention``).
RESIDUAL_MODULES = (NonLocalBlock, PositionAttention, ChannelSelfAttention, SelfAttention2d)


def _spatial_gate(channels: int, **kwargs: Any) -> nn.Module:
    return SpatialGate(**kwargs)  # the spatial gate works for any number of channels


def _sagan(channels: int, **kwargs: Any) -> nn.Module:
    # "sagan" by name builds the PyTorch-port variant (= PAM), the configuration the committed ablations
    # (benchmarks/results/vision_ablation.csv) and lesson 14's necks were run with; pass variant="paper"
    # for the paper's layer. SelfAttention2d itself defaults to "paper".
    return SelfAttention2d(channels, **{"variant": "port", **kwargs})


_FACTORIES: dict[str, Callable[..., nn.Module]] = {
    "se": SEBlock,
    "cbam": CBAM,
    "channel_gate": ChannelGate,
    "spatial_gate": _spatial_gate,
    "yolo_sam": YoloSAM,
    "eca": ECA,
    "nonlocal": NonLocalBlock,
    "pam": PositionAttention,
    "cam": ChannelSelfAttention,
    "psa": PolarizedSelfAttention,
    "sagan": _sagan,
}
ATTENTION_NAMES = tuple(_FACTORIES)


def create_attention(name: str, channels: int, **kwargs: Any) -> nn.Module:
    """Build a module by name, e.g. ``create_attention("cbam", 64, reduction=8)``; names: ``ATTENTION_NAMES``.

    Introduced in lesson 12 (inside ``HostCNN``), called directly in lesson 13.

    Args:
        name: one of ``ATTENTION_NAMES`` (case and "-" vs "_" do not matter).
        channels: C, the input's channels.
        **kwargs: passed to the module's constructor.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    key = name.strip().lower().replace("-", "_")
    if key not in _FACTORIES:
        raise ValueError(f"unknown attention module {name!r}; valid names: {', '.join(ATTENTION_NAMES)}")
    return _FACTORIES[key](channels, **kwargs)
