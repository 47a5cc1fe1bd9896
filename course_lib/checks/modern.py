"""Checkers for lesson 17 (attention in today's language models): RoPE, ALiBi slopes, GQA head order, a cached step.

Introduced in lesson 17. References: Su et al. 2021 (RoPE, arXiv:2104.09864), Press et al. 2022 (ALiBi,
arXiv:2108.12409), Ainslie et al. 2023 (GQA, arXiv:2305.13245).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from course_lib.attention import KVCache, alibi_slopes, apply_rotary, repeat_kv
from course_lib.checks.core import call_learner, compare, passed, require_callable
from course_lib.checks.thinking import StepHints, check_number

__all__ = ["check_apply_rotary", "check_alibi_slopes", "check_repeat_kv", "check_decode_step", "KV_EXAMPLE",
           "kv_cache_bytes_measured", "check_kv_cache_prediction"]


# ---- RoPE ----------------------------------------------------------------------------------------
def _rotate(x: Tensor, positions: Tensor, *, half_split: bool = False, sign: float = 1.0,
            two: float = 2.0, base: float = 10000.0) -> Tensor:
    """RoPE with switches for the typical mistakes (pairing, direction, frequencies)."""
    d = x.shape[-1]
    frequencies = base ** (-two * torch.arange(d // 2, dtype=torch.float64) / d)  # (d/2,)
    angles = positions.to(torch.float64)[:, None] * frequencies[None, :]  # (T, d/2)
    cos, sin = angles.cos().to(x.dtype), (sign * angles.sin()).to(x.dtype)
    if half_split:
        first, second = x[..., : d // 2], x[..., d // 2:]
        return torch.cat((first * cos - second * sin, first * sin + second * cos), dim=-1)
    even, odd = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = even * cos - odd * sin
    out[..., 1::2] = even * sin + odd * cos
    return out


def check_apply_rotary(rotary: Callable[[Tensor, Tensor], Tensor]) -> None:
    """``rotary(x, positions)``: RoPE of x (..., T, d) at integer positions (T,), interleaved pairs (2i, 2i+1)
    turned by ``position * 10000**(-2i/d)``."""
    require_callable(rotary, "rotary")
    cases = (((6, 4), [0, 1, 2, 3, 4, 5]), ((2, 3, 5, 8), [3, 7, 0, 12, 5]), ((1, 4, 16), [10, 11, 12, 13]))
    for seed, (shape, pos) in enumerate(cases):
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
        positions = torch.tensor(pos)
        case = f"x of shape {shape} at positions {pos}"
        got = call_learner(rotary, x.clone(), positions.clone(), name="rotary")
        compare(got, _rotate(x, positions), "rotary", case, atol=1e-5, mistakes={
            "you rotated channel i with channel i + d/2 (the half-split pairing of GPT-NeoX/Llama code); this "
            "lesson pairs neighbours (2i, 2i+1): x[..., 0::2] and x[..., 1::2]": _rotate(x, positions, half_split=True),
            "the rotation goes the wrong way: x'_{2i} = x_{2i} cos - x_{2i+1} sin and x'_{2i+1} = x_{2i} sin + "
            "x_{2i+1} cos": _rotate(x, positions, sign=-1.0),
            "the frequencies are base**(-i/d); pair i turns by base**(-2i/d) (the exponent runs over even channel "
            "indices 0, 2, 4, ...)": _rotate(x, positions, two=1.0),
            "the positions are ignored: use the positions argument, not arange(T)":
                _rotate(x, torch.arange(len(pos))),
            "the input came back unrotated": x,
        })
    passed("rotary")


# ---- ALiBi slopes --------------------------------------------------------------------------------
def _geometric(n: int, *, first_power: int = 1) -> list[float]:
    return [2.0 ** (-8.0 * (i + first_power) / n) for i in range(n)]


def check_alibi_slopes(slopes: Callable[[int], Tensor]) -> None:
    """``slopes(num_heads)``: (H,) ALiBi slopes, geometric for a power of two, the paper's recipe otherwise."""
    require_callable(slopes, "slopes")
    for heads in (1, 2, 4, 8, 16, 3, 5, 6, 12):
        case = f"num_heads={heads}"
        got = call_learner(slopes, heads, name="slopes")
        if isinstance(got, (list, tuple)):
            got = torch.tensor(got, dtype=torch.float32)
        closest = 2 ** int(math.floor(math.log2(heads)))
        mistakes = {
            "the first slope is 2^(-8/H), not 1: the exponents run over 1..H, not 0..H-1":
                torch.tensor(_geometric(heads, first_power=0)),
            "the slopes are in reverse order: head 0 has the steepest slope 2^(-8/H)":
                torch.tensor(_geometric(heads)[::-1]),
        }
        if heads != closest:
            mistakes["for a head count that is not a power of two the paper does not use 2^(-8/H): take the slopes "
                     "of the closest smaller power of two n, then every other slope of 2n ([0::2]) until there are "
                     "H"] = torch.tensor(_geometric(heads))
            mistakes["after the closest power of two n, take *every other* slope of 2n ([0::2]), not its first "
                     "ones"] = torch.tensor(_geometric(closest) + _geometric(2 * closest)[: heads - closest])
            mistakes["only the slopes of the closest smaller power of two are there; add every other slope of 2n "
                     "until there are H"] = torch.tensor(_geometric(closest))
        compare(got, alibi_slopes(heads), "slopes", case, mistakes=mistakes, atol=1e-6, rtol=1e-5)
    passed("slopes")


