"""Squeeze-and-excitation channel gate (Hu et al. 2018, arXiv:1709.01507). Introduced in lesson 12."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib._validate import check_image, reduced_channels

__all__ = ["SEBlock"]


class SEBlock(nn.Module):
    """Squeeze-and-excitation: x * sigmoid(W2 relu(W1 GAP(x))). Introduced in lesson 12.

    Args:
        channels: C, the input's channels.
        reduction: r, the bottleneck has C // r channels (at least 1).
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = reduced_channels("SEBlock", channels, reduction)
        self.channels, self.reduction = channels, reduction
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1)  # squeeze: C -> C/r
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1)  # excite: C/r -> C

    def gate(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, 1, 1) channel weights in (0, 1)."""
        check_image("SEBlock", x, self.channels)
        squeezed = x.mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
        return torch.sigmoid(self.fc2(F.relu(self.fc1(squeezed))))  # (B, C, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(x)
