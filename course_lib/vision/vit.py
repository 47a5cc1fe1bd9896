"""A small vision transformer and its patch embedding (Dosovitskiy et al. 2021, arXiv:2010.11929). Lesson 13."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib._validate import check_bool, check_float, check_image, positive_int
from course_lib.attention.encoder_block import EncoderBlock

__all__ = ["PatchEmbedding", "ViT"]


class PatchEmbedding(nn.Module):
    """ViT patch embedding: a conv with kernel = stride = P, to (B, HW/P², D) tokens. Introduced in lesson 13.

    Args:
        in_channels: C, the image's channels.
        d_model: D, the width of a token.
        patch_size: P, the side of a square patch.
    """

    def __init__(self, in_channels: int, d_model: int, patch_size: int) -> None:
        super().__init__()
        self.in_channels = positive_int("in_channels", in_channels)
        self.d_model = positive_int("d_model", d_model)
        self.patch_size = positive_int("patch_size", patch_size)
        self.proj = nn.Conv2d(in_channels, d_model, kernel_size=patch_size, stride=patch_size)

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """The (H/P, W/P) grid of patches; H and W must be multiples of P."""
        p = self.patch_size
        if height % p or width % p:
            raise ValueError(f"PatchEmbedding: H and W must be multiples of patch_size={p}, got H={height}, W={width}")
        return height // p, width // p

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, N, D), patches in row-major order."""
        check_image("PatchEmbedding", x, self.in_channels)
        self.grid(x.shape[2], x.shape[3])
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, N, D)


class ViT(nn.Module):
    """Small vision transformer: patches, class token, learned positions, pre-norm blocks. Introduced in lesson 13.

    Args:
        in_channels: the image's channels.
        num_classes: number of classes of the head.
        image_size: the (H, W) (or one side) the learned positions are laid out for; other sizes
            interpolate them.
        patch_size: P; H and W must be multiples of it.
        d_model: D, the token width.
        depth: number of encoder blocks.
        num_heads: attention heads per block; must divide D.
        mlp_ratio: the blocks' feed-forward width is D * mlp_ratio (GELU).
        dropout: dropout on the tokens, the attention weights and inside the blocks.
    """

    def __init__(self, *, in_channels: int = 1, num_classes: int = 10, image_size: int | tuple[int, int] = 40,
                 patch_size: int = 8, d_model: int = 64, depth: int = 4, num_heads: int = 4,
                 mlp_ratio: float = 2.0, dropout: float = 0.0) -> None:
        super().__init__()
        self.num_classes = positive_int("num_classes", num_classes)
        positive_int("depth", depth)
        check_float("mlp_ratio", mlp_ratio, minimum=0.0, exclusive_minimum=True)
        self.patch_embed = PatchEmbedding(in_channels, d_model, patch_size)
        size = (image_size, image_size) if isinstance(image_size, int) else (image_size[0], image_size[1])
        # The learned positions cover the grid of ``image_size``; other sizes interpolate them (as the
        # paper does when fine-tuning at a higher resolution).
        self.pos_grid = self.patch_embed.grid(*size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d_model))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.pos_grid[0] * self.pos_grid[1], d_model))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.dropout = nn.Dropout(dropout)
        d_ff = max(1, int(d_model * mlp_ratio))
        self.blocks = nn.ModuleList(EncoderBlock(d_model, num_heads, d_ff, dropout=dropout, activation="gelu")
                                    for _ in range(depth))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, num_classes)

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

    def forward(self, x: Tensor, *, need_weights: bool = False) -> Tensor | tuple[Tensor, list[Tensor]]:
        """(B, C, H, W) -> logits (B, classes), or ``(logits, [(B, heads, T, T) weights per layer])``, T = 1 + N."""
        check_image("ViT", x, self.patch_embed.in_channels)
        check_bool("need_weights", need_weights)
        grid = self.patch_embed.grid(x.shape[2], x.shape[3])
        tokens = self.patch_embed(x)  # (B, N, D)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)  # (B, 1, D)
        tokens = self.dropout(torch.cat([cls, tokens], dim=1) + self.positions(grid))  # (B, 1 + N, D)
        all_weights: list[Tensor] = []
        for block in self.blocks:
            tokens, weights = block(tokens, need_weights=need_weights)
            if weights is not None:
                all_weights.append(weights)
        logits = self.head(self.norm(tokens[:, 0]))  # (B, classes), read from the class token
        return (logits, all_weights) if need_weights else logits

    def cls_attention_map(self, x: Tensor, *, layer: int = -1) -> Tensor:
        """(B, C, H, W) -> (B, H/P, W/P): the class token's attention over patches in one layer, mean over heads."""
        _, weights = self.forward(x, need_weights=True)
        grid = self.patch_embed.grid(x.shape[2], x.shape[3])
        cls_row = weights[layer][:, :, 0, 1:].mean(dim=1)  # (B, N)
        return cls_row.reshape(-1, *grid)  # (B, gh, gw)

    def spatial_attention_map(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, H/P, W/P): the class token's attention in the last layer."""
        return self.cls_attention_map(x)
