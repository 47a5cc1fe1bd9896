"""Checkers for lesson 04 (Q/K/V, soft, hard and local attention): hard lookup, straight-through, band mask."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from course_lib.attention import local_mask, masked_softmax
from course_lib.checks.core import CheckFailed, call_learner, compare, learner_backward, passed, require_callable
from course_lib.checks.thinking import StepHints, check_choice, check_number
from course_lib.hard import hard_argmax, reinforce_loss, sample_one_hot, straight_through

__all__ = ["check_hard_attention", "check_straight_through", "check_local_mask", "GRADIENT_OPTIONS",
           "REINFORCE_SETTING", "check_gradient_predictions"]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------------------------------
# Hard attention: the value of the best-scoring key
# --------------------------------------------------------------------------------------------------
def _hard_reference(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., T_q, T_k)
    return hard_argmax(scores) @ v  # (..., T_q, d_v)


def _hard_cases() -> list[tuple[str, Tensor, Tensor, Tensor]]:
    cases = []
    for seed, lead, t_q, t_k, d, d_v in ((1, (2,), 4, 6, 8, 8), (0, (), 3, 5, 4, 2), (2, (2, 3), 5, 4, 6, 3)):
        g = _gen(seed)
        q = torch.randn(*lead, t_q, d, generator=g)
        k = torch.randn(*lead, t_k, d, generator=g)
        v = torch.randn(*lead, t_k, d_v, generator=g)
        cases.append((f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}", q, k, v))
    return cases


def check_hard_attention(hard_attention: Callable[[Tensor, Tensor, Tensor], Tensor]) -> None:
    """``hard_attention(q, k, v)`` returns, for each query, the value of its highest-scoring key.

    Introduced in lesson 04.
    """
    require_callable(hard_attention, "hard_attention")
    for case, q, k, v in _hard_cases():
        got = call_learner(hard_attention, q.clone(), k.clone(), v.clone(), name="hard_attention")
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        mistakes = {
            "you picked the key with the *smallest* score (argmin instead of argmax)":
                hard_argmax(-scores) @ v,
            "this is soft attention (a softmax-weighted average of all values); hard attention keeps only "
            "the best key's value": torch.softmax(scores, dim=-1) @ v,
        }
        if k.shape[-1] == v.shape[-1]:
            mistakes["you returned the best *key*; return the value stored under it"] = hard_argmax(scores) @ k
        compare(got, _hard_reference(q, k, v), "hard_attention", case, mistakes=mistakes)
    passed("hard_attention")


# --------------------------------------------------------------------------------------------------
# Straight-through estimator: one-hot forward, softmax gradient backward
# --------------------------------------------------------------------------------------------------
def check_straight_through(straight_through_fn: Callable[[Tensor], Tensor]) -> None:
    """``straight_through(scores)``: value = one-hot argmax; gradient = that of softmax(scores).

    Introduced in lesson 04.
    """
    require_callable(straight_through_fn, "straight_through")
    for seed, shape in ((0, (6,)), (1, (3, 5)), (2, (2, 4, 7))):
        g = _gen(seed)
        base = torch.randn(*shape, generator=g)
        upstream = torch.randn(*shape, generator=g)  # the gradient arriving from the loss
        case = f"scores of shape {shape}"

        scores = base.clone().requires_grad_(True)
        got = call_learner(straight_through_fn, scores, name="straight_through")
        if not isinstance(got, Tensor):
            raise CheckFailed(f"straight_through should return a tensor, got {type(got).__name__}")
        soft = torch.softmax(base, dim=-1)
        forward_mistakes = {
            "the forward value is the softmax: the estimator must *output* the one-hot argmax and only "
            "borrow the softmax's gradient": soft,
            "the forward value is hard + soft: subtract a detached copy of the soft weights "
            "(hard + soft - soft.detach())": hard_argmax(base) + soft,
        }
        if base.dim() == 2:
            wrong_axis = torch.nn.functional.one_hot(base.argmax(0), base.shape[0]).T.to(base.dtype)  # (T_q, T_k)
            forward_mistakes["the argmax runs over the wrong axis: use the last axis (dim=-1), the keys"] = wrong_axis
        compare(got.detach(), hard_argmax(base), "straight_through (forward value)", case, atol=1e-5,
                mistakes=forward_mistakes)
        if not got.requires_grad:
            raise CheckFailed(f"straight_through on {case}: no gradient reaches the scores (the result does not "
                              f"require grad). Hint: the one-hot alone has no gradient; add the soft weights and "
                              f"subtract their detached copy: hard + soft - soft.detach()")
        learner_backward(got, "straight_through", upstream)
        grad = scores.grad if scores.grad is not None else torch.zeros_like(base)
        reference = base.clone().requires_grad_(True)
        (straight_through(reference) * upstream).sum().backward()
        reference_grad = reference.grad
        assert reference_grad is not None  # reference is a leaf that requires grad
        compare(grad, reference_grad, "straight_through (gradient)", case, atol=1e-5, mistakes={
            "the gradient is zero: the soft term you subtract must be detached. hard + soft - soft cancels in "
            "the backward pass too; write hard + soft - soft.detach()": torch.zeros_like(base),
            "the gradient has the wrong sign: add the live soft weights and subtract the detached copy "
            "(hard + soft - soft.detach(), not hard - soft + soft.detach())": -reference_grad,
        })
    passed("straight_through")


# --------------------------------------------------------------------------------------------------
# Local (band) mask
# --------------------------------------------------------------------------------------------------
def check_local_mask(local_mask_fn: Callable[[int, int, int], Tensor]) -> None:
    """``local_mask(t_q, t_k, window)``: bool (t_q, t_k), True where |i - j| <= window (may attend).

    Introduced in lesson 04.
    """
    require_callable(local_mask_fn, "local_mask")
    for t_q, t_k, window in ((5, 5, 1), (6, 6, 0), (4, 7, 2), (7, 3, 1), (5, 5, 2), (3, 3, 5)):
        case = f"t_q={t_q}, t_k={t_k}, window={window}"
        got = call_learner(local_mask_fn, t_q, t_k, window, name="local_mask")
        if not isinstance(got, Tensor):
            raise CheckFailed(f"local_mask on {case} should return a tensor, got {type(got).__name__}")
        if got.dtype != torch.bool:
            raise CheckFailed(f"local_mask on {case} returned dtype {got.dtype}; return a boolean mask "
                              f"(True = may attend), e.g. (i - j).abs() <= window")
        expected = local_mask(t_q, t_k, window)
        offsets = torch.arange(t_q)[:, None] - torch.arange(t_k)[None, :]  # (t_q, t_k), i - j
        compare(got, expected, "local_mask", case, mistakes={
            "off by one: the window includes keys at distance exactly `window` (use <=, not <)":
                offsets.abs() < window,
            "the polarity is inverted: True must mean *may attend* (inside the band)": ~expected,
            "your window only looks back (j <= i); local attention here is two-sided, |i - j| <= window":
                (offsets >= 0) & (offsets <= window),
        })
    # sizes that come from numpy (np.int64, e.g. from an array's shape arithmetic) are integers too
    try:
        got = call_learner(local_mask_fn, np.int64(5), np.int64(6), np.int64(1), name="local_mask")
    except CheckFailed as failure:
        if "not implemented" in str(failure):
            raise
        raise CheckFailed(f"{failure} [on t_q=5, t_k=6, window=1 given as numpy integers (np.int64)]. Hint: accept "
                          f"any integer type, e.g. convert with int(window)", failure.learner_lines) from None
    compare(got, local_mask(5, 6, 1), "local_mask", "t_q, t_k, window given as numpy integers (np.int64)")
    # the mask must be usable: every row of a square band keeps its diagonal
    weights = masked_softmax(torch.zeros(4, 4), mask=call_learner(local_mask_fn, 4, 4, 1, name="local_mask"))
    if not torch.allclose(weights.sum(-1), torch.ones(4)):
        raise CheckFailed("local_mask: a softmax masked with your mask does not give rows that sum to 1")
    passed("local_mask")


# --------------------------------------------------------------------------------------------------
# Exercise 4: predict which picks pass a gradient to the scores, and what REINFORCE estimates
# --------------------------------------------------------------------------------------------------
#: The options of exercise 4 (i): which of softmax, hard_argmax and straight_through give d(output)/d(scores) != 0.
GRADIENT_OPTIONS: dict[str, str] = {
    "a": "all three",
    "b": "softmax and straight_through, not hard_argmax",
    "c": "only softmax",
    "d": "only hard_argmax and straight_through",
    "e": "none of them",
}

#: The setting of exercise 4 (ii): three slots, their scores, fixed rewards and a baseline.
REINFORCE_SETTING: dict[str, Any] = {"scores": (math.log(2.0), 0.0, 0.0), "rewards": (1.0, 4.0, 10.0),
                                     "baseline": 5.0}


def _has_gradient(pick: Callable[[Tensor], Tensor]) -> bool:
    """Does value = pick(scores) @ v pass a nonzero gradient back to the scores?"""
    g = _gen(41)
    scores = torch.randn(3, 5, generator=g).requires_grad_(True)
    values = torch.randn(5, 2, generator=g)
    out = pick(scores) @ values
    if not out.requires_grad:  # autograd never reaches the scores
        return False
    (grad,) = torch.autograd.grad(out.pow(2).sum(), scores, allow_unused=True)
    return grad is not None and bool(grad.abs().sum() > 0)


def _reinforce_truth() -> tuple[float, float]:
    """dE[r]/ds_0, exactly (autograd on sum_j p_j r_j), and the REINFORCE average over many samples."""
    setting = REINFORCE_SETTING
    rewards = torch.tensor(setting["rewards"], dtype=torch.float64)
    scores = torch.tensor(setting["scores"], dtype=torch.float64, requires_grad=True)
    (exact,) = torch.autograd.grad((torch.softmax(scores, -1) * rewards).sum(), scores)
    many = scores.detach().expand(20_000, 3).clone().requires_grad_(True)
    one_hot, log_prob = sample_one_hot(many, generator=_gen(42))
    loss = reinforce_loss(log_prob, (one_hot * rewards).sum(-1), baseline=setting["baseline"])
    (estimate,) = torch.autograd.grad(-loss * many.shape[0], many)  # one estimate per sample, per row
    return float(exact[0]), float(estimate[:, 0].mean())


def check_gradient_predictions(has_gradient: object, expected_gradient_s0: object) -> None:
    """Check two predictions: which picks pass a gradient to the scores (a letter of ``GRADIENT_OPTIONS``), and the
    expected REINFORCE estimate of dE[r]/ds_0 in ``REINFORCE_SETTING``.

    The truth of (i) is autograd run through ``torch.softmax``, ``hard_argmax`` and ``straight_through``; that of
    (ii) is autograd on the exact expected reward. Introduced in lesson 04.
    """
    found = {name: _has_gradient(pick) for name, pick in
             (("softmax", lambda s: torch.softmax(s, -1)), ("hard_argmax", hard_argmax),
              ("straight_through", straight_through))}
    by_set = {(True, True, True): "a", (True, False, True): "b", (True, False, False): "c",
              (False, True, True): "d", (False, False, False): "e"}
    key = (found["softmax"], found["hard_argmax"], found["straight_through"])
    if key not in by_set:
        raise RuntimeError(f"no option describes what autograd found: {found}")
    check_choice(
        has_gradient, "has_gradient", GRADIENT_OPTIONS, by_set[key],
        StepHints("04-gradient", [
            "for each one ask: is there a chain of differentiable operations from the scores to the output? "
            "argmax returns an integer index",
            "hard_argmax's one-hot is built from an index, so nothing flows back; straight_through's value is "
            "that same one-hot, but it adds soft - soft.detach(), which is 0 in value and carries softmax's "
            "gradient",
        ]),
        why="softmax is smooth in the scores; hard_argmax goes through an integer index, so autograd never reaches "
            "the scores (and the true derivative is 0 almost everywhere anyway); straight_through has the hard "
            "value but borrows softmax's gradient through soft - soft.detach()",
        wrong={"a": "hard_argmax goes through argmax, an integer index: no gradient reaches the scores.",
               "c": "straight_through's forward value is hard, but its backward pass is softmax's: that is its point.",
               "d": "softmax is the smooth one: it always has a gradient.",
               "e": "softmax is differentiable everywhere."},
    )
    exact, sampled = _reinforce_truth()
    setting = REINFORCE_SETTING
    p = torch.softmax(torch.tensor(setting["scores"], dtype=torch.float64), -1)
    r = torch.tensor(setting["rewards"], dtype=torch.float64)
    mean_reward, b = float((p * r).sum()), float(setting["baseline"])
    check_number(
        expected_gradient_s0, "expected_gradient_s0", exact,
        StepHints("04-reinforce", [
            "an unbiased estimator's expected value is the true gradient dE[r]/ds_0, with E[r] = sum_j p_j r_j and "
            "p = softmax(s); does the baseline change that?",
            "the lesson's formula: dE[r]/ds_j = p_j (r_j - E[r]); the baseline adds b E[d log p(i)/ds] = 0, so it "
            "changes the variance, not the expected value",
        ]),
        why=f"p = {[round(float(x), 3) for x in p]}, E[r] = {mean_reward:g}, and dE[r]/ds_0 = p_0 (r_0 - E[r]) = "
            f"{exact:g}, with or without the baseline (the average of 20,000 REINFORCE estimates with b = {b:g} "
            f"was {sampled:.3f})",
        mistakes={"you used the baseline in place of E[r]: the baseline only changes the variance, the expected "
                  "value is p_0 (r_0 - E[r])": float(p[0] * (r[0] - b)),
                  "that is p_0 r_0; the derivative of p_j with respect to s_0 adds -p_0 p_j r_j for every slot":
                      float(p[0] * r[0]),
                  "that is r_0 - E[r]; multiply by p_0": float(r[0] - mean_reward),
                  "that is r_0 - b, one sample's advantage; the estimate is (r - b) d log p(i)/ds_0, averaged "
                  "over the draws": float(r[0] - b),
                  "REINFORCE is unbiased: its expected value is the true gradient, which is not 0 here": 0.0},
        rel_tol=1e-6, abs_tol=1e-6,
    )
