"""YOLOv4's point-wise spatial attention module (Bochkovskiy et al. 2020, arXiv:2004.10934). Lesson 12."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from course_lib._validate import check_image, positive_int

__all__ = ["YoloSAM"]


class YoloSAM(nn.Module):
    """YOLOv4's modified SAM: x * sigmoid(BN(conv1x1(x))), no pooling. Introduced in lesson 12.

    Args:
        channels: C, the input's channels (the gate has one weight per channel and pixel).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = positive_int("channels", channels)
        self.conv = nn.Conv2d(channels, channels, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(channels)

    def gate(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, H, W): no pooling, one weight per channel and pixel."""
        check_image("YoloSAM", x, self.channels)
        return torch.sigmoid(self.bn(self.conv(x)))

    def spatial_attention_map(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, H, W): the gate averaged over the channels."""
        return self.gate(x).mean(dim=1)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(x)
