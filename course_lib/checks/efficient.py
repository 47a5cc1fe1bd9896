"""Checkers for lesson 16 (efficient attention): online-softmax update, naive memory, SDPA backend choice.

Online softmax: Milakov & Gimelshein 2018 (arXiv:1805.02867); tiling: Dao et al. 2022 (arXiv:2205.14135).
The backend rules follow PyTorch's dispatcher (aten/src/ATen/native/transformers/cuda/sdp_utils.cpp and
sdp_utils_cpp.cpp), simplified as stated in ``reference_sdpa_backend``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode

from course_lib.attention import tiled_attention
from course_lib.checks.core import CheckFailed, as_number, call_learner, compare, passed, require_callable
from course_lib.checks.thinking import StepHints, check_number

__all__ = [
    "reference_online_softmax_update",
    "check_online_softmax_update",
    "reference_naive_attention_bytes",
    "check_naive_attention_bytes",
    "BACKENDS",
    "reference_sdpa_backend",
    "check_sdpa_backend",
    "TILED_EXAMPLE",
    "measure_tiled_blocks",
    "check_tiled_blocks",
]


# --------------------------------------------------------------------------------------------------
# Exercise 1: one step of the online softmax
# --------------------------------------------------------------------------------------------------
def reference_online_softmax_update(m: Tensor, l: Tensor, acc: Tensor, scores: Tensor,
                                    v_block: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Fold one key/value block into the running state (m, l, acc); rows seeing only -inf stay (-inf, 0, 0).

    m, l: (..., T_q, 1) running max and denominator; acc: (..., T_q, d_v) unnormalised numerator;
    scores: (..., T_q, b) scaled scores of this block, -inf where masked; v_block: (..., b, d_v).
    Introduced in lesson 16.
    """
    m_new = torch.maximum(m, scores.amax(dim=-1, keepdim=True))  # (..., T_q, 1)
    shift = torch.where(torch.isinf(m_new), torch.zeros_like(m_new), m_new)  # 0 for rows still at -inf
    p = torch.exp(scores - shift)  # (..., T_q, b)
    alpha = torch.exp(m - shift)  # (..., T_q, 1)
    return m_new, alpha * l + p.sum(dim=-1, keepdim=True), alpha * acc + p @ v_block


def _update_mistakes(m: Tensor, l: Tensor, acc: Tensor, s: Tensor, v: Tensor) -> dict[str, tuple[Tensor, ...]]:
    """What typical wrong updates produce on the same inputs (only meaningful where no row is all -inf)."""
    m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
    p = torch.exp(s - m_new)
    alpha = torch.exp(m - m_new)
    inv_alpha = torch.exp(m_new - m)
    return {
        "acc is not rescaled: multiply the old accumulator by alpha = exp(m_old - m_new) before adding P @ V":
            (m_new, alpha * l + p.sum(-1, keepdim=True), acc + p @ v),
        "l (the denominator) is not rescaled: multiply the old l by alpha = exp(m_old - m_new) before adding "
        "the row sums of P": (m_new, l + p.sum(-1, keepdim=True), alpha * acc + p @ v),
        "neither l nor acc is rescaled by alpha = exp(m_old - m_new)":
            (m_new, l + p.sum(-1, keepdim=True), acc + p @ v),
        "alpha has the wrong sign: it is exp(m_old - m_new) <= 1, not exp(m_new - m_old)":
            (m_new, inv_alpha * l + p.sum(-1, keepdim=True), inv_alpha * acc + p @ v),
        "P uses the old max: compute P = exp(scores - m_new) with the new running max":
            (m_new, alpha * l + torch.exp(s - m).sum(-1, keepdim=True), alpha * acc + torch.exp(s - m) @ v),
        "acc is normalised inside the update: keep it unnormalised (divide by l only at the very end)":
            (m_new, alpha * l + p.sum(-1, keepdim=True),
             (alpha * acc + p @ v) / (alpha * l + p.sum(-1, keepdim=True))),
    }


def _state(t_q: int, d_v: int, lead: tuple[int, ...] = ()) -> tuple[Tensor, Tensor, Tensor]:
    m = torch.full((*lead, t_q, 1), -math.inf, dtype=torch.float64)
    return m, torch.zeros((*lead, t_q, 1), dtype=torch.float64), torch.zeros((*lead, t_q, d_v), dtype=torch.float64)


def _unpack(result: Any, name: str) -> tuple[Any, Any, Any]:
    if not isinstance(result, (tuple, list)) or len(result) != 3:
        length = f" of length {len(result)}" if isinstance(result, (tuple, list)) else ""
        raise CheckFailed(f"{name} must return the new state as a tuple (m_new, l_new, acc_new), got "
                          f"{type(result).__name__}{length}")
    return result[0], result[1], result[2]


