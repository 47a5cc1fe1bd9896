"""Polarized self-attention, paper and official variants (Liu et al. 2021, arXiv:2107.00782). Lesson 13."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from course_lib._validate import check_choice, check_image, positive_int

__all__ = ["PolarizedSelfAttention"]


class PolarizedSelfAttention(nn.Module):
    """Polarized self-attention: a channel and a spatial gate, in parallel or in sequence. Introduced in lesson 13.

    Args:
        channels: C, the input's channels (the branches use C // 2).
        layout: "parallel" (x * (A_ch + A_sp)) or "sequential" (the spatial gate sees the channel-gated x).
        variant: "paper" (the formulas of the paper) or "official" (the released code).
    """

    def __init__(self, channels: int, *, layout: Literal["parallel", "sequential"] = "parallel",
                 variant: Literal["paper", "official"] = "paper") -> None:
        super().__init__()
        positive_int("channels", channels)
        half = channels // 2
        if half < 1:
            raise ValueError(f"PolarizedSelfAttention: channels // 2 must be >= 1 (the branches use C/2 channels), "
                             f"got channels={channels}")
        # Not ``self.half``: that would hide nn.Module.half(), the cast to float16.
        self.channels, self.half_channels = channels, half
        self.layout = check_choice("layout", layout, ("parallel", "sequential"))
        self.variant = check_choice("variant", variant, ("paper", "official"))
        # Channel branch (the official code calls it spatial_pool): v C -> C/2, q C -> 1.
        self.ch_value = nn.Conv2d(channels, half, kernel_size=1, bias=False)
        self.ch_query = nn.Conv2d(channels, 1, kernel_size=1, bias=False)
        if variant == "official" and layout == "sequential":
            bottleneck = half // 4
            if bottleneck < 1:
                raise ValueError(f"PolarizedSelfAttention: the official sequential layout needs "
                                 f"channels // 2 // 4 >= 1, got channels={channels}")
            self.ch_up: nn.Module = nn.Sequential(
                nn.Conv2d(half, bottleneck, kernel_size=1),
                nn.LayerNorm([bottleneck, 1, 1]),
                nn.ReLU(),
                nn.Conv2d(bottleneck, channels, kernel_size=1),
            )
        else:
            self.ch_up = nn.Conv2d(half, channels, kernel_size=1, bias=False)
        self.ch_norm = nn.LayerNorm(channels) if variant == "paper" else nn.Identity()
        # Spatial branch (the official code calls it channel_pool): q C -> C/2 then GAP, v C -> C/2.
        self.sp_query = nn.Conv2d(channels, half, kernel_size=1, bias=False)
        self.sp_value = nn.Conv2d(channels, half, kernel_size=1, bias=False)

    def channel_gate(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, 1, 1) in (0, 1)."""
        check_image("PolarizedSelfAttention", x, self.channels)
        batch = x.shape[0]
        v = self.ch_value(x).flatten(2)  # (B, C/2, N)
        q = torch.softmax(self.ch_query(x).flatten(2), dim=-1)  # (B, 1, N): softmax over the pixels
        z = (v @ q.transpose(1, 2))[..., None]  # (B, C/2, 1, 1)
        up = self.ch_up(z)  # (B, C, 1, 1)
        up = self.ch_norm(up.view(batch, self.channels)).view(batch, self.channels, 1, 1)  # LayerNorm over C (paper)
        return torch.sigmoid(up)

    def spatial_gate(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, 1, H, W) in (0, 1), computed on ``x`` as given (no channel gate applied here)."""
        check_image("PolarizedSelfAttention", x, self.channels)
        batch, _, height, width = x.shape
        q = self.sp_query(x).mean(dim=(2, 3))[:, None, :]  # (B, 1, C/2): global average pooling
        v = self.sp_value(x).flatten(2)  # (B, C/2, N)
        if self.variant == "paper":
            s = torch.softmax(q, dim=-1) @ v  # (B, 1, N): softmax over the C/2 channels
        elif self.layout == "parallel":
            # Official PSA_p: softmax over the pixels *after* the product, so s lies in (0, 1) and sums
            # to 1 over the image: sigmoid(s) is stuck in (0.5, 0.731).
            s = torch.softmax(q @ v, dim=-1)  # (B, 1, N)
        else:
            s = q @ torch.softmax(v, dim=-1)  # official PSA_s: softmax of each value channel over the pixels
        return torch.sigmoid(s).view(batch, 1, height, width)  # (B, 1, H, W)

    def spatial_map(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, 1, H, W): the spatial gate the module applies to this input."""
        if self.layout == "sequential":
            return self.spatial_gate(x * self.channel_gate(x))
        return self.spatial_gate(x)

    def gate(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, H, W); parallel: A_ch + A_sp in (0, 2); sequential: A_ch * A_sp(x*A_ch) in (0, 1)."""
        channel = self.channel_gate(x)  # (B, C, 1, 1)
        if self.layout == "parallel":
            return channel + self.spatial_gate(x)  # x*A_ch + x*A_sp = x*(A_ch + A_sp)
        return channel * self.spatial_gate(x * channel)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(x)

    def spatial_attention_map(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, H, W): the spatial gate applied."""
        return self.spatial_map(x)[:, 0]
