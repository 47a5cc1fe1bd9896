"""Attention building blocks: masks, scores, scaled dot-product attention (naive, fused, tiled), MHA.

Conventions (the course's contract): batch first; boolean masks where True means "may attend", as in
``torch.nn.functional.scaled_dot_product_attention``; a query row with nothing to attend gives zeros,
never NaN; bad input raises a ``ValueError``/``TypeError`` naming the argument and the shapes.

Papers: Bahdanau et al. 2015 (additive scores, arXiv:1409.0473); Luong et al. 2015 (bilinear "general"
scores, arXiv:1508.04025); Vaswani et al. 2017 (scaled dot product, multi-head, sinusoidal positions,
arXiv:1706.03762); Milakov & Gimelshein 2018 and Dao et al. 2022 (online softmax and tiling,
arXiv:1805.02867, arXiv:2205.14135).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "IMPLS",
    "masked_softmax",
    "causal_mask",
    "local_mask",
    "lengths_to_mask",
    "dot_product_scores",
    "AdditiveScores",
    "BilinearScores",
    "scaled_dot_product_attention",
    "tiled_attention",
    "nadaraya_watson",
    "KERNELS",
    "MultiHeadAttention",
    "SinusoidalPositionalEncoding",
]

IMPLS = ("auto", "naive", "sdpa", "tiled")
Impl = Literal["auto", "naive", "sdpa", "tiled"]


# --------------------------------------------------------------------------------------------------
# Validation helpers: every public function checks its input here, so a learner sees which argument
# is wrong and what shapes were seen, instead of a shape error from deep inside torch.
# --------------------------------------------------------------------------------------------------
def _shape(t: Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def _require_tensor(name: str, value: object, min_dim: int = 0) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.dim() < min_dim:
        raise ValueError(f"{name} must have at least {min_dim} dimensions, got shape {_shape(value)}")
    return value


def _require_float(name: str, value: Tensor) -> None:
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")


def _broadcastable(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    if len(shape) > len(target):
        return False
    for s, t in zip(reversed(shape), reversed(target)):
        if s != 1 and s != t:
            return False
    return True


def _check_mask(mask: Tensor | None, target: tuple[int, ...], name: str = "mask") -> Tensor | None:
    if mask is None:
        return None
    _require_tensor(name, mask)
    if mask.dtype != torch.bool:
        raise TypeError(f"{name} must be a boolean tensor (True = may attend), got dtype {mask.dtype}; "
                        f"for an additive float mask use mask = (float_mask == 0)")
    if not _broadcastable(_shape(mask), target):
        raise ValueError(f"{name} of shape {_shape(mask)} does not broadcast to the scores' shape {target}")
    return mask


def _valid_lens_mask(valid_lens: Tensor, scores_shape: tuple[int, ...]) -> Tensor:
    """Turn ``valid_lens`` of shape (B,) or (B, T_q) into a boolean mask broadcastable to the scores."""
    _require_tensor("valid_lens", valid_lens)
    if valid_lens.is_floating_point() and not torch.all(valid_lens == valid_lens.round()):
        raise ValueError("valid_lens must hold whole numbers of keys")
    if len(scores_shape) < 3:
        raise ValueError(f"valid_lens needs scores of shape (B, ..., T_q, T_k), got scores of shape {scores_shape}")
    batch, t_q, t_k = scores_shape[0], scores_shape[-2], scores_shape[-1]
    middle = len(scores_shape) - 3  # extra axes such as heads
    if valid_lens.dim() == 1 and valid_lens.shape[0] == batch:
        lens = valid_lens.view(batch, *([1] * middle), 1, 1)
    elif valid_lens.dim() == 2 and _shape(valid_lens) == (batch, t_q):
        lens = valid_lens.view(batch, *([1] * middle), t_q, 1)
    else:
        raise ValueError(f"valid_lens must have shape (B,) = ({batch},) or (B, T_q) = ({batch}, {t_q}), "
                         f"got {_shape(valid_lens)} for scores of shape {scores_shape}")
    if torch.any(valid_lens < 0):
        raise ValueError("valid_lens must be >= 0")
    positions = torch.arange(t_k, device=valid_lens.device)
    return positions < lens.to(positions.dtype if not lens.is_floating_point() else lens.dtype)


# --------------------------------------------------------------------------------------------------
# Masks and softmax
# --------------------------------------------------------------------------------------------------
def masked_softmax(scores: Tensor, mask: Tensor | None = None, valid_lens: Tensor | None = None) -> Tensor:
    """Softmax over the last axis that gives exactly 0 where ``mask`` is False or beyond ``valid_lens``.

    A row with nothing to attend gives all zeros (not NaN), and its gradient stays finite.
    """
    _require_tensor("scores", scores, min_dim=1)
    _require_float("scores", scores)
    allowed = _check_mask(mask, _shape(scores))
    if valid_lens is not None:
        by_len = _valid_lens_mask(valid_lens, _shape(scores))
        allowed = by_len if allowed is None else allowed & by_len
    if allowed is None:
        return torch.softmax(scores, dim=-1)
    allowed = allowed.to(scores.device)
    # A large finite negative (not -inf) keeps fully masked rows finite; multiplying by the mask then
    # makes masked weights exactly zero.
    very_negative = torch.finfo(scores.dtype).min
    weights = torch.softmax(scores.masked_fill(~allowed, very_negative), dim=-1)
    return weights * allowed


def causal_mask(t_q: int, t_k: int | None = None, device: torch.device | str | None = None) -> Tensor:
    """(t_q, t_k) boolean mask, True on and below the diagonal: query i may attend to keys 0..i.

    Aligned top-left, as ``is_causal=True`` in torch's ``scaled_dot_product_attention``.
    """
    t_k = t_q if t_k is None else t_k
    for name, value in (("t_q", t_q), ("t_k", t_k)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    return torch.ones(t_q, t_k, dtype=torch.bool, device=device).tril()


def local_mask(t_q: int, t_k: int, window: int, device: torch.device | str | None = None) -> Tensor:
    """(t_q, t_k) boolean band mask, True where |i - j| <= window: query i may attend to keys i-w..i+w.

    Local (windowed) attention, Luong et al. 2015 (arXiv:1508.04025), Beltagy et al. 2020 (Longformer,
    arXiv:2004.05150). Aligned top-left like ``causal_mask``; ``local_mask(t, t, w) & causal_mask(t)``
    is the causal sliding window.
    """
    for name, value in (("t_q", t_q), ("t_k", t_k), ("window", window)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    offsets = torch.arange(t_q, device=device)[:, None] - torch.arange(t_k, device=device)[None, :]  # (t_q, t_k)
    return offsets.abs() <= window


def lengths_to_mask(valid_lens: Tensor, max_len: int) -> Tensor:
    """(B,) lengths -> (B, max_len) boolean mask, True for the first ``valid_lens[b]`` positions."""
    _require_tensor("valid_lens", valid_lens)
    if valid_lens.dim() != 1:
        raise ValueError(f"valid_lens must have shape (B,), got {_shape(valid_lens)}")
    if not isinstance(max_len, int) or max_len < 0:
        raise ValueError(f"max_len must be an int >= 0, got {max_len!r}")
    if valid_lens.numel() and (valid_lens.min() < 0 or valid_lens.max() > max_len):
        raise ValueError(f"valid_lens must lie in [0, max_len={max_len}], got min {valid_lens.min().item()} "
                         f"and max {valid_lens.max().item()}")
    return torch.arange(max_len, device=valid_lens.device)[None, :] < valid_lens[:, None]


# --------------------------------------------------------------------------------------------------
# Scoring functions
# --------------------------------------------------------------------------------------------------
def _check_qk(q: Tensor, k: Tensor) -> None:
    _require_tensor("q", q, min_dim=2)
    _require_tensor("k", k, min_dim=2)
    _require_float("q", q)
    _require_float("k", k)
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must share their last (head) dimension, got q {_shape(q)} and k {_shape(k)}")
    if q.shape[:-2] != k.shape[:-2]:
        raise ValueError(f"q and k must share their leading (batch, head) dimensions, got q {_shape(q)} "
                         f"and k {_shape(k)}")


def dot_product_scores(q: Tensor, k: Tensor, scale: float | None = None) -> Tensor:
    """(..., T_q, d), (..., T_k, d) -> (..., T_q, T_k) scores ``q k^T * scale``; ``scale=None`` is 1/sqrt(d)."""
    _check_qk(q, k)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    return (q @ k.transpose(-2, -1)) * scale


class AdditiveScores(nn.Module):
    """Additive (Bahdanau) scores ``w_v^T tanh(W_q q + W_k k)``, arXiv:1409.0473."""

    def __init__(self, query_dim: int, key_dim: int, hidden_dim: int) -> None:
        super().__init__()
        for name, value in (("query_dim", query_dim), ("key_dim", key_dim), ("hidden_dim", hidden_dim)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.query_dim, self.key_dim, self.hidden_dim = query_dim, key_dim, hidden_dim
        self.q_proj = nn.Linear(query_dim, hidden_dim, bias=False)
        self.k_proj = nn.Linear(key_dim, hidden_dim, bias=False)
        self.v = nn.Linear(hidden_dim, 1, bias=False)

    def forward(self, q: Tensor, k: Tensor) -> Tensor:
        _require_tensor("q", q, min_dim=2)
        _require_tensor("k", k, min_dim=2)
        if q.shape[-1] != self.query_dim or k.shape[-1] != self.key_dim:
            raise ValueError(f"AdditiveScores expects q (..., T_q, {self.query_dim}) and k (..., T_k, "
                             f"{self.key_dim}), got q {_shape(q)} and k {_shape(k)}")
        if q.shape[:-2] != k.shape[:-2]:
            raise ValueError(f"q and k must share their leading dimensions, got q {_shape(q)} and k {_shape(k)}")
        features = self.q_proj(q).unsqueeze(-2) + self.k_proj(k).unsqueeze(-3)  # (..., T_q, T_k, hidden)
        return self.v(torch.tanh(features)).squeeze(-1)  # (..., T_q, T_k)


class BilinearScores(nn.Module):
    """Bilinear ("general", Luong) scores ``q W k^T``, arXiv:1508.04025."""

    def __init__(self, query_dim: int, key_dim: int) -> None:
        super().__init__()
        for name, value in (("query_dim", query_dim), ("key_dim", key_dim)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.query_dim, self.key_dim = query_dim, key_dim
        self.weight = nn.Parameter(torch.empty(query_dim, key_dim))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, q: Tensor, k: Tensor) -> Tensor:
        _require_tensor("q", q, min_dim=2)
        _require_tensor("k", k, min_dim=2)
        if q.shape[-1] != self.query_dim or k.shape[-1] != self.key_dim:
            raise ValueError(f"BilinearScores expects q (..., T_q, {self.query_dim}) and k (..., T_k, "
                             f"{self.key_dim}), got q {_shape(q)} and k {_shape(k)}")
        if q.shape[:-2] != k.shape[:-2]:
            raise ValueError(f"q and k must share their leading dimensions, got q {_shape(q)} and k {_shape(k)}")
        return (q @ self.weight) @ k.transpose(-2, -1)  # (..., T_q, T_k)


# --------------------------------------------------------------------------------------------------
# Scaled dot-product attention: naive, fused (torch SDPA) and tiled (online softmax)
# --------------------------------------------------------------------------------------------------
def _check_qkv(q: Tensor, k: Tensor, v: Tensor) -> None:
    _check_qk(q, k)
    _require_tensor("v", v, min_dim=2)
    _require_float("v", v)
    if v.shape[-2] != k.shape[-2]:
        raise ValueError(f"k and v must have the same number of keys (axis -2), got k {_shape(k)} and v {_shape(v)}")
    if v.shape[:-2] != k.shape[:-2]:
        raise ValueError(f"k and v must share their leading dimensions, got k {_shape(k)} and v {_shape(v)}")
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k and v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k and v must live on one device, got {q.device}, {k.device}, {v.device}")


def _combined_mask(mask: Tensor | None, is_causal: bool, t_q: int, t_k: int, device: torch.device) -> Tensor | None:
    if is_causal:
        causal = causal_mask(t_q, t_k, device=device)
        return causal if mask is None else mask.to(device) & causal
    return None if mask is None else mask.to(device)


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    is_causal: bool = False,
    dropout_p: float = 0.0,
    impl: Impl = "auto",
    return_weights: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """softmax(q k^T / sqrt(d)) v for q (..., T_q, d), k (..., T_k, d), v (..., T_k, d_v).

    ``impl``: "naive" forms the (T_q, T_k) weights in the open; "sdpa" calls torch's fused kernel on
    whatever device the tensors live on; "tiled" runs the online-softmax loop of ``tiled_attention``;
    "auto" takes the fused kernel unless weights are asked for. ``mask`` (True = may attend) and
    ``is_causal`` may be combined. Returns ``out`` or, with ``return_weights=True``, ``(out, weights)``.
    """
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    _check_qkv(q, k, v)
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must lie in [0, 1), got {dropout_p}")
    scores_shape = (*q.shape[:-1], k.shape[-2])
    _check_mask(mask, scores_shape)
    if impl == "auto":
        impl = "naive" if return_weights else "sdpa"
    if return_weights and impl != "naive":
        raise ValueError(f"impl={impl!r} never forms the attention weights; use impl='naive' or 'auto' "
                         f"with return_weights=True")
    allowed = _combined_mask(mask, is_causal, q.shape[-2], k.shape[-2], q.device)

    if impl == "naive":
        weights = masked_softmax(dot_product_scores(q, k), mask=allowed)
        dropped = F.dropout(weights, p=dropout_p) if dropout_p > 0 else weights
        out = dropped @ v
        return (out, weights) if return_weights else out

    if impl == "tiled":
        if dropout_p > 0:
            raise ValueError("impl='tiled' does not implement dropout; use impl='naive' or 'sdpa'")
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


def tiled_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    block_size: int = 128,
    is_causal: bool = False,
    mask: Tensor | None = None,
) -> Tensor:
    """Attention by online softmax over key/value blocks: never forms the (T_q, T_k) matrix.

    Per query row keep a running max ``m``, a running denominator ``l`` and an accumulator ``acc``;
    each block rescales the old ``l`` and ``acc`` by ``exp(m_old - m_new)``. Memory grows as
    T_q * block_size rather than T_q * T_k. Rows with nothing to attend give zeros.
    """
    _check_qkv(q, k, v)
    if not isinstance(block_size, int) or isinstance(block_size, bool) or block_size <= 0:
        raise ValueError(f"block_size must be a positive int, got {block_size!r}")
    t_q, t_k = q.shape[-2], k.shape[-2]
    _check_mask(mask, (*q.shape[:-1], t_k))
    scale = 1.0 / math.sqrt(q.shape[-1])
    lead = q.shape[:-2]
    m = torch.full((*lead, t_q, 1), -math.inf, dtype=q.dtype, device=q.device)  # running max
    l = torch.zeros((*lead, t_q, 1), dtype=q.dtype, device=q.device)  # running denominator
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
        l = alpha * l + p.sum(dim=-1, keepdim=True)
        acc = alpha * acc + p @ v[..., start:stop, :]
        m = m_new
    return torch.where(l > 0, acc / l.clamp_min(torch.finfo(l.dtype).tiny), torch.zeros_like(acc))


# --------------------------------------------------------------------------------------------------
# Nadaraya-Watson attention pooling
# --------------------------------------------------------------------------------------------------
KERNELS = ("gaussian", "laplacian", "epanechnikov", "boxcar")


def nadaraya_watson(
    queries: Tensor,
    keys: Tensor,
    values: Tensor,
    bandwidth: float | Tensor = 1.0,
    return_weights: bool = False,
    kernel: str = "gaussian",
) -> Tensor | tuple[Tensor, Tensor]:
    """Kernel regression f(q) = sum_i w_i(q) v_i with w_i = K((q - k_i)/h) / sum_j K((q - k_j)/h).

    queries (n_q,) or (n_q, d), keys (n_k,) or (n_k, d), values (n_k,) or (n_k, d_v). The Gaussian
    kernel gives ``softmax(-|q - k|^2 / (2 h^2))``; a query with no key inside a compact kernel's
    window gets weight 0 everywhere (and estimate 0). Nadaraya 1964, Watson 1964.
    """
    for name, value in (("queries", queries), ("keys", keys), ("values", values)):
        _require_tensor(name, value, min_dim=1)
        _require_float(name, value)
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    q = queries[:, None] if queries.dim() == 1 else queries
    k = keys[:, None] if keys.dim() == 1 else keys
    if q.dim() != 2 or k.dim() != 2 or q.shape[1] != k.shape[1]:
        raise ValueError(f"queries and keys must be (n, d) with the same d (or 1-D), got queries "
                         f"{_shape(queries)} and keys {_shape(keys)}")
    if values.shape[0] != k.shape[0] or values.dim() > 2:
        raise ValueError(f"values must be (n_k,) or (n_k, d_v) with n_k = {k.shape[0]} keys, got {_shape(values)}")
    h = torch.as_tensor(bandwidth, dtype=q.dtype, device=q.device)
    if h.numel() != 1 or not bool(h > 0):
        raise ValueError(f"bandwidth must be a single positive number, got {bandwidth!r}")
    # Exact differences, not the faster matrix-product form of cdist (used beyond 25 points), whose
    # rounding error is amplified by small bandwidths.
    distances = torch.cdist(q, k, compute_mode="donot_use_mm_for_euclid_dist") / h  # (n_q, n_k), scaled distances
    if kernel == "gaussian":
        weights = torch.softmax(-0.5 * distances**2, dim=-1)
    else:
        if kernel == "laplacian":
            raw = torch.exp(-distances)
        elif kernel == "epanechnikov":
            raw = torch.clamp(1 - distances**2, min=0.0)
        else:  # boxcar
            raw = (distances <= 1).to(q.dtype)
        total = raw.sum(dim=-1, keepdim=True)
        weights = torch.where(total > 0, raw / total.clamp_min(torch.finfo(q.dtype).tiny), torch.zeros_like(raw))
    estimate = weights @ values  # (n_q,) or (n_q, d_v)
    return (estimate, weights) if return_weights else estimate


# --------------------------------------------------------------------------------------------------
# Multi-head attention
# --------------------------------------------------------------------------------------------------
class MultiHeadAttention(nn.Module):
    """Multi-head attention (Vaswani et al. 2017, arXiv:1706.03762), same maths as nn.MultiheadAttention.

    ``forward(query, key, value, mask=None, is_causal=False, need_weights=False)`` takes batch-first
    inputs (B, T_q, d_model), (B, T_k, kdim), (B, T_k, vdim) and returns ``(out, weights)`` with
    weights (B, H, T_q, T_k) when asked for, else ``None``. ``mask`` (True = may attend) broadcasts to
    (B, H, T_q, T_k); a (B, T_q, T_k) mask is applied to every head.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        kdim: int | None = None,
        vdim: int | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(d_model, int) or d_model <= 0:
            raise ValueError(f"d_model must be a positive int, got {d_model!r}")
        if not isinstance(num_heads, int) or num_heads <= 0:
            raise ValueError(f"num_heads must be a positive int, got {num_heads!r}")
        if d_model % num_heads != 0:
            raise ValueError(f"d_model={d_model} is not divisible by num_heads={num_heads}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        self.d_model, self.num_heads, self.dropout = d_model, num_heads, dropout
        self.head_dim = d_model // num_heads
        self.kdim = d_model if kdim is None else kdim
        self.vdim = d_model if vdim is None else vdim
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(self.kdim, d_model, bias=bias)
        self.v_proj = nn.Linear(self.vdim, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def split_heads(self, x: Tensor) -> Tensor:
        """(B, T, d_model) -> (B, H, T, head_dim)."""
        batch, length, _ = x.shape
        x = x.view(batch, length, self.num_heads, self.head_dim)  # (B, T, H, d)
        return x.transpose(1, 2)  # (B, H, T, d)

    def merge_heads(self, x: Tensor) -> Tensor:
        """(B, H, T, head_dim) -> (B, T, d_model); the transpose comes first, or tokens get mixed up."""
        batch, _, length, _ = x.shape
        x = x.transpose(1, 2)  # (B, T, H, d)
        return x.reshape(batch, length, self.d_model)  # (B, T, H*d)

    def _check_inputs(self, query: Tensor, key: Tensor, value: Tensor) -> None:
        for name, t, dim in (("query", query, self.d_model), ("key", key, self.kdim), ("value", value, self.vdim)):
            _require_tensor(name, t)
            if t.dim() != 3 or t.shape[-1] != dim:
                raise ValueError(f"{name} must have shape (B, T, {dim}), got {_shape(t)}")
        if key.shape[:2] != value.shape[:2]:
            raise ValueError(f"key and value must share batch and length, got key {_shape(key)} and value {_shape(value)}")
        if query.shape[0] != key.shape[0]:
            raise ValueError(f"query and key must share the batch size, got query {_shape(query)} and key {_shape(key)}")

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        mask: Tensor | None = None,
        is_causal: bool = False,
        need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        self._check_inputs(query, key, value)
        batch, t_q, t_k = query.shape[0], query.shape[1], key.shape[1]
        target = (batch, self.num_heads, t_q, t_k)
        if mask is not None:
            _require_tensor("mask", mask)
            if mask.dim() == 3:
                mask = mask.unsqueeze(1)  # (B, 1, T_q, T_k): the same mask for every head
            _check_mask(mask, target)
        q = self.split_heads(self.q_proj(query))  # (B, H, T_q, d)
        k = self.split_heads(self.k_proj(key))  # (B, H, T_k, d)
        v = self.split_heads(self.v_proj(value))  # (B, H, T_k, d)
        p = self.dropout if self.training else 0.0
        if need_weights:
            heads, weights = scaled_dot_product_attention(q, k, v, mask=mask, is_causal=is_causal, dropout_p=p,
                                                          impl="naive", return_weights=True)
        else:
            heads, weights = scaled_dot_product_attention(q, k, v, mask=mask, is_causal=is_causal, dropout_p=p), None
        return self.out_proj(self.merge_heads(heads)), weights  # (B, T_q, d_model)

    @classmethod
    def from_torch(cls, module: nn.MultiheadAttention) -> "MultiHeadAttention":
        """Copy an ``nn.MultiheadAttention(batch_first=True)``; the copy gives the same outputs."""
        if not isinstance(module, nn.MultiheadAttention):
            raise TypeError(f"module must be an nn.MultiheadAttention, got {type(module).__name__}")
        if not module.batch_first:
            raise ValueError("from_torch expects nn.MultiheadAttention(batch_first=True); the course is batch first")
        if module.bias_k is not None or module.add_zero_attn:
            raise ValueError("from_torch does not support add_bias_kv or add_zero_attn")
        has_bias = module.in_proj_bias is not None
        ours = cls(module.embed_dim, module.num_heads, dropout=module.dropout, bias=has_bias,
                   kdim=module.kdim, vdim=module.vdim)
        d = module.embed_dim
        with torch.no_grad():
            if module._qkv_same_embed_dim:
                w_q, w_k, w_v = module.in_proj_weight.split(d, dim=0)
            else:
                w_q, w_k, w_v = module.q_proj_weight, module.k_proj_weight, module.v_proj_weight
            ours.q_proj.weight.copy_(w_q)
            ours.k_proj.weight.copy_(w_k)
            ours.v_proj.weight.copy_(w_v)
            ours.out_proj.weight.copy_(module.out_proj.weight)
            if has_bias:
                b_q, b_k, b_v = module.in_proj_bias.split(d, dim=0)
                ours.q_proj.bias.copy_(b_q)
                ours.k_proj.bias.copy_(b_k)
                ours.v_proj.bias.copy_(b_v)
                ours.out_proj.bias.copy_(module.out_proj.bias)
        param = module.out_proj.weight
        return ours.to(device=param.device, dtype=param.dtype)


# --------------------------------------------------------------------------------------------------
# Positions
# --------------------------------------------------------------------------------------------------
class SinusoidalPositionalEncoding(nn.Module):
    """Adds the fixed sinusoidal encoding of Vaswani et al. 2017: PE[p, 2i] = sin(p / 10000^(2i/D)), cos for 2i+1."""

    def __init__(self, d_model: int, max_len: int = 1024, dropout: float = 0.0) -> None:
        super().__init__()
        if not isinstance(d_model, int) or d_model <= 0:
            raise ValueError(f"d_model must be a positive int, got {d_model!r}")
        if not isinstance(max_len, int) or max_len <= 0:
            raise ValueError(f"max_len must be a positive int, got {max_len!r}")
        self.d_model, self.max_len = d_model, max_len
        self.dropout = nn.Dropout(dropout)
        positions = torch.arange(max_len, dtype=torch.float32)[:, None]  # (max_len, 1)
        frequencies = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
        angles = positions * frequencies  # (max_len, ceil(D/2))
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(angles)
        pe[:, 1::2] = torch.cos(angles[:, : d_model // 2])
        self.register_buffer("pe", pe, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """x (B, T, d_model) -> x + PE[:T], with dropout."""
        _require_tensor("x", x)
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"x must have shape (B, T, {self.d_model}), got {_shape(x)}")
        if x.shape[1] > self.max_len:
            raise ValueError(f"sequence length {x.shape[1]} exceeds max_len={self.max_len}")
        return self.dropout(x + self.pe[: x.shape[1]].to(x.dtype))