def _compare_state(got: tuple[Any, Any, Any], expected: tuple[Tensor, Tensor, Tensor], case: str,
                   mistakes: dict[str, tuple[Tensor, ...]] | None = None) -> None:
    for index, part in enumerate(("m_new", "l_new", "acc_new")):
        got_part = got[index]
        if isinstance(got_part, Tensor) and got_part.is_floating_point() and torch.isnan(got_part).any():
            raise CheckFailed(f"{part} on {case} contains NaN. Hint: a row that has seen only -inf scores "
                              f"keeps m = -inf, and exp(-inf - (-inf)) is NaN: shift such rows by 0 instead "
                              f"of by m_new (e.g. torch.where(torch.isinf(m_new), 0, m_new)). Also check that "
                              f"alpha = exp(m_old - m_new) is 0, not inf, when m_old = -inf (inf * 0 is NaN)")
        hints = None
        if mistakes:
            hints = {hint: wrong[index] for hint, wrong in mistakes.items()}
            # A hint only helps if the whole state matches that mistake; check the other parts too.
            hints = {h: w for h, w in hints.items() if _matches_all(got, mistakes[h])}
        compare(got_part, expected[index], name=part, case=case, mistakes=hints, atol=1e-9, rtol=1e-7)


def _matches_all(got: tuple[Any, Any, Any], wrong: tuple[Tensor, ...]) -> bool:
    for g, w in zip(got, wrong, strict=False):  # a wrong answer may have fewer parts
        if not isinstance(g, Tensor) or g.shape != w.shape:
            return False
        if not torch.allclose(g.detach().to(torch.float64), w.to(torch.float64), atol=1e-9, rtol=1e-7):
            return False
    return True


def check_online_softmax_update(fn: Callable[..., Any]) -> None:
    """Check ``online_softmax_update(m, l, acc, scores, v_block) -> (m_new, l_new, acc_new)``.

    Introduced in lesson 16.
    """
    name = "online_softmax_update"
    require_callable(fn, name)
    gen = torch.Generator().manual_seed(16)

    # 1. Mid-stream steps (after a first block folded in by the reference) where the running max grows:
    #    every rescaling mistake shows here.
    for lead, t_q, d_v, blocks in (((), 5, 3, (4, 4, 2)), ((2, 3), 4, 6, (3, 5))):
        m, l, acc = reference_online_softmax_update(
            *_state(t_q, d_v, lead), torch.randn(*lead, t_q, 3, generator=gen, dtype=torch.float64),
            torch.randn(*lead, 3, d_v, generator=gen, dtype=torch.float64))
        for step, b in enumerate(blocks, start=2):
            s = torch.randn(*lead, t_q, b, generator=gen, dtype=torch.float64) * 2 + 1.5 * step
            v = torch.randn(*lead, b, d_v, generator=gen, dtype=torch.float64)
            case = f"block {step} of a stream with lead shape {lead}, T_q={t_q}, block={b}"
            got = _unpack(call_learner(fn, m.clone(), l.clone(), acc.clone(), s.clone(), v.clone(), name=name), name)
            expected = reference_online_softmax_update(m, l, acc, s, v)
            _compare_state(got, expected, case, _update_mistakes(m, l, acc, s, v))
            m, l, acc = expected

    # 2. The whole loop with the learner's own state equals softmax(S) V.
    t_q, t_k, d_v, b = 6, 11, 4, 4
    s_full = torch.randn(t_q, t_k, generator=gen, dtype=torch.float64) * 3
    v_full = torch.randn(t_k, d_v, generator=gen, dtype=torch.float64)
    m, l, acc = _state(t_q, d_v)
    for start in range(0, t_k, b):
        m, l, acc = _unpack(call_learner(fn, m, l, acc, s_full[:, start:start + b], v_full[start:start + b],
                                         name=name), name)
    out = acc / l if isinstance(acc, Tensor) and isinstance(l, Tensor) else acc
    compare(out, torch.softmax(s_full, dim=-1) @ v_full, name="acc / l after the last block",
            case=f"a full loop over {t_k} keys in blocks of {b} (the last block is shorter)", atol=1e-9, rtol=1e-7)

    # 3. Masked scores: a row with nothing to attend in this block, and a row with nothing at all so far.
    s = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    s[1] = -math.inf  # row 1 sees nothing in this block
    s[2, 0] = -math.inf  # row 2 sees some keys
    v = torch.randn(3, 2, generator=gen, dtype=torch.float64)
    m, l, acc = _state(4, 2)
    got = _unpack(call_learner(fn, m.clone(), l.clone(), acc.clone(), s.clone(), v.clone(), name=name), name)
    _compare_state(got, reference_online_softmax_update(m, l, acc, s, v),
                   "a first block where row 1 is fully masked (-inf)")
    m, l, acc = reference_online_softmax_update(m, l, acc, s, v)
    s2 = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    s2[1, 1:] = -math.inf  # row 1 finally sees one key
    v2 = torch.randn(3, 2, generator=gen, dtype=torch.float64)
    got = _unpack(call_learner(fn, m.clone(), l.clone(), acc.clone(), s2.clone(), v2.clone(), name=name), name)
    _compare_state(got, reference_online_softmax_update(m, l, acc, s2, v2),
                   "a second block after a fully masked first block (m is still -inf for row 1)")
    passed(name)


