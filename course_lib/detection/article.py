"""The tutorial article's ``AttentionObjectDetection``, reproduced, and its repair. Lesson 14.

The article's class scores positions with ``nn.Linear(64, 1)`` applied to the last axis of a (B, C, N)
tensor, which is the axis of positions (N = h * w), not channels: it runs only when the feature map has
exactly 64 positions (an 8x8 map, from a 10x10 image through an unpadded 3x3 conv) and crashes on any
other size. Its softmax then normalises over the 64 *channels*. The repair scores each position from its
C channels and normalises over positions; it runs at any size, but it still pools the whole image into
one vector and predicts one box, which is why it cannot find two objects.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from course_lib._validate import check_image, positive_int

__all__ = ["AttentionObjectDetection", "RepairedAttentionDetection"]


class AttentionObjectDetection(nn.Module):
    """The article's class as described (its bug kept): works only for 64 positions. Introduced in lesson 14.

    Args:
        num_classes: classes of the single predicted object.
        in_channels: image channels.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(positive_int("in_channels", in_channels), 64, 3), nn.ReLU())
        self.attention = nn.Linear(64, 1)
        self.box = nn.Linear(64, 4)
        self.cls = nn.Linear(64, positive_int("num_classes", num_classes))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        f = self.features(x).flatten(2)  # (B, 64, N): channels, then positions
        weights = torch.softmax(self.attention(f), dim=1)  # Linear over N (!), softmax over channels: (B, 64, 1)
        pooled = (f * weights).sum(dim=2)  # (B, 64)
        return self.box(pooled), self.cls(pooled)


class RepairedAttentionDetection(nn.Module):
    """The repair: score each position from its channels, softmax over positions, one pooled vector, one box.

    ``forward(x) -> (box (B, 4) corners in pixels, class logits (B, num_classes), weights (B, h, w))``.
    Introduced in lesson 14.

    Args:
        num_classes: classes of the single predicted object.
        in_channels: image channels.
        width: feature channels.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 32) -> None:
        super().__init__()
        width = positive_int("width", width)
        self.in_channels = positive_int("in_channels", in_channels)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU(),
        )
        self.attention = nn.Linear(width, 1)  # over channels: one score per position
        self.box = nn.Linear(width, 4)
        self.cls = nn.Linear(width, positive_int("num_classes", num_classes))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        check_image("RepairedAttentionDetection", x, self.in_channels)
        f = self.features(x)  # (B, C, h, w)
        h, w = f.shape[2:]
        tokens = f.flatten(2).transpose(1, 2)  # (B, N, C)
        weights = torch.softmax(self.attention(tokens), dim=1)  # (B, N, 1), sums to 1 over positions
        pooled = (weights * tokens).sum(dim=1)  # (B, C): the whole image in one vector
        size = torch.tensor([x.shape[3], x.shape[2], x.shape[3], x.shape[2]], dtype=x.dtype, device=x.device)
        box = torch.sigmoid(self.box(pooled)) * size  # one box, corners in pixels
        return box, self.cls(pooled), weights.reshape(-1, h, w)
