"""ALiBi, attention with linear biases (Press et al. 2022, "Train Short, Test Long", arXiv:2108.12409).

Introduced in lesson 17.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from course_lib._validate import check_int

__all__ = ["alibi_slopes", "alibi_bias"]


def _geometric_slopes(n: int) -> list[float]:
    start = 2.0 ** (-8.0 / n)
    return [start ** (i + 1) for i in range(n)]


def alibi_slopes(num_heads: int) -> Tensor:
    """(H,) head slopes of ALiBi (Press et al. 2022, arXiv:2108.12409).

    For H a power of two: the geometric sequence 2^(-8/H), 2^(-16/H), ..., 2^(-8). Otherwise the paper's
    recipe: the slopes of the closest smaller power of two n, then every other slope of 2n, until there
    are H. Introduced in lesson 17.
    """
    check_int("num_heads", num_heads, minimum=1)
    if num_heads & (num_heads - 1) == 0:
        slopes = _geometric_slopes(num_heads)
    else:
        closest = 2 ** int(math.floor(math.log2(num_heads)))
        slopes = _geometric_slopes(closest) + _geometric_slopes(2 * closest)[0::2][: num_heads - closest]
    return torch.tensor(slopes, dtype=torch.float32)


def alibi_bias(num_heads: int, t_q: int, t_k: int | None = None) -> Tensor:
    """(H, t_q, t_k) additive ALiBi bias ``-slope_h * (i - j)``, query i sitting at position t_k - t_q + i.

    Press et al. 2022 (arXiv:2108.12409). With a cache of ``t_k - t_q`` earlier positions, the new
    queries line up with their true positions. Entries above the (shifted) diagonal are positive; a
    causal mask removes them. Introduced in lesson 17.
    """
    check_int("num_heads", num_heads, minimum=1)
    check_int("t_q", t_q, minimum=0)
    t_k = t_q if t_k is None else check_int("t_k", t_k, minimum=0)
    if t_k < t_q:
        raise ValueError(f"t_k must be >= t_q (queries are the last t_q of the t_k positions), got t_q={t_q}, "
                         f"t_k={t_k}")
    query_pos = torch.arange(t_q)[:, None] + (t_k - t_q)  # (t_q, 1)
    distance = (query_pos - torch.arange(t_k)[None, :]).to(torch.float32)  # (t_q, t_k): i - j
    return -alibi_slopes(num_heads)[:, None, None] * distance[None]  # (H, t_q, t_k)