# --------------------------------------------------------------------------------------------------
# Exercise 2: memory of the naive path
# --------------------------------------------------------------------------------------------------
def reference_naive_attention_bytes(batch: int, heads: int, n_q: int, n_k: int, dtype: torch.dtype) -> int:
    """Bytes of one (B, H, N_q, N_k) score matrix of ``dtype``: what makes the naive path quadratic.

    Introduced in lesson 16.
    """
    return batch * heads * n_q * n_k * torch.empty((), dtype=dtype).element_size()


def check_naive_attention_bytes(fn: Callable[..., Any]) -> None:
    """Check ``naive_attention_bytes(batch, heads, n_q, n_k, dtype) -> int`` on sizes and dtypes.

    Introduced in lesson 16.
    """
    name = "naive_attention_bytes"
    require_callable(fn, name)
    cases = [
        (1, 1, 1024, 1024, torch.float32),
        (3, 8, 512, 512, torch.float16),
        (5, 12, 300, 700, torch.bfloat16),
        (3, 5, 64, 2048, torch.float64),
        (1, 32, 8192, 8192, torch.float16),
    ]
    for batch, heads, n_q, n_k, dtype in cases:
        case = f"B={batch}, H={heads}, N_q={n_q}, N_k={n_k}, dtype={dtype}"
        got = call_learner(fn, batch, heads, n_q, n_k, dtype, name=name)
        expected = reference_naive_attention_bytes(batch, heads, n_q, n_k, dtype)
        got = as_number(got, name, case, integer=True)  # a number of bytes: int, numpy int or whole float
        if got == expected:
            continue
        elements = batch * heads * n_q * n_k
        size = reference_naive_attention_bytes(1, 1, 1, 1, dtype)
        hints = [
            (elements, "that is the number of elements: multiply by the bytes per element "
                       "(torch.empty((), dtype=dtype).element_size())"),
            (elements * 4, f"{dtype} takes {size} bytes per element, not 4 (fp16/bf16: 2, fp32: 4, fp64: 8)"),
            (elements * 2, f"{dtype} takes {size} bytes per element, not 2"),
            (expected / 2**20, "that is MiB; the question asks for bytes"),
            (expected / 2**30, "that is GiB; the question asks for bytes"),
            (expected * 8, "that is bits; the question asks for bytes"),
            (heads * n_q * n_k * size, "the batch is missing: every sequence in the batch has its own matrix"),
            (batch * n_q * n_k * size, "the heads are missing: every head has its own score matrix"),
            (batch * heads * (n_q + n_k) * size, "the matrix has N_q * N_k entries, not N_q + N_k"),
            (batch * heads * n_q * n_q * size, "use N_q * N_k: queries times keys (here N_q != N_k)"),
            (2 * expected, "that is two matrices (scores and weights); the question asks for one"),
        ]
        for wrong, hint in hints:
            if math.isclose(got, wrong, rel_tol=1e-9):
                raise CheckFailed(f"{name} on {case}: expected {expected} bytes, got {got}. Hint: {hint}")
        raise CheckFailed(f"{name} on {case}: expected {expected} bytes "
                          f"(= B * H * N_q * N_k * {size} bytes), got {got}")
    passed(name)


# --------------------------------------------------------------------------------------------------
# Exercise 3: which SDPA backend runs
# --------------------------------------------------------------------------------------------------
BACKENDS = ("flash", "efficient", "math")
_HALF = (torch.float16, torch.bfloat16)


