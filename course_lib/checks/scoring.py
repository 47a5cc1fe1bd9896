"""Checkers for lesson 03's exercises: masked softmax, scaled dot scores, additive scores, a buggy layer.

Each checker runs the learner's answer on several cases against ``course_lib.attention`` and, when the
answer is wrong, names the typical mistake it matches (no scaling, softmax over the wrong axis, mask
ignored or flipped, NaN on a row with nothing to attend, ...). Papers: Bahdanau et al. 2015
(arXiv:1409.0473), Vaswani et al. 2017 (arXiv:1706.03762).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from course_lib.attention import (
    AdditiveScores,
    dot_product_scores,
    lengths_to_mask,
    masked_softmax,
    scaled_dot_product_attention,
)
from course_lib.checks.core import CheckFailed, call_learner, compare, passed, require_callable
from course_lib.checks.thinking import StepHints, check_number

__all__ = [
    "check_masked_softmax",
    "check_scaled_dot_scores",
    "check_shared_key_scores",
    "check_additive_scores",
    "check_attention_layer",
    "SCORE_VARIANCE_SETTING",
    "check_score_variance",
]


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _tensor(value: Any, name: str, case: str) -> Tensor:
    """The learner's result as a detached tensor, or a CheckFailed saying what came back instead."""
    if isinstance(value, Tensor):
        return value.detach()
    raise CheckFailed(f"{name} on {case} should return a torch.Tensor, got {type(value).__name__}")


def _very_negative_softmax(scores: Tensor, allowed: Tensor, dim: int) -> Tensor:
    """What filling the masked scores with -1e6 and normalising over ``dim`` gives (no zeroing afterwards)."""
    return torch.softmax(scores.masked_fill(~allowed, -1e6), dim=dim)


# --------------------------------------------------------------------------------------------------
# (a) masked softmax with valid lengths
# --------------------------------------------------------------------------------------------------
_MASK_CASES = (
    # (batch, T_q, T_k, valid_lens): no empty row first, so the hints about the mask itself come first
    (2, 3, 5, [2, 4]),
    (3, 4, 6, [6, 1, 3]),
    (3, 2, 4, [0, 3, 0]),
    (1, 1, 4, [3]),  # a batch of one with one query: .squeeze() without an axis breaks here
)


def check_masked_softmax(masked_softmax_fn: Callable[[Tensor, Tensor], Tensor]) -> None:
    """Check ``masked_softmax_fn(scores, valid_lens)``: scores (B, T_q, T_k), valid_lens (B,) -> weights.

    Introduced in lesson 03.
    """
    name = "masked_softmax"
    require_callable(masked_softmax_fn, name)
    for index, (batch, t_q, t_k, lens) in enumerate(_MASK_CASES):
        scores = torch.randn(batch, t_q, t_k, generator=_generator(index)) * 2.0
        valid_lens = torch.tensor(lens)
        case = f"case {index + 1} (scores {tuple(scores.shape)}, valid_lens {lens})"
        original = scores.clone()
        got = _tensor(call_learner(masked_softmax_fn, scores, valid_lens, name=name), name, case)
        if not torch.equal(scores, original):
            raise CheckFailed(f"{name} changed `scores` in place on {case}: use `masked_fill` (which returns a new "
                              f"tensor), not `masked_fill_`")
        expected = masked_softmax(original, valid_lens=valid_lens)
        allowed = lengths_to_mask(valid_lens, t_k)[:, None, :].expand(batch, t_q, t_k)  # (B, T_q, T_k)
        empty = ~allowed.any(dim=-1)  # (B, T_q): rows with nothing to attend
        if got.shape == expected.shape and got.is_floating_point() and torch.isnan(got).any():
            where = "a row with valid_len 0" if bool(torch.isnan(got[empty]).any()) else "some rows"
            raise CheckFailed(f"{name} on {case} gives NaN in {where}: a softmax over a row that is all -inf is "
                              f"0/0. Fill masked scores with a large finite negative number (or zero those rows "
                              f"afterwards) so that a row with nothing to attend gives all zeros")
        mistakes = {
            "the mask is ignored: positions at or beyond valid_lens[b] must get weight exactly 0":
                torch.softmax(original, dim=-1),
            "the mask is flipped: positions j < valid_lens[b] may be attended, the ones from valid_lens[b] on "
            "are padding": masked_softmax(original, mask=~allowed),
            "softmax over the wrong axis: normalise over the keys (dim=-1), so that each row sums to 1":
                _very_negative_softmax(original, allowed, dim=-2),
            "softmax over the wrong axis (dim=-2 or dim=1): normalise over the keys, dim=-1":
                _very_negative_softmax(original, allowed, dim=-2) * allowed,
            "a row with valid_len 0 must give all zeros, not equal weights 1/T_k (which is what filling with "
            "-1e6 gives): multiply the weights by the mask afterwards":
                _very_negative_softmax(original, allowed, dim=-1),
        }
        compare(got, expected, name, case=case, mistakes=mistakes)
    passed(name)


