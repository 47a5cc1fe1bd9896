"""CBAM: channel gate, spatial gate and the two in sequence (Woo et al. 2018, arXiv:1807.06521). Lesson 12."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from course_lib._validate import check_image, positive_int, reduced_channels

__all__ = ["ChannelGate", "SpatialGate", "CBAM"]


class ChannelGate(nn.Module):
    """CBAM channel attention: sigmoid(MLP(avg) + MLP(max)), one shared MLP. Introduced in lesson 12.

    Args:
        channels: C, the input's channels.
        reduction: r, the MLP's hidden layer has C // r units (at least 1).
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = reduced_channels("ChannelGate", channels, reduction)
        self.channels, self.reduction = channels, reduction
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels))

    def gate(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, 1, 1): the average and the max branch share the MLP, then one sigmoid."""
        check_image("ChannelGate", x, self.channels)
        avg = self.mlp(x.mean(dim=(2, 3)))  # (B, C)
        peak = self.mlp(x.amax(dim=(2, 3)))  # (B, C)
        return torch.sigmoid(avg + peak)[:, :, None, None]  # (B, C, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(x)


class SpatialGate(nn.Module):
    """CBAM spatial attention: sigmoid(BN(conv7x7([max_C x, mean_C x]))). Introduced in lesson 12.

    Args:
        kernel_size: odd size of the conv over the two pooled maps (7 in the paper).
    """

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        positive_int("kernel_size", kernel_size)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (so the map keeps its size), got {kernel_size}")
        self.kernel_size = kernel_size
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(1, eps=1e-5, momentum=0.01)  # as the official BasicConv

    def gate(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, 1, H, W) spatial weights in (0, 1); works for any C."""
        check_image("SpatialGate", x, None)
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)  # (B, 2, H, W)
        return torch.sigmoid(self.bn(self.conv(pooled)))  # (B, 1, H, W)

    def spatial_attention_map(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, H, W): the gate itself."""
        return self.gate(x)[:, 0]

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(x)


class CBAM(nn.Module):
    """Convolutional block attention module: channel gate, then spatial gate. Introduced in lesson 12.

    Args:
        channels: C, the input's channels.
        reduction: the channel gate's MLP reduction r.
        kernel_size: the spatial gate's odd conv size.
    """

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        self.channels = channels
        self.channel = ChannelGate(channels, reduction)
        self.spatial = SpatialGate(kernel_size)

    def gate(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, H, W) = M_c(x) * M_s(x * M_c(x)), the spatial gate sees the channel-gated x."""
        check_image("CBAM", x, self.channels)
        channel = self.channel.gate(x)  # (B, C, 1, 1)
        spatial = self.spatial.gate(x * channel)  # (B, 1, H, W)
        return channel * spatial  # (B, C, H, W)

    def spatial_map(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, 1, H, W): the spatial gate CBAM applies to this input."""
        check_image("CBAM", x, self.channels)
        return self.spatial.gate(x * self.channel.gate(x))

    def spatial_attention_map(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, H, W): the spatial gate applied."""
        return self.spatial_map(x)[:, 0]

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(x)
