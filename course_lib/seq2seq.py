"""Sequence to sequence (编码器-解码器) models, training, greedy decoding and metrics for lessons 07-09.

Models: a GRU encoder-decoder whose decoder sees only the final encoder state (Cho et al. 2014,
arXiv:1406.1078), the same with an attention decoder (Bahdanau et al. 2015, arXiv:1409.0473; Luong et al.
2015, arXiv:1508.04025 for the dot/general variants) and a small Transformer (Vaswani et al. 2017,
arXiv:1706.03762) built from ``course_lib.attention``. Every model has the same interface:

- ``forward(src, src_lens, tgt_in) -> logits (B, T, V)`` (teacher forcing, 教师强制);
- ``start(src, src_lens) -> state`` and ``step(prev (B,), state) -> (logits (B, V), state, weights)``,
  which ``greedy_decode`` drives one token at a time (``weights`` (B, S) or None).

Metrics: exact match, corpus BLEU (sacrebleu, Post 2018, arXiv:1804.08771) and exact match by source-length
bucket. Padding id is 0 everywhere (``course_lib.data.numbers.Vocab``).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.attention import (
    AdditiveScores,
    BilinearScores,
    MultiHeadAttention,
    SinusoidalPositionalEncoding,
    causal_mask,
    dot_product_scores,
    lengths_to_mask,
    masked_softmax,
)

__all__ = [
    "PAD_ID", "RECIPE", "PackedPairs", "pack_pairs", "pad_sequences", "shift_right",
    "last_valid_state", "GRUEncoder", "GRUSeq2Seq", "AttentionSeq2Seq", "attention_step", "SCORINGS",
    "TransformerSeq2Seq", "EncoderLayer", "DecoderLayer", "decoder_self_mask", "cross_attention_mask",
    "greedy_search", "greedy_decode", "translate",
    "train_seq2seq", "TrainHistory", "smooth",
    "exact_match", "corpus_bleu", "LENGTH_BUCKETS", "bucket_name", "accuracy_by_length",
    "evaluate", "format_length_table", "save_results", "load_results",
]

PAD_ID = 0

#: The training budget shared by lessons 07, 08 and 09, so that their models are compared fairly.
RECIPE: dict[str, float | int] = {"steps": 600, "batch_size": 128, "lr": 3e-3, "embed_dim": 64, "hidden_dim": 64}


# --------------------------------------------------------------------------------------------------
# Data: pairs of token lists -> padded tensors, once
# --------------------------------------------------------------------------------------------------
@dataclass
class PackedPairs:
    """A whole split as padded tensors: built once, sliced into batches by index."""

    src: Tensor  # (N, S) source ids, padded with 0
    src_lens: Tensor  # (N,)
    tgt_in: Tensor  # (N, T) <bos> y_1 ... y_n, padded
    tgt_out: Tensor  # (N, T) y_1 ... y_n <eos>, padded
    tgt_lens: Tensor  # (N,) n + 1

    def __len__(self) -> int:
        return self.src.shape[0]

    def take(self, index: Tensor) -> "PackedPairs":
        """Rows ``index``, trimmed to the longest source and target among them."""
        s = int(self.src_lens[index].max())
        t = int(self.tgt_lens[index].max())
        return PackedPairs(self.src[index, :s], self.src_lens[index], self.tgt_in[index, :t],
                           self.tgt_out[index, :t], self.tgt_lens[index])

    def to(self, device: torch.device | str) -> "PackedPairs":
        return PackedPairs(*(getattr(self, f).to(device) for f in ("src", "src_lens", "tgt_in", "tgt_out", "tgt_lens")))


def pad_sequences(rows: Sequence[Sequence[int]], pad_id: int = PAD_ID) -> Tensor:
    """Lists of ids -> (N, longest) long tensor, padded on the right with ``pad_id``."""
    if len(rows) == 0:
        raise ValueError("rows must not be empty")
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), pad_id, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(list(r), dtype=torch.long)
    return out


def pack_pairs(pairs: Sequence[Any], src_vocab: Any, tgt_vocab: Any) -> PackedPairs:
    """Encode pairs (objects with ``.source`` and ``.target`` token sequences) as padded tensors.

    Sources end with <eos> (so an attending decoder can see where the sentence ends); targets are split into
    ``tgt_in = <bos> y`` and ``tgt_out = y <eos>`` for teacher forcing.
    """
    if len(pairs) == 0:
        raise ValueError("pairs must not be empty")
    if src_vocab.pad_id != PAD_ID or tgt_vocab.pad_id != PAD_ID:
        raise ValueError("the vocabularies must use id 0 for <pad>")
    src = [src_vocab.encode(p.source, add_eos=True) for p in pairs]  # the source ends with <eos> too
    tgt = [tgt_vocab.encode(p.target) for p in pairs]
    tgt_in = [[tgt_vocab.bos_id] + t for t in tgt]
    tgt_out = [t + [tgt_vocab.eos_id] for t in tgt]
    return PackedPairs(pad_sequences(src), torch.tensor([len(s) for s in src]), pad_sequences(tgt_in),
                       pad_sequences(tgt_out), torch.tensor([len(t) for t in tgt_out]))


def shift_right(tgt_out: Tensor, bos_id: int, eos_id: int, pad_id: int = PAD_ID) -> Tensor:
    """Decoder inputs for teacher forcing: (B, T) targets ``y_1 .. y_n <eos> <pad>..`` -> ``<bos> y_1 .. y_n <pad>..``."""
    if tgt_out.dim() != 2:
        raise ValueError(f"tgt_out must be (B, T), got {tuple(tgt_out.shape)}")
    shifted = torch.cat([torch.full_like(tgt_out[:, :1], bos_id), tgt_out[:, :-1]], dim=1)  # (B, T)
    return shifted.masked_fill(shifted == eos_id, pad_id)  # <eos> is predicted, never fed


# --------------------------------------------------------------------------------------------------
# GRU encoder and the encoder-decoder without attention (Cho et al. 2014)
# --------------------------------------------------------------------------------------------------
def _check_src(src: Tensor, src_lens: Tensor) -> None:
    if not isinstance(src, Tensor) or not isinstance(src_lens, Tensor):
        raise TypeError("src and src_lens must be tensors")
    if src.dim() != 2 or src_lens.shape != (src.shape[0],):
        raise ValueError(f"src must be (B, S) and src_lens (B,), got src {tuple(src.shape)} and src_lens "
                         f"{tuple(src_lens.shape)}")
    if src_lens.numel() and (int(src_lens.min()) < 1 or int(src_lens.max()) > src.shape[1]):
        raise ValueError(f"src_lens must lie in [1, S={src.shape[1]}], got min {int(src_lens.min())} and max "
                         f"{int(src_lens.max())}")


def last_valid_state(outputs: Tensor, lens: Tensor) -> Tensor:
    """outputs (B, S, H), lens (B,) -> (B, H): the output at position ``lens[b] - 1`` of each row.

    For a left-to-right RNN this is the final state of the unpadded sentence: the padding that follows
    never reaches it.
    """
    if outputs.dim() != 3 or lens.shape != (outputs.shape[0],):
        raise ValueError(f"outputs must be (B, S, H) and lens (B,), got {tuple(outputs.shape)} and {tuple(lens.shape)}")
    index = (lens.to(outputs.device).long() - 1).clamp(min=0)  # (B,)
    index = index[:, None, None].expand(-1, 1, outputs.shape[2])  # (B, 1, H)
    return outputs.gather(1, index).squeeze(1)  # (B, H)


class GRUEncoder(nn.Module):
    """Embedding + one-layer, left-to-right GRU: every source position gets a state; the last valid one sums up."""

    def __init__(self, vocab_size: int, embed_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD_ID)
        self.rnn = nn.GRU(embed_dim, hidden_dim, batch_first=True)
        self.hidden_dim = hidden_dim

    def forward(self, src: Tensor, src_lens: Tensor) -> tuple[Tensor, Tensor]:
        """src (B, S), src_lens (B,) -> outputs (B, S, H) (garbage past each length), final (B, H)."""
        _check_src(src, src_lens)
        outputs, _ = self.rnn(self.embedding(src))  # (B, S, H)
        return outputs, last_valid_state(outputs, src_lens)


class GRUSeq2Seq(nn.Module):
    """Encoder-decoder without attention: the decoder is conditioned only on the final encoder state ``c``.

    s_0 = tanh(W c); s_t = GRU([emb(y_{t-1}); c], s_{t-1}); p(y_t) = softmax(W_o [s_t; c; emb(y_{t-1})]).
    """

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, embed_dim: int = 64, hidden_dim: int = 128) -> None:
        super().__init__()
        self.encoder = GRUEncoder(src_vocab_size, embed_dim, hidden_dim)
        self.embedding = nn.Embedding(tgt_vocab_size, embed_dim, padding_idx=PAD_ID)
        self.init_state = nn.Linear(hidden_dim, hidden_dim)
        self.rnn = nn.GRU(embed_dim + hidden_dim, hidden_dim, batch_first=True)
        self.out = nn.Linear(2 * hidden_dim + embed_dim, tgt_vocab_size)

    def start(self, src: Tensor, src_lens: Tensor) -> dict[str, Tensor]:
        _, context = self.encoder(src, src_lens)  # (B, H)
        return {"context": context, "hidden": torch.tanh(self.init_state(context))}

    def step(self, prev: Tensor, state: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor], None]:
        emb = self.embedding(prev)  # (B, E)
        c = state["context"]
        out, hidden = self.rnn(torch.cat([emb, c], dim=-1)[:, None], state["hidden"][None])  # (B, 1, H)
        logits = self.out(torch.cat([out[:, 0], c, emb], dim=-1))  # (B, V)
        return logits, {"context": c, "hidden": hidden[0]}, None

    def forward(self, src: Tensor, src_lens: Tensor, tgt_in: Tensor) -> Tensor:
        state = self.start(src, src_lens)
        emb = self.embedding(tgt_in)  # (B, T, E)
        c = state["context"][:, None].expand(-1, tgt_in.shape[1], -1)  # (B, T, H): the same c at every step
        out, _ = self.rnn(torch.cat([emb, c], dim=-1), state["hidden"][None])  # (B, T, H)
        return self.out(torch.cat([out, c, emb], dim=-1))  # (B, T, V)


# --------------------------------------------------------------------------------------------------
# The attention decoder (Bahdanau et al. 2015), with Luong's dot / general scores as variants
# --------------------------------------------------------------------------------------------------
SCORINGS = ("additive", "dot", "general")


def attention_step(scores: Tensor, values: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """scores (B, S), values (B, S, H), mask (B, S) True = real token -> context (B, H), weights (B, S)."""
    if scores.dim() != 2 or values.dim() != 3 or mask.shape != scores.shape or values.shape[:2] != scores.shape:
        raise ValueError(f"scores must be (B, S), values (B, S, H) and mask (B, S), got {tuple(scores.shape)}, "
                         f"{tuple(values.shape)} and {tuple(mask.shape)}")
    weights = masked_softmax(scores, mask=mask)  # (B, S), exactly 0 on padding
    context = torch.bmm(weights[:, None, :], values).squeeze(1)  # (B, 1, S) @ (B, S, H) -> (B, H)
    return context, weights


class AttentionSeq2Seq(nn.Module):
    """GRU encoder-decoder whose decoder attends over all encoder states at every step.

    c_t = sum_j a_tj h_j with a_t = masked_softmax(score(s_{t-1}, h_j)); s_t = GRU([emb(y_{t-1}); c_t], s_{t-1});
    p(y_t) = softmax(W_o [s_t; c_t; emb(y_{t-1})]). ``scoring``: "additive" (Bahdanau, ``AdditiveScores``),
    "dot" or "general" (Luong, ``dot_product_scores`` unscaled / ``BilinearScores``).
    """

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, embed_dim: int = 64, hidden_dim: int = 128,
                 scoring: str = "additive") -> None:
        super().__init__()
        if scoring not in SCORINGS:
            raise ValueError(f"scoring must be one of {SCORINGS}, got {scoring!r}")
        self.scoring = scoring
        self.encoder = GRUEncoder(src_vocab_size, embed_dim, hidden_dim)
        self.embedding = nn.Embedding(tgt_vocab_size, embed_dim, padding_idx=PAD_ID)
        self.init_state = nn.Linear(hidden_dim, hidden_dim)
        if scoring == "additive":
            self.scorer: nn.Module | None = AdditiveScores(hidden_dim, hidden_dim, hidden_dim)
        elif scoring == "general":
            self.scorer = BilinearScores(hidden_dim, hidden_dim)
        else:
            self.scorer = None
        self.cell = nn.GRUCell(embed_dim + hidden_dim, hidden_dim)
        self.out = nn.Linear(2 * hidden_dim + embed_dim, tgt_vocab_size)

    def prepare_keys(self, keys: Tensor) -> Tensor | None:
        """The part of every score that depends on the keys only, computed once per sentence.

        additive: W_k h_j (B, S, A); general: h_j W^T (B, S, H); dot: nothing to prepare.
        """
        if self.scoring == "additive":
            return self.scorer.k_proj(keys)
        if self.scoring == "general":
            return keys @ self.scorer.weight.T  # (B, S, H)
        return None

    def score(self, query: Tensor, keys: Tensor, prepared: Tensor | None = None) -> Tensor:
        """query (B, H), keys (B, S, H) -> scores (B, S); ``prepared = prepare_keys(keys)`` saves work and
        gives the same scores as the scorer module."""
        q = query[:, None, :]  # (B, 1, H): one query per sentence
        if self.scoring == "dot":
            return dot_product_scores(q, keys, scale=1.0).squeeze(1)
        if prepared is None:
            return self.scorer(q, keys).squeeze(1)  # (B, 1, S) -> (B, S)
        if self.scoring == "additive":
            features = torch.tanh(self.scorer.q_proj(q) + prepared)  # (B, 1, A) + (B, S, A) -> (B, S, A)
            return self.scorer.v(features).squeeze(-1)  # (B, S)
        return (prepared @ query[:, :, None]).squeeze(-1)  # general: (B, S, H) @ (B, H, 1) -> (B, S)

    def start(self, src: Tensor, src_lens: Tensor) -> dict[str, Tensor]:
        outputs, final = self.encoder(src, src_lens)  # (B, S, H), (B, H)
        mask = lengths_to_mask(src_lens.to(src.device), src.shape[1])  # (B, S), True = real token
        state = {"keys": outputs, "mask": mask, "hidden": torch.tanh(self.init_state(final))}
        prepared = self.prepare_keys(outputs)
        if prepared is not None:
            state["prepared"] = prepared
        return state

    def step(self, prev: Tensor, state: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        emb = self.embedding(prev)  # (B, E)
        scores = self.score(state["hidden"], state["keys"], state.get("prepared"))  # (B, S)
        context, weights = attention_step(scores, state["keys"], state["mask"])  # (B, H), (B, S)
        hidden = self.cell(torch.cat([emb, context], dim=-1), state["hidden"])  # (B, H)
        logits = self.out(torch.cat([hidden, context, emb], dim=-1))  # (B, V)
        return logits, {**state, "hidden": hidden}, weights

    def forward(self, src: Tensor, src_lens: Tensor, tgt_in: Tensor, return_weights: bool = False):
        """Teacher forcing: the same computation as calling ``step`` on each true previous token, with the
        embeddings and the output layer applied to all steps at once (fewer, larger operations)."""
        state = self.start(src, src_lens)
        emb = self.embedding(tgt_in)  # (B, T, E)
        hidden, keys, mask, prepared = state["hidden"], state["keys"], state["mask"], state.get("prepared")
        hiddens, contexts, weights = [], [], []
        for t in range(tgt_in.shape[1]):
            context, w = attention_step(self.score(hidden, keys, prepared), keys, mask)  # (B, H), (B, S)
            hidden = self.cell(torch.cat([emb[:, t], context], dim=-1), hidden)  # (B, H)
            hiddens.append(hidden)
            contexts.append(context)
            weights.append(w)
        features = torch.cat([torch.stack(hiddens, 1), torch.stack(contexts, 1), emb], dim=-1)  # (B, T, 2H + E)
        logits = self.out(features)  # (B, T, V)
        return (logits, torch.stack(weights, dim=1)) if return_weights else logits  # weights (B, T, S)


# --------------------------------------------------------------------------------------------------
# A small encoder-decoder Transformer (Vaswani et al. 2017) from course_lib.attention pieces
# --------------------------------------------------------------------------------------------------
def decoder_self_mask(tgt_lens: Tensor, t: int) -> Tensor:
    """(B,) target lengths -> (B, t, t) mask: query i may attend to key j iff j <= i and j is a real token."""
    causal = causal_mask(t, device=tgt_lens.device)  # (t, t)
    keys = lengths_to_mask(tgt_lens.clamp(max=t), t)  # (B, t)
    return causal[None, :, :] & keys[:, None, :]  # (B, t, t)


def cross_attention_mask(src_lens: Tensor, t_q: int, s: int) -> Tensor:
    """(B,) source lengths -> (B, t_q, s) mask: every decoder position may attend to the real source tokens."""
    return lengths_to_mask(src_lens, s)[:, None, :].expand(-1, t_q, -1)  # (B, t_q, s)


class _FeedForward(nn.Sequential):
    def __init__(self, d_model: int, d_ff: int, dropout: float) -> None:
        super().__init__(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d_ff, d_model))


class EncoderLayer(nn.Module):
    """Pre-norm encoder layer: x + SelfAttention(LN(x)), then x + FFN(LN(x))."""

    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.ffn = _FeedForward(d_model, d_ff, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor, need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        h = self.norm1(x)
        a, w = self.self_attn(h, h, h, mask=mask, need_weights=need_weights)  # (B, S, D), (B, H, S, S)
        x = x + self.drop(a)
        return x + self.drop(self.ffn(self.norm2(x))), w


class DecoderLayer(nn.Module):
    """Pre-norm decoder layer: causal self-attention, cross-attention over the encoder, feed-forward."""

    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d_model), nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.cross_attn = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.ffn = _FeedForward(d_model, d_ff, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, y: Tensor, memory: Tensor, self_mask: Tensor | None, cross_mask: Tensor,
                need_weights: bool = False) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """``self_mask=None`` means purely causal."""
        h = self.norm1(y)
        a, w_self = self.self_attn(h, h, h, mask=self_mask, is_causal=self_mask is None, need_weights=need_weights)
        y = y + self.drop(a)
        h = self.norm2(y)
        a, w_cross = self.cross_attn(h, memory, memory, mask=cross_mask, need_weights=need_weights)
        y = y + self.drop(a)
        return y + self.drop(self.ffn(self.norm3(y))), w_self, w_cross


class TransformerSeq2Seq(nn.Module):
    """Encoder-decoder Transformer: token embeddings * sqrt(D) + sinusoidal positions, pre-norm layers.

    ``num_layers`` encoder layers and ``num_decoder_layers`` (default: as many) decoder layers.

    After a forward pass with ``need_weights=True``, ``self.weights`` holds lists (one tensor per layer,
    (B, H, T_q, T_k)) under "encoder self", "decoder self" and "cross".
    """

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, d_model: int = 64, num_heads: int = 4,
                 num_layers: int = 2, d_ff: int = 128, dropout: float = 0.0, max_len: int = 64,
                 num_decoder_layers: int | None = None) -> None:
        super().__init__()
        num_decoder_layers = num_layers if num_decoder_layers is None else num_decoder_layers
        if num_layers < 1 or num_decoder_layers < 1:
            raise ValueError(f"num_layers and num_decoder_layers must be >= 1, got {num_layers} and {num_decoder_layers}")
        self.d_model = d_model
        self.src_embedding = nn.Embedding(src_vocab_size, d_model, padding_idx=PAD_ID)
        self.tgt_embedding = nn.Embedding(tgt_vocab_size, d_model, padding_idx=PAD_ID)
        self.positions = SinusoidalPositionalEncoding(d_model, max_len=max_len, dropout=dropout)
        self.encoder_layers = nn.ModuleList(EncoderLayer(d_model, num_heads, d_ff, dropout) for _ in range(num_layers))
        self.decoder_layers = nn.ModuleList(DecoderLayer(d_model, num_heads, d_ff, dropout)
                                            for _ in range(num_decoder_layers))
        self.encoder_norm, self.decoder_norm = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
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

    def encode(self, src: Tensor, src_lens: Tensor, need_weights: bool = False) -> Tensor:
        _check_src(src, src_lens)
        mask = lengths_to_mask(src_lens.to(src.device), src.shape[1])[:, None, :]  # (B, 1, S): for every query
        x = self.embed(self.src_embedding, src)
        weights = []
        for layer in self.encoder_layers:
            x, w = layer(x, mask, need_weights)
            weights.append(w)
        if need_weights:
            self.weights["encoder self"] = weights
        return self.encoder_norm(x)  # (B, S, D)

    def decode(self, tgt_in: Tensor, memory: Tensor, src_lens: Tensor, need_weights: bool = False) -> Tensor:
        cross = lengths_to_mask(src_lens.to(memory.device), memory.shape[1])[:, None, :]  # (B, 1, S)
        y = self.embed(self.tgt_embedding, tgt_in)
        w_self, w_cross = [], []
        for layer in self.decoder_layers:
            # Causal masking alone suffices: target padding comes after every real token, so no real query
            # ever sees it, and the loss ignores padded queries.
            y, ws, wc = layer(y, memory, None, cross, need_weights)
            w_self.append(ws)
            w_cross.append(wc)
        if need_weights:
            self.weights["decoder self"], self.weights["cross"] = w_self, w_cross
        return self.out(self.decoder_norm(y))  # (B, T, V)

    def forward(self, src: Tensor, src_lens: Tensor, tgt_in: Tensor, need_weights: bool = False) -> Tensor:
        self.weights = {}
        return self.decode(tgt_in, self.encode(src, src_lens, need_weights), src_lens, need_weights)

    def start(self, src: Tensor, src_lens: Tensor) -> dict[str, Any]:
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


# --------------------------------------------------------------------------------------------------
# Greedy decoding (贪心解码)
# --------------------------------------------------------------------------------------------------
def greedy_search(
    step: Callable[[Tensor, Any], tuple[Tensor, Any]],
    state: Any,
    batch_size: int,
    bos_id: int,
    eos_id: int,
    max_len: int,
    pad_id: int = PAD_ID,
    device: torch.device | str | None = None,
) -> Tensor:
    """Feed <bos>, then each argmax back in, until every row has produced <eos> or ``max_len`` tokens.

    ``step(prev (B,), state) -> (logits (B, V), state)``. Returns (B, L) ids, L <= max_len, holding each
    row's tokens up to and including its <eos>, then ``pad_id``.
    """
    prev = torch.full((batch_size,), bos_id, dtype=torch.long, device=device)
    finished = torch.zeros(batch_size, dtype=torch.bool, device=device)
    out = []
    for _ in range(max_len):
        logits, state = step(prev, state)
        token = logits.argmax(dim=-1)  # (B,)
        token = token.masked_fill(finished, pad_id)  # rows that are done only pad
        out.append(token)
        finished = finished | (token == eos_id)
        prev = token
        if bool(finished.all()):
            break
    if not out:
        return torch.zeros(batch_size, 0, dtype=torch.long, device=device)
    return torch.stack(out, dim=1)  # (B, L)


@torch.no_grad()
def greedy_decode(model: nn.Module, src: Tensor, src_lens: Tensor, bos_id: int, eos_id: int,
                  max_len: int = 40, need_weights: bool = True) -> tuple[Tensor, Tensor | None]:
    """Greedy decoding of a course model; returns ids (B, L) and, if the model attends, weights (B, L, S).

    ``need_weights=False`` lets a model that can skip forming its weights (the Transformer) run faster.
    """
    was_training = model.training
    model.eval()
    weights: list[Tensor] = []

    def step(prev: Tensor, state: Any) -> tuple[Tensor, Any]:
        logits, state, w = model.step(prev, state)
        if w is not None:
            weights.append(w)
        return logits, state

    state = model.start(src, src_lens)
    if isinstance(state, dict) and "need_weights" in state:
        state["need_weights"] = need_weights
    ids = greedy_search(step, state, src.shape[0], bos_id, eos_id, max_len, device=src.device)
    model.train(was_training)
    return ids, (torch.stack(weights, dim=1) if weights else None)


def translate(model: nn.Module, sources: Sequence[Sequence[str]], src_vocab: Any, tgt_vocab: Any,
              batch_size: int = 512, max_len: int = 40, return_weights: bool = False
              ) -> list[list[str]] | tuple[list[list[str]], list[Tensor | None]]:
    """Translate token lists by greedy decoding; with ``return_weights``, also each sentence's attention
    weights (L_out + 1, L_src + 1): a row per output token and one for <eos>, a column per source token and one
    for the source's <eos> (None for a model without attention)."""
    device = next(model.parameters()).device
    hyps: list[list[str]] = []
    all_weights: list[Tensor | None] = []
    for start in range(0, len(sources), batch_size):
        chunk = [src_vocab.encode(list(s), add_eos=True) for s in sources[start:start + batch_size]]
        src = pad_sequences(chunk).to(device)
        lens = torch.tensor([len(c) for c in chunk], device=device)
        ids, weights = greedy_decode(model, src, lens, tgt_vocab.bos_id, tgt_vocab.eos_id, max_len,
                                     need_weights=return_weights)
        for i, row in enumerate(ids.tolist()):
            tokens = tgt_vocab.decode(row)
            hyps.append(tokens)
            if return_weights:
                rows = min(len(tokens) + 1, ids.shape[1])
                all_weights.append(None if weights is None else weights[i, :rows, : len(chunk[i])].cpu())
    return (hyps, all_weights) if return_weights else hyps


