"""Attention modules for images: channel and spatial gates, self-attention over pixels, and a small ViT.

Every module takes ``x`` of shape (B, C, H, W) and returns the same shape (``PatchEmbedding`` returns
tokens, ``ViT`` logits); none stores a spatial size, so one instance runs on any H x W. Two families
(``docs: shared/design/vision_modules.md``):

- **gates** (SE, CBAM, YOLOv4 SAM, ECA, polarized self-attention): ``y = x * gate(x)`` with the gate in
  (0, 1) broadcast over the axes it lacks, so ``|y| <= |x|`` and the sign is kept (PSA parallel adds two
  gates: ``|y| < 2|x|``). Each exposes ``gate(x)`` and its ``forward`` is literally ``x * self.gate(x)``;
- **residual self-attention** (non-local, DANet PAM/CAM, SAGAN): ``y = x + gamma * attn(x)`` with
  ``gamma`` (or the last BatchNorm's scale and shift) initialised to 0, so the module is exactly the
  identity when inserted into a trained network. Each exposes ``attention(x)`` (rows sum to 1) and
  ``forward(x, return_attention=True)``.

Default constructions have the parameter counts of the official code (conv biases included).
Papers: Hu et al. 2018 SE (arXiv:1709.01507); Woo et al. 2018 CBAM (arXiv:1807.06521); Bochkovskiy et
al. 2020 YOLOv4 (arXiv:2004.10934); Wang et al. 2020 ECA-Net (arXiv:1910.03151); Wang et al. 2018
non-local networks (arXiv:1711.07971); Fu et al. 2019 DANet (arXiv:1809.02983); Liu et al. 2021
polarized self-attention (arXiv:2107.00782); Zhang et al. 2019 SAGAN (arXiv:1805.08318); Dosovitskiy
et al. 2021 ViT (arXiv:2010.11929).
"""

from __future__ import annotations

import math
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.attention import MultiHeadAttention

__all__ = [
    "SEBlock",
    "ChannelGate",
    "SpatialGate",
    "CBAM",
    "YoloSAM",
    "eca_kernel_size",
    "ECA",
    "NonLocalBlock",
    "PositionAttention",
    "ChannelSelfAttention",
    "PolarizedSelfAttention",
    "SelfAttention2d",
    "PatchEmbedding",
    "EncoderBlock",
    "ViT",
    "ATTENTION_NAMES",
    "create_attention",
    "spatial_attention_map",
    "has_spatial_map",
    "GATING_MODULES",
    "RESIDUAL_MODULES",
]


# --------------------------------------------------------------------------------------------------
# Validation helpers: bad arguments name themselves and the shapes seen.
# --------------------------------------------------------------------------------------------------
def _positive_int(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value}")
    return value


def _reduced(who: str, channels: int, reduction: int, name: str = "reduction") -> int:
    """channels // reduction, which must be at least 1."""
    _positive_int("channels", channels)
    _positive_int(name, reduction)
    hidden = channels // reduction
    if hidden < 1:
        raise ValueError(f"{who}: channels // {name} must be >= 1, got channels={channels} and {name}={reduction}; "
                         f"use {name} <= {channels}")
    return hidden


def _choice(name: str, value: object, options: tuple[str, ...]) -> str:
    if value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return value  # type: ignore[return-value]