# ---- GQA: which kv head each query head reads ----------------------------------------------------
def check_repeat_kv(expand: Callable[[Tensor, int], Tensor]) -> None:
    """``expand(kv, num_heads)``: (B, H_kv, T, d) -> (B, H, T, d), query head h reading kv head h // (H / H_kv)."""
    require_callable(expand, "expand")
    for seed, (b, kv_heads, t, d, heads) in enumerate(((1, 2, 3, 4, 4), (2, 2, 5, 3, 6), (1, 1, 4, 2, 3),
                                                       (2, 4, 3, 2, 4))):
        kv = torch.randn(b, kv_heads, t, d, generator=torch.Generator().manual_seed(seed))
        case = f"kv of shape {(b, kv_heads, t, d)} for {heads} query heads"
        got = call_learner(expand, kv.clone(), heads, name="expand")
        group = heads // kv_heads
        compare(got, repeat_kv(kv, heads), "expand", case, mistakes={
            "the kv heads come in the wrong order: kv.repeat(1, g, 1, 1) gives 0, 1, 0, 1, ...; query heads 0..g-1 "
            "share kv head 0, so each kv head is repeated g times in a row (repeat_interleave(g, dim=1))":
                kv.repeat(1, group, 1, 1),
            "the copies went along the wrong axis (time, dim=2); repeat the kv heads along dim=1":
                kv.repeat_interleave(group, dim=2),
            "the kv heads were not expanded: there must be one per query head": kv,
        })
    passed("expand")


# ---- one decoding step with a cache --------------------------------------------------------------
def _step(q: Tensor, k: Tensor, v: Tensor, past_k: Tensor, past_v: Tensor, *, offset: bool = True,
          mask: str = "bottom-right", use_past: bool = True, rotate_values: bool = False, scale: bool = True
          ) -> Tensor:
    past = past_k.shape[2]
    t_new = q.shape[2]
    positions = torch.arange(past, past + t_new) if offset else torch.arange(t_new)
    q, k = apply_rotary(q, positions), apply_rotary(k, positions)
    if rotate_values:
        v = apply_rotary(v, positions)
    if use_past:
        k, v = torch.cat((past_k, k), dim=2), torch.cat((past_v, v), dim=2)  # (B, H, P + t, d)
    t_k = k.shape[2]
    scores = q @ k.transpose(-2, -1) / (math.sqrt(q.shape[-1]) if scale else 1.0)  # (B, H, t, T_k)
    if mask != "none":
        diagonal = t_k - t_new if mask == "bottom-right" else 0
        allowed = torch.ones(t_new, t_k, dtype=torch.bool).tril(diagonal)
        scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v  # (B, H, t, d)


def check_decode_step(step: Callable[..., Tensor]) -> None:
    """``step(q_new, k_new, v_new, past_k, past_v)``: causal attention of t new positions after P cached ones.

    q_new, k_new, v_new (B, H, t, d) are *not* rotated yet; past_k (B, H, P, d) holds keys already rotated at
    positions 0..P-1, past_v their values. Rotate q_new and k_new at positions P..P+t-1, attend over past and
    new keys with a causal mask, return (B, H, t, d).
    """
    require_callable(step, "step")
    for seed, (b, h, past, t_new, d) in enumerate(((1, 2, 5, 1, 8), (2, 2, 4, 3, 8), (1, 1, 7, 2, 4), (1, 2, 0, 4, 8))):
        g = torch.Generator().manual_seed(seed)
        q, k, v = (torch.randn(b, h, t_new, d, generator=g) for _ in range(3))
        past_k = apply_rotary(torch.randn(b, h, past, d, generator=g), torch.arange(past))
        past_v = torch.randn(b, h, past, d, generator=g)
        case = f"{past} cached positions and {t_new} new ones (B={b}, H={h}, d={d})"
        got = call_learner(step, q.clone(), k.clone(), v.clone(), past_k.clone(), past_v.clone(), name="step")
        args = (q, k, v, past_k, past_v)
        mistakes = {
            "the new tokens were rotated as if they stood at positions 0, 1, ...: after P cached positions they "
            "sit at P, P+1, ... (the cache's position offset)": _step(*args, offset=False),
            "the causal mask is aligned top-left: with P cached keys, new query i may see keys 0..P+i, so use "
            "tril(diagonal=T_k - t_new)": _step(*args, mask="top-left"),
            "no causal mask among the new tokens: a new query must not see the new keys after it":
                _step(*args, mask="none"),
            "the cached keys and values are ignored: concatenate past_k/past_v before the new ones (dim=2)":
                _step(*args, use_past=False),
            "the values were rotated too; RoPE turns only queries and keys": _step(*args, rotate_values=True),
            "the scores are not divided by sqrt(d)": _step(*args, scale=False),
        }
        if t_new == 1:
            mistakes.pop("no causal mask among the new tokens: a new query must not see the new keys after it")
        compare(got, _step(*args), "step", case, mistakes=mistakes, atol=1e-5)
    passed("step")


