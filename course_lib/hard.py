"""Hard attention: pick keys instead of averaging them (argmax, sampling, top-k) and ways to train it.

Hard attention picks one key (or a few) and returns its value; the pick has no useful gradient, so
training needs a trick: the straight-through estimator (Bengio et al. 2013, arXiv:1308.3432), its
Gumbel-softmax form (Jang et al. 2017, arXiv:1611.01144; Maddison et al. 2017, arXiv:1611.00712), or
the score-function estimator REINFORCE (Williams 1992, doi:10.1007/BF00992696), as in Xu et al. 2015
(arXiv:1502.03044). Every function works on the last axis and on any device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from course_lib._validate import check_float, check_floating, check_int, check_tensor

__all__ = [
    "hard_argmax",
    "sample_one_hot",
    "top_k_weights",
    "straight_through",
    "gumbel_softmax",
    "reinforce_loss",
]


def _check_scores(name: str, scores: object) -> Tensor:
    tensor = check_tensor(name, scores)
    if tensor.dim() < 1 or tensor.shape[-1] == 0:
        raise ValueError(f"{name} must have at least one key on its last axis, got shape {tuple(tensor.shape)}")
    return check_floating(name, tensor)


def _check_temperature(temperature: float) -> None:
    check_float("temperature", temperature, minimum=0.0, exclusive_minimum=True)


def hard_argmax(scores: Tensor) -> Tensor:
    """One-hot of the largest score on the last axis, same shape and dtype as ``scores``; no gradient.

    Introduced in lesson 04.
    """
    _check_scores("scores", scores)
    index = scores.argmax(dim=-1)  # (...,)
    return F.one_hot(index, scores.shape[-1]).to(scores.dtype)  # (..., T_k)


def sample_one_hot(scores: Tensor, *, temperature: float = 1.0, generator: torch.Generator | None = None
                   ) -> tuple[Tensor, Tensor]:
    """Draw one key per row from softmax(scores / temperature); return ``(one_hot, log_prob)``.

    ``one_hot`` has the shape of ``scores`` and no gradient; ``log_prob`` (shape ``scores.shape[:-1]``)
    is the log-probability of the drawn key and carries the gradient REINFORCE needs. Introduced in lesson 04.
    """
    _check_scores("scores", scores)
    _check_temperature(temperature)
    log_probs = torch.log_softmax(scores / temperature, dim=-1)  # (..., T_k)
    flat = log_probs.detach().exp().reshape(-1, scores.shape[-1])  # (N, T_k)
    index = torch.multinomial(flat, 1, generator=generator).view(scores.shape[:-1])  # (...,)
    one_hot = F.one_hot(index, scores.shape[-1]).to(scores.dtype)  # (..., T_k)
    return one_hot, log_probs.gather(-1, index.unsqueeze(-1)).squeeze(-1)


def top_k_weights(scores: Tensor, k: int) -> Tensor:
    """Softmax over the ``k`` largest scores of each row, exactly 0 elsewhere (rows sum to 1).

    Introduced in lesson 04.
    """
    _check_scores("scores", scores)
    k = check_int("k", k)
    if not 1 <= k <= scores.shape[-1]:
        raise ValueError(f"k must lie in [1, {scores.shape[-1]}] for scores of shape {tuple(scores.shape)}, got {k}")
    kept = torch.zeros_like(scores, dtype=torch.bool).scatter(-1, scores.topk(k, dim=-1).indices, True)
    weights = torch.softmax(scores.masked_fill(~kept, float("-inf")), dim=-1)  # (..., T_k)
    return weights * kept


def straight_through(scores: Tensor, *, temperature: float = 1.0) -> Tensor:
    """Forward: the one-hot argmax. Backward: the gradient of softmax(scores / temperature).

    ``hard + soft - soft.detach()`` equals ``hard`` in value, while its gradient is the soft one.
    Introduced in lesson 04.
    """
    _check_scores("scores", scores)
    _check_temperature(temperature)
    soft = torch.softmax(scores / temperature, dim=-1)  # (..., T_k)
    return hard_argmax(scores) + soft - soft.detach()


def gumbel_softmax(scores: Tensor, *, temperature: float = 1.0, hard: bool = False,
                   generator: torch.Generator | None = None) -> Tensor:
    """Gumbel-softmax: softmax((scores + Gumbel noise) / temperature); ``hard=True`` adds straight-through.

    With ``hard=True`` the forward value is a one-hot *sample* from softmax(scores) and the gradient is
    that of the relaxed sample. Unlike ``torch.nn.functional.gumbel_softmax`` it takes a ``generator``.
    Introduced in lesson 04.
    """
    _check_scores("scores", scores)
    _check_temperature(temperature)
    uniform = torch.rand(scores.shape, generator=generator, device=scores.device, dtype=scores.dtype)
    tiny = torch.finfo(scores.dtype).tiny
    exponential = (-torch.log(uniform.clamp_min(tiny))).clamp_min(tiny)  # Exp(1) samples, > 0
    gumbel = -torch.log(exponential)  # (..., T_k), Gumbel(0, 1) noise
    soft = torch.softmax((scores + gumbel) / temperature, dim=-1)
    if not hard:
        return soft
    return hard_argmax(soft.detach()) + soft - soft.detach()


def reinforce_loss(log_prob: Tensor, reward: Tensor, baseline: float | Tensor = 0.0) -> Tensor:
    """Score-function (REINFORCE) surrogate ``-mean((reward - baseline) * log_prob)``.

    Its gradient is an unbiased estimate of -d E[reward] / d parameters. ``reward`` and ``baseline`` are
    treated as constants (detached); a baseline such as the running mean reward lowers the variance.
    Introduced in lesson 04.
    """
    check_tensor("log_prob", log_prob)
    check_tensor("reward", reward)
    if log_prob.shape != reward.shape:
        raise ValueError(f"log_prob and reward must have the same shape, got log_prob {tuple(log_prob.shape)} "
                         f"and reward {tuple(reward.shape)}")
    advantage = (reward - baseline).detach()
    return -(advantage * log_prob).mean()
