"""Nadaraya-Watson kernel regression, attention pooling with a fixed kernel (Nadaraya 1964, Watson 1964).

Introduced in lesson 02.
"""

from __future__ import annotations

from typing import Literal, overload

import torch
from torch import Tensor

from course_lib._validate import check_bool, check_choice, check_tensor

__all__ = ["KERNELS", "nadaraya_watson"]

KERNELS = ("gaussian", "laplacian", "epanechnikov", "boxcar")


@overload
def nadaraya_watson(queries: Tensor, keys: Tensor, values: Tensor, *, bandwidth: float | Tensor = ...,
                    kernel: str = ..., return_weights: Literal[False] = ...) -> Tensor: ...
@overload
def nadaraya_watson(queries: Tensor, keys: Tensor, values: Tensor, *, bandwidth: float | Tensor = ...,
                    kernel: str = ..., return_weights: Literal[True]) -> tuple[Tensor, Tensor]: ...
def nadaraya_watson(
    queries: Tensor,
    keys: Tensor,
    values: Tensor,
    *,
    bandwidth: float | Tensor = 1.0,
    kernel: str = "gaussian",
    return_weights: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Kernel regression f(q) = sum_i w_i(q) v_i with w_i = K((q - k_i)/h) / sum_j K((q - k_j)/h).

    The Gaussian kernel gives ``softmax(-|q - k|^2 / (2 h^2))``; a query with no key inside a compact
    kernel's window gets weight 0 everywhere (and estimate 0). Introduced in lesson 02.

    Args:
        queries: (n_q,) or (n_q, d).
        keys: (n_k,) or (n_k, d), the same d as the queries.
        values: (n_k,) or (n_k, d_v).
        bandwidth: the kernel's width h > 0 (a number or a one-element tensor, which may require grad).
        kernel: one of ``KERNELS``.
        return_weights: also return the (n_q, n_k) weights.
    """
    for name, value in (("queries", queries), ("keys", keys), ("values", values)):
        check_tensor(name, value, min_dim=1, floating=True)
    check_choice("kernel", kernel, KERNELS)
    check_bool("return_weights", return_weights)
    q = queries[:, None] if queries.dim() == 1 else queries
    k = keys[:, None] if keys.dim() == 1 else keys
    if q.dim() != 2 or k.dim() != 2 or q.shape[1] != k.shape[1]:
        raise ValueError(f"queries and keys must be (n, d) with the same d (or 1-D), got queries "
                         f"{tuple(queries.shape)} and keys {tuple(keys.shape)}")
    if values.shape[0] != k.shape[0] or values.dim() > 2:
        raise ValueError(f"values must be (n_k,) or (n_k, d_v) with n_k = {k.shape[0]} keys, got "
                         f"{tuple(values.shape)}")
    h = torch.as_tensor(bandwidth, dtype=q.dtype, device=q.device)
    if h.numel() != 1 or not bool(h > 0):
        raise ValueError(f"bandwidth must be a single positive number, got {bandwidth!r}")
    # Exact differences, not the faster matrix-product form of cdist (used beyond 25 points), whose
    # rounding error is amplified by small bandwidths.
    distances = torch.cdist(q, k, compute_mode="donot_use_mm_for_euclid_dist") / h  # (n_q, n_k), scaled
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