def reference_sdpa_backend(device: str, dtype: torch.dtype, head_dim: int, has_mask: bool) -> str:
    """The backend torch's SDPA picks, under the lesson's simplified rules (dropout 0, Ampere+ GPU, no cuDNN).

    CPU: "flash" (the CPU flash kernel takes fp16/bf16/fp32/fp64, masks and any head dim).
    CUDA, tried in order: "flash" (fp16/bf16, head_dim <= 256, no explicit mask); "efficient"
    (fp16/bf16 with head_dim a multiple of 8, or fp32 with head_dim a multiple of 4; masks allowed);
    else "math".
    """
    if device == "cpu":
        return "flash" if dtype in (*_HALF, torch.float32, torch.float64) else "math"
    if device != "cuda":
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if dtype in _HALF and head_dim <= 256 and not has_mask:
        return "flash"
    if (dtype in _HALF and head_dim % 8 == 0) or (dtype == torch.float32 and head_dim % 4 == 0):
        return "efficient"
    return "math"


def _as_backend_name(value: Any) -> str | None:
    enum = getattr(torch.nn.attention, "SDPBackend", None)
    if enum is not None and isinstance(value, enum):
        return {"FLASH_ATTENTION": "flash", "EFFICIENT_ATTENTION": "efficient", "MATH": "math"}.get(value.name)
    if isinstance(value, str) and value.strip().lower() in BACKENDS:
        return value.strip().lower()
    return None


def _backend_hint(device: str, dtype: torch.dtype, head_dim: int, has_mask: bool, got: str, expected: str) -> str:
    if device == "cpu":
        return ("on CPU, PyTorch has its own fused flash kernel for fp16/bf16/fp32/fp64, with masks and any "
                "head dim; it runs whenever dropout is 0")
    if got == "flash" and has_mask:
        return "CUDA flash attention takes no explicit attn_mask (is_causal only); with a mask it cannot run"
    if got == "flash" and dtype not in _HALF:
        return f"CUDA flash attention runs only in fp16/bf16; {dtype} cannot use it"
    if got == "flash" and head_dim > 256:
        return "CUDA flash attention supports head dims up to 256"
    if got == "efficient" and dtype not in (*_HALF, torch.float32):
        return f"the memory-efficient kernel takes fp16/bf16/fp32 only; {dtype} falls back to math"
    if got == "efficient":
        return ("the memory-efficient kernel needs the head dim to be a multiple of 8 (fp16/bf16) or 4 (fp32)")
    if expected == "flash":
        return "fp16/bf16, no mask and head dim <= 256: flash is tried first and can run"
    if expected == "efficient":
        return ("when flash cannot run, the memory-efficient kernel comes next: fp32 (head dim a multiple of 4) "
                "or fp16/bf16 (a multiple of 8), and it accepts masks")
    return "try the backends in the order flash, efficient, math and take the first whose rules all hold"


def check_sdpa_backend(fn: Callable[..., Any]) -> None:
    """Check ``pick_sdpa_backend(device, dtype, head_dim, has_mask) -> "flash" | "efficient" | "math"``.

    Introduced in lesson 16.
    """
    name = "pick_sdpa_backend"
    require_callable(fn, name)
    # Ordered so that the most instructive cases come first.
    cases = [
        ("cuda", torch.float16, 64, False), ("cuda", torch.bfloat16, 128, True), ("cuda", torch.float32, 64, False),
        ("cpu", torch.float32, 64, False), ("cpu", torch.float32, 64, True), ("cuda", torch.bfloat16, 512, False),
        ("cuda", torch.float64, 64, False), ("cuda", torch.float32, 100, True), ("cuda", torch.float16, 100, False),
        ("cuda", torch.float16, 260, False), ("cuda", torch.float32, 30, False), ("cpu", torch.float64, 30, True),
        ("cpu", torch.bfloat16, 512, False), ("cuda", torch.bfloat16, 256, False), ("cuda", torch.float16, 100, True),
        ("cuda", torch.float32, 512, True),
    ]
    for device, dtype, head_dim, has_mask in cases:
        case = f"device={device!r}, dtype={dtype}, head_dim={head_dim}, has_mask={has_mask}"
        raw = call_learner(fn, device, dtype, head_dim, has_mask, name=name)
        got = _as_backend_name(raw)
        if got is None:
            raise CheckFailed(f"{name} on {case} must return one of {BACKENDS}, got {raw!r}")
        expected = reference_sdpa_backend(device, dtype, head_dim, has_mask)
        if got != expected:
            hint = _backend_hint(device, dtype, head_dim, has_mask, got, expected)
            raise CheckFailed(f"{name} on {case}: expected {expected!r}, got {got!r}. Hint: {hint}")
    passed(name)