# --------------------------------------------------------------------------------------------------
# (b) scaled dot-product scores
# --------------------------------------------------------------------------------------------------
_SCORE_CASES = (
    # (leading shape, T_q, T_k, d)
    ((), 3, 5, 4),
    ((2,), 3, 6, 8),
    ((2, 3), 4, 5, 16),
    ((2,), 4, 4, 4),  # square: q @ k (no transpose) has the right shape here
)


def check_scaled_dot_scores(scores_fn: Callable[[Tensor, Tensor], Tensor]) -> None:
    """Check ``scores_fn(q, k)``: q (..., T_q, d), k (..., T_k, d) -> (..., T_q, T_k) = q k^T / sqrt(d).

    Introduced in lesson 03.
    """
    name = "scaled_dot_scores"
    require_callable(scores_fn, name)
    for index, (lead, t_q, t_k, d) in enumerate(_SCORE_CASES):
        gen = _generator(10 + index)
        q = torch.randn(*lead, t_q, d, generator=gen)
        k = torch.randn(*lead, t_k, d, generator=gen)
        case = f"case {index + 1} (q {tuple(q.shape)}, k {tuple(k.shape)})"
        try:
            result = call_learner(scores_fn, q.clone(), k.clone(), name=name)
        except CheckFailed as failure:
            if "not implemented" in str(failure):
                raise
            raise CheckFailed(f"{failure} [{case}]. Hint: the keys' last two axes must be swapped, "
                              f"k.transpose(-2, -1), so that this works for any number of leading axes "
                              f"(k.T reverses all the axes)") from None
        got = _tensor(result, name, case)
        expected = dot_product_scores(q, k)
        if t_q != t_k and got.shape == expected.transpose(-2, -1).shape:
            raise CheckFailed(f"{name} on {case} returned shape {tuple(got.shape)} = (..., T_k, T_q): each query "
                              f"is a row of the scores, so compute q @ k.transpose(-2, -1), not k @ q^T")
        raw = q @ k.transpose(-2, -1)  # (..., T_q, T_k), unscaled
        mistakes = {
            "no scaling: divide q k^T by sqrt(d), d = q.shape[-1]": raw,
            "you divided by d; divide by sqrt(d)": raw / d,
            "you multiplied by sqrt(d); divide by it": raw * math.sqrt(d),
            "the scale uses the number of keys; it uses the head dimension d = q.shape[-1]": raw / math.sqrt(t_k),
            "the scale uses the number of queries; it uses the head dimension d = q.shape[-1]": raw / math.sqrt(t_q),
            "the transpose is missing: scores = q @ k.transpose(-2, -1) / sqrt(d)":
                (q @ k) / math.sqrt(d) if t_k == d else raw * float("nan"),
            "the result is transposed (keys x queries): compute q @ k^T, not k @ q^T":
                expected.transpose(-2, -1) if t_q == t_k else raw * float("nan"),
        }
        compare(got, expected, name, case=case, mistakes=mistakes)
    passed(name)


_SHARED_KEY_CASES = (
    # (leading shape, heads H, T_q, T_k, d): sizes all different so that each wrong scale gives another number
    ((), 2, 3, 5, 4),
    ((2,), 3, 4, 6, 8),
    ((1,), 1, 1, 5, 6),  # a batch of one, one head, one query: .squeeze() without an axis breaks here
    ((2, 2), 4, 3, 7, 9),
)


