"""A small encoder-decoder Transformer (Vaswani et al. 2017, arXiv:1706.03762) from course_lib.attention.

Introduced in lesson 09.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from course_lib._validate import check_bool, check_int, check_probability, positive_int
from course_lib.attention import (
    EncoderBlock,
    FeedForward,
    MultiHeadAttention,
    SinusoidalPositionalEncoding,
    causal_mask,
    lengths_to_mask,
)
from course_lib.attention.encoder_block import sublayer
from course_lib.seq2seq.data import PAD_ID
from course_lib.seq2seq.gru import check_src

__all__ = ["decoder_self_mask", "cross_attention_mask", "vaswani_lr", "DecoderLayer", "TransformerSeq2Seq"]


def decoder_self_mask(tgt_lens: Tensor, t: int) -> Tensor:
    """(B,) target lengths -> (B, t, t) mask: query i may attend to key j iff j <= i and j is a real token.

    Introduced in lesson 09.
    """
    t = check_int("t", t, minimum=0)
    causal = causal_mask(t, device=tgt_lens.device)  # (t, t)
    keys = lengths_to_mask(tgt_lens.clamp(max=t), t)  # (B, t)
    return causal[None, :, :] & keys[:, None, :]  # (B, t, t)


def cross_attention_mask(src_lens: Tensor, t_q: int, s: int) -> Tensor:
    """(B,) source lengths -> (B, t_q, s) mask: every decoder position may attend to the real source tokens.

    Introduced in lesson 09.
    """
    t_q = check_int("t_q", t_q, minimum=0)
    return lengths_to_mask(src_lens, s)[:, None, :].expand(-1, t_q, -1)  # (B, t_q, s)


def vaswani_lr(step: int, *, d_model: int, warmup: int = 4000) -> float:
    """The learning rate of Vaswani et al. 2017, eq. 3: ``d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)``.

    Linear warm-up for ``warmup`` steps, then decay as the inverse square root of the step; ``step`` counts
    from 1. Introduced in lesson 09.
    """
    step = positive_int("step", step)
    d_model = positive_int("d_model", d_model)
    warmup = positive_int("warmup", warmup)
    return d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)


class DecoderLayer(nn.Module):
    """Decoder layer: causal self-attention, cross-attention over the encoder, feed-forward (pre-norm by default).

    Each sub-layer is wrapped as in ``EncoderBlock``: pre-norm ``y + Dropout(f(LN y))`` or, with
    ``norm_first=False``, post-norm ``LN(y + Dropout(f(y)))`` (Vaswani et al. 2017). Introduced in lesson 09.

    Args:
        d_model: model width D.
        num_heads: attention heads; must divide ``d_model``.
        d_ff: hidden width of the feed-forward network.
        dropout: dropout on the attention weights, inside the FFN and on the residual branches.
        norm_first: layer norm before each sub-layer (pre-norm, True) or after the residual sum (post-norm).
        residual: keep the residual connections (False only for the ablation of lesson 09).
        feed_forward: keep the feed-forward sub-layer (False only for the ablation of lesson 09; then
            ``ffn`` and ``norm3`` are None).
    """

    def __init__(self, d_model: int, num_heads: int, d_ff: int, *, dropout: float = 0.0, norm_first: bool = True,
                 residual: bool = True, feed_forward: bool = True) -> None:
        super().__init__()
        self.norm_first = check_bool("norm_first", norm_first)
        self.residual = check_bool("residual", residual)
        check_bool("feed_forward", feed_forward)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.norm3: nn.LayerNorm | None = nn.LayerNorm(d_model) if feed_forward else None
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.cross_attn = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.ffn: FeedForward | None = FeedForward(d_model, d_ff, dropout=dropout) if feed_forward else None
        self.drop = nn.Dropout(dropout)

    def forward(self, y: Tensor, memory: Tensor, self_mask: Tensor | None, cross_mask: Tensor, *,
                need_weights: bool = False) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """y (B, T, D), memory (B, S, D) -> (B, T, D), self- and cross-attention weights (or None).

        ``self_mask=None`` means purely causal.
        """
        found: dict[str, Tensor | None] = {}

        def attend_self(h: Tensor) -> Tensor:
            out, found["self"] = self.self_attn(h, h, h, mask=self_mask, is_causal=self_mask is None,
                                                need_weights=need_weights)
            return out

        def attend_memory(h: Tensor) -> Tensor:
            out, found["cross"] = self.cross_attn(h, memory, memory, mask=cross_mask, need_weights=need_weights)
            return out

        first, res = self.norm_first, self.residual
        y = sublayer(y, attend_self, self.norm1, self.drop, norm_first=first, residual=res)
        y = sublayer(y, attend_memory, self.norm2, self.drop, norm_first=first, residual=res)
        if self.ffn is not None and self.norm3 is not None:
            y = sublayer(y, self.ffn, self.norm3, self.drop, norm_first=first, residual=res)
        return y, found["self"], found["cross"]


class TransformerSeq2Seq(nn.Module):
    """Encoder-decoder Transformer: token embeddings * sqrt(D) + sinusoidal positions, pre-norm layers.

    ``num_layers`` encoder layers and ``num_decoder_layers`` (default: as many) decoder layers. Pre-norm stacks
    end in a final layer norm (``encoder_norm``, ``decoder_norm``); post-norm ones (``norm_first=False``, the
    2017 paper) already end in one, so those two are identities.

    After a forward pass with ``need_weights=True``, ``self.weights`` holds lists (one tensor per layer,
    (B, H, T_q, T_k)) under "encoder self", "decoder self" and "cross". Introduced in lesson 09.

    Args:
        src_vocab_size: source vocabulary size.
        tgt_vocab_size: target vocabulary size.
        d_model: model width D.
        num_heads: attention heads; must divide ``d_model``.
        num_layers: encoder layers.
        d_ff: hidden width of the feed-forward networks.
        dropout: dropout on positions, attention weights, FFNs and residual branches.
        max_len: the longest sequence the positional table covers.
        num_decoder_layers: decoder layers (default ``num_layers``).
        norm_first: pre-norm (True) or post-norm (False) layers.
        residual: keep the residual connections (False only for the ablation of lesson 09).
        feed_forward: keep the feed-forward sub-layers (False only for the ablation of lesson 09).
    """

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, *, d_model: int = 64, num_heads: int = 4,
                 num_layers: int = 2, d_ff: int = 128, dropout: float = 0.0, max_len: int = 64,
                 num_decoder_layers: int | None = None, norm_first: bool = True, residual: bool = True,
                 feed_forward: bool = True) -> None:
        super().__init__()
        num_layers = positive_int("num_layers", num_layers)
        num_decoder_layers = num_layers if num_decoder_layers is None else positive_int("num_decoder_layers",
                                                                                        num_decoder_layers)
        check_probability("dropout", dropout)
        norm_first = check_bool("norm_first", norm_first)
        residual, feed_forward = check_bool("residual", residual), check_bool("feed_forward", feed_forward)
        self.d_model = d_model
        self.src_embedding = nn.Embedding(src_vocab_size, d_model, padding_idx=PAD_ID)
        self.tgt_embedding = nn.Embedding(tgt_vocab_size, d_model, padding_idx=PAD_ID)
        self.positions = SinusoidalPositionalEncoding(d_model, max_len=max_len, dropout=dropout)
        self.encoder_layers = nn.ModuleList(
            EncoderBlock(d_model, num_heads, d_ff, dropout=dropout, norm_first=norm_first, residual=residual,
                         feed_forward=feed_forward) for _ in range(num_layers))
        self.decoder_layers = nn.ModuleList(
            DecoderLayer(d_model, num_heads, d_ff, dropout=dropout, norm_first=norm_first, residual=residual,
                         feed_forward=feed_forward) for _ in range(num_decoder_layers))
        self.encoder_norm: nn.Module = nn.LayerNorm(d_model) if norm_first else nn.Identity()
        self.decoder_norm: nn.Module = nn.LayerNorm(d_model) if norm_first else nn.Identity()
        self.out = nn.Linear(d_model, tgt_vocab_size)
        self.weights: dict[str, list[Tensor]] = {}
        for embedding in (self.src_embedding, self.tgt_embedding):
            # std D^-1/2, so that after the * sqrt(D) below tokens and positions have the same scale
            nn.init.normal_(embedding.weight, std=d_model**-0.5)
            with torch.no_grad():
                embedding.weight[PAD_ID].zero_()

    def embed(self, embedding: nn.Embedding, tokens: Tensor) -> Tensor:
        """Token ids (B, T) -> embeddings scaled by sqrt(D) plus positions (B, T, D)."""
        return self.positions(embedding(tokens) * math.sqrt(self.d_model))

    def encode(self, src: Tensor, src_lens: Tensor, *, need_weights: bool = False) -> Tensor:
        """src (B, S), src_lens (B,) -> memory (B, S, D)."""
        check_src(src, src_lens)
        mask = lengths_to_mask(src_lens.to(src.device), src.shape[1])[:, None, :]  # (B, 1, S): for every query
        x = self.embed(self.src_embedding, src)
        weights = []
        for layer in self.encoder_layers:
            x, w = layer(x, mask, need_weights=need_weights)
            weights.append(w)
        if need_weights:
            self.weights["encoder self"] = weights
        return self.encoder_norm(x)  # (B, S, D)

    def decode(self, tgt_in: Tensor, memory: Tensor, src_lens: Tensor, *, need_weights: bool = False) -> Tensor:
        """tgt_in (B, T), memory (B, S, D), src_lens (B,) -> logits (B, T, V)."""
        cross = lengths_to_mask(src_lens.to(memory.device), memory.shape[1])[:, None, :]  # (B, 1, S)
        y = self.embed(self.tgt_embedding, tgt_in)
        w_self, w_cross = [], []
        for layer in self.decoder_layers:
            # Causal masking alone suffices: target padding comes after every real token, so no real query
            # ever sees it, and the loss ignores padded queries.
            y, ws, wc = layer(y, memory, None, cross, need_weights=need_weights)
            w_self.append(ws)
            w_cross.append(wc)
        if need_weights:
            self.weights["decoder self"], self.weights["cross"] = w_self, w_cross
        return self.out(self.decoder_norm(y))  # (B, T, V)

    def forward(self, src: Tensor, src_lens: Tensor, tgt_in: Tensor, *, need_weights: bool = False) -> Tensor:
        """Teacher forcing: logits (B, T, V); with ``need_weights``, ``self.weights`` holds every layer's weights."""
        self.weights = {}
        memory = self.encode(src, src_lens, need_weights=need_weights)
        return self.decode(tgt_in, memory, src_lens, need_weights=need_weights)

    def start(self, src: Tensor, src_lens: Tensor) -> dict[str, Any]:
        """Encode the source once; ``step`` re-runs the decoder on the tokens so far."""
        return {"memory": self.encode(src, src_lens), "src_lens": src_lens, "need_weights": True,
                "tokens": torch.zeros(src.shape[0], 0, dtype=torch.long, device=src.device)}

    def step(self, prev: Tensor, state: dict[str, Any]) -> tuple[Tensor, dict[str, Any], Tensor | None]:
        """Re-run the decoder on every token so far (no cache: the sentences are short); weights = the last
        layer's cross-attention of the newest position, averaged over heads (if ``state["need_weights"]``)."""
        tokens = torch.cat([state["tokens"], prev[:, None]], dim=1)  # (B, t)
        need = bool(state.get("need_weights", True))
        logits = self.decode(tokens, state["memory"], state["src_lens"], need_weights=need)
        weights = self.weights["cross"][-1][:, :, -1].mean(dim=1) if need else None  # (B, H, t, S) -> (B, S)
        return logits[:, -1], {**state, "tokens": tokens}, weights

