"""Non-local block, embedded Gaussian (Wang et al. 2018, arXiv:1711.07971). Introduced in lesson 13."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from course_lib._validate import check_bool, check_image, positive_int
from course_lib.vision.maps import KeyMassMap

__all__ = ["NonLocalBlock"]


class NonLocalBlock(KeyMassMap, nn.Module):
    """Non-local block: z = x + BN(W softmax(θᵀφ) g), BN zero-initialised (z = x at insertion). Introduced in lesson 13.

    Args:
        channels: C, the input's channels.
        inter_channels: C', the width of θ, φ and g (default C // 2).
        sub_sample: max-pool the keys and values by 2 (a quarter of the keys), as the paper's variant.
        scale: divide the scores by sqrt(C') (as the official code does).
    """

    def __init__(self, channels: int, inter_channels: int | None = None, *, sub_sample: bool = False,
                 scale: bool = True) -> None:
        super().__init__()
        positive_int("channels", channels)
        inter = channels // 2 if inter_channels is None else positive_int("inter_channels", inter_channels)
        if inter < 1:
            raise ValueError(f"NonLocalBlock: channels // 2 must be >= 1, got channels={channels}; "
                             f"pass inter_channels explicitly")
        self.channels, self.inter_channels = channels, inter
        self.sub_sample, self.scale = check_bool("sub_sample", sub_sample), check_bool("scale", scale)
        self.theta = nn.Conv2d(channels, inter, kernel_size=1)
        self.phi = nn.Conv2d(channels, inter, kernel_size=1)
        self.g = nn.Conv2d(channels, inter, kernel_size=1)
        # ceil_mode keeps a 1-pixel edge, so the block runs at any size (the official code floors).
        self.pool = nn.MaxPool2d(2, ceil_mode=True) if sub_sample else nn.Identity()
        self.out = nn.Conv2d(inter, channels, kernel_size=1)
        self.bn = nn.BatchNorm2d(channels)
        nn.init.zeros_(self.bn.weight)  # the official zero-init: z = x at insertion
        nn.init.zeros_(self.bn.bias)

    def key_grid(self, height: int, width: int) -> tuple[int, int]:
        """The (h, w) grid of the keys for an H x W input (halved, rounded up, with ``sub_sample``)."""
        return (math.ceil(height / 2), math.ceil(width / 2)) if self.sub_sample else (height, width)

    def _attend(self, x: Tensor) -> tuple[Tensor, Tensor]:
        batch, _, height, width = x.shape
        q = self.theta(x).flatten(2).transpose(1, 2)  # (B, N, C'), N = H*W
        k = self.pool(self.phi(x)).flatten(2)  # (B, C', M)
        v = self.pool(self.g(x)).flatten(2).transpose(1, 2)  # (B, M, C')
        scores = q @ k  # (B, N, M)
        if self.scale:  # the official code scales by C'^-1/2
            scores = scores * self.inter_channels ** -0.5
        weights = torch.softmax(scores, dim=-1)  # (B, N, M): each query's weights over keys sum to 1
        y = (weights @ v).transpose(1, 2).reshape(batch, self.inter_channels, height, width)  # (B, C', H, W)
        return y, weights

    def attention(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, N, M) weights, N = H*W queries, M keys (``key_grid``); rows sum to 1."""
        check_image("NonLocalBlock", x, self.channels)
        return self._attend(x)[1]

    def forward(self, x: Tensor, *, need_weights: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """(B, C, H, W) -> z, or ``(z, weights (B, N, M))`` with ``need_weights=True``."""
        check_image("NonLocalBlock", x, self.channels)
        y, weights = self._attend(x)
        z = x + self.bn(self.out(y))  # (B, C, H, W)
        return (z, weights) if need_weights else z
