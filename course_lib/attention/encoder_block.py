"""The pre-norm Transformer encoder block, shared by the seq2seq Transformer and the ViT.

Pre-norm as in Xiong et al. 2020 (arXiv:2002.04745) and ViT (Dosovitskiy et al. 2021, arXiv:2010.11929),
around the sub-layers of Vaswani et al. 2017 (arXiv:1706.03762). Introduced in lesson 09.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from course_lib._validate import check_choice, check_probability, positive_int
from course_lib.attention.multi_head import MultiHeadAttention

__all__ = ["ACTIVATIONS", "FeedForward", "EncoderBlock"]

ACTIVATIONS = ("relu", "gelu")


class FeedForward(nn.Sequential):
    """Position-wise feed-forward network Linear(D, d_ff), activation, dropout, Linear(d_ff, D).

    Introduced in lesson 09.

    Args:
        d_model: model width D.
        d_ff: hidden width.
        dropout: dropout after the activation.
        activation: "relu" (Vaswani et al. 2017) or "gelu" (ViT).
    """

    def __init__(self, d_model: int, d_ff: int, *, dropout: float = 0.0,
                 activation: Literal["relu", "gelu"] = "relu") -> None:
        positive_int("d_model", d_model)
        positive_int("d_ff", d_ff)
        check_choice("activation", activation, ACTIVATIONS)
        act: nn.Module = nn.ReLU() if activation == "relu" else nn.GELU()
        super().__init__(nn.Linear(d_model, d_ff), act, nn.Dropout(check_probability("dropout", dropout)),
                         nn.Linear(d_ff, d_model))


class EncoderBlock(nn.Module):
    """Pre-norm encoder block: x + Dropout(SelfAttention(LN x)), then x + Dropout(FFN(LN x)). Introduced in lesson 09.

    ``forward(x, mask=None, *, need_weights=False) -> (x, weights (B, H, T, T) or None)``.

    Args:
        d_model: model width D.
        num_heads: attention heads; must divide ``d_model``.
        d_ff: hidden width of the feed-forward network.
        dropout: dropout on the attention weights, inside the FFN and on both residual branches.
        activation: the FFN's activation, "relu" or "gelu".
    """

    def __init__(self, d_model: int, num_heads: int, d_ff: int, *, dropout: float = 0.0,
                 activation: Literal["relu", "gelu"] = "relu") -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.ffn = FeedForward(d_model, d_ff, dropout=dropout, activation=activation)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None, *,
                need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """x (B, T, D), mask broadcastable to (B, H, T, T) (True = may attend) -> (B, T, D), weights or None."""
        h = self.norm1(x)
        attended, weights = self.self_attn(h, h, h, mask=mask, need_weights=need_weights)  # (B, T, D)
        x = x + self.drop(attended)
        return x + self.drop(self.ffn(self.norm2(x))), weights