# ---- Predict the size of a KV cache ----------------------------------------------------------------
KV_EXAMPLE: dict[str, Any] = {
    "num_layers": 48, "num_heads": 32, "num_kv_heads": 8, "head_dim": 128, "tokens": 8192, "batch": 4,
    "dtype": torch.bfloat16,
}


def kv_cache_bytes_measured(*, num_layers: int, num_kv_heads: int, head_dim: int, tokens: int, batch: int,
                            dtype: torch.dtype) -> int:
    """Bytes held by real ``KVCache`` objects, one per layer, after ``tokens`` positions: measured, not by formula.

    The keys and values are one zero expanded to their shapes (a view with stride 0: the shape and dtype of the
    real thing, no memory), so a cache of gigabytes costs nothing to build. Introduced in lesson 17.
    """
    total = 0
    for _ in range(num_layers):
        cache = KVCache()
        keys = torch.zeros((), dtype=dtype).expand(batch, num_kv_heads, tokens, head_dim)  # (B, H_kv, T, d)
        cache.append(keys, keys)  # the values have the same shape and dtype
        total += cache.nbytes()
    return total


def check_kv_cache_prediction(predicted_bytes: object) -> None:
    """``predicted_bytes``: the KV cache of ``KV_EXAMPLE`` (GQA) in bytes, compared with real caches' ``nbytes``.

    Introduced in lesson 17.
    """
    ex = KV_EXAMPLE
    layers, heads, kv_heads = ex["num_layers"], ex["num_heads"], ex["num_kv_heads"]
    d, tokens, batch, dtype = ex["head_dim"], ex["tokens"], ex["batch"], ex["dtype"]

    def size(n_kv: int = kv_heads, n_layers: int = layers, n_batch: int = batch,
             dt: torch.dtype = dtype) -> int:
        return kv_cache_bytes_measured(num_layers=n_layers, num_kv_heads=n_kv, head_dim=d, tokens=tokens,
                                       batch=n_batch, dtype=dt)

    truth = size()
    gib = 2 ** 30
    hints = StepHints("modern-kv-cache", [
        "the cache stores, for every layer, the keys and the values of every past token: one tensor (B, H_kv, T, d) "
        "each. Which heads does it store, the query heads or the key/value heads?",
        f"count the numbers: 2 (keys and values) x {layers} layers x {kv_heads} kv heads x {d} x {tokens} tokens "
        f"x {batch} sequences; then multiply by the bytes of one {str(dtype).replace('torch.', '')} number",
        f"bfloat16 takes 2 bytes, so the answer is 2 * {layers} * {kv_heads} * {d} * {tokens} * {batch} * 2 bytes "
        f"(lesson 17's kv_cache_bytes formula; a KVCache's nbytes() measures the same)",
    ])
    mistakes = {
        f"you counted the {heads} query heads: with GQA the cache holds only the {kv_heads} key/value heads "
        f"(that number is the MHA cache)": size(n_kv=heads),
        "you counted the keys only: the cache holds keys and values, a factor 2": truth / 2,
        "that is 4 bytes per number (float32): bfloat16 takes 2": size(dt=torch.float32),
        "that is the size in bits: 8 bits make a byte": truth * 8,
        f"you left out the batch: each of the {batch} sequences has its own cache": size(n_batch=1),
        f"that is one layer: every one of the {layers} layers keeps its own keys and values": size(n_layers=1),
        "that is multi-query attention (one kv head); this model keeps 8": size(n_kv=1),
        f"that is {truth / gib:.0f} GB (10^9 bytes); the answer in bytes is {truth / gib:.0f} GiB = "
        f"{truth / gib:.0f} x 2^30": truth / gib * 1e9,
    }
    check_number(predicted_bytes, "predicted_bytes", truth, hints, rel_tol=1e-9, mistakes=mistakes,
                 why=f"2 x {layers} layers x {kv_heads} kv heads x {d} x {tokens} tokens x {batch} x 2 bytes = "
                     f"{truth:,} bytes = {truth / gib:.0f} GiB, measured on {layers} real KVCache objects; "
                     f"multi-head attention with {heads} kv heads would need {heads // kv_heads}x as much, "
                     f"{size(n_kv=heads) / gib:.0f} GiB")