def check_shared_key_scores(scores_fn: Callable[[Tensor, Tensor], Tensor]) -> None:
    """Check ``scores_fn(q, k)``: q (..., H, T_q, d), k (..., T_k, d) shared by the H heads -> (..., H, T_q, T_k).

    The scaled dot-product scores of multi-query attention (Shazeer 2019, arXiv:1911.02150): every head has
    its own queries, all heads read the same keys. Introduced in lesson 03.
    """
    name = "shared_key_scores"
    require_callable(scores_fn, name)
    for index, (lead, heads, t_q, t_k, d) in enumerate(_SHARED_KEY_CASES):
        gen = _generator(40 + index)
        q = torch.randn(*lead, heads, t_q, d, generator=gen)
        k = torch.randn(*lead, t_k, d, generator=gen)
        case = f"case {index + 1} (q {tuple(q.shape)}, k {tuple(k.shape)})"
        try:
            result = call_learner(scores_fn, q, k, name=name)
        except CheckFailed as failure:
            if "not implemented" in str(failure) or "wrote into" in str(failure):
                raise
            raise CheckFailed(f"{failure} [{case}]. Hint: give the keys a head axis of size 1 just before their "
                              f"last two axes, k.unsqueeze(-3), and swap k's last two axes with "
                              f"transpose(-2, -1); counting axes from the end works for any leading shape") from None
        got = _tensor(result, name, case)
        raw = q @ k.unsqueeze(-3).transpose(-2, -1)  # (..., H, T_q, T_k), unscaled
        expected = raw / math.sqrt(d)
        mistakes = {
            "no scaling: divide q k^T by sqrt(d), d = q.shape[-1]": raw,
            "you divided by d; divide by sqrt(d)": raw / d,
            "the scale uses the number of keys; it uses the query/key size d = q.shape[-1]": raw / math.sqrt(t_k),
            "the scale uses H * d, the size of all heads together; each head's scores use its own d":
                raw / math.sqrt(heads * d),
            "you returned the softmax; return the raw scores (the softmax comes later)":
                torch.softmax(expected, dim=-1),
            "the result is transposed (keys x queries): compute q @ k^T, not k @ q^T": expected.transpose(-2, -1),
            "you squeezed away an axis of size 1 (a batch of one, one head or one query): .squeeze() without an "
            "axis removes every such axis; name the axis, or index with k[..., None, :, :]": expected.squeeze(),
        }
        compare(got, expected, name, case=case, mistakes=mistakes)
    passed(name)


# --------------------------------------------------------------------------------------------------
# (c) additive (Bahdanau) scores
# --------------------------------------------------------------------------------------------------
_ADDITIVE_CASES = (
    # (batch, T_q, T_k, query_dim, key_dim, hidden_dim)
    (2, 3, 5, 4, 6, 8),
    (3, 1, 7, 5, 3, 6),
    (2, 4, 4, 3, 3, 5),  # square: a (T_k, T_q) layout has the right shape here
    (1, 1, 5, 4, 6, 3),  # a batch of one with one query: .squeeze() without an axis breaks here
)


def _linear(module: Any, attr: str, shape: tuple[int, int], case: str) -> nn.Linear:
    layer = getattr(module, attr, None)
    if not isinstance(layer, nn.Linear):
        raise CheckFailed(f"the module has no nn.Linear attribute `{attr}` on {case}: keep the __init__ as given")
    if tuple(layer.weight.shape) != shape:
        raise CheckFailed(f"`{attr}.weight` has shape {tuple(layer.weight.shape)} on {case}, expected {shape}: "
                          f"keep the __init__ as given")
    return layer


