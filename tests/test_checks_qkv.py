"""Lesson 04 checkers accept the reference and reject the stub and typical mistakes, with hints."""

import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.attention import local_mask
from course_lib.checks.core import CheckFailed
from course_lib.checks.qkv import (
    GRADIENT_OPTIONS,
    check_gradient_predictions,
    check_hard_attention,
    check_local_mask,
    check_straight_through,
)
from course_lib.checks.thinking import reset_hints


def stub(*args, **kwargs):
    raise NotImplementedError()


# ---- hard attention ------------------------------------------------------------------------------
def hard_ok(q, k, v):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    return F.one_hot(scores.argmax(-1), k.shape[-2]).to(v.dtype) @ v


def hard_argmin(q, k, v):
    scores = q @ k.transpose(-2, -1)
    return F.one_hot(scores.argmin(-1), k.shape[-2]).to(v.dtype) @ v


def hard_soft(q, k, v):
    return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), -1) @ v


def hard_returns_key(q, k, v):
    return F.one_hot((q @ k.transpose(-2, -1)).argmax(-1), k.shape[-2]).to(v.dtype) @ k


def hard_returns_index(q, k, v):
    return (q @ k.transpose(-2, -1)).argmax(-1)


def test_hard_attention_accepts_reference(capsys):
    check_hard_attention(hard_ok)
    assert "hard_attention: all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, message", [
    (stub, "not implemented yet"),
    (hard_argmin, "smallest"),
    (hard_soft, "soft attention"),
    (hard_returns_key, "best \\*key\\*"),
    (hard_returns_index, "expected shape"),
    (None, "is None"),
])
def test_hard_attention_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check_hard_attention(wrong)


# ---- straight-through ----------------------------------------------------------------------------
def st_ok(scores):
    soft = torch.softmax(scores, -1)
    hard = F.one_hot(scores.argmax(-1), scores.shape[-1]).to(scores.dtype)
    return hard + soft - soft.detach()


def st_no_detach(scores):
    soft = torch.softmax(scores, -1)
    hard = F.one_hot(scores.argmax(-1), scores.shape[-1]).to(scores.dtype)
    return hard + soft - soft


def st_soft(scores):
    return torch.softmax(scores, -1)


def st_hard_only(scores):
    return F.one_hot(scores.argmax(-1), scores.shape[-1]).to(scores.dtype)


def st_no_subtraction(scores):
    soft = torch.softmax(scores, -1)
    return F.one_hot(scores.argmax(-1), scores.shape[-1]).to(scores.dtype) + soft


def st_wrong_sign(scores):
    soft = torch.softmax(scores, -1)
    return F.one_hot(scores.argmax(-1), scores.shape[-1]).to(scores.dtype) - soft + soft.detach()


def st_wrong_axis(scores):
    soft = torch.softmax(scores, -1)
    hard = F.one_hot(scores.argmax(0), scores.shape[0]).T.to(scores.dtype) if scores.dim() == 2 else \
        F.one_hot(scores.argmax(-1), scores.shape[-1]).to(scores.dtype)
    return hard + soft - soft.detach()


def test_straight_through_accepts_reference(capsys):
    check_straight_through(st_ok)
    assert "straight_through: all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, message", [
    (stub, "not implemented yet"),
    (st_no_detach, "must be detached"),
    (st_soft, "forward value is the softmax"),
    (st_hard_only, "no gradient reaches the scores"),
    (st_no_subtraction, "hard \\+ soft"),
    (st_wrong_sign, "wrong sign"),
    (st_wrong_axis, "wrong axis"),
])
def test_straight_through_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check_straight_through(wrong)


# ---- local mask ----------------------------------------------------------------------------------
def _offsets(t_q, t_k):
    return torch.arange(t_q)[:, None] - torch.arange(t_k)[None, :]


def lm_ok(t_q, t_k, window):
    return _offsets(t_q, t_k).abs() <= window


def test_local_mask_accepts_reference_and_library(capsys):
    check_local_mask(lm_ok)
    check_local_mask(local_mask)
    assert capsys.readouterr().out.count("local_mask: all checks passed") == 2


@pytest.mark.parametrize("wrong, message", [
    (stub, "not implemented yet"),
    (lambda t_q, t_k, w: _offsets(t_q, t_k).abs() < w, "off by one"),
    (lambda t_q, t_k, w: _offsets(t_q, t_k).abs() > w, "polarity is inverted"),
    (lambda t_q, t_k, w: (_offsets(t_q, t_k) >= 0) & (_offsets(t_q, t_k) <= w), "only looks back"),
    (lambda t_q, t_k, w: (_offsets(t_q, t_k).abs() <= w).float(), "dtype torch.float32"),
    (lambda t_q, t_k, w: _offsets(t_q, t_q).abs() <= w, "expected shape"),
    (lambda t_q, t_k, w: [[True]], "should return a tensor"),
])
def test_local_mask_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check_local_mask(wrong)


def st_in_place_after_softmax(scores):
    soft = torch.softmax(scores, -1)
    hard = F.one_hot(scores.argmax(-1), scores.shape[-1]).to(scores.dtype)
    soft -= soft.detach()  # softmax saved its output for the backward pass: this breaks it
    return hard + soft


def test_straight_through_backward_error_is_guarded():
    with pytest.raises(CheckFailed, match=r"the backward pass through straight_through raised RuntimeError.*"
                                          r"Hint: your code changed in place a tensor that autograd saved"):
        check_straight_through(st_in_place_after_softmax)


def st_writes_scores(scores):
    out = st_ok(scores)
    with torch.no_grad():
        scores.zero_()
    return out


def test_straight_through_rejects_writing_into_scores():
    with pytest.raises(CheckFailed, match="straight_through wrote into its input `scores`"):
        check_straight_through(st_writes_scores)


def lm_python_ints_only(t_q, t_k, window):
    if not all(type(n) is int for n in (t_q, t_k, window)):
        raise TypeError("sizes must be int")
    return lm_ok(t_q, t_k, window)


def test_local_mask_includes_numpy_integers():
    with pytest.raises(CheckFailed, match=r"local_mask raised TypeError: sizes must be int \[on t_q=5.*numpy integers"):
        check_local_mask(lm_python_ints_only)


# ---- exercise 4: which picks pass a gradient, and what REINFORCE estimates ---------------------------------------
def test_gradient_predictions_accept_the_truth(capsys):
    reset_hints()
    check_gradient_predictions("B", 0.5 * (1 - 4))
    assert capsys.readouterr().out.count("all checks passed") == 2
    assert "b" in GRADIENT_OPTIONS


@pytest.mark.parametrize("choice, number, message", [
    (None, None, "still None"),                   # the stub
    ("a", -1.5, "integer index"),                 # hard_argmax has no gradient
    ("c", -1.5, "backward pass is softmax's"),    # forgot straight-through
    ("d", -1.5, "smooth one"),
    ("e", -1.5, "differentiable everywhere"),
    ("b", -2.0, "baseline only changes the variance"),
    ("b", 0.5, "p_0 r_0"),
    ("b", -3.0, "multiply by p_0"),
    ("b", -4.0, "one sample's advantage"),
    ("b", 0.0, "unbiased"),
    ("b", -1.0, "is not right"),
])
def test_gradient_predictions_reject(choice, number, message):
    reset_hints()
    with pytest.raises(CheckFailed, match=message):
        check_gradient_predictions(choice, number)


def test_gradient_predictions_leave_the_global_rng_alone():
    reset_hints()
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    check_gradient_predictions("b", -1.5)
    assert torch.equal(torch.rand(3), expected)