# --------------------------------------------------------------------------------------------------
# Exercise 4: predict what the tiled loop visits and holds
# --------------------------------------------------------------------------------------------------
TILED_EXAMPLE: dict[str, Any] = {"batch": 2, "heads": 4, "n_q": 1000, "n_k": 1000, "head_dim": 64,
                                 "block_size": 128, "dtype": torch.float32}


class _ScoreTiles(TorchFunctionMode):
    """Records the shape and dtype of every tensor passed to ``torch.exp``: the score tiles of the tiled loop."""

    def __init__(self) -> None:
        super().__init__()
        self.tiles: list[tuple[tuple[int, ...], torch.dtype]] = []

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        if func is torch.exp and args and isinstance(args[0], Tensor) and args[0].shape[-1] > 1:
            self.tiles.append((tuple(args[0].shape), args[0].dtype))  # p = exp(scores - m): (..., T_q, block)
        return func(*args, **(kwargs or {}))


def measure_tiled_blocks(*, batch: int, heads: int, n_q: int, n_k: int, head_dim: int, block_size: int,
                         dtype: torch.dtype) -> tuple[int, int]:
    """Run ``course_lib.attention.tiled_attention`` and return (blocks it visits, bytes of its largest score tile).

    The tiles are recorded as they pass through ``torch.exp`` (the running-max correction, of width 1, is left
    out), so the answer comes from the code that runs, not from a formula. Introduced in lesson 16.
    """
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(batch, heads, n, head_dim, generator=gen, dtype=dtype) for n in (n_q, n_k, n_k))
    recorder = _ScoreTiles()
    with recorder:
        tiled_attention(q, k, v, block_size=block_size)
    sizes = [math.prod(shape) * torch.empty((), dtype=dt).element_size() for shape, dt in recorder.tiles]
    return len(sizes), max(sizes)


def check_tiled_blocks(n_blocks: object, tile_bytes: object) -> None:
    """``n_blocks``: key blocks ``tiled_attention`` visits for ``TILED_EXAMPLE``; ``tile_bytes``: the bytes of one
    full score tile, both measured by running it. Introduced in lesson 16."""
    ex = TILED_EXAMPLE
    b, h, n_q, n_k, block = ex["batch"], ex["heads"], ex["n_q"], ex["n_k"], ex["block_size"]
    size = torch.empty((), dtype=ex["dtype"]).element_size()
    blocks, tile = measure_tiled_blocks(**ex)
    block_hints = StepHints("efficient-n-blocks", [
        "the loop runs `for start in range(0, n_k, block_size)`: one online-softmax update per block of keys. "
        "The queries are not split into blocks here.",
        f"{n_k} / {block} is not a whole number: the last block holds the keys that are left over, and it is "
        f"still a block. Round up.",
    ])
    check_number(n_blocks, "n_blocks", blocks, block_hints, mistakes={
        "that rounds down: the last, shorter block (the keys left over) is visited too": n_k // block,
        f"that is {n_k} / {block} as a fraction: the loop visits whole blocks, the last one shorter": n_k / block,
        "the loop goes over keys in blocks, not one key at a time": n_k,
        "this loop splits only the keys into blocks, not the queries as well": math.ceil(n_k / block) ** 2,
    }, why=f"ceil({n_k} / {block}) = {blocks}: {blocks - 1} full blocks of {block} keys and a last one of "
           f"{n_k - (blocks - 1) * block}, measured by running tiled_attention")
    naive = b * h * n_q * n_k * size
    tile_hints = StepHints("efficient-tile-bytes", [
        "a tile holds the scores of every query against one block of keys, for every sequence and head: "
        "its shape is (B, H, N_q, block_size)",
        f"count its numbers: {b} x {h} x {n_q} x {block}, then multiply by the bytes of one float32 number",
        f"float32 takes {size} bytes: {b} * {h} * {n_q} * {block} * {size}; compare with the naive path's "
        f"{b} * {h} * {n_q} * {n_k} * {size}",
    ])
    check_number(tile_bytes, "tile_bytes", tile, tile_hints, mistakes={
        "that is the naive path's whole (B, H, N_q, N_k) score matrix; the tiled loop holds one block of keys at a "
        "time": naive,
        "that is the number of scores, not bytes: float32 takes 4 bytes each": tile / size,
        "that is bits: 8 bits make a byte": tile * 8,
        "the batch and the heads are missing: every sequence and every head has its own tile": tile / (b * h),
        "the tile is (N_q, block) for every query, not (block, block): this loop does not split the queries":
            b * h * block * block * size,
    }, why=f"({b}, {h}, {n_q}, {block}) float32 = {tile:,} bytes, against {naive:,} for the naive score matrix: "
           f"{n_k / block:.1f}x less, and the tile does not grow with N_k")