def check_additive_scores(module_cls: type) -> None:
    """Check a module ``module_cls(query_dim, key_dim, hidden_dim)`` with layers ``W_q``, ``W_k``, ``w_v``.

    ``forward(q, k)``: q (B, T_q, query_dim), k (B, T_k, key_dim) -> (B, T_q, T_k) = w_v^T tanh(W_q q + W_k k).
    Introduced in lesson 03.
    """
    name = "AdditiveAttention"
    require_callable(module_cls, name)
    for index, (batch, t_q, t_k, dq, dk, hidden) in enumerate(_ADDITIVE_CASES):
        case = f"case {index + 1} (q {(batch, t_q, dq)}, k {(batch, t_k, dk)}, hidden {hidden})"
        with torch.random.fork_rng(devices=[]):  # seeded, without touching the learner's random state
            torch.manual_seed(20 + index)
            module = call_learner(module_cls, dq, dk, hidden, name=f"{name}(...)")
            reference = AdditiveScores(dq, dk, hidden)
        w_q = _linear(module, "W_q", (hidden, dq), case)
        w_k = _linear(module, "W_k", (hidden, dk), case)
        w_v = _linear(module, "w_v", (1, hidden), case)
        gen = _generator(20 + index)
        with torch.no_grad():  # the same (fairly large) weights in both, so tanh is far from linear
            for ours, theirs in ((reference.q_proj, w_q), (reference.k_proj, w_k), (reference.v, w_v)):
                weight = torch.randn(ours.weight.shape, generator=gen)
                ours.weight.copy_(weight)
                theirs.weight.copy_(weight)
                if theirs.bias is not None:
                    theirs.bias.zero_()
        q = torch.randn(batch, t_q, dq, generator=gen)
        k = torch.randn(batch, t_k, dk, generator=gen)
        with torch.no_grad():
            got = _tensor(call_learner(module, q, k, name=f"{name}.forward"), f"{name}.forward", case)
            expected = reference(q, k)
            qh, kh = reference.q_proj(q), reference.k_proj(k)  # (B, T_q, h), (B, T_k, h)
            features = qh.unsqueeze(2) + kh.unsqueeze(1)  # (B, T_q, T_k, h)
        if got.shape == (batch, t_k, t_q) and t_k != t_q:
            raise CheckFailed(f"{name}.forward on {case} returned shape {tuple(got.shape)} = (B, T_k, T_q): the "
                              f"queries' features need the new axis at -2 and the keys' at -3, "
                              f"W_q(q).unsqueeze(-2) + W_k(k).unsqueeze(-3) -> (B, T_q, T_k, hidden)")
        if got.shape == (batch, t_q, t_k, 1):
            raise CheckFailed(f"{name}.forward on {case} returned shape {tuple(got.shape)}: squeeze the last axis "
                              f"after w_v")
        if got.shape == (batch, t_q, t_k, hidden):
            raise CheckFailed(f"{name}.forward on {case} returned shape {tuple(got.shape)}: w_v is missing; it "
                              f"turns each hidden vector into one score")
        mistakes = {
            "tanh is missing: score = w_v(tanh(W_q q + W_k k))": reference.v(features).squeeze(-1),
            "tanh goes around the sum, w_v(tanh(W_q q + W_k k)), not around each term":
                reference.v(torch.tanh(qh).unsqueeze(2) + torch.tanh(kh).unsqueeze(1)).squeeze(-1),
            "the non-linearity is tanh (Bahdanau et al. 2015), not ReLU": reference.v(torch.relu(features)).squeeze(-1),
            "the result is laid out (T_k, T_q): put the queries' new axis at -2 and the keys' at -3":
                expected.transpose(-2, -1) if t_q == t_k else expected * float("nan"),
            "scores are not normalised here: return the raw scores, the softmax comes later":
                torch.softmax(expected, dim=-1),
        }
        compare(got, expected.detach(), f"{name}.forward", case=case, mistakes=mistakes)
    passed(name)


# --------------------------------------------------------------------------------------------------
# (d) find the bug in a self-attention layer
# --------------------------------------------------------------------------------------------------
_LAYER_CASES = (
    # (batch, T, d_model, valid_lens or None)
    (2, 5, 8, None),
    (2, 5, 8, [3, 5]),
    (3, 4, 6, [1, 4, 2]),
    (1, 4, 6, [3]),  # a batch of one
)


