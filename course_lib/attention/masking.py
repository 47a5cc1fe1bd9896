"""Masks and the masked softmax (True = may attend); Luong et al. 2015 local windows, arXiv:1508.04025.

Introduced in lesson 01 (``masked_softmax``), lesson 04 (``causal_mask``, ``local_mask``) and lesson 05
(``lengths_to_mask``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from course_lib._validate import check_bool_mask, check_int, check_tensor

__all__ = ["masked_softmax", "causal_mask", "local_mask", "lengths_to_mask"]


def _valid_lens_mask(valid_lens: Tensor, scores_shape: tuple[int, ...]) -> Tensor:
    """Turn ``valid_lens`` of shape (B,) or (B, T_q) into a boolean mask broadcastable to the scores."""
    check_tensor("valid_lens", valid_lens)
    if valid_lens.is_floating_point() and not torch.all(valid_lens == valid_lens.round()):
        raise ValueError("valid_lens must hold whole numbers of keys")
    if len(scores_shape) < 3:
        raise ValueError(f"valid_lens needs scores of shape (B, ..., T_q, T_k), got scores of shape {scores_shape}")
    batch, t_q, t_k = scores_shape[0], scores_shape[-2], scores_shape[-1]
    middle = len(scores_shape) - 3  # extra axes such as heads
    if valid_lens.dim() == 1 and valid_lens.shape[0] == batch:
        lens = valid_lens.view(batch, *([1] * middle), 1, 1)
    elif valid_lens.dim() == 2 and tuple(valid_lens.shape) == (batch, t_q):
        lens = valid_lens.view(batch, *([1] * middle), t_q, 1)
    else:
        raise ValueError(f"valid_lens must have shape (B,) = ({batch},) or (B, T_q) = ({batch}, {t_q}), "
                         f"got {tuple(valid_lens.shape)} for scores of shape {scores_shape}")
    if torch.any(valid_lens < 0):
        raise ValueError("valid_lens must be >= 0")
    positions = torch.arange(t_k, device=valid_lens.device)
    return positions < lens.to(positions.dtype if not lens.is_floating_point() else lens.dtype)


def masked_softmax(scores: Tensor, *, mask: Tensor | None = None, valid_lens: Tensor | None = None) -> Tensor:
    """Softmax over the last axis that gives exactly 0 where ``mask`` is False or beyond ``valid_lens``.

    A row with nothing to attend gives all zeros (not NaN), and its gradient stays finite.
    Introduced in lesson 01.

    Args:
        scores: (..., T_q, T_k) floating-point scores.
        mask: boolean, broadcastable to ``scores``; True means "may attend".
        valid_lens: (B,) or (B, T_q) number of keys each row may attend to (the first ones).
    """
    check_tensor("scores", scores, min_dim=1, floating=True)
    allowed = check_bool_mask("mask", mask, tuple(scores.shape))
    if valid_lens is not None:
        by_len = _valid_lens_mask(valid_lens, tuple(scores.shape))
        allowed = by_len if allowed is None else allowed & by_len
    if allowed is None:
        return torch.softmax(scores, dim=-1)
    allowed = allowed.to(scores.device)
    # A large finite negative (not -inf) keeps fully masked rows finite; multiplying by the mask then
    # makes masked weights exactly zero.
    very_negative = torch.finfo(scores.dtype).min
    weights = torch.softmax(scores.masked_fill(~allowed, very_negative), dim=-1)
    return weights * allowed


def causal_mask(t_q: int, t_k: int | None = None, *, device: torch.device | str | None = None) -> Tensor:
    """(t_q, t_k) boolean mask, True on and below the diagonal: query i may attend to keys 0..i.

    Aligned top-left, as ``is_causal=True`` in torch's ``scaled_dot_product_attention``. Introduced in lesson 04.

    Args:
        t_q: number of queries.
        t_k: number of keys (default ``t_q``).
        device: where the mask is created.
    """
    t_q = check_int("t_q", t_q, minimum=0)
    t_k = t_q if t_k is None else check_int("t_k", t_k, minimum=0)
    return torch.ones(t_q, t_k, dtype=torch.bool, device=device).tril()


def local_mask(t_q: int, t_k: int, window: int, *, device: torch.device | str | None = None) -> Tensor:
    """(t_q, t_k) boolean band mask, True where |i - j| <= window: query i may attend to keys i-w..i+w.

    Sliding-window attention, as in Longformer (Beltagy et al. 2020, arXiv:2004.05150). Not Luong et al.'s
    local attention (arXiv:1508.04025), which is cross-attention around an aligned or predicted source position
    (lesson 04, section 6b). Aligned top-left like ``causal_mask``; ``local_mask(t, t, w) & causal_mask(t)``
    is the causal sliding window. Introduced in lesson 04.

    Args:
        t_q: number of queries.
        t_k: number of keys.
        window: how many neighbours on each side a query may attend to.
        device: where the mask is created.
    """
    t_q = check_int("t_q", t_q, minimum=0)
    t_k = check_int("t_k", t_k, minimum=0)
    window = check_int("window", window, minimum=0)
    offsets = torch.arange(t_q, device=device)[:, None] - torch.arange(t_k, device=device)[None, :]  # (t_q, t_k)
    return offsets.abs() <= window


def lengths_to_mask(valid_lens: Tensor, max_len: int) -> Tensor:
    """(B,) lengths -> (B, max_len) boolean mask, True for the first ``valid_lens[b]`` positions.

    Introduced in lesson 05.

    Args:
        valid_lens: (B,) lengths, each in [0, max_len].
        max_len: the length of the mask's rows.
    """
    check_tensor("valid_lens", valid_lens, dim=1, layout="(B,)")
    max_len = check_int("max_len", max_len, minimum=0)
    if valid_lens.numel() and (valid_lens.min() < 0 or valid_lens.max() > max_len):
        raise ValueError(f"valid_lens must lie in [0, max_len={max_len}], got min {valid_lens.min().item()} "
                         f"and max {valid_lens.max().item()}")
    return torch.arange(max_len, device=valid_lens.device)[None, :] < valid_lens[:, None]
