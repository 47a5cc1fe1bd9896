"""Checkers for lesson 05 (self-, cross- and bidirectional attention): causal mask, sinusoidal positions,
positions added before attention."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from course_lib.attention import (
    SinusoidalPositionalEncoding,
    causal_mask,
    masked_softmax,
    scaled_dot_product_attention,
)
from course_lib.checks.core import CheckFailed, call_learner, compare, passed, require_callable
from course_lib.checks.thinking import StepHints, check_choice

__all__ = ["check_causal_mask", "check_sinusoidal_encoding", "check_positional_self_attention", "PERMUTATION_OPTIONS",
           "check_permutation_predictions"]


# --------------------------------------------------------------------------------------------------
# Causal mask
# --------------------------------------------------------------------------------------------------
def check_causal_mask(causal_mask_fn: Callable[[int], Tensor]) -> None:
    """``causal_mask(t)``: bool (t, t), True on and below the diagonal (query i may attend keys 0..i).

    Introduced in lesson 05.
    """
    require_callable(causal_mask_fn, "causal_mask")
    for t in (4, 2, 7, 1):  # t=1 last: its only wrong mask fits two hints
        case = f"t={t}"
        got = call_learner(causal_mask_fn, t, name="causal_mask")
        if not isinstance(got, Tensor):
            raise CheckFailed(f"causal_mask on {case} should return a tensor, got {type(got).__name__}")
        if got.dtype != torch.bool:
            raise CheckFailed(f"causal_mask on {case} returned dtype {got.dtype}; return a boolean mask "
                              f"(True = may attend)")
        expected = causal_mask(t)
        ones = torch.ones(t, t, dtype=torch.bool)
        compare(got, expected, "causal_mask", case, mistakes={
            "the polarity is inverted: True must mean *may attend* (the past and the token itself), "
            "not *is hidden*": ~expected,
            "off by one on the diagonal: a token may attend to itself (tril(), not tril(-1))": ones.tril(-1),
            "this mask lets each token see the future and not the past: keep the lower triangle (tril), "
            "not the upper one": ones.triu(),
            "nothing is masked: a causal mask hides every key j > i": ones,
        })
    passed("causal_mask")


# --------------------------------------------------------------------------------------------------
# Sinusoidal positional encoding
# --------------------------------------------------------------------------------------------------
def _sinusoid(max_len: int, d: int, swap: bool = False, concat: bool = False, pair_exponent: bool = False,
              start: int = 0) -> Tensor:
    positions = torch.arange(start, start + max_len, dtype=torch.float64)[:, None]  # (max_len, 1)
    i = torch.arange(0, d, 2, dtype=torch.float64)  # 2i = 0, 2, 4, ...
    exponent = (i / 2) / d if pair_exponent else i / d
    angles = positions / 10000.0**exponent  # (max_len, d/2)
    sin, cos = torch.sin(angles), torch.cos(angles)
    if swap:
        sin, cos = cos, sin
    if concat:
        return torch.cat([sin, cos], dim=-1)  # (max_len, d)
    pe = torch.zeros(max_len, d, dtype=torch.float64)
    pe[:, 0::2], pe[:, 1::2] = sin, cos
    return pe


def check_sinusoidal_encoding(sinusoidal_encoding: Callable[[int, int], Tensor]) -> None:
    """``sinusoidal_encoding(max_len, d_model)`` -> (max_len, d_model): PE[p, 2i] = sin(p / 10000^(2i/D)), cos 2i+1.

    Introduced in lesson 05.
    """
    require_callable(sinusoidal_encoding, "sinusoidal_encoding")
    for max_len, d in ((6, 4), (20, 8), (50, 16)):
        case = f"max_len={max_len}, d_model={d}"
        got = call_learner(sinusoidal_encoding, max_len, d, name="sinusoidal_encoding")
        expected = SinusoidalPositionalEncoding(d, max_len=max_len).pe
        compare(got, expected, "sinusoidal_encoding", case, mistakes={
            "sin and cos are swapped: even columns 2i hold the sine, odd columns 2i+1 the cosine":
                _sinusoid(max_len, d, swap=True),
            "the sines and cosines are concatenated in two halves; interleave them: column 2i is sin, "
            "2i+1 is cos (pe[:, 0::2] = sin, pe[:, 1::2] = cos)": _sinusoid(max_len, d, concat=True),
            "the exponent is i/D with i the pair index; it is 2i/D (equivalently, the even column index "
            "divided by D)": _sinusoid(max_len, d, pair_exponent=True),
            "positions start at 1; the first position is 0": _sinusoid(max_len, d, start=1),
        }, atol=1e-4)
    passed("sinusoidal_encoding")


# --------------------------------------------------------------------------------------------------
# Positions are added to the input, before attention
# --------------------------------------------------------------------------------------------------
def _attend(q: Tensor, k: Tensor, v: Tensor, scale: bool = True) -> Tensor:
    scores = q @ k.transpose(-2, -1)  # (B, T, T)
    if scale:
        scores = scores / math.sqrt(q.shape[-1])
    return masked_softmax(scores) @ v  # (B, T, D)


def check_positional_self_attention(positional_self_attention: Callable[..., Tensor]) -> None:
    """``positional_self_attention(x, pe, w_q, w_k, w_v)``: add pe (T, D) to x (B, T, D), then single-head
    Introduced in lesson 05.
    scaled dot-product self-attention with projections ``h @ w_q`` etc."""
    require_callable(positional_self_attention, "positional_self_attention")
    for seed, (b, t, d) in enumerate(((1, 4, 4), (2, 6, 8), (3, 5, 6))):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(b, t, d, generator=g)
        w_q, w_k, w_v = (torch.randn(d, d, generator=g) / math.sqrt(d) for _ in range(3))
        pe = SinusoidalPositionalEncoding(d, max_len=t).pe.clone()  # (T, D)
        case = f"x of shape {(b, t, d)}"
        got = call_learner(positional_self_attention, x.clone(), pe.clone(), w_q, w_k, w_v,
                           name="positional_self_attention")
        h = x + pe  # (B, T, D)
        expected = _attend(h @ w_q, h @ w_k, h @ w_v)
        compare(got, expected, "positional_self_attention", case, mistakes={
            "the positions were added *after* attention: by then attention has already mixed the tokens "
            "without knowing their order. Add pe to x first, then project and attend":
                _attend(x @ w_q, x @ w_k, x @ w_v) + pe,
            "the positions are not used at all: add pe to x before the projections": _attend(x @ w_q, x @ w_k, x @ w_v),
            "pe was added to the queries and keys but not to the values: add it to x itself, before all three "
            "projections": _attend(h @ w_q, h @ w_k, x @ w_v),
            "the scores are not divided by sqrt(d)": _attend(h @ w_q, h @ w_k, h @ w_v, scale=False),
        })
    passed("positional_self_attention")


# --------------------------------------------------------------------------------------------------
# Exercise 4: predict what a permutation of the tokens does to self-attention, without and with positions
# --------------------------------------------------------------------------------------------------
#: The options of exercise 4: how the output for the permuted tokens x[:, perm] relates to the output ``out`` for x.
PERMUTATION_OPTIONS: dict[str, str] = {
    "a": "it is the same as out, row for row (out[:, i] unchanged)",
    "b": "it is out with its rows reordered by the same permutation (out[:, perm])",
    "c": "it is not a reordering of out: some rows are new vectors",
    "d": "it is out with its rows in reverse order (out.flip(1))",
}


def _permutation_relation(with_positions: bool) -> str:
    """Run single-head self-attention on x and on x[:, perm]; return the option that describes the result."""
    g = torch.Generator().manual_seed(51)
    batch, length, width = 2, 6, 8
    x = torch.randn(batch, length, width, generator=g)
    w_q, w_k, w_v = (torch.randn(width, width, generator=g) / math.sqrt(width) for _ in range(3))
    perm = torch.tensor([2, 0, 5, 1, 4, 3])
    add_positions = SinusoidalPositionalEncoding(width, max_len=length)

    def layer(tokens: Tensor) -> Tensor:
        h = add_positions(tokens) if with_positions else tokens
        return scaled_dot_product_attention(h @ w_q, h @ w_k, h @ w_v)

    out, out_perm = layer(x), layer(x[:, perm])
    for key, candidate in (("a", out), ("b", out[:, perm]), ("d", out.flip(1))):
        if torch.allclose(out_perm, candidate, atol=1e-5):
            return key
    nearest = torch.cdist(out_perm, out).min(dim=-1).values  # (B, T): distance of each new row to the old rows
    if bool((nearest > 1e-4).any()):
        return "c"  # some row is a vector the unpermuted output never had
    raise RuntimeError("the permuted output is some other reordering of the output; no option describes it")


def check_permutation_predictions(without_positions: object, with_positions: object) -> None:
    """Check two predictions (letters of ``PERMUTATION_OPTIONS``): self-attention on permuted tokens, without and
    with sinusoidal positions added first. The truth comes from running both. Introduced in lesson 05.
    """
    check_choice(
        without_positions, "without_positions", PERMUTATION_OPTIONS, _permutation_relation(False),
        StepHints("05-permute-plain", [
            "follow one token: after the shuffle it sits in another row, but which queries, keys and values does "
            "it meet, and with what scores?",
            "each output row is softmax(q_i K^T / sqrt(d)) V: a weighted sum over the set of keys, and the sum does "
            "not care about the order of its terms; only the row where token i's result is written moves",
        ]),
        why="each token's output depends on its own query and on the *set* of keys and values, not on their order: "
            "permuting the input permutes the output the same way (permutation equivariance, 置换等变)",
        wrong={"a": "each token still gets its old output, but the token is now in another row, so the rows of "
                    "the result move with it.",
               "c": "no new vectors appear: every token meets the same keys and values with the same scores as "
                    "before.",
               "d": "the rows follow the permutation that was applied, whatever it is; this one is not a reversal."},
    )
    check_choice(
        with_positions, "with_positions", PERMUTATION_OPTIONS, _permutation_relation(True),
        StepHints("05-permute-positions", [
            "the encoding is added by position, before the shuffle's effect can be undone: does token i get the "
            "same PE row after it moved?",
            "a moved token gets the PE of its new position, so its query, key and value change: its scores against "
            "the others change, and so does its output",
        ]),
        why="the positional encoding is added by *position*: a moved token gets a different PE row, so its query, "
            "key and value, and its output, change. That is the point of positions: order becomes visible",
        wrong={"a": "the tokens moved, and with positions added each token's vectors change with its new place.",
               "b": "that is what happens without positions; with them, a token in a new place gets a new "
                    "encoding, so its output is not the old one moved.",
               "d": "this permutation is not a reversal, and with positions the outputs change, not only move."},
    )
