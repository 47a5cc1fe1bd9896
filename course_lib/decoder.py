"""A tiny decoder-only Transformer language model (GPT-style) on grouped-query attention, for lesson 17.

Positions learned, sinusoidal (Vaswani et al. 2017, arXiv:1706.03762), RoPE (arXiv:2104.09864), ALiBi
(arXiv:2108.12409) or none; greedy generation with or without a KV cache. Introduced in lesson 17.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from course_lib._validate import check_int, check_tensor, shape_of
from course_lib.attention.grouped_query import GroupedQueryAttention, KVCache
from course_lib.attention.positional import SinusoidalPositionalEncoding

__all__ = ["POSITIONS", "DecoderBlock", "TinyDecoder"]


POSITIONS = ("learned", "sinusoidal", "rope", "alibi", "none")
Positions = Literal["learned", "sinusoidal", "rope", "alibi", "none"]


class DecoderBlock(nn.Module):
    """Pre-LayerNorm decoder block: x + attention(LN(x)), then x + MLP(LN(x)) (as in GPT-2, Radford et al. 2019).

    Introduced in lesson 17.

    Args:
        d_model: model width D.
        num_heads: query heads.
        num_kv_heads: key/value heads.
        positions: "rope" or "alibi" switch them on in the attention; other values leave it position-free.
        window: causal sliding-window size, ``None`` for full causal attention.
        mlp_ratio: the MLP's hidden width is ``mlp_ratio * d_model``.
    """

    def __init__(self, d_model: int, num_heads: int, num_kv_heads: int, *, positions: Positions,
                 window: int | None, mlp_ratio: int = 4) -> None:
        super().__init__()
        self.attn_norm = nn.LayerNorm(d_model)
        self.attn = GroupedQueryAttention(d_model, num_heads, num_kv_heads, rotary=positions == "rope",
                                          alibi=positions == "alibi", window=window)
        self.mlp_norm = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, mlp_ratio * d_model), nn.GELU(),
                                 nn.Linear(mlp_ratio * d_model, d_model))

    def forward(self, x: Tensor, *, cache: KVCache | None = None, need_weights: bool = False
                ) -> tuple[Tensor, Tensor | None]:
        """x (B, T, D) -> (B, T, D) and, with ``need_weights``, the attention weights (B, H, T, T_k)."""
        attended, weights = self.attn.attend(self.attn_norm(x), is_causal=True, cache=cache, need_weights=need_weights)
        x = x + attended
        return x + self.mlp(self.mlp_norm(x)), weights


class TinyDecoder(nn.Module):
    """A tiny decoder-only Transformer language model (GPT-style, Radford et al. 2018) built on
    ``GroupedQueryAttention``. Introduced in lesson 17.

    Args:
        vocab_size: number of token ids.
        d_model: model width D.
        num_layers: decoder blocks.
        num_heads: query heads per layer.
        num_kv_heads: key/value heads per layer (``None``: as many as query heads, i.e. MHA).
        positions: "learned" (an embedding per position up to ``max_len``), "sinusoidal" (Vaswani et al.
            2017), "rope", "alibi" or "none".
        max_len: longest sequence for "learned" and "sinusoidal" positions.
        window: causal sliding-window size of every layer, ``None`` for full causal attention.
    """

    def __init__(self, vocab_size: int, *, d_model: int = 64, num_layers: int = 2, num_heads: int = 4,
                 num_kv_heads: int | None = None, positions: Positions = "rope", max_len: int = 512,
                 window: int | None = None) -> None:
        super().__init__()
        check_int("vocab_size", vocab_size, minimum=1)
        check_int("num_layers", num_layers, minimum=1)
        check_int("max_len", max_len, minimum=1)
        if positions not in POSITIONS:
            raise ValueError(f"positions must be one of {POSITIONS}, got {positions!r}")
        num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
        self.positions, self.max_len, self.window = positions, max_len, window
        self.token_embedding = nn.Embedding(vocab_size, d_model)
        self.position_embedding = nn.Embedding(max_len, d_model) if positions == "learned" else None
        if positions == "sinusoidal":
            # the fixed table of lesson 05 (Vaswani et al. 2017)
            table = SinusoidalPositionalEncoding(d_model, max_len=max_len).pe
            self.register_buffer("sinusoidal", table, persistent=False)
        else:
            self.sinusoidal = None
        self.blocks = nn.ModuleList(DecoderBlock(d_model, num_heads, num_kv_heads, positions=positions, window=window)
                                    for _ in range(num_layers))
        self.final_norm = nn.LayerNorm(d_model)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)

    @property
    def num_layers(self) -> int:
        return len(self.blocks)

    def new_cache(self) -> list[KVCache]:
        """One empty KVCache per layer (rolling, of the window's size, when the model has a window)."""
        return [KVCache(window=self.window) for _ in self.blocks]

    def forward(self, tokens: Tensor, *, cache: list[KVCache] | None = None, need_weights: bool = False
                ) -> Tensor | tuple[Tensor, list[Tensor]]:
        """tokens (B, T) -> logits (B, T, vocab); with ``need_weights``, also each layer's (B, H, T, T_k) weights."""
        check_tensor("tokens", tokens)
        if tokens.dim() != 2 or tokens.is_floating_point():
            raise ValueError(f"tokens must be (B, T) integer ids, got shape {shape_of(tokens)} and dtype "
                             f"{tokens.dtype}")
        if cache is not None and len(cache) != len(self.blocks):
            raise ValueError(f"cache must hold one KVCache per layer ({len(self.blocks)}), got {len(cache)}")
        start = 0 if cache is None else cache[0].seen
        length = tokens.shape[1]
        x = self.token_embedding(tokens)  # (B, T, D)
        if self.positions in ("learned", "sinusoidal") and start + length > self.max_len:
            raise ValueError(f"positions up to {start + length} exceed max_len={self.max_len}")
        if self.position_embedding is not None:
            x = x + self.position_embedding(torch.arange(start, start + length, device=tokens.device))
        if self.sinusoidal is not None:
            x = x + self.sinusoidal[start:start + length].to(x.dtype)
        all_weights = []
        for i, block in enumerate(self.blocks):
            x, weights = block(x, cache=None if cache is None else cache[i], need_weights=need_weights)
            all_weights.append(weights)
        logits = self.lm_head(self.final_norm(x))  # (B, T, vocab)
        return (logits, all_weights) if need_weights else logits

    @torch.no_grad()
    def generate(self, prompt: Tensor, max_new_tokens: int, *, use_cache: bool = True) -> Tensor:
        """Greedy decoding: prompt (B, T) -> (B, T + max_new_tokens). Without the cache, each step runs the
        whole sequence again; with it, each step feeds only the newest token."""
        check_tensor("prompt", prompt)
        check_int("max_new_tokens", max_new_tokens, minimum=0)
        if prompt.dim() != 2 or prompt.shape[1] == 0:
            raise ValueError(f"prompt must be (B, T) ids with T >= 1, got shape {shape_of(prompt)}")
        tokens = prompt
        if use_cache:
            cache = self.new_cache()
            logits = self(prompt, cache=cache)
            assert isinstance(logits, Tensor)
            for _ in range(max_new_tokens):
                next_token = logits[:, -1].argmax(-1, keepdim=True)  # (B, 1)
                tokens = torch.cat((tokens, next_token), dim=1)
                logits = self(next_token, cache=cache)
                assert isinstance(logits, Tensor)
            return tokens
        for _ in range(max_new_tokens):
            logits = self(tokens)
            assert isinstance(logits, Tensor)
            tokens = torch.cat((tokens, logits[:, -1].argmax(-1, keepdim=True)), dim=1)
        return tokens
