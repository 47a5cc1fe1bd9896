"""Grouped-query attention with a KV cache (Ainslie et al. 2023, arXiv:2305.13245; multi-query: Shazeer 2019,
arXiv:1911.02150), RoPE, ALiBi and a causal sliding window (Beltagy et al. 2020, arXiv:2004.05150).

Introduced in lesson 17.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib._validate import check_int, check_tensor, shape_of
from course_lib.attention.alibi import alibi_bias, alibi_slopes
from course_lib.attention.rotary import apply_rotary

__all__ = ["sliding_window_mask", "repeat_kv", "KVCache", "GroupedQueryAttention", "kv_cache_bytes"]


def sliding_window_mask(t_q: int, t_k: int | None = None, *, window: int,
                        device: torch.device | str | None = None) -> Tensor:
    """(t_q, t_k) causal sliding window (Beltagy et al. 2020, arXiv:2004.05150): query i sees the ``window``
    keys up to and including its own position t_k - t_q + i. Introduced in lesson 17."""
    check_int("t_q", t_q, minimum=0)
    t_k = t_q if t_k is None else check_int("t_k", t_k, minimum=0)
    check_int("window", window, minimum=1)
    query_pos = torch.arange(t_q, device=device)[:, None] + (t_k - t_q)  # (t_q, 1)
    distance = query_pos - torch.arange(t_k, device=device)[None, :]  # (t_q, t_k)
    return (distance >= 0) & (distance < window)


def repeat_kv(kv: Tensor, num_heads: int) -> Tensor:
    """(B, H_kv, T, d) -> (B, H, T, d): query head h reads key/value head h // (H // H_kv) (Ainslie et al. 2023,
    arXiv:2305.13245). Introduced in lesson 17."""
    check_tensor("kv", kv)
    if kv.dim() != 4:
        raise ValueError(f"kv must have shape (B, H_kv, T, d), got {shape_of(kv)}")
    check_int("num_heads", num_heads, minimum=1)
    if num_heads % kv.shape[1]:
        raise ValueError(f"num_heads={num_heads} is not a multiple of the {kv.shape[1]} key/value heads of kv "
                         f"{shape_of(kv)}")
    return kv.repeat_interleave(num_heads // kv.shape[1], dim=1)  # (B, H, T, d): each kv head, group times


class KVCache:
    """Keys and values of the positions seen so far, for one attention layer (Shazeer 2019, arXiv:1911.02150).

    ``GroupedQueryAttention.forward(x_new, is_causal=True, cache=cache)`` appends the new keys and values
    (``num_kv_heads`` heads, already rotated when ``rotary=True``) and attends over every cached position.
    ``len(cache)`` is the number of cached positions; ``offset`` the position of the first one (0 unless a
    ``window`` drops old positions); ``seen`` the number of positions fed so far. Introduced in lesson 17.

    Args:
        window: keep only the last ``window`` positions (a rolling cache for sliding-window attention);
            ``None`` keeps everything.
    """

    def __init__(self, *, window: int | None = None) -> None:
        if window is not None:
            check_int("window", window, minimum=1)
        self.window = window
        self.keys: Tensor | None = None  # (B, H_kv, len, d)
        self.values: Tensor | None = None  # (B, H_kv, len, d)
        self.offset = 0

    def __len__(self) -> int:
        return 0 if self.keys is None else int(self.keys.shape[2])

    @property
    def seen(self) -> int:
        """Positions fed so far (the position the next token will take)."""
        return self.offset + len(self)

    def nbytes(self) -> int:
        """Bytes held by the cached keys and values."""
        if self.keys is None or self.values is None:
            return 0
        return self.keys.numel() * self.keys.element_size() + self.values.numel() * self.values.element_size()

    def append(self, keys: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        """Add (B, H_kv, t_new, d) keys and values; return all cached keys and values, new ones included."""
        if self.keys is None or self.values is None:
            self.keys, self.values = keys, values
        else:
            if keys.shape[:2] != self.keys.shape[:2] or keys.shape[3] != self.keys.shape[3]:
                raise ValueError(f"new keys {shape_of(keys)} do not match the cached keys {shape_of(self.keys)} "
                                 f"(batch, kv heads and head dim must agree)")
            self.keys = torch.cat((self.keys, keys), dim=2)  # (B, H_kv, len + t_new, d)
            self.values = torch.cat((self.values, values), dim=2)
        return self.keys, self.values

    def trim(self) -> None:
        """Drop positions beyond the window (called after attending, so the new queries saw them)."""
        if self.window is not None and self.keys is not None and self.values is not None and len(self) > self.window:
            drop = len(self) - self.window
            self.keys, self.values = self.keys[:, :, drop:], self.values[:, :, drop:]
            self.offset += drop

    def reset(self) -> None:
        """Forget everything."""
        self.keys = self.values = None
        self.offset = 0


class GroupedQueryAttention(nn.Module):
    """Grouped-query self-attention (Ainslie et al. 2023, arXiv:2305.13245); H_kv = H is multi-head attention
    (Vaswani et al. 2017), H_kv = 1 multi-query attention (Shazeer 2019, arXiv:1911.02150).

    Query head h reads key/value head ``h // (num_heads // num_kv_heads)``. Introduced in lesson 17.

    Args:
        d_model: model width D; ``q_proj`` maps D -> D, ``k_proj`` and ``v_proj`` map D -> num_kv_heads * head_dim.
        num_heads: query heads H (head_dim = D / H).
        num_kv_heads: key/value heads H_kv, a divisor of H.
        bias: biases in the four projections.
        rotary: rotate queries and keys by their positions (RoPE, arXiv:2104.09864).
        alibi: add the ALiBi bias -slope_h * (i - j) to the scores (arXiv:2108.12409).
        window: causal sliding window of this many keys (arXiv:2004.05150); ``None`` for none.
        rope_base: RoPE's base (10000 in the paper).
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        num_kv_heads: int,
        *,
        bias: bool = True,
        rotary: bool = False,
        alibi: bool = False,
        window: int | None = None,
        rope_base: float = 10000.0,
    ) -> None:
        super().__init__()
        for name, value in (("d_model", d_model), ("num_heads", num_heads), ("num_kv_heads", num_kv_heads)):
            check_int(name, value, minimum=1)
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} is not divisible by num_heads={num_heads}")
        if num_heads % num_kv_heads:
            raise ValueError(f"num_heads={num_heads} is not divisible by num_kv_heads={num_kv_heads}: every group "
                             f"of query heads must share one key/value head")
        if window is not None:
            check_int("window", window, minimum=1)
        self.d_model, self.num_heads, self.num_kv_heads = d_model, num_heads, num_kv_heads
        self.head_dim = d_model // num_heads
        if rotary and self.head_dim % 2:
            raise ValueError(f"rotary=True needs an even head_dim, got d_model={d_model} / num_heads={num_heads} "
                             f"= {self.head_dim}")
        self.group_size = num_heads // num_kv_heads
        self.rotary, self.alibi, self.window, self.rope_base = rotary, alibi, window, rope_base
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, num_kv_heads * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(d_model, num_kv_heads * self.head_dim, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        if alibi:
            self.register_buffer("slopes", alibi_slopes(num_heads), persistent=False)

    def extra_repr(self) -> str:
        return (f"d_model={self.d_model}, num_heads={self.num_heads}, num_kv_heads={self.num_kv_heads}, "
                f"rotary={self.rotary}, alibi={self.alibi}, window={self.window}")

    def _split(self, x: Tensor, heads: int) -> Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, heads, self.head_dim).transpose(1, 2)  # (B, heads, T, d)

    def _allowed(self, mask: Tensor | None, is_causal: bool, t_q: int, t_k: int, device: torch.device) -> Tensor | None:
        allowed: Tensor | None = None
        if self.window is not None:
            allowed = sliding_window_mask(t_q, t_k, window=self.window, device=device)  # (t_q, t_k), causal
        elif is_causal and t_q > 1:  # one new query (decoding with a cache) may see every cached key
            allowed = torch.ones(t_q, t_k, dtype=torch.bool, device=device).tril(t_k - t_q)  # bottom-right aligned
        if mask is not None:
            allowed = mask.to(device) if allowed is None else mask.to(device) & allowed
        return allowed

    def attend(
        self,
        x: Tensor,
        *,
        mask: Tensor | None = None,
        is_causal: bool = False,
        cache: KVCache | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """Like ``forward`` but returns ``(out, weights)``, weights (B, H, T, T_k) when ``need_weights``."""
        check_tensor("x", x)
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"x must have shape (B, T, {self.d_model}), got {shape_of(x)}")
        if cache is not None and not isinstance(cache, KVCache):
            raise TypeError(f"cache must be a KVCache, got {type(cache).__name__}")
        if self.window is not None and not is_causal:
            raise ValueError("a sliding window is causal: call with is_causal=True")
        batch, t_new, _ = x.shape
        start = 0 if cache is None else cache.seen  # absolute position of the first new token
        if cache is not None and cache.keys is not None and cache.keys.shape[0] != batch:
            raise ValueError(f"x has batch {batch} but the cache holds keys of shape {shape_of(cache.keys)}")
        q = self._split(self.q_proj(x), self.num_heads)  # (B, H, t_new, d)
        k = self._split(self.k_proj(x), self.num_kv_heads)  # (B, H_kv, t_new, d)
        v = self._split(self.v_proj(x), self.num_kv_heads)  # (B, H_kv, t_new, d)
        if self.rotary:
            positions = torch.arange(start, start + t_new, device=x.device)  # (t_new,)
            q = apply_rotary(q, positions, base=self.rope_base)
            k = apply_rotary(k, positions, base=self.rope_base)
        if cache is not None:
            k, v = cache.append(k, v)  # (B, H_kv, T_k, d): the past, then the new positions
        t_k = k.shape[2]
        if mask is not None:
            check_tensor("mask", mask)
            if mask.dtype != torch.bool:
                raise TypeError(f"mask must be a boolean tensor (True = may attend), got dtype {mask.dtype}")
            if mask.dim() == 3:
                mask = mask.unsqueeze(1)  # (B, 1, T, T_k): the same mask for every head, as MultiHeadAttention
            target = (batch, self.num_heads, t_new, t_k)
            pairs = zip(reversed(shape_of(mask)), reversed(target), strict=False)  # trailing axes, as broadcasting
            if mask.dim() > 4 or any(s not in (1, t) for s, t in pairs):
                raise ValueError(f"mask of shape {shape_of(mask)} does not broadcast to the scores' shape {target}")
        allowed = self._allowed(mask, is_causal, t_new, t_k, x.device)
        k_all, v_all = repeat_kv(k, self.num_heads), repeat_kv(v, self.num_heads)  # (B, H, T_k, d)
        bias: Tensor | None = None
        if self.alibi:
            bias = alibi_bias(self.num_heads, t_new, t_k).to(device=x.device, dtype=q.dtype)  # (H, t_new, T_k)
        if need_weights or bias is not None or (allowed is not None and not bool(allowed.any(-1).all())):
            scores = q @ k_all.transpose(-2, -1) / math.sqrt(self.head_dim)  # (B, H, t_new, T_k)
            if bias is not None:
                scores = scores + bias
            if allowed is not None:
                scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
            weights = torch.softmax(scores, dim=-1)
            if allowed is not None:
                weights = weights * allowed  # masked weights exactly 0; a row with nothing to attend is all 0
            heads = weights @ v_all  # (B, H, t_new, d)
        else:
            weights = None
            if is_causal and mask is None and self.window is None and t_new == t_k:  # the fused causal kernel
                heads = F.scaled_dot_product_attention(q, k_all, v_all, is_causal=True)  # (B, H, t_new, d)
            else:
                heads = F.scaled_dot_product_attention(q, k_all, v_all, attn_mask=allowed)  # (B, H, t_new, d)
        if cache is not None:
            cache.trim()
        merged = heads.transpose(1, 2).reshape(batch, t_new, self.d_model)  # (B, t_new, H*d)
        return self.out_proj(merged), (weights if need_weights else None)

    def forward(
        self,
        x: Tensor,
        *,
        mask: Tensor | None = None,
        is_causal: bool = False,
        cache: KVCache | None = None,
    ) -> Tensor:
        """Self-attention over x (B, T, d_model) -> (B, T, d_model); with ``cache``, over the cached positions too."""
        return self.attend(x, mask=mask, is_causal=is_causal, cache=cache)[0]

    @classmethod
    def from_mha(cls, mha: Any, *, rotary: bool = False) -> GroupedQueryAttention:
        """Copy a ``course_lib.attention.MultiHeadAttention`` (self-attention) into a GQA with H_kv = H."""
        if mha.kdim != mha.d_model or mha.vdim != mha.d_model:
            raise ValueError(f"from_mha needs self-attention weights (kdim = vdim = d_model = {mha.d_model}), got "
                             f"kdim={mha.kdim}, vdim={mha.vdim}")
        ours = cls(mha.d_model, mha.num_heads, mha.num_heads, bias=mha.q_proj.bias is not None, rotary=rotary)
        ours.load_state_dict(mha.state_dict(), strict=False)
        return ours.to(mha.q_proj.weight.device)


def kv_cache_bytes(*, num_layers: int, num_kv_heads: int, head_dim: int, tokens: int, batch: int = 1,
                   bytes_per_value: int = 4) -> int:
    """Size of a KV cache by formula: 2 (keys and values) x layers x kv heads x head dim x tokens x batch x bytes.

    Shazeer 2019 (arXiv:1911.02150) on why this memory dominates decoding. Introduced in lesson 17.
    """
    return 2 * num_layers * num_kv_heads * head_dim * tokens * batch * bytes_per_value
