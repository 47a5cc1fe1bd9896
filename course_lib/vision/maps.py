"""Spatial attention maps of vision modules, and a forward-hook capture of what modules receive in a model.

The overlays follow Woo et al. 2018 (CBAM, arXiv:1807.06521, figure 4). Introduced in lesson 12.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, runtime_checkable

from torch import Tensor, nn

__all__ = ["HasSpatialMap", "KeyMassMap", "has_spatial_map", "spatial_attention_map", "mass_received", "capture_inputs",
           "spatial_maps_in_model"]


@runtime_checkable
class HasSpatialMap(Protocol):
    """A module that says where it puts its spatial attention: ``spatial_attention_map(x) -> (B, h, w)``.

    Introduced in lesson 12.
    """

    def spatial_attention_map(self, x: Tensor) -> Tensor: ...


def has_spatial_map(module: object) -> bool:
    """Whether ``spatial_attention_map`` can score this module (SE, ECA, ChannelGate and CAM weigh channels only).

    Introduced in lesson 12.
    """
    return isinstance(module, nn.Module) and isinstance(module, HasSpatialMap)


def spatial_attention_map(module: nn.Module, x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, h, w) nonnegative map of where ``module`` puts its spatial attention on ``x``.

    Each module computes its own map (its ``spatial_attention_map`` method): CBAM / SpatialGate / PSA:
    the spatial gate applied; YoloSAM: its gate averaged over channels; non-local, PAM, SAGAN: the
    attention each pixel receives, averaged over the queries (at the keys' grid, halved by the non-local
    block's sub-sampling); ViT: the class token's attention in the last layer (at the patch grid).
    Modules without a spatial map (SE, ECA, ChannelGate, CAM) raise ``ValueError``. Introduced in lesson 12.
    """
    if not has_spatial_map(module):
        raise ValueError(f"{type(module).__name__} has no spatial attention map (it weighs channels only); modules "
                         f"with one: CBAM, SpatialGate, YoloSAM, PolarizedSelfAttention, NonLocalBlock, "
                         f"PositionAttention, SelfAttention2d, ViT")
    assert isinstance(module, HasSpatialMap)
    return module.spatial_attention_map(x)


def mass_received(weights: Tensor, grid: tuple[int, int]) -> Tensor:
    """(B, N, M) attention -> (B, h, w): the weight each of the M = h*w keys receives, averaged over the queries.

    Introduced in lesson 12.
    """
    return weights.mean(dim=1).reshape(weights.shape[0], *grid)  # (B, h, w)


class KeyMassMap:
    """Mixin for self-attention over pixels: the spatial map is the attention each key pixel receives.

    The module provides ``attention(x) -> (B, N, M)`` and ``key_grid(H, W) -> (h, w)`` with M = h*w.
    Introduced in lesson 13.
    """

    def attention(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def key_grid(self, height: int, width: int) -> tuple[int, int]:
        raise NotImplementedError

    def spatial_attention_map(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, h, w): the attention each key pixel receives, averaged over the queries."""
        return mass_received(self.attention(x), self.key_grid(x.shape[2], x.shape[3]))


@contextmanager
def capture_inputs(modules: Sequence[nn.Module]) -> Iterator[dict[int, Tensor]]:
    """Forward hooks that keep the latest input of ``modules[i]`` under key ``i``; removed on exit.

    Introduced in lesson 12.
    """
    caught: dict[int, Tensor] = {}

    def keeper(i: int) -> Any:
        def hook(_module: nn.Module, inputs: tuple[Tensor, ...], _output: object) -> None:
            caught[i] = inputs[0]

        return hook

    handles = [m.register_forward_hook(keeper(i)) for i, m in enumerate(modules)]
    try:
        yield caught
    finally:
        for handle in handles:
            handle.remove()


def spatial_maps_in_model(model: nn.Module, modules: Sequence[nn.Module], x: Tensor) -> list[Tensor]:
    """Run ``model`` on ``x`` and return each module's spatial map (B, h, w) of the features it received there.

    Introduced in lesson 12.
    """
    with capture_inputs(modules) as caught:
        model(x)
    return [spatial_attention_map(m, caught[i]) for i, m in enumerate(modules)]
