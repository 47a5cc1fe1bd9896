"""Scoring functions: scaled dot product (Vaswani et al. 2017, arXiv:1706.03762), additive (Bahdanau et al.
2015, arXiv:1409.0473) and bilinear "general" (Luong et al. 2015, arXiv:1508.04025). Introduced in lesson 03.

Every scorer module has the same interface, which lets an attention decoder stay ignorant of how it
scores: ``forward(q, k) -> (..., T_q, T_k)``, ``prepare_keys(k)`` (the part of the scores that depends
on the keys only, computed once per sentence) and ``score_prepared(q, prepared)`` (the same scores from it).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from course_lib._validate import check_float, check_tensor, positive_int

__all__ = ["dot_product_scores", "DotProductScores", "AdditiveScores", "BilinearScores"]


def check_qk(q: Tensor, k: Tensor) -> None:
    """q (..., T_q, d) and k (..., T_k, d): floating tensors with the same head dimension and leading axes."""
    check_tensor("q", q, min_dim=2, floating=True)
    check_tensor("k", k, min_dim=2, floating=True)
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must share their last (head) dimension, got q {tuple(q.shape)} and k "
                         f"{tuple(k.shape)}")
    if q.shape[:-2] != k.shape[:-2]:
        raise ValueError(f"q and k must share their leading (batch, head) dimensions, got q {tuple(q.shape)} "
                         f"and k {tuple(k.shape)}")


def dot_product_scores(q: Tensor, k: Tensor, *, scale: float | None = None) -> Tensor:
    """(..., T_q, d), (..., T_k, d) -> (..., T_q, T_k) scores ``q k^T * scale``; ``scale=None`` is 1/sqrt(d).

    Introduced in lesson 01.

    Args:
        q: (..., T_q, d) queries.
        k: (..., T_k, d) keys.
        scale: the factor applied to the products; None means 1/sqrt(d) (scaled dot product).
    """
    check_qk(q, k)
    factor = 1.0 / math.sqrt(q.shape[-1]) if scale is None else check_float("scale", scale)
    return (q @ k.transpose(-2, -1)) * factor


def _check_pair(who: str, q: Tensor, k: Tensor, query_dim: int, key_dim: int) -> None:
    check_tensor("q", q, min_dim=2)
    check_tensor("k", k, min_dim=2)
    if q.shape[-1] != query_dim or k.shape[-1] != key_dim:
        raise ValueError(f"{who} expects q (..., T_q, {query_dim}) and k (..., T_k, {key_dim}), got q "
                         f"{tuple(q.shape)} and k {tuple(k.shape)}")
    if q.shape[:-2] != k.shape[:-2]:
        raise ValueError(f"q and k must share their leading dimensions, got q {tuple(q.shape)} and k {tuple(k.shape)}")


class DotProductScores(nn.Module):
    """Dot-product scores ``q k^T * scale`` as a module (Luong et al. 2015 "dot" with ``scale=1``), no parameters.

    Introduced in lesson 08.

    Args:
        scale: the factor applied to the products; None means 1/sqrt(d).
    """

    def __init__(self, *, scale: float | None = None) -> None:
        super().__init__()
        self.scale = None if scale is None else check_float("scale", scale)

    def forward(self, q: Tensor, k: Tensor) -> Tensor:
        """(..., T_q, d), (..., T_k, d) -> (..., T_q, T_k)."""
        return dot_product_scores(q, k, scale=self.scale)

    def prepare_keys(self, k: Tensor) -> Tensor:
        """Nothing to precompute: the keys themselves."""
        return k

    def score_prepared(self, q: Tensor, prepared: Tensor) -> Tensor:
        """The scores of ``q`` against the keys that ``prepare_keys`` returned."""
        return dot_product_scores(q, prepared, scale=self.scale)


class AdditiveScores(nn.Module):
    """Additive (Bahdanau) scores ``w_v^T tanh(W_q q + W_k k)``, arXiv:1409.0473. Introduced in lesson 03.

    Args:
        query_dim: size of a query vector.
        key_dim: size of a key vector.
        hidden_dim: size of the hidden layer both are projected to before the tanh.
    """

    def __init__(self, query_dim: int, key_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.query_dim = positive_int("query_dim", query_dim)
        self.key_dim = positive_int("key_dim", key_dim)
        self.hidden_dim = positive_int("hidden_dim", hidden_dim)
        self.q_proj = nn.Linear(query_dim, hidden_dim, bias=False)
        self.k_proj = nn.Linear(key_dim, hidden_dim, bias=False)
        self.v = nn.Linear(hidden_dim, 1, bias=False)

    def forward(self, q: Tensor, k: Tensor) -> Tensor:
        """(..., T_q, query_dim), (..., T_k, key_dim) -> (..., T_q, T_k)."""
        _check_pair("AdditiveScores", q, k, self.query_dim, self.key_dim)
        features = self.q_proj(q).unsqueeze(-2) + self.k_proj(k).unsqueeze(-3)  # (..., T_q, T_k, hidden)
        return self.v(torch.tanh(features)).squeeze(-1)  # (..., T_q, T_k)

    def prepare_keys(self, k: Tensor) -> Tensor:
        """W_k k (..., T_k, hidden): the key half of every score."""
        return self.k_proj(k)

    def score_prepared(self, q: Tensor, prepared: Tensor) -> Tensor:
        """(..., T_q, query_dim), prepared keys (..., T_k, hidden) -> (..., T_q, T_k)."""
        if q.shape[-2] == 1:  # one query (a decoder step): no (T_q, T_k) grid to broadcast
            features = torch.tanh(self.q_proj(q) + prepared)  # (..., 1, A) + (..., T_k, A) -> (..., T_k, A)
            return self.v(features).squeeze(-1).unsqueeze(-2)  # (..., 1, T_k)
        features = torch.tanh(self.q_proj(q).unsqueeze(-2) + prepared.unsqueeze(-3))  # (..., T_q, T_k, A)
        return self.v(features).squeeze(-1)


class BilinearScores(nn.Module):
    """Bilinear ("general", Luong) scores ``q W k^T``, arXiv:1508.04025. Introduced in lesson 03.

    Args:
        query_dim: size of a query vector.
        key_dim: size of a key vector.
    """

    def __init__(self, query_dim: int, key_dim: int) -> None:
        super().__init__()
        self.query_dim = positive_int("query_dim", query_dim)
        self.key_dim = positive_int("key_dim", key_dim)
        self.weight = nn.Parameter(torch.empty(query_dim, key_dim))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, q: Tensor, k: Tensor) -> Tensor:
        """(..., T_q, query_dim), (..., T_k, key_dim) -> (..., T_q, T_k)."""
        _check_pair("BilinearScores", q, k, self.query_dim, self.key_dim)
        return (q @ self.weight) @ k.transpose(-2, -1)  # (..., T_q, T_k)

    def prepare_keys(self, k: Tensor) -> Tensor:
        """k W^T (..., T_k, query_dim): the keys moved into the queries' space."""
        return k @ self.weight.T

    def score_prepared(self, q: Tensor, prepared: Tensor) -> Tensor:
        """(..., T_q, query_dim), prepared keys (..., T_k, query_dim) -> (..., T_q, T_k)."""
        return (prepared @ q.transpose(-2, -1)).transpose(-2, -1)