def check_attention_layer(layer_cls: type) -> None:
    """Check a single-head self-attention layer ``layer_cls(d_model)`` with ``q_proj``, ``k_proj``, ``v_proj``.

    ``forward(x, valid_lens=None)``: x (B, T, D) -> (out (B, T, D), weights (B, T, T)); keys at positions
    >= valid_lens[b] get weight 0; scores are scaled by 1/sqrt(D). Introduced in lesson 03.
    """
    name = "AttentionLayer"
    require_callable(layer_cls, name)
    for index, (batch, length, d_model, lens) in enumerate(_LAYER_CASES):
        case = f"case {index + 1} (x {(batch, length, d_model)}, valid_lens {lens})"
        with torch.random.fork_rng(devices=[]):  # seeded, without touching the learner's random state
            torch.manual_seed(30 + index)
            layer = call_learner(layer_cls, d_model, name=f"{name}({d_model})")
        projections = [_linear(layer, attr, (d_model, d_model), case) for attr in ("q_proj", "k_proj", "v_proj")]
        x = torch.randn(batch, length, d_model, generator=_generator(30 + index)) * 2.0
        valid_lens = None if lens is None else torch.tensor(lens)
        with torch.no_grad():
            result = call_learner(layer, x, valid_lens, name=f"{name}.forward")
            if not isinstance(result, tuple) or len(result) != 2:
                raise CheckFailed(f"{name}.forward on {case} must return a tuple (out, weights), got "
                                  f"{type(result).__name__}")
            out = _tensor(result[0], f"{name}.forward's out", case)
            weights = _tensor(result[1], f"{name}.forward's weights", case)
            q, k, v = (p(x) for p in projections)  # (B, T, D) each
            mask = None if valid_lens is None else lengths_to_mask(valid_lens, length)[:, None, :]  # (B, 1, T)
            expected_out, expected_w = scaled_dot_product_attention(q, k, v, mask=mask, impl="naive",
                                                                    return_weights=True)
            allowed = torch.ones(batch, length, length, dtype=torch.bool) if mask is None else mask.expand(
                batch, length, length)  # (B, T, T)
            raw = q @ k.transpose(-2, -1)  # (B, T, T), unscaled
            wrong_weights = {
                "the softmax runs over the query axis (dim=1): each query's weights over the keys must sum to 1, "
                "so normalise over the last axis (dim=-1)":
                    torch.softmax((raw / math.sqrt(d_model)).masked_fill(~allowed, -1e9), dim=1),
                "the scores are not scaled: divide by sqrt(d_model)":
                    masked_softmax(raw, mask=allowed),
                "the scores are divided by d_model; divide by sqrt(d_model)":
                    masked_softmax(raw / d_model, mask=allowed),
                "the mask is ignored: keys at positions >= valid_lens[b] must get weight 0":
                    torch.softmax(raw / math.sqrt(d_model), dim=-1),
                "the mask is flipped: keys at positions < valid_lens[b] are the real ones":
                    masked_softmax(raw / math.sqrt(d_model), mask=~allowed),
                "the mask is flipped: keys at positions < valid_lens[b] are the real ones, the rest is padding":
                    torch.softmax((raw / math.sqrt(d_model)).masked_fill(allowed, -1e9), dim=-1),
            }
        compare(weights, expected_w, f"{name}.forward's weights", case=case, mistakes=wrong_weights)
        compare(out, expected_out, f"{name}.forward's out", case=case,
                mistakes={"the output must be weights @ v (the projected values), not weights @ x": expected_w @ x})
    passed(name)


# --------------------------------------------------------------------------------------------------
# Exercise 5: derive the variance of a scaled score when q and k do not have unit variance
# --------------------------------------------------------------------------------------------------
#: The setting of exercise 5: d and the variance of every entry of q and k (independent, mean 0).
SCORE_VARIANCE_SETTING: dict[str, float] = {"d": 16, "entry_variance": 2.0}


def _measured_score_variances(samples: int = 50_000, seed: int = 5) -> tuple[float, float]:
    """Var(q . k) and Var(q . k / sqrt(d)) measured on random pairs with ``dot_product_scores``."""
    d, var = int(SCORE_VARIANCE_SETTING["d"]), SCORE_VARIANCE_SETTING["entry_variance"]
    g = _generator(seed)
    q = torch.randn(samples, 1, d, generator=g, dtype=torch.float64) * math.sqrt(var)
    k = torch.randn(samples, 1, d, generator=g, dtype=torch.float64) * math.sqrt(var)
    raw = dot_product_scores(q, k, scale=1.0).flatten()  # (samples,)
    scaled = dot_product_scores(q, k).flatten()  # scale None: 1 / sqrt(d)
    return float(raw.var()), float(scaled.var())


