"""DANet position and channel attention modules, PAM and CAM (Fu et al. 2019, arXiv:1809.02983). Lesson 13."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from course_lib._validate import check_choice, check_image, positive_int, reduced_channels
from course_lib.vision.maps import KeyMassMap

__all__ = ["PositionAttention", "ChannelSelfAttention"]


class PositionAttention(KeyMassMap, nn.Module):
    """DANet PAM: x + γ·V softmax(QᵀK)ᵀ over pixels, γ initialised to 0. Introduced in lesson 13.

    Args:
        channels: C, the input's channels.
        reduction: r, queries and keys have C // r channels (8 in the official code, junfu1115/DANet; the
            paper writes B and C with C channels, no reduction).
    """

    _who = "PositionAttention"

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        qk = reduced_channels(self._who, channels, reduction)
        self.channels, self.reduction = channels, reduction
        # nn.Module, not Conv2d: SAGAN wraps them in spectral normalisation.
        self.query: nn.Module = nn.Conv2d(channels, qk, kernel_size=1)
        self.key: nn.Module = nn.Conv2d(channels, qk, kernel_size=1)
        self.value: nn.Module = nn.Conv2d(channels, channels, kernel_size=1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def key_grid(self, height: int, width: int) -> tuple[int, int]:
        """The (h, w) grid of the keys: every pixel is a key."""
        return height, width

    def _weights(self, x: Tensor) -> Tensor:
        q = self.query(x).flatten(2).transpose(1, 2)  # (B, N, C/r)
        k = self.key(x).flatten(2)  # (B, C/r, N)
        return torch.softmax(q @ k, dim=-1)  # (B, N, N): row i = where pixel i looks (no scaling, as the code)

    def attention(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, N, N) weights, N = H*W, rows sum to 1."""
        check_image(self._who, x, self.channels)
        return self._weights(x)

    def forward(self, x: Tensor, *, need_weights: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """(B, C, H, W) -> y, or ``(y, weights (B, N, N))`` with ``need_weights=True``."""
        check_image(self._who, x, self.channels)
        batch, channels, height, width = x.shape
        weights = self._weights(x)  # (B, N, N)
        v = self.value(x).flatten(2)  # (B, C, N)
        out = (v @ weights.transpose(1, 2)).view(batch, channels, height, width)  # (B, C, H, W)
        y = self.gamma * out + x
        return (y, weights) if need_weights else y


class ChannelSelfAttention(nn.Module):
    """DANet CAM: x + β·softmax(AAᵀ)A over channels, β initialised to 0. Introduced in lesson 13.

    Args:
        channels: C, the input's channels.
        variant: "paper" (softmax of the energy) or "official" (the released code's softmax(max E - E)).
    """

    def __init__(self, channels: int, *, variant: Literal["paper", "official"] = "paper") -> None:
        super().__init__()
        self.channels = positive_int("channels", channels)
        self.variant = check_choice("variant", variant, ("paper", "official"))
        self.gamma = nn.Parameter(torch.zeros(1))

    def _weights(self, a: Tensor) -> Tensor:
        energy = a @ a.transpose(1, 2)  # (B, C, C): E[i, j] = <A_i, A_j>
        if self.variant == "official":
            # The released code: softmax(max(E) - E) = softmax(-E), the most *dissimilar* channel wins.
            energy = energy.amax(dim=-1, keepdim=True) - energy
        return torch.softmax(energy, dim=-1)  # (B, C, C), rows sum to 1

    def attention(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, C) channel weights, rows sum to 1."""
        check_image("ChannelSelfAttention", x, self.channels)
        return self._weights(x.flatten(2))

    def forward(self, x: Tensor, *, need_weights: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """(B, C, H, W) -> y, or ``(y, weights (B, C, C))`` with ``need_weights=True``."""
        check_image("ChannelSelfAttention", x, self.channels)
        a = x.flatten(2)  # (B, C, N)
        weights = self._weights(a)  # (B, C, C)
        out = (weights @ a).view_as(x)  # (B, C, H, W)
        y = self.gamma * out + x
        return (y, weights) if need_weights else y
