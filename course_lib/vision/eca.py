"""Efficient channel attention (Wang et al. 2020, ECA-Net, arXiv:1910.03151). Introduced in lesson 12."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from course_lib._validate import check_image, check_int, positive_int

__all__ = ["eca_kernel_size", "ECA"]


def eca_kernel_size(channels: int, *, gamma: int = 2, b: int = 1) -> int:
    """ECA's adaptive kernel size ``|(log2 C + b) / gamma|_odd`` as the official code rounds it (C=64 -> 3).

    The integer part of ``(log2 C + b) / gamma``, plus one when it is even: 16-64 -> 3, 128-1024 -> 5.
    Introduced in lesson 12.

    Args:
        channels: C.
        gamma, b: the paper's constants of the mapping.
    """
    positive_int("channels", channels)
    gamma = positive_int("gamma", gamma)
    b = check_int("b", b)
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


class ECA(nn.Module):
    """Efficient channel attention: x * sigmoid(conv1d_k(GAP(x))). Introduced in lesson 12.

    Args:
        channels: C, the input's channels.
        kernel_size: odd size of the 1-D conv across channels; None picks ``eca_kernel_size(C)``.
        gamma, b: the constants of ``eca_kernel_size`` when ``kernel_size`` is None.
    """

    def __init__(self, channels: int, kernel_size: int | None = None, *, gamma: int = 2, b: int = 1) -> None:
        super().__init__()
        self.channels = positive_int("channels", channels)
        k = (eca_kernel_size(channels, gamma=gamma, b=b) if kernel_size is None
             else positive_int("kernel_size", kernel_size))
        if k % 2 == 0:
            raise ValueError(f"kernel_size must be odd (so every channel has a centred window), got {k}")
        self.kernel_size = k
        self.conv = nn.Conv1d(1, 1, kernel_size=k, padding=(k - 1) // 2, bias=False)

    def gate(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, 1, 1): each channel's weight looks at its k neighbouring channels."""
        check_image("ECA", x, self.channels)
        pooled = x.mean(dim=(2, 3))[:, None, :]  # (B, 1, C): channels become a 1-D sequence
        return torch.sigmoid(self.conv(pooled)).transpose(1, 2)[..., None]  # (B, C, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(x)