def check_score_variance(variance_scaled: object, scale_for_unit_variance: object) -> None:
    """Check a derivation: Var(q . k / sqrt(d)) for entries of variance sigma^2, and the scale that gives variance 1.

    The truth is measured on 50,000 random pairs with ``course_lib.attention.dot_product_scores`` (to 5 %); the
    formula (d sigma^4 before scaling) is what the hints lead to. Introduced in lesson 03.
    """
    d, var = int(SCORE_VARIANCE_SETTING["d"]), SCORE_VARIANCE_SETTING["entry_variance"]
    raw_var, scaled_var = _measured_score_variances()
    tol = {"rel_tol": 0.05, "abs_tol": 0.0}
    check_number(
        variance_scaled, "variance_scaled", scaled_var,
        StepHints("03-variance-scaled", [
            "follow section 2 of the lesson, but keep sigma^2 where it had 1: what is Var(q_i k_i) = E[q_i^2] "
            "E[k_i^2] now?",
            "each product q_i k_i has variance sigma^2 * sigma^2 = sigma^4; a sum of d of them has d sigma^4; "
            "dividing the score by sqrt(d) divides its variance by d",
        ]),
        why=f"Var(q . k) = d sigma^4 = {d} * {var:g}^2 = {d * var**2:g} (measured {raw_var:.1f}); dividing by "
            f"sqrt(d) divides the variance by d, leaving sigma^4 = {var**2:g} (measured {scaled_var:.2f}). The "
            f"1/sqrt(d) scale removes the growth with d, not the size of the entries",
        mistakes={"each product q_i k_i has variance E[q_i^2] E[k_i^2] = sigma^2 * sigma^2, not sigma^2": var,
                  "1/sqrt(d) gives variance 1 only when the entries have variance 1": 1.0,
                  "that is Var(q . k) before the scaling; dividing the score by sqrt(d) divides its variance by d":
                      d * var**2,
                  "that is d sigma^2: the products have variance sigma^4, and the scaling divides by d":
                      d * var,
                  "that is d: the lesson's unit-variance answer before scaling": float(d)},
        **tol,
    )
    check_number(
        scale_for_unit_variance, "scale_for_unit_variance", 1.0 / math.sqrt(raw_var),
        StepHints("03-scale-unit", [
            "multiplying a score by c multiplies its variance by c^2: solve c^2 Var(q . k) = 1",
            f"Var(q . k) = d sigma^4, so c = 1 / sqrt(d sigma^4) = 1 / (sigma^2 sqrt(d)); here sigma^2 = {var:g}",
        ]),
        why=f"c^2 * d sigma^4 = 1 gives c = 1 / (sigma^2 sqrt(d)) = 1 / ({var:g} * {math.sqrt(d):g}) = "
            f"{1 / (var * math.sqrt(d)):g} (measured: 1 / sqrt({raw_var:.1f}) = {1 / math.sqrt(raw_var):.4f}). "
            f"This is why models keep the entries of q and k near unit size (initialisation, LayerNorm): then "
            f"1/sqrt(d) is the right scale",
        mistakes={"1/sqrt(d) is the right scale only for unit-variance entries": 1 / math.sqrt(d),
                  "1/d would be right for the variance; the scale multiplies the score, so it is the square root":
                      1 / d,
                  "that is 1 / (d sigma^4), which solves c Var(q . k) = 1; the variance is multiplied by c^2, so c "
                  "is the square root of it": 1 / (d * var**2),
                  "1/sigma^2 corrects the entries' size but not the growth with d": 1 / var,
                  "that is 1/sqrt(sigma^2 sqrt(d)); the variance of q . k is d sigma^4, so c = 1/(sigma^2 sqrt(d))":
                      1 / math.sqrt(var * math.sqrt(d))},
        **tol,
    )
