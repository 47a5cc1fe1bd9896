"""Lesson 06 checkers accept the reference and reject the stub and typical mistakes, with hints."""

import math

import pytest
import torch

from course_lib.checks.core import CheckFailed
from course_lib.checks.mha import (
    HEADS_PARAMETER_OPTIONS,
    check_heads_predictions,
    check_merge_heads,
    check_mha_forward,
    check_mha_param_count,
    check_split_heads,
)
from course_lib.checks.thinking import reset_hints


def stub(*args, **kwargs):
    raise NotImplementedError()


# ---- split and merge -----------------------------------------------------------------------------
def split_ok(x, h):
    b, t, d = x.shape
    return x.view(b, t, h, d // h).transpose(1, 2)


def merge_ok(x):
    b, h, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d)


def test_split_and_merge_accept_reference(capsys):
    check_split_heads(split_ok)
    check_merge_heads(merge_ok)
    out = capsys.readouterr().out
    assert "split_heads: all checks passed" in out and "merge_heads: all checks passed" in out


@pytest.mark.parametrize("wrong, message", [
    (stub, "not implemented yet"),
    (lambda x, h: x.reshape(x.shape[0], h, x.shape[1], -1), "no transpose"),
    (lambda x, h: x.view(x.shape[0], x.shape[1], -1, h).permute(0, 3, 1, 2), "round-robin"),
    (lambda x, h: x.view(x.shape[0], x.shape[1], h, -1), "expected shape"),
])
def test_split_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check_split_heads(wrong)


@pytest.mark.parametrize("wrong, message", [
    (stub, "not implemented yet"),
    (lambda x: x.reshape(x.shape[0], x.shape[2], -1), "no transpose on merge"),
    (lambda x: x.permute(0, 2, 3, 1).reshape(x.shape[0], x.shape[2], -1), "interleaved"),
    (lambda x: x.transpose(1, 2), "expected shape"),
])
def test_merge_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check_merge_heads(wrong)


# ---- parameter count -----------------------------------------------------------------------------
def count_ok(d_model, num_heads, kdim=None, vdim=None, bias=True):
    k, v = kdim or d_model, vdim or d_model
    return 2 * d_model * d_model + k * d_model + v * d_model + (4 * d_model if bias else 0)


def test_param_count_accepts_reference(capsys):
    check_mha_param_count(count_ok)
    check_mha_param_count(lambda *a, **kw: float(count_ok(*a, **kw)))  # a whole float is fine
    assert capsys.readouterr().out.count("mha_param_count: all checks passed") == 2


@pytest.mark.parametrize("wrong, message", [
    (stub, "not implemented yet"),
    (lambda d, h, kdim=None, vdim=None, bias=True: count_ok(d, h, kdim, vdim, False), "biases are missing"),
    (lambda d, h, kdim=None, vdim=None, bias=True: count_ok(d, h, None, None, bias), "kdim and vdim"),
    (lambda d, h, kdim=None, vdim=None, bias=True: 4 * d * d + 4 * d, "is wrong"),
    (lambda d, h, kdim=None, vdim=None, bias=True: 3 * d * d + 3 * d, "output projection is missing"),
    (lambda d, h, kdim=None, vdim=None, bias=True: h * count_ok(d, h, kdim, vdim, bias), "heads do not multiply"),
    (lambda d, h, kdim=None, vdim=None, bias=True: count_ok(d, h, kdim, vdim, True), "bias=False"),
    (lambda d, h, kdim=None, vdim=None, bias=True: "many", "should return an int"),
])
def test_param_count_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check_mha_param_count(wrong)


# ---- forward -------------------------------------------------------------------------------------
def make_forward(transpose=True, scale="head", invert=False, out_proj=True, use_mask=True):
    def forward(mha, query, key, value, mask=None):
        h = mha.num_heads
        q, k, v = split_ok(mha.q_proj(query), h), split_ok(mha.k_proj(key), h), split_ok(mha.v_proj(value), h)
        d = q.shape[-1] if scale == "head" else (mha.d_model if scale == "model" else 1)
        scores = q @ k.transpose(-2, -1) / math.sqrt(d)
        if mask is not None and use_mask:
            m = ~mask if invert else mask
            scores = scores.masked_fill(~m[:, None], float("-inf"))
        heads = torch.softmax(scores, -1) @ v
        merged = merge_ok(heads) if transpose else heads.reshape(heads.shape[0], heads.shape[2], -1)
        return mha.out_proj(merged) if out_proj else merged
    return forward


def test_forward_accepts_reference_and_module(capsys):
    check_mha_forward(make_forward())
    check_mha_forward(lambda mha, q, k, v, mask=None: mha(q, k, v, mask=mask)[0])
    assert capsys.readouterr().out.count("mha_forward: all checks passed") == 2


@pytest.mark.parametrize("wrong, message", [
    (stub, "not implemented yet"),
    (make_forward(transpose=False), "without the transpose"),
    (make_forward(scale="none"), "not scaled"),
    (make_forward(scale="model"), "sqrt\\(d_model\\)"),
    (make_forward(invert=True), "polarity is inverted"),
    (make_forward(use_mask=False), "mask is ignored"),
    (make_forward(out_proj=False), "out_proj is missing"),
])
def test_forward_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check_mha_forward(wrong)


def test_checkers_leave_the_global_random_state_alone():
    torch.manual_seed(1)
    expected = torch.rand(3)
    torch.manual_seed(1)
    check_mha_forward(make_forward())
    check_mha_param_count(count_ok)
    assert torch.equal(torch.rand(3), expected)


def test_param_count_accepts_numpy_integers(capsys):
    import numpy as np

    check_mha_param_count(lambda *a, **kw: np.int64(count_ok(*a, **kw)))
    check_mha_param_count(lambda *a, **kw: torch.tensor(count_ok(*a, **kw)))
    assert capsys.readouterr().out.count("all checks passed") == 2
    with pytest.raises(CheckFailed, match="should return an int"):
        check_mha_param_count(lambda *a, **kw: count_ok(*a, **kw) + 0.5)


# ---- exercise 5: what more heads cost ---------------------------------------------------------------------------
def test_heads_predictions_accept_the_truth(capsys):
    reset_hints()
    check_heads_predictions("b", torch.Size([2, 8, 10, 12]))
    assert capsys.readouterr().out.count("all checks passed") == 2
    assert set(HEADS_PARAMETER_OPTIONS) == {"a", "b", "c"}


@pytest.mark.parametrize("choice, shape, message", [
    (None, None, "still None"),                 # the stub
    ("a", (2, 8, 10, 12), "a slice of width D / H"),
    ("c", (2, 8, 10, 12), "add up to D again"),
    ("b", (2, 10, 12), "average_attn_weights"),
    ("b", (2, 8, 12, 10), "rows are the queries"),
    ("b", (2, 8, 10, 10), "not the 10 queries"),
    ("b", (2, 10, 64), "shape of the output"),
    ("b", (8, 2, 10, 12), "batch axis comes first"),
    ("b", (2, 8, 10), "1 axes|3 axes"),
])
def test_heads_predictions_reject(choice, shape, message):
    reset_hints()
    with pytest.raises(CheckFailed, match=message):
        check_heads_predictions(choice, shape)


def test_heads_predictions_leave_the_global_rng_alone():
    reset_hints()
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    check_heads_predictions("b", (2, 8, 10, 12))
    assert torch.equal(torch.rand(3), expected)
