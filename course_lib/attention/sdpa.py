"""Scaled dot-product attention, naive, fused (torch SDPA) or tiled: Vaswani et al. 2017, arXiv:1706.03762.

Introduced in lesson 03 (naive), lesson 16 (the fused and tiled paths).
"""

from __future__ import annotations

from typing import Literal, overload

import torch
import torch.nn.functional as F
from torch import Tensor

from course_lib._validate import check_bool, check_bool_mask, check_choice, check_probability, check_tensor
from course_lib.attention.masking import causal_mask, masked_softmax
from course_lib.attention.scoring import check_qk, dot_product_scores

__all__ = ["IMPLS", "Impl", "scaled_dot_product_attention"]

IMPLS = ("auto", "naive", "sdpa", "tiled")
Impl = Literal["auto", "naive", "sdpa", "tiled"]


def check_qkv(q: Tensor, k: Tensor, v: Tensor) -> None:
    """q (..., T_q, d), k (..., T_k, d), v (..., T_k, d_v) on one device, of one dtype."""
    check_qk(q, k)
    check_tensor("v", v, min_dim=2, floating=True)
    if v.shape[-2] != k.shape[-2]:
        raise ValueError(f"k and v must have the same number of keys (axis -2), got k {tuple(k.shape)} and v "
                         f"{tuple(v.shape)}")
    if v.shape[:-2] != k.shape[:-2]:
        raise ValueError(f"k and v must share their leading dimensions, got k {tuple(k.shape)} and v {tuple(v.shape)}")
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k and v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k and v must live on one device, got {q.device}, {k.device}, {v.device}")


def combined_mask(mask: Tensor | None, is_causal: bool, t_q: int, t_k: int, device: torch.device) -> Tensor | None:
    """``mask`` and the causal mask together (True = may attend), or None when neither applies."""
    if is_causal:
        causal = causal_mask(t_q, t_k, device=device)
        return causal if mask is None else mask.to(device) & causal
    return None if mask is None else mask.to(device)


@overload
def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, *, mask: Tensor | None = ...,
                                 dropout_p: float = ..., is_causal: bool = ..., impl: Impl = ...,
                                 return_weights: Literal[False] = ...) -> Tensor: ...
@overload
def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, *, mask: Tensor | None = ...,
                                 dropout_p: float = ..., is_causal: bool = ..., impl: Impl = ...,
                                 return_weights: Literal[True]) -> tuple[Tensor, Tensor]: ...
def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    mask: Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    impl: Impl = "auto",
    return_weights: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """softmax(q k^T / sqrt(d)) v for q (..., T_q, d), k (..., T_k, d), v (..., T_k, d_v).

    The flags are keyword-only, in the order of ``torch.nn.functional.scaled_dot_product_attention``.
    Returns ``out`` or, with ``return_weights=True``, ``(out, weights)``. Introduced in lesson 03.

    Args:
        q, k, v: queries, keys and values, batch first, on one device.
        mask: boolean, broadcastable to (..., T_q, T_k); True means "may attend"; combines with ``is_causal``.
        dropout_p: dropout on the weights (pass 0 at evaluation).
        is_causal: query i attends to keys 0..i only (aligned top-left).
        impl: "naive" forms the (T_q, T_k) weights in the open; "sdpa" calls torch's fused kernel on
            whatever device the tensors live on; "tiled" runs the online-softmax loop of
            ``tiled_attention``; "auto" takes the fused kernel unless weights are asked for.
        return_weights: also return the (..., T_q, T_k) weights (naive path only).
    """
    check_choice("impl", impl, IMPLS)
    check_qkv(q, k, v)
    dropout_p = check_probability("dropout_p", dropout_p)
    check_bool("is_causal", is_causal)
    check_bool("return_weights", return_weights)
    check_bool_mask("mask", mask, (*q.shape[:-1], k.shape[-2]))
    if impl == "auto":
        impl = "naive" if return_weights else "sdpa"
    if return_weights and impl != "naive":
        raise ValueError(f"impl={impl!r} never forms the attention weights; use impl='naive' or 'auto' "
                         f"with return_weights=True")
    allowed = combined_mask(mask, is_causal, q.shape[-2], k.shape[-2], q.device)

    if impl == "naive":
        weights = masked_softmax(dot_product_scores(q, k), mask=allowed)
        dropped = F.dropout(weights, p=dropout_p) if dropout_p > 0 else weights
        out = dropped @ v
        return (out, weights) if return_weights else out

    if impl == "tiled":
        if dropout_p > 0:
            raise ValueError("impl='tiled' does not implement dropout; use impl='naive' or 'sdpa'")
        from course_lib.attention.tiled import tiled_attention

        return tiled_attention(q, k, v, mask=mask, is_causal=is_causal)

    # impl == "sdpa": torch's fused kernels. Rows with nothing to attend would come back as NaN from
    # some backends, so they attend to everything inside the kernel and are zeroed afterwards.
    if allowed is None:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
    empty_rows = ~allowed.any(dim=-1, keepdim=True)  # (..., T_q, 1)
    if not bool(empty_rows.any()):
        if is_causal and mask is None:
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=dropout_p)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed | empty_rows, dropout_p=dropout_p)
    return out.masked_fill(empty_rows, 0.0)