# --------------------------------------------------------------------------------------------------
# Training with teacher forcing
# --------------------------------------------------------------------------------------------------
@dataclass
class TrainHistory:
    """Per-step training loss, and how long training took."""

    loss: list[float]
    seconds: float
    steps: int
    examples_per_second: float


def smooth(values: Sequence[float], window: int = 25) -> list[float]:
    """Running mean over the last ``window`` values (for a readable loss curve)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def _length_grouped_batches(lengths: Tensor, batch_size: int, generator: torch.Generator,
                            pool: int = 50) -> list[Tensor]:
    """One epoch of batches: shuffle, sort each pool of ``pool`` batches by length, cut, shuffle the batches.

    Sentences of similar length share a batch, so little time goes into padding; the order stays random.
    """
    order = torch.randperm(len(lengths), generator=generator)
    usable = len(order) - len(order) % batch_size  # drop the ragged end: every batch is full
    batches = []
    for start in range(0, usable, pool * batch_size):
        chunk = order[start:min(start + pool * batch_size, usable)]
        chunk = chunk[torch.argsort(lengths[chunk], stable=True)]
        batches += list(chunk.split(batch_size))
    shuffled = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[j] for j in shuffled]


def train_seq2seq(
    model: nn.Module,
    data: PackedPairs,
    steps: int = 1500,
    batch_size: int = 128,
    lr: float = 3e-3,
    warmup: int = 50,
    clip: float = 1.0,
    seed: int = 0,
    progress: bool = True,
    desc: str = "training",
) -> TrainHistory:
    """Adam with linear warm-up then cosine decay; cross-entropy over non-padding target tokens.

    Batches are drawn by a seeded permutation, grouped by target length (less padding) and trimmed to their
    longest sentence.
    """
    from tqdm.auto import tqdm

    if steps <= 0 or batch_size <= 0:
        raise ValueError(f"steps and batch_size must be positive, got {steps} and {batch_size}")
    device = next(model.parameters()).device
    data = data.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    def factor(i: int) -> float:
        if i < warmup:
            return (i + 1) / warmup
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (i - warmup) / max(1, steps - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    generator = torch.Generator().manual_seed(seed)
    batches: list[Tensor] = []
    losses: list[float] = []
    model.train()
    begin = time.perf_counter()
    bar = tqdm(range(steps), desc=desc, disable=not progress, mininterval=1.0)
    for i in bar:
        if not batches:
            batches = _length_grouped_batches(data.tgt_lens.cpu(), batch_size, generator)
        batch = data.take(batches.pop().to(device))
        logits = model(batch.src, batch.src_lens, batch.tgt_in)  # (B, T, V)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.tgt_out.reshape(-1), ignore_index=PAD_ID)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        if i % 50 == 0:
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    seconds = time.perf_counter() - begin
    model.eval()
    return TrainHistory(losses, seconds, steps, steps * batch_size / max(seconds, 1e-9))


# --------------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------------
LENGTH_BUCKETS: tuple[tuple[int, int], ...] = ((1, 4), (5, 8), (9, 12), (13, 16), (17, 20))


def bucket_name(bucket: tuple[int, int]) -> str:
    return f"{bucket[0]}-{bucket[1]}"


def exact_match(hyps: Sequence[Sequence[str]], refs: Sequence[Sequence[str]]) -> float:
    """Fraction of sentences translated exactly right, token for token."""
    if len(hyps) != len(refs) or not refs:
        raise ValueError(f"hyps and refs must be non-empty and equally long, got {len(hyps)} and {len(refs)}")
    return sum(list(h) == list(r) for h, r in zip(hyps, refs)) / len(refs)


def corpus_bleu(hyps: Sequence[Sequence[str]], refs: Sequence[Sequence[str]]) -> float:
    """Corpus BLEU (0-100) of token lists with sacrebleu, tokens taken as they are (``tokenize="none"``)."""
    import sacrebleu

    if len(hyps) != len(refs) or not refs:
        raise ValueError(f"hyps and refs must be non-empty and equally long, got {len(hyps)} and {len(refs)}")
    result = sacrebleu.corpus_bleu([" ".join(h) for h in hyps], [[" ".join(r) for r in refs]], tokenize="none")
    return float(result.score)


def accuracy_by_length(lengths: Sequence[int], correct: Sequence[bool],
                       buckets: Sequence[tuple[int, int]] = LENGTH_BUCKETS) -> list[dict[str, Any]]:
    """Exact-match accuracy per source-length bucket: [{"bucket": "1-4", "n": ..., "accuracy": ...}, ...]."""
    if len(lengths) != len(correct):
        raise ValueError(f"lengths and correct must be equally long, got {len(lengths)} and {len(correct)}")
    rows = []
    for low, high in buckets:
        hits = [bool(c) for n, c in zip(lengths, correct) if low <= n <= high]
        rows.append({"bucket": bucket_name((low, high)), "n": len(hits),
                     "accuracy": sum(hits) / len(hits) if hits else float("nan")})
    return rows


def evaluate(model: nn.Module, pairs: Sequence[Any], src_vocab: Any, tgt_vocab: Any,
             buckets: Sequence[tuple[int, int]] = LENGTH_BUCKETS, max_len: int = 40) -> dict[str, Any]:
    """Greedy-decode ``pairs`` and return exact match, BLEU, accuracy by source length and the hypotheses."""
    sources = [list(p.source) for p in pairs]
    refs = [list(p.target) for p in pairs]
    hyps = translate(model, sources, src_vocab, tgt_vocab, max_len=max_len)
    correct = [h == r for h, r in zip(hyps, refs)]
    return {"exact_match": exact_match(hyps, refs), "bleu": corpus_bleu(hyps, refs),
            "by_length": accuracy_by_length([len(s) for s in sources], correct, buckets), "hyps": hyps}


def format_length_table(results: dict[str, Sequence[dict[str, Any]]]) -> str:
    """One row per bucket, one column per model: exact-match accuracy by source length."""
    if not results:
        raise ValueError("results must name at least one model")
    names = list(results)
    first = results[names[0]]
    width = max(12, *(len(n) + 2 for n in names))
    lines = [f"{'words':>8} {'n':>5}" + "".join(f"{n:>{width}}" for n in names)]
    for i, row in enumerate(first):
        cells = "".join(f"{results[n][i]['accuracy']:>{width}.2f}" for n in names)
        lines.append(f"{row['bucket']:>8} {row['n']:>5}" + cells)
    return "\n".join(lines)


def save_results(path: str | Path, result: dict[str, Any]) -> None:
    """Write a JSON of results atomically (a reader never sees a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def load_results(path: str | Path) -> dict[str, Any]:
    """Read results written by ``save_results``; a missing file says which lesson writes it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path.name} is missing: run the lesson that writes it (07 or 08) first")
    return json.loads(path.read_text(encoding="utf-8"))
