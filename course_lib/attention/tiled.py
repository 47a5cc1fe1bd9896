"""Tiled attention by online softmax: Milakov & Gimelshein 2018 (arXiv:1805.02867), Dao et al. 2022
(FlashAttention, arXiv:2205.14135). Introduced in lesson 16.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from course_lib._validate import check_bool, check_bool_mask, positive_int
from course_lib.attention.sdpa import check_qkv

__all__ = ["tiled_attention"]


def tiled_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    mask: Tensor | None = None,
    is_causal: bool = False,
    block_size: int = 128,
) -> Tensor:
    """Attention by online softmax over key/value blocks: never forms the (T_q, T_k) matrix.

    Per query row keep a running max ``m``, a running denominator ``l`` and an accumulator ``acc``;
    each block rescales the old ``l`` and ``acc`` by ``exp(m_old - m_new)``. Memory grows as
    T_q * block_size rather than T_q * T_k. Rows with nothing to attend give zeros. Introduced in lesson 16.

    Args:
        q, k, v: (..., T_q, d), (..., T_k, d), (..., T_k, d_v).
        mask: boolean, broadcastable to (..., T_q, T_k); True means "may attend".
        is_causal: query i attends to keys 0..i only.
        block_size: number of keys per block.
    """
    check_qkv(q, k, v)
    block_size = positive_int("block_size", block_size)
    check_bool("is_causal", is_causal)
    t_q, t_k = q.shape[-2], k.shape[-2]
    check_bool_mask("mask", mask, (*q.shape[:-1], t_k))
    scale = 1.0 / math.sqrt(q.shape[-1])
    lead = q.shape[:-2]
    m = torch.full((*lead, t_q, 1), -math.inf, dtype=q.dtype, device=q.device)  # running max
    denom = torch.zeros((*lead, t_q, 1), dtype=q.dtype, device=q.device)  # running denominator l
    acc = torch.zeros((*lead, t_q, v.shape[-1]), dtype=q.dtype, device=q.device)  # running numerator
    query_pos = torch.arange(t_q, device=q.device)[:, None]  # (T_q, 1)
    for start in range(0, t_k, block_size):
        stop = min(start + block_size, t_k)
        scores = (q @ k[..., start:stop, :].transpose(-2, -1)) * scale  # (..., T_q, block)
        if is_causal:
            key_pos = torch.arange(start, stop, device=q.device)[None, :]  # (1, block)
            scores = scores.masked_fill(key_pos > query_pos, -math.inf)
        if mask is not None:
            block_mask = mask.to(q.device)[..., start:stop] if mask.shape[-1] != 1 else mask.to(q.device)
            scores = scores.masked_fill(~block_mask, -math.inf)
        m_new = torch.maximum(m, scores.amax(dim=-1, keepdim=True))
        # Rows that have seen no allowed key keep m = -inf; shift them by 0 so exp() gives 0, not NaN.
        shift = torch.where(torch.isinf(m_new), torch.zeros_like(m_new), m_new)
        p = torch.exp(scores - shift)  # (..., T_q, block), 0 where masked
        alpha = torch.exp(m - shift)  # rescales what was accumulated under the old max
        denom = alpha * denom + p.sum(dim=-1, keepdim=True)
        acc = alpha * acc + p @ v[..., start:stop, :]
        m = m_new
    return torch.where(denom > 0, acc / denom.clamp_min(torch.finfo(denom.dtype).tiny), torch.zeros_like(acc))