def _check_image(who: str, x: object, channels: int | None) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{who}: x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{who} expects x of shape (B, C, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{who}: x must be a floating-point tensor, got dtype {x.dtype}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{who} was built for channels={channels}, got x of shape {tuple(x.shape)}")
    return x


# --------------------------------------------------------------------------------------------------
# Gates: y = x * gate(x)
# --------------------------------------------------------------------------------------------------
class SEBlock(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018, arXiv:1709.01507): x * sigmoid(W2 relu(W1 GAP(x)))."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = _reduced("SEBlock", channels, reduction)
        self.channels, self.reduction = channels, reduction
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1)  # squeeze: C -> C/r
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1)  # excite: C/r -> C

    def gate(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, 1, 1) channel weights in (0, 1)."""
        _check_image("SEBlock", x, self.channels)
        squeezed = x.mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
        return torch.sigmoid(self.fc2(F.relu(self.fc1(squeezed))))  # (B, C, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(x)


class ChannelGate(nn.Module):
    """CBAM channel attention (Woo et al. 2018, arXiv:1807.06521): sigmoid(MLP(avg) + MLP(max)), one shared MLP."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = _reduced("ChannelGate", channels, reduction)
        self.channels, self.reduction = channels, reduction
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels))

    def gate(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, 1, 1): the average and the max branch share the MLP, then one sigmoid."""
        _check_image("ChannelGate", x, self.channels)
        avg = self.mlp(x.mean(dim=(2, 3)))  # (B, C)
        peak = self.mlp(x.amax(dim=(2, 3)))  # (B, C)
        return torch.sigmoid(avg + peak)[:, :, None, None]  # (B, C, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(x)


class SpatialGate(nn.Module):
    """CBAM spatial attention (Woo et al. 2018, arXiv:1807.06521): sigmoid(BN(conv7x7([max_C x, mean_C x])))."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        _positive_int("kernel_size", kernel_size)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (so the map keeps its size), got {kernel_size}")
        self.kernel_size = kernel_size
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(1, eps=1e-5, momentum=0.01)  # as the official BasicConv

    def gate(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, 1, H, W) spatial weights in (0, 1); works for any C."""
        _check_image("SpatialGate", x, None)
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)  # (B, 2, H, W)
        return torch.sigmoid(self.bn(self.conv(pooled)))  # (B, 1, H, W)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(x)


class CBAM(nn.Module):
    """Convolutional block attention module (Woo et al. 2018, arXiv:1807.06521): channel gate, then spatial gate."""

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        self.channels = channels
        self.channel = ChannelGate(channels, reduction)
        self.spatial = SpatialGate(kernel_size)

    def gate(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, H, W) = M_c(x) * M_s(x * M_c(x)), the spatial gate sees the channel-gated x."""
        _check_image("CBAM", x, self.channels)
        channel = self.channel.gate(x)  # (B, C, 1, 1)
        spatial = self.spatial.gate(x * channel)  # (B, 1, H, W)
        return channel * spatial  # (B, C, H, W)

    def spatial_map(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, 1, H, W): the spatial gate CBAM applies to this input."""
        _check_image("CBAM", x, self.channels)
        return self.spatial.gate(x * self.channel.gate(x))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(x)


class YoloSAM(nn.Module):
    """YOLOv4's point-wise modified SAM (Bochkovskiy et al. 2020, arXiv:2004.10934): x * sigmoid(BN(conv1x1(x)))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = _positive_int("channels", channels)
        self.conv = nn.Conv2d(channels, channels, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(channels)

    def gate(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, H, W): no pooling, one weight per channel and pixel."""
        _check_image("YoloSAM", x, self.channels)
        return torch.sigmoid(self.bn(self.conv(x)))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(x)


def eca_kernel_size(channels: int, gamma: int = 2, b: int = 1) -> int:
    """ECA's adaptive kernel size ``|(log2 C + b) / gamma|_odd`` as the official code rounds it (C=64 -> 3).

    The integer part of ``(log2 C + b) / gamma``, plus one when it is even: 16-64 -> 3, 128-1024 -> 5.
    """
    _positive_int("channels", channels)
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


class ECA(nn.Module):
    """Efficient channel attention (Wang et al. 2020, arXiv:1910.03151): x * sigmoid(conv1d_k(GAP(x)))."""

    def __init__(self, channels: int, kernel_size: int | None = None, gamma: int = 2, b: int = 1) -> None:
        super().__init__()
        self.channels = _positive_int("channels", channels)
        k = eca_kernel_size(channels, gamma, b) if kernel_size is None else _positive_int("kernel_size", kernel_size)
        if k % 2 == 0:
            raise ValueError(f"kernel_size must be odd (so every channel has a centred window), got {k}")
        self.kernel_size = k
        self.conv = nn.Conv1d(1, 1, kernel_size=k, padding=(k - 1) // 2, bias=False)

    def gate(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, 1, 1): each channel's weight looks at its k neighbouring channels."""
        _check_image("ECA", x, self.channels)
        pooled = x.mean(dim=(2, 3))[:, None, :]  # (B, 1, C): channels become a 1-D sequence
        return torch.sigmoid(self.conv(pooled)).transpose(1, 2)[..., None]  # (B, C, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(x)


# --------------------------------------------------------------------------------------------------
# Residual self-attention: y = x + gamma * attn(x), the identity at init
# --------------------------------------------------------------------------------------------------
class NonLocalBlock(nn.Module):
    """Non-local block, embedded Gaussian (Wang et al. 2018, arXiv:1711.07971): z = x + BN(W softmax(θᵀφ) g)."""

    def __init__(self, channels: int, inter_channels: int | None = None, sub_sample: bool = False,
                 scale: bool = True) -> None:
        super().__init__()
        _positive_int("channels", channels)
        inter = channels // 2 if inter_channels is None else _positive_int("inter_channels", inter_channels)
        if inter < 1:
            raise ValueError(f"NonLocalBlock: channels // 2 must be >= 1, got channels={channels}; "
                             f"pass inter_channels explicitly")
        self.channels, self.inter_channels = channels, inter
        self.sub_sample, self.scale = bool(sub_sample), bool(scale)
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
        _check_image("NonLocalBlock", x, self.channels)
        return self._attend(x)[1]

    def forward(self, x: Tensor, return_attention: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        _check_image("NonLocalBlock", x, self.channels)
        y, weights = self._attend(x)
        z = x + self.bn(self.out(y))  # (B, C, H, W)
        return (z, weights) if return_attention else z


class PositionAttention(nn.Module):
    """DANet position attention module, PAM (Fu et al. 2019, arXiv:1809.02983): x + γ·V softmax(QᵀK)ᵀ, γ=0."""

    _who = "PositionAttention"

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        qk = _reduced(self._who, channels, reduction)
        self.channels, self.reduction = channels, reduction
        self.query = nn.Conv2d(channels, qk, kernel_size=1)
        self.key = nn.Conv2d(channels, qk, kernel_size=1)
        self.value = nn.Conv2d(channels, channels, kernel_size=1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def key_grid(self, height: int, width: int) -> tuple[int, int]:
        return height, width

    def _weights(self, x: Tensor) -> Tensor:
        q = self.query(x).flatten(2).transpose(1, 2)  # (B, N, C/r)
        k = self.key(x).flatten(2)  # (B, C/r, N)
        return torch.softmax(q @ k, dim=-1)  # (B, N, N): row i = where pixel i looks (no scaling, as the code)

    def attention(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, N, N) weights, N = H*W, rows sum to 1."""
        _check_image(self._who, x, self.channels)
        return self._weights(x)

    def forward(self, x: Tensor, return_attention: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        _check_image(self._who, x, self.channels)
        batch, channels, height, width = x.shape
        weights = self._weights(x)  # (B, N, N)
        v = self.value(x).flatten(2)  # (B, C, N)
        out = (v @ weights.transpose(1, 2)).view(batch, channels, height, width)  # (B, C, H, W)
        y = self.gamma * out + x
        return (y, weights) if return_attention else y


class SelfAttention2d(PositionAttention):
    """SAGAN self-attention (Zhang et al. 2019, arXiv:1805.08318): as PAM (q, k C/8, v C, γ=0), spectral norm optional."""

    _who = "SelfAttention2d"

    def __init__(self, channels: int, reduction: int = 8, spectral_norm: bool = False) -> None:
        super().__init__(channels, reduction)
        self.spectral_norm = bool(spectral_norm)
        if spectral_norm:  # SAGAN normalises every conv of G and D; the parameter count does not change
            sn = nn.utils.parametrizations.spectral_norm
            self.query, self.key, self.value = sn(self.query), sn(self.key), sn(self.value)


class ChannelSelfAttention(nn.Module):
    """DANet channel attention module, CAM (Fu et al. 2019, arXiv:1809.02983): x + β·softmax(AAᵀ)A, β=0."""

    def __init__(self, channels: int, variant: Literal["paper", "official"] = "paper") -> None:
        super().__init__()
        self.channels = _positive_int("channels", channels)
        self.variant = _choice("variant", variant, ("paper", "official"))
        self.gamma = nn.Parameter(torch.zeros(1))

    def _weights(self, a: Tensor) -> Tensor:
        energy = a @ a.transpose(1, 2)  # (B, C, C): E[i, j] = <A_i, A_j>
        if self.variant == "official":
            # The released code: softmax(max(E) - E) = softmax(-E), the most *dissimilar* channel wins.
            energy = energy.amax(dim=-1, keepdim=True) - energy
        return torch.softmax(energy, dim=-1)  # (B, C, C), rows sum to 1

    def attention(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, C) channel weights, rows sum to 1."""
        _check_image("ChannelSelfAttention", x, self.channels)
        return self._weights(x.flatten(2))

    def forward(self, x: Tensor, return_attention: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        _check_image("ChannelSelfAttention", x, self.channels)
        a = x.flatten(2)  # (B, C, N)
        weights = self._weights(a)  # (B, C, C)
        out = (weights @ a).view_as(x)  # (B, C, H, W)
        y = self.gamma * out + x
        return (y, weights) if return_attention else y


# --------------------------------------------------------------------------------------------------
# Polarized self-attention: paper and official code
# --------------------------------------------------------------------------------------------------
class PolarizedSelfAttention(nn.Module):
    """Polarized self-attention (Liu et al. 2021, arXiv:2107.00782): paper or official variant, parallel or sequential."""

    def __init__(self, channels: int, layout: Literal["parallel", "sequential"] = "parallel",
                 variant: Literal["paper", "official"] = "paper") -> None:
        super().__init__()
        _positive_int("channels", channels)
        half = channels // 2
        if half < 1:
            raise ValueError(f"PolarizedSelfAttention: channels // 2 must be >= 1 (the branches use C/2 channels), "
                             f"got channels={channels}")
        self.channels, self.half = channels, half
        self.layout = _choice("layout", layout, ("parallel", "sequential"))
        self.variant = _choice("variant", variant, ("paper", "official"))
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
        _check_image("PolarizedSelfAttention", x, self.channels)
        batch = x.shape[0]
        v = self.ch_value(x).flatten(2)  # (B, C/2, N)
        q = torch.softmax(self.ch_query(x).flatten(2), dim=-1)  # (B, 1, N): softmax over the pixels
        z = (v @ q.transpose(1, 2))[..., None]  # (B, C/2, 1, 1)
        up = self.ch_up(z)  # (B, C, 1, 1)
        up = self.ch_norm(up.view(batch, self.channels)).view(batch, self.channels, 1, 1)  # LayerNorm over C (paper)
        return torch.sigmoid(up)

    def spatial_gate(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, 1, H, W) in (0, 1), computed on ``x`` as given (no channel gate applied here)."""
        _check_image("PolarizedSelfAttention", x, self.channels)
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


GATING_MODULES = (SEBlock, ChannelGate, SpatialGate, CBAM, YoloSAM, ECA, PolarizedSelfAttention)
RESIDUAL_MODULES = (NonLocalBlock, PositionAttention, ChannelSelfAttention, SelfAttention2d)


# --------------------------------------------------------------------------------------------------
# Vision transformer
# --------------------------------------------------------------------------------------------------
class PatchEmbedding(nn.Module):
    """ViT patch embedding (Dosovitskiy et al. 2021, arXiv:2010.11929): conv, kernel = stride = P, to (B, HW/P², D)."""

    def __init__(self, in_channels: int, embed_dim: int, patch_size: int) -> None:
        super().__init__()
        self.in_channels = _positive_int("in_channels", in_channels)
        self.embed_dim = _positive_int("embed_dim", embed_dim)
        self.patch_size = _positive_int("patch_size", patch_size)
        self.proj = nn.Conv2d(in_channels, embed_dim, kernel_size=patch_size, stride=patch_size)

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """The (H/P, W/P) grid of patches; H and W must be multiples of P."""
        p = self.patch_size
        if height % p or width % p:
            raise ValueError(f"PatchEmbedding: H and W must be multiples of patch_size={p}, got H={height}, W={width}")
        return height // p, width // p

    def forward(self, x: Tensor) -> Tensor:
        _check_image("PatchEmbedding", x, self.in_channels)
        self.grid(x.shape[2], x.shape[3])
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, N, D), patches in row-major order


class EncoderBlock(nn.Module):
    """Pre-norm ViT encoder block (Dosovitskiy et al. 2021, arXiv:2010.11929): x + MSA(LN x), then x + MLP(LN x)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 2.0, dropout: float = 0.0) -> None:
        super().__init__()
        if mlp_ratio <= 0:
            raise ValueError(f"mlp_ratio must be > 0, got {mlp_ratio}")
        hidden = max(1, int(dim * mlp_ratio))
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, num_heads, dropout=dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim),
                                 nn.Dropout(dropout))

    def forward(self, x: Tensor, need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """(B, T, D) -> ((B, T, D), weights (B, heads, T, T) or None)."""
        h = self.norm1(x)
        attended, weights = self.attn(h, h, h, need_weights=need_weights)
        x = x + attended
        x = x + self.mlp(self.norm2(x))
        return x, weights


class ViT(nn.Module):
    """Small vision transformer (Dosovitskiy et al. 2021, arXiv:2010.11929): patches, class token, learned positions."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int | tuple[int, int] = 40,
                 patch_size: int = 8, dim: int = 64, depth: int = 4, num_heads: int = 4, mlp_ratio: float = 2.0,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.num_classes = _positive_int("num_classes", num_classes)
        _positive_int("depth", depth)
        self.patch_embed = PatchEmbedding(in_channels, dim, patch_size)
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        # The learned positions cover the grid of ``image_size``; other sizes interpolate them (as the
        # paper does when fine-tuning at a higher resolution).
        self.pos_grid = self.patch_embed.grid(*size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.pos_grid[0] * self.pos_grid[1], dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(EncoderBlock(dim, num_heads, mlp_ratio, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def positions(self, grid: tuple[int, int]) -> Tensor:
        """(1, 1 + gh*gw, D) position embeddings for a patch grid, bicubically interpolated when it differs."""
        if tuple(grid) == tuple(self.pos_grid):
            return self.pos_embed
        cls_pos, patch_pos = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        dim = patch_pos.shape[-1]
        patch_pos = patch_pos.reshape(1, *self.pos_grid, dim).permute(0, 3, 1, 2)  # (1, D, gh0, gw0)
        patch_pos = F.interpolate(patch_pos, size=tuple(grid), mode="bicubic", align_corners=False)  # (1, D, gh, gw)
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], dim)  # (1, gh*gw, D)
        return torch.cat([cls_pos, patch_pos], dim=1)

    def forward(self, x: Tensor, need_weights: bool = False) -> Tensor | tuple[Tensor, list[Tensor]]:
        """(B, C, H, W) -> logits (B, classes), or ``(logits, [(B, heads, T, T) weights per layer])``, T = 1 + N."""
        _check_image("ViT", x, self.patch_embed.in_channels)
        grid = self.patch_embed.grid(x.shape[2], x.shape[3])
        tokens = self.patch_embed(x)  # (B, N, D)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)  # (B, 1, D)
        tokens = self.dropout(torch.cat([cls, tokens], dim=1) + self.positions(grid))  # (B, 1 + N, D)
        all_weights = []
        for block in self.blocks:
            tokens, weights = block(tokens, need_weights=need_weights)
            all_weights.append(weights)
        logits = self.head(self.norm(tokens[:, 0]))  # (B, classes), read from the class token
        return (logits, all_weights) if need_weights else logits

    def cls_attention_map(self, x: Tensor, layer: int = -1) -> Tensor:
        """(B, C, H, W) -> (B, H/P, W/P): the class token's attention over patches in one layer, mean over heads."""
        _, weights = self.forward(x, need_weights=True)
        grid = self.patch_embed.grid(x.shape[2], x.shape[3])
        cls_row = weights[layer][:, :, 0, 1:].mean(dim=1)  # (B, N)
        return cls_row.reshape(-1, *grid)  # (B, gh, gw)


# --------------------------------------------------------------------------------------------------
# Factory and spatial maps
# --------------------------------------------------------------------------------------------------
_FACTORIES: dict[str, Callable[..., nn.Module]] = {
    "se": SEBlock,
    "cbam": CBAM,
    "channel_gate": ChannelGate,
    "spatial_gate": lambda channels, **kw: SpatialGate(**kw),
    "yolo_sam": YoloSAM,
    "eca": ECA,
    "nonlocal": NonLocalBlock,
    "pam": PositionAttention,
    "cam": ChannelSelfAttention,
    "psa": PolarizedSelfAttention,
    "sagan": SelfAttention2d,
}
ATTENTION_NAMES = tuple(_FACTORIES)


def create_attention(name: str, channels: int, **kwargs: object) -> nn.Module:
    """Build a module by name, e.g. ``create_attention("cbam", 64, reduction=8)``; names: ``ATTENTION_NAMES``."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    key = name.strip().lower().replace("-", "_")
    if key not in _FACTORIES:
        raise ValueError(f"unknown attention module {name!r}; valid names: {', '.join(ATTENTION_NAMES)}")
    return _FACTORIES[key](channels, **kwargs)


def _mass_received(weights: Tensor, grid: tuple[int, int]) -> Tensor:
    """(B, N, M) attention -> (B, h, w): the weight each key receives, averaged over the queries."""
    return weights.mean(dim=1).reshape(weights.shape[0], *grid)  # (B, h, w)


_SPATIAL = (CBAM, SpatialGate, PolarizedSelfAttention, YoloSAM, NonLocalBlock, PositionAttention, ViT)


def has_spatial_map(module: nn.Module) -> bool:
    """Whether ``spatial_attention_map`` can score this module (SE, ECA, ChannelGate and CAM weigh channels only)."""
    return isinstance(module, _SPATIAL)


def spatial_attention_map(module: nn.Module, x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, h, w) nonnegative map of where ``module`` puts its spatial attention on ``x``.

    CBAM / SpatialGate / PSA: the spatial gate applied; YoloSAM: its gate averaged over channels;
    non-local, PAM, SAGAN: the attention each pixel receives, averaged over the queries (at the keys'
    grid, halved by the non-local block's sub-sampling); ViT: the class token's attention in the last
    layer (at the patch grid). Modules without a spatial map (SE, ECA, ChannelGate, CAM) raise
    ``ValueError``.
    """
    if isinstance(module, CBAM):
        return module.spatial_map(x)[:, 0]
    if isinstance(module, SpatialGate):
        return module.gate(x)[:, 0]
    if isinstance(module, PolarizedSelfAttention):
        return module.spatial_map(x)[:, 0]
    if isinstance(module, YoloSAM):
        return module.gate(x).mean(dim=1)
    if isinstance(module, (NonLocalBlock, PositionAttention)):
        return _mass_received(module.attention(x), module.key_grid(x.shape[2], x.shape[3]))
    if isinstance(module, ViT):
        return module.cls_attention_map(x)
    raise ValueError(f"{type(module).__name__} has no spatial attention map (it weighs channels only); modules with "
                     f"one: CBAM, SpatialGate, YoloSAM, PolarizedSelfAttention, NonLocalBlock, PositionAttention, "
                     f"SelfAttention2d, ViT")
