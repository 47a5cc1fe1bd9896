"""Lesson 17 checkers accept the reference and reject the stub and typical mistakes, with hints."""

import math

import pytest
import torch

from course_lib.attention import alibi_slopes, apply_rotary
from course_lib.checks.core import CheckFailed
from course_lib.checks.modern import check_alibi_slopes, check_apply_rotary, check_decode_step, check_repeat_kv


def stub(*args, **kwargs):
    raise NotImplementedError()


# ---- RoPE ----------------------------------------------------------------------------------------
def _rope(x, positions, *, half=False, sign=1.0, two=2.0, ignore_positions=False):
    d = x.shape[-1]
    if ignore_positions:
        positions = torch.arange(x.shape[-2])
    angles = positions[:, None].double() * 10000.0 ** (-two * torch.arange(d // 2).double() / d)
    cos, sin = angles.cos().float(), sign * angles.sin().float()
    if half:
        a, b = x[..., : d // 2], x[..., d // 2:]
        return torch.cat((a * cos - b * sin, a * sin + b * cos), -1)
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack((a * cos - b * sin, a * sin + b * cos), -1).flatten(-2)


def test_rotary_accepts_reference(capsys):
    check_apply_rotary(_rope)
    check_apply_rotary(lambda x, p: apply_rotary(x, p))
    assert capsys.readouterr().out.count("rotary: all checks passed") == 2


@pytest.mark.parametrize("wrong, message", [
    (stub, "not implemented yet"),
    (lambda x, p: _rope(x, p, half=True), "half-split"),
    (lambda x, p: _rope(x, p, sign=-1.0), "wrong way"),
    (lambda x, p: _rope(x, p, two=1.0), r"base\*\*\(-i/d\)"),
    (lambda x, p: _rope(x, p, ignore_positions=True), "positions are ignored"),
    (lambda x, p: x, "unrotated"),
    (lambda x, p: _rope(x, p)[..., :-1], "expected shape"),
    (lambda x, p: 1 / 0, "raised ZeroDivisionError"),
])
def test_rotary_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check_apply_rotary(wrong)


# ---- ALiBi slopes --------------------------------------------------------------------------------
def _geometric(n, first=1):
    return torch.tensor([2.0 ** (-8.0 * (i + first) / n) for i in range(n)])


def _closest(h):
    return 2 ** int(math.floor(math.log2(h)))


def test_slopes_accept_reference(capsys):
    check_alibi_slopes(alibi_slopes)
    check_alibi_slopes(lambda h: alibi_slopes(h).tolist())  # a list is fine
    assert capsys.readouterr().out.count("slopes: all checks passed") == 2


@pytest.mark.parametrize("wrong, message", [
    (stub, "not implemented yet"),
    (lambda h: _geometric(h), "not a power of two"),
    (lambda h: _geometric(h, first=0), "the first slope is 2"),
    (lambda h: _geometric(h).flip(0), "reverse order"),
    (lambda h: torch.cat((_geometric(_closest(h)), _geometric(2 * _closest(h))[: h - _closest(h)])), "every other"),
    (lambda h: _geometric(_closest(h)), "only the slopes of the closest"),
    (lambda h: torch.ones(h), "is wrong"),
])
def test_slopes_reject(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check_alibi_slopes(wrong)


# ---- expanding kv heads --------------------------------------------------------------------------
def test_expand_accepts_reference(capsys):
    check_repeat_kv(lambda kv, h: kv.repeat_interleave(h // kv.shape[1], dim=1))
    check_repeat_kv(lambda kv, h: kv[:, :, None].expand(-1, -1, h // kv.shape[1], -1, -1).flatten(1, 2))
    assert capsys.readouterr().out.count("expand: all checks passed") == 2


@pytest.mark.parametrize("wrong, message", [
    (stub, "not implemented yet"),
    (lambda kv, h: kv.repeat(1, h // kv.shape[1], 1, 1), "wrong order"),
    (lambda kv, h: kv.repeat_interleave(h // kv.shape[1], dim=2), "wrong axis"),
    (lambda kv, h: kv, "not expanded"),
    (lambda kv, h: kv.repeat_interleave(h // kv.shape[1], dim=1).transpose(2, 3), "expected shape"),
])
def test_expand_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check_repeat_kv(wrong)


# ---- one decoding step ---------------------------------------------------------------------------
def _step(q, k, v, past_k, past_v, *, offset=True, mask="bottom-right", use_past=True, rotate_v=False, scale=True):
    p, t = past_k.shape[2], q.shape[2]
    pos = torch.arange(p, p + t) if offset else torch.arange(t)
    q, k = apply_rotary(q, pos), apply_rotary(k, pos)
    if rotate_v:
        v = apply_rotary(v, pos)
    if use_past:
        k, v = torch.cat((past_k, k), 2), torch.cat((past_v, v), 2)
    s = q @ k.mT / (math.sqrt(q.shape[-1]) if scale else 1.0)
    if mask != "none":
        allowed = torch.ones(t, k.shape[2], dtype=torch.bool).tril(k.shape[2] - t if mask == "bottom-right" else 0)
        s = s.masked_fill(~allowed, -math.inf)
    return torch.softmax(s, -1) @ v


def test_step_accepts_reference(capsys):
    check_decode_step(_step)

    def with_sdpa(q, k, v, past_k, past_v):
        p, t = past_k.shape[2], q.shape[2]
        pos = torch.arange(p, p + t)
        keys = torch.cat((past_k, apply_rotary(k, pos)), 2)
        allowed = torch.ones(t, p + t, dtype=torch.bool).tril(p)
        return torch.nn.functional.scaled_dot_product_attention(apply_rotary(q, pos), keys, torch.cat((past_v, v), 2),
                                                                attn_mask=allowed)

    check_decode_step(with_sdpa)
    assert capsys.readouterr().out.count("step: all checks passed") == 2


@pytest.mark.parametrize("wrong, message", [
    (stub, "not implemented yet"),
    (lambda *a: _step(*a, offset=False), "position offset"),
    (lambda *a: _step(*a, mask="top-left"), "aligned top-left"),
    (lambda *a: _step(*a, mask="none"), "no causal mask among the new tokens"),
    (lambda *a: _step(*a, use_past=False), "cached keys and values are ignored"),
    (lambda *a: _step(*a, rotate_v=True), "values were rotated"),
    (lambda *a: _step(*a, scale=False), "sqrt"),
    (lambda q, *a: q, "is wrong"),
])
def test_step_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check_decode_step(wrong)


# ---- predict the KV cache's size ------------------------------------------------------------------
KV_RIGHT = 2 * 48 * 8 * 128 * 8192 * 4 * 2  # keys and values x layers x kv heads x d x tokens x batch x bf16


def test_kv_cache_measured_by_real_caches_agrees_with_the_formula():
    from course_lib.attention import kv_cache_bytes
    from course_lib.checks.modern import kv_cache_bytes_measured

    for layers, kv, d, tokens, batch, dtype in ((2, 4, 16, 272, 4, torch.float32), (3, 1, 8, 5, 2, torch.float16)):
        measured = kv_cache_bytes_measured(num_layers=layers, num_kv_heads=kv, head_dim=d, tokens=tokens,
                                           batch=batch, dtype=dtype)
        assert measured == kv_cache_bytes(num_layers=layers, num_kv_heads=kv, head_dim=d, tokens=tokens,
                                          batch=batch, bytes_per_value=torch.empty((), dtype=dtype).element_size())


def test_kv_cache_prediction_accepts_the_derivation(capsys):
    from course_lib.checks.modern import check_kv_cache_prediction

    check_kv_cache_prediction(KV_RIGHT)
    check_kv_cache_prediction(6 * 2 ** 30)
    check_kv_cache_prediction(float(KV_RIGHT))
    assert capsys.readouterr().out.count("all checks passed") == 3


@pytest.mark.parametrize("wrong, message", [
    (None, "still None"),  # the stub: the exercise as handed out
    (2 * 48 * 32 * 128 * 8192 * 4 * 2, "query heads"),
    (48 * 8 * 128 * 8192 * 4 * 2, "keys only"),
    (2 * 48 * 8 * 128 * 8192 * 4 * 4, "float32"),
    (KV_RIGHT * 8, "bits"),
    (KV_RIGHT // 4, "batch"),
    (KV_RIGHT // 48, "one layer"),
    (KV_RIGHT // 8, "multi-query"),
    (6e9, "GiB"),
    (12345, "not right"),
    ("6 GiB", "number"),
])
def test_kv_cache_prediction_rejects(wrong, message):
    from course_lib.checks.modern import check_kv_cache_prediction
    from course_lib.checks.thinking import reset_hints

    reset_hints()
    with pytest.raises(CheckFailed, match=message):
        check_kv_cache_prediction(wrong)


def test_kv_cache_prediction_hints_come_in_steps():
    from course_lib.checks.modern import check_kv_cache_prediction
    from course_lib.checks.thinking import reset_hints

    reset_hints()
    messages = []
    for _ in range(3):
        with pytest.raises(CheckFailed) as err:
            check_kv_cache_prediction(1)
        messages.append(str(err.value))
    assert [f"Hint {k} of 3" in m for k, m in zip((1, 2, 3), messages, strict=True)] == [True, True, True]
    reset_hints()
