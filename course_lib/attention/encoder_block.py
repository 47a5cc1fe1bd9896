"""The Transformer encoder block, shared by the seq2seq Transformer, the NER tagger and the ViT.

Pre-norm by default, as in Xiong et al. 2020 (arXiv:2002.04745) and ViT (Dosovitskiy et al. 2021,
arXiv:2010.11929), around the sub-layers of Vaswani et al. 2017 (arXiv:1706.03762); ``norm_first=False`` gives
the paper's post-norm block. ``residual=False`` and ``feed_forward=False`` remove a part, for the ablations of
lesson 09. Introduced in lesson 09.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from torch import Tensor, nn

from course_lib._validate import check_bool, check_choice, check_probability, positive_int
from course_lib.attention.multi_head import MultiHeadAttention

__all__ = ["ACTIVATIONS", "FeedForward", "EncoderBlock", "sublayer"]

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


def sublayer(x: Tensor, fn: Callable[[Tensor], Tensor], norm: nn.Module, drop: nn.Module, *,
             norm_first: bool = True, residual: bool = True) -> Tensor:
    """One sub-layer with its residual connection and layer norm, in either order.

    Pre-norm: ``x + drop(fn(norm(x)))``; post-norm (Vaswani et al. 2017): ``norm(x + drop(fn(x)))``.
    ``residual=False`` drops the ``x +``. Introduced in lesson 09.
    """
    if norm_first:
        out = drop(fn(norm(x)))
        return x + out if residual else out
    out = drop(fn(x))
    return norm(x + out if residual else out)


class EncoderBlock(nn.Module):
    """Encoder block: x + Dropout(SelfAttention(LN x)), then x + Dropout(FFN(LN x)) (pre-norm, the default).

    With ``norm_first=False``: LN(x + Dropout(SelfAttention(x))), then LN(x + Dropout(FFN(x))), the post-norm
    block of Vaswani et al. 2017. ``forward(x, mask=None, *, need_weights=False) -> (x, weights (B, H, T, T) or
    None)``. Introduced in lesson 09.

    Args:
        d_model: model width D.
        num_heads: attention heads; must divide ``d_model``.
        d_ff: hidden width of the feed-forward network.
        dropout: dropout on the attention weights, inside the FFN and on both residual branches.
        activation: the FFN's activation, "relu" or "gelu".
        norm_first: layer norm before each sub-layer (pre-norm, True) or after the residual sum (post-norm).
        residual: keep the residual connections (False only for the ablation of lesson 09).
        feed_forward: keep the feed-forward sub-layer (False only for the ablation of lesson 09; then
            ``ffn`` and ``norm2`` are None).
    """

    def __init__(self, d_model: int, num_heads: int, d_ff: int, *, dropout: float = 0.0,
                 activation: Literal["relu", "gelu"] = "relu", norm_first: bool = True, residual: bool = True,
                 feed_forward: bool = True) -> None:
        super().__init__()
        self.norm_first = check_bool("norm_first", norm_first)
        self.residual = check_bool("residual", residual)
        check_bool("feed_forward", feed_forward)
        # registration order as before these flags existed (norms, attention, FFN): the parameters' order decides
        # the summation order of gradient clipping, so trained results of lessons 09, 10, 13 and 17 stay the same
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2: nn.LayerNorm | None = nn.LayerNorm(d_model) if feed_forward else None
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.ffn: FeedForward | None = (FeedForward(d_model, d_ff, dropout=dropout, activation=activation)
                                        if feed_forward else None)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None, *,
                need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """x (B, T, D), mask broadcastable to (B, H, T, T) (True = may attend) -> (B, T, D), weights or None."""
        found: list[Tensor | None] = []

        def attend(h: Tensor) -> Tensor:
            out, w = self.self_attn(h, h, h, mask=mask, need_weights=need_weights)  # (B, T, D)
            found.append(w)
            return out

        x = sublayer(x, attend, self.norm1, self.drop, norm_first=self.norm_first, residual=self.residual)
        if self.ffn is not None and self.norm2 is not None:
            x = sublayer(x, self.ffn, self.norm2, self.drop, norm_first=self.norm_first, residual=self.residual)
        return x, found[0]
