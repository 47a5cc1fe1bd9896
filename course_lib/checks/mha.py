"""Checkers for lesson 06 (multi-head attention): split and merge heads, parameter count, the forward pass."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from course_lib.attention import MultiHeadAttention, masked_softmax
from course_lib.checks.core import as_number, call_learner, compare, passed, require_callable
from course_lib.checks.thinking import StepHints, check_choice, check_shape

__all__ = ["check_split_heads", "check_merge_heads", "check_mha_param_count", "check_mha_forward",
           "HEADS_PARAMETER_OPTIONS", "HEADS_SHAPE_SETTING", "check_heads_predictions"]

_SHAPES = ((1, 3, 4, 2), (2, 5, 12, 3), (3, 4, 16, 4))  # (B, T, D, H)


def _split(x: Tensor, h: int) -> Tensor:
    b, t, d = x.shape
    return x.view(b, t, h, d // h).transpose(1, 2)  # (B, H, T, d)


def _merge(x: Tensor) -> Tensor:
    b, h, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d)  # (B, T, H*d)


def check_split_heads(split_heads: Callable[[Tensor, int], Tensor]) -> None:
    """``split_heads(x, num_heads)``: (B, T, D) -> (B, H, T, D // H), head h holding features h*d .. (h+1)*d - 1.

    Introduced in lesson 06.
    """
    require_callable(split_heads, "split_heads")
    for seed, (b, t, d, h) in enumerate(_SHAPES):
        x = torch.randn(b, t, d, generator=torch.Generator().manual_seed(seed))
        case = f"x of shape {(b, t, d)} with {h} heads"
        got = call_learner(split_heads, x.clone(), h, name="split_heads")
        compare(got, _split(x, h), "split_heads", case, mistakes={
            "no transpose: x.view(B, H, T, d) cuts the *sequence* into pieces instead of the features. "
            "Reshape to (B, T, H, d) first, then transpose(1, 2)": x.reshape(b, h, t, d // h),
            "the features are dealt out round-robin (feature f goes to head f % H); each head takes a "
            "contiguous block: view(B, T, H, d), not view(B, T, d, H)":
                x.view(b, t, d // h, h).permute(0, 3, 1, 2),
        })
    passed("split_heads")


def check_merge_heads(merge_heads: Callable[[Tensor], Tensor]) -> None:
    """``merge_heads(x)``: (B, H, T, d) -> (B, T, H * d), the inverse of split_heads. Introduced in lesson 06."""
    require_callable(merge_heads, "merge_heads")
    for seed, (b, t, d, h) in enumerate(_SHAPES):
        x = torch.randn(b, h, t, d // h, generator=torch.Generator().manual_seed(10 + seed))
        case = f"x of shape {tuple(x.shape)}"
        got = call_learner(merge_heads, x.clone(), name="merge_heads")
        compare(got, _merge(x), "merge_heads", case, mistakes={
            "no transpose on merge: x.reshape(B, T, D) on a (B, H, T, d) tensor mixes tokens of different "
            "positions into one row. transpose(1, 2) to (B, T, H, d) first, then reshape": x.reshape(b, t, d),
            "the features are interleaved (head-minor); concatenate whole heads: transpose(1, 2), not a "
            "permute that puts d before H": x.permute(0, 2, 3, 1).reshape(b, t, d),
        })
    passed("merge_heads")


def _param_count(d_model: int, kdim: int, vdim: int, bias: bool) -> int:
    return d_model * d_model * 2 + kdim * d_model + vdim * d_model + (4 * d_model if bias else 0)


def check_mha_param_count(mha_param_count: Callable[..., int]) -> None:
    """``mha_param_count(d_model, num_heads, kdim=None, vdim=None, bias=True)``: learnable parameters of MHA.

    Introduced in lesson 06.
    """
    require_callable(mha_param_count, "mha_param_count")
    for d_model, heads, kdim, vdim, bias in ((8, 2, None, None, True), (64, 8, None, None, True),
                                             (12, 3, None, None, False), (16, 4, 6, 10, True), (20, 5, 3, 7, False)):
        case = f"d_model={d_model}, num_heads={heads}, kdim={kdim}, vdim={vdim}, bias={bias}"
        got = call_learner(mha_param_count, d_model, heads, kdim=kdim, vdim=vdim, bias=bias, name="mha_param_count")
        got = as_number(got, "mha_param_count", case, integer=True)  # int, numpy int, or a whole float
        with torch.random.fork_rng(devices=[]):
            module = MultiHeadAttention(d_model, heads, bias=bias, kdim=kdim, vdim=vdim)
        expected = sum(p.numel() for p in module.parameters())
        k, v = kdim or d_model, vdim or d_model
        b = 4 * d_model if bias else 0
        compare(torch.tensor(got), torch.tensor(expected), "mha_param_count", case, mistakes={
            "the biases are missing: each of the four projections has D of them": torch.tensor(expected - b),
            "the output projection is missing (it has D*D weights and D biases)":
                torch.tensor(expected - d_model * d_model - (d_model if bias else 0)),
            "heads do not multiply the parameters: H heads of size D/H share the same D x D projections":
                torch.tensor(expected * heads),
            "kdim and vdim change the key and value projections: they map kdim -> D and vdim -> D":
                torch.tensor(_param_count(d_model, d_model, d_model, bias)),
            "there are biases even with bias=False? count 4 * D biases only when bias=True":
                torch.tensor(_param_count(d_model, k, v, True)),
        }, atol=0, rtol=0)
    passed("mha_param_count")


def _forward(mha: MultiHeadAttention, query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None, *,
             transpose: bool = True, scale: float | None = None, invert: bool = False, out_proj: bool = True
             ) -> Tensor:
    h = mha.num_heads
    q, k, v = _split(mha.q_proj(query), h), _split(mha.k_proj(key), h), _split(mha.v_proj(value), h)  # (B, H, T, d)
    scale = 1.0 / math.sqrt(mha.head_dim) if scale is None else scale
    scores = q @ k.transpose(-2, -1) * scale  # (B, H, T_q, T_k)
    allowed = None if mask is None else (~mask if invert else mask)[:, None]  # (B, 1, T_q, T_k)
    heads = masked_softmax(scores, mask=allowed) @ v  # (B, H, T_q, d)
    merged = _merge(heads) if transpose else heads.reshape(heads.shape[0], heads.shape[2], -1)  # (B, T_q, D)
    return mha.out_proj(merged) if out_proj else merged


def check_mha_forward(mha_forward: Callable[..., Tensor]) -> None:
    """``mha_forward(mha, query, key, value, mask=None)``: the output (B, T_q, D) of ``mha`` (a Introduced in lesson 06.
    ``course_lib.attention.MultiHeadAttention``), computed from its q_proj, k_proj, v_proj and out_proj."""
    require_callable(mha_forward, "mha_forward")
    cases = ((0, 2, 4, 4, 8, 2, None, None, False), (1, 2, 3, 5, 12, 3, None, None, True),
             (2, 3, 5, 6, 16, 4, 5, 7, True))
    for seed, b, t_q, t_k, d, h, kdim, vdim, use_mask in cases:
        g = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]):  # the learner's global random state stays untouched
            torch.manual_seed(seed)
            mha = MultiHeadAttention(d, h, kdim=kdim, vdim=vdim).eval()
        query = torch.randn(b, t_q, d, generator=g)
        key = torch.randn(b, t_k, kdim or d, generator=g)
        value = torch.randn(b, t_k, vdim or d, generator=g)
        mask = None
        if use_mask:
            # every row keeps at least one key and hides at least one, so a flipped mask is still finite
            mask = torch.rand(b, t_q, t_k, generator=g) < 0.6
            mask[..., 0], mask[..., -1] = True, False
        case = (f"query {tuple(query.shape)}, key {tuple(key.shape)}, value {tuple(value.shape)}, {h} heads"
                + (", with a mask" if use_mask else ""))
        got = call_learner(mha_forward, mha, query.clone(), key.clone(), value.clone(), mask=mask,
                           name="mha_forward")
        with torch.no_grad():
            expected = mha(query, key, value, mask=mask)[0]
            mistakes = {
                "heads merged without the transpose: (B, H, T, d) -> transpose(1, 2) -> (B, T, H, d) -> reshape":
                    _forward(mha, query, key, value, mask, transpose=False),
                "the scores are not scaled: divide by sqrt(head_dim)":
                    _forward(mha, query, key, value, mask, scale=1.0),
                "the scores are divided by sqrt(d_model); each head's dot product has head_dim = D / H terms, "
                "so divide by sqrt(head_dim)": _forward(mha, query, key, value, mask, scale=1 / math.sqrt(d)),
                "the output projection out_proj is missing": _forward(mha, query, key, value, mask, out_proj=False),
            }
            if mask is not None:
                mistakes["the mask polarity is inverted: True means *may attend*; fill the scores where the mask "
                         "is False (masked_fill(~mask, -inf))"] = _forward(mha, query, key, value, mask, invert=True)
                mistakes["the mask is ignored"] = _forward(mha, query, key, value, None)
        compare(got, expected, "mha_forward", case, mistakes=mistakes)
    passed("mha_forward")


# --------------------------------------------------------------------------------------------------
# Exercise 5: predict what more heads cost: parameters, and the size of the attention weights
# --------------------------------------------------------------------------------------------------
#: The options of exercise 5 (i): how the parameter count of MultiHeadAttention(d_model, num_heads) depends on H.
HEADS_PARAMETER_OPTIONS: dict[str, str] = {
    "a": "it grows in proportion to num_heads (each head has its own projections)",
    "b": "it is the same for every num_heads that divides d_model",
    "c": "it shrinks as num_heads grows (each head is narrower)",
}

#: The setting of exercise 5 (ii): cross-attention of 10 queries over 12 keys, batch 2, width 64, 8 heads.
HEADS_SHAPE_SETTING: dict[str, int] = {"batch": 2, "t_q": 10, "t_k": 12, "d_model": 64, "num_heads": 8}


def _heads_parameter_relation(d_model: int = 64) -> tuple[str, dict[int, int]]:
    """Count the parameters of course_lib's MultiHeadAttention for every head count that divides d_model."""
    with torch.random.fork_rng():  # building modules draws random weights: leave the learner's RNG alone
        counts = {h: sum(p.numel() for p in MultiHeadAttention(d_model, h).parameters())
                  for h in (1, 2, 4, 8, 16, 32, 64) if d_model % h == 0}
    values = [counts[h] for h in sorted(counts)]
    if len(set(values)) == 1:
        return "b", counts
    if all(values[i] < values[i + 1] for i in range(len(values) - 1)):
        return "a", counts
    return "c", counts


def check_heads_predictions(parameters_vs_heads: object, weights_shape: object) -> None:
    """Check two predictions: how the parameter count depends on num_heads (a letter of ``HEADS_PARAMETER_OPTIONS``),
    and the shape of the weights returned with ``need_weights=True`` in ``HEADS_SHAPE_SETTING``.

    The truth comes from building ``MultiHeadAttention`` modules and running one. Introduced in lesson 06.
    """
    relation, counts = _heads_parameter_relation()
    check_choice(
        parameters_vs_heads, "parameters_vs_heads", HEADS_PARAMETER_OPTIONS, relation,
        StepHints("06-heads-parameters", [
            "list the layer's learnable tensors: which of them has a size that mentions num_heads?",
            "q_proj, k_proj, v_proj and out_proj are all D x D (plus biases) whatever H is: the heads are slices "
            "of the same projections, H slices of width D / H",
        ]),
        why=f"the four projections are D x D whatever H is; the heads only split them into H slices of D / H "
            f"features. course_lib's MultiHeadAttention(64, H) has {counts[1]:,} parameters for every H in "
            f"{sorted(counts)}",
        wrong={"a": "the heads do not get their own D x D projections: each head is a slice of width D / H of the "
                    "same four projections.",
               "c": "narrower heads, but more of them: H slices of width D / H add up to D again."},
    )
    s = HEADS_SHAPE_SETTING
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(0)
        mha = MultiHeadAttention(s["d_model"], s["num_heads"])
        query = torch.randn(s["batch"], s["t_q"], s["d_model"])
        memory = torch.randn(s["batch"], s["t_k"], s["d_model"])
        out, weights = mha(query, memory, memory, need_weights=True)
    assert weights is not None
    b, h, t_q, t_k, d = s["batch"], s["num_heads"], s["t_q"], s["t_k"], s["d_model"]
    check_shape(
        weights_shape, "weights_shape", tuple(weights.shape),
        StepHints("06-heads-weights", [
            "one weight per (sentence, head, query, key): which of these axes does the module keep?",
            "course_lib keeps the heads apart, (B, H, T_q, T_k); each head has one row per query and one column "
            "per key",
        ]),
        why=f"one weight per sentence, head, query and key: (B, H, T_q, T_k) = {tuple(weights.shape)}. The "
            f"parameters do not grow with H, but the attention weights do: H maps of T_q x T_k each, and the output "
            f"is still {tuple(out.shape)}",
        mistakes={"that is torch's nn.MultiheadAttention default (average_attn_weights=True), which averages the "
                  "heads; course_lib keeps them apart": (b, t_q, t_k),
                  "the rows are the queries and the columns the keys: (B, H, T_q, T_k)": (b, h, t_k, t_q),
                  "the keys are the 12 memory positions, not the 10 queries": (b, h, t_q, t_q),
                  "that is the shape of the output, not of the weights": (b, t_q, d),
                  "the batch axis comes first, then the heads": (h, b, t_q, t_k)},
    )
