"""Lesson 03's checkers reject the stub and typical wrong answers (with the right hint) and accept the reference."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from course_lib.attention import dot_product_scores, lengths_to_mask, masked_softmax
from course_lib.checks.core import CheckFailed
from course_lib.checks.scoring import (
    SCORE_VARIANCE_SETTING,
    check_additive_scores,
    check_attention_layer,
    check_masked_softmax,
    check_scaled_dot_scores,
    check_score_variance,
    check_shared_key_scores,
)
from course_lib.checks.thinking import reset_hints


def _fails(checker, answer, *fragments: str) -> str:
    with pytest.raises(CheckFailed) as info:
        checker(answer)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def _stub(*args, **kwargs):
    raise NotImplementedError()


# --------------------------------------------------------------------------------------------------
# (a) masked softmax
# --------------------------------------------------------------------------------------------------
def _allowed(scores, valid_lens):
    return lengths_to_mask(valid_lens, scores.shape[-1])[:, None, :]  # (B, 1, T_k)


def ms_reference(scores, valid_lens):
    allowed = _allowed(scores, valid_lens)
    return torch.softmax(scores.masked_fill(~allowed, -1e9), dim=-1) * allowed


def ms_ignores_mask(scores, valid_lens):
    return torch.softmax(scores, dim=-1)


def ms_flipped(scores, valid_lens):
    allowed = ~_allowed(scores, valid_lens)
    return torch.softmax(scores.masked_fill(~allowed, -1e9), dim=-1) * allowed


def ms_wrong_axis(scores, valid_lens):
    allowed = _allowed(scores, valid_lens)
    return torch.softmax(scores.masked_fill(~allowed, -1e9), dim=1) * allowed


def ms_nan(scores, valid_lens):
    return torch.softmax(scores.masked_fill(~_allowed(scores, valid_lens), float("-inf")), dim=-1)


def ms_uniform_on_empty(scores, valid_lens):  # the classic -1e6 fill without zeroing
    return torch.softmax(scores.masked_fill(~_allowed(scores, valid_lens), -1e6), dim=-1)


def ms_in_place(scores, valid_lens):
    allowed = _allowed(scores, valid_lens)
    scores.masked_fill_(~allowed, -1e9)
    return torch.softmax(scores, dim=-1) * allowed


def ms_returns_list(scores, valid_lens):
    return ms_reference(scores, valid_lens).tolist()


def test_masked_softmax_accepts_reference(capsys):
    check_masked_softmax(ms_reference)
    check_masked_softmax(lambda s, v: masked_softmax(s, valid_lens=v))
    assert "all checks passed" in capsys.readouterr().out


def test_masked_softmax_rejects_stub_and_mistakes():
    _fails(check_masked_softmax, _stub, "not implemented")
    _fails(check_masked_softmax, None, "is None")
    _fails(check_masked_softmax, ms_ignores_mask, "mask is ignored")
    _fails(check_masked_softmax, ms_flipped, "mask is flipped")
    _fails(check_masked_softmax, ms_wrong_axis, "wrong axis")
    _fails(check_masked_softmax, ms_nan, "NaN", "valid_len 0")
    _fails(check_masked_softmax, ms_uniform_on_empty, "all zeros, not equal weights")
    _fails(check_masked_softmax, ms_in_place, "in place")
    _fails(check_masked_softmax, ms_returns_list, "torch.Tensor")


# --------------------------------------------------------------------------------------------------
# (b) scaled dot scores
# --------------------------------------------------------------------------------------------------
def sd_reference(q, k):
    return q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])


def sd_no_scale(q, k):
    return q @ k.transpose(-2, -1)


def sd_by_d(q, k):
    return q @ k.transpose(-2, -1) / q.shape[-1]


def sd_by_keys(q, k):
    return q @ k.transpose(-2, -1) / math.sqrt(k.shape[-2])


def sd_k_dot_t(q, k):  # k.T reverses every axis: right in 2-D, wrong with a batch
    return q @ k.permute(*reversed(range(k.dim()))) / math.sqrt(q.shape[-1])


def sd_no_transpose(q, k):
    return q @ k / math.sqrt(q.shape[-1])


def sd_keys_by_queries(q, k):
    return k @ q.transpose(-2, -1) / math.sqrt(q.shape[-1])


def test_scaled_dot_accepts_reference(capsys):
    check_scaled_dot_scores(sd_reference)
    check_scaled_dot_scores(dot_product_scores)
    assert "all checks passed" in capsys.readouterr().out


def test_scaled_dot_rejects_stub_and_mistakes():
    message = _fails(check_scaled_dot_scores, _stub, "not implemented")
    assert "transpose" not in message
    _fails(check_scaled_dot_scores, sd_no_scale, "no scaling")
    _fails(check_scaled_dot_scores, sd_by_d, "divided by d")
    _fails(check_scaled_dot_scores, sd_by_keys, "number of keys")
    _fails(check_scaled_dot_scores, sd_no_transpose, "raised", "k.transpose(-2, -1)")
    _fails(check_scaled_dot_scores, sd_k_dot_t, "case 2")
    _fails(check_scaled_dot_scores, sd_keys_by_queries, "case 1", "(..., T_k, T_q)")


def test_scaled_dot_square_case_names_missing_transpose():
    # Only the square case lets q @ k run; the hint must then name the transpose.
    def sneaky(q, k):
        return q @ k / math.sqrt(q.shape[-1]) if q.shape[-2] == k.shape[-2] == q.shape[-1] else sd_reference(q, k)

    _fails(check_scaled_dot_scores, sneaky, "transpose is missing")


# --------------------------------------------------------------------------------------------------
# (c) additive scores
# --------------------------------------------------------------------------------------------------
class AdditiveBase(nn.Module):
    def __init__(self, query_dim: int, key_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.W_q = nn.Linear(query_dim, hidden_dim, bias=False)
        self.W_k = nn.Linear(key_dim, hidden_dim, bias=False)
        self.w_v = nn.Linear(hidden_dim, 1, bias=False)


class AdditiveReference(AdditiveBase):
    def forward(self, q, k):
        features = self.W_q(q).unsqueeze(-2) + self.W_k(k).unsqueeze(-3)  # (B, T_q, T_k, h)
        return self.w_v(torch.tanh(features)).squeeze(-1)


class AdditiveStub(AdditiveBase):
    def forward(self, q, k):
        raise NotImplementedError()


class AdditiveNoTanh(AdditiveBase):
    def forward(self, q, k):
        return self.w_v(self.W_q(q).unsqueeze(-2) + self.W_k(k).unsqueeze(-3)).squeeze(-1)


class AdditiveSwappedAxes(AdditiveBase):
    def forward(self, q, k):
        features = self.W_q(q).unsqueeze(-3) + self.W_k(k).unsqueeze(-2)  # (B, T_k, T_q, h)
        return self.w_v(torch.tanh(features)).squeeze(-1)


class AdditiveNoProjection(AdditiveBase):
    def forward(self, q, k):
        return torch.tanh(self.W_q(q).unsqueeze(-2) + self.W_k(k).unsqueeze(-3))


class AdditiveNoSqueeze(AdditiveBase):
    def forward(self, q, k):
        return self.w_v(torch.tanh(self.W_q(q).unsqueeze(-2) + self.W_k(k).unsqueeze(-3)))


class AdditiveTanhEach(AdditiveBase):
    def forward(self, q, k):
        return self.w_v(torch.tanh(self.W_q(q)).unsqueeze(-2) + torch.tanh(self.W_k(k)).unsqueeze(-3)).squeeze(-1)


class AdditiveSoftmaxed(AdditiveReference):
    def forward(self, q, k):
        return torch.softmax(super().forward(q, k), dim=-1)


class AdditiveSwappedSquareOnly(AdditiveReference):
    def forward(self, q, k):
        out = super().forward(q, k)
        return out.transpose(-2, -1) if q.shape[-2] == k.shape[-2] else out


class AdditiveRenamed(nn.Module):
    def __init__(self, query_dim: int, key_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.wq = nn.Linear(query_dim, hidden_dim, bias=False)

    def forward(self, q, k):
        return q


def test_additive_accepts_reference(capsys):
    check_additive_scores(AdditiveReference)
    assert "all checks passed" in capsys.readouterr().out


def test_additive_rejects_stub_and_mistakes():
    _fails(check_additive_scores, AdditiveStub, "not implemented")
    _fails(check_additive_scores, AdditiveNoTanh, "tanh is missing")
    _fails(check_additive_scores, AdditiveSwappedAxes, "(B, T_k, T_q)")
    _fails(check_additive_scores, AdditiveSwappedSquareOnly, "laid out (T_k, T_q)")
    _fails(check_additive_scores, AdditiveNoProjection, "w_v is missing")
    _fails(check_additive_scores, AdditiveNoSqueeze, "squeeze")
    _fails(check_additive_scores, AdditiveTanhEach, "around the sum")
    _fails(check_additive_scores, AdditiveSoftmaxed, "not normalised")
    _fails(check_additive_scores, AdditiveRenamed, "W_q")


def test_additive_checker_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    check_additive_scores(AdditiveReference)
    assert torch.equal(torch.rand(3), expected)


# --------------------------------------------------------------------------------------------------
# (d) find the bug in an attention layer
# --------------------------------------------------------------------------------------------------
class BuggyLayer(nn.Module):
    """The layer handed out in the exercise: softmax over the query axis."""

    dim = 1
    scale_power = 0.5
    use_mask = True
    flip_mask = False

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)

    def forward(self, x, valid_lens=None):
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)  # (B, T, D)
        scores = q @ k.transpose(1, 2) / x.shape[-1] ** self.scale_power  # (B, T, T)
        if valid_lens is not None and self.use_mask:
            keep = torch.arange(x.shape[1])[None, None, :] < valid_lens[:, None, None]  # (B, 1, T)
            if self.flip_mask:
                keep = ~keep
            scores = scores.masked_fill(~keep, -1e9)
        weights = torch.softmax(scores, dim=self.dim)
        return weights @ v, weights


class FixedLayer(BuggyLayer):
    dim = -1


class NoScaleLayer(FixedLayer):
    scale_power = 0.0


class ScaleByDLayer(FixedLayer):
    scale_power = 1.0


class NoMaskLayer(FixedLayer):
    use_mask = False


class FlippedMaskLayer(FixedLayer):
    flip_mask = True


class OutFromInputLayer(FixedLayer):
    def forward(self, x, valid_lens=None):
        _, weights = super().forward(x, valid_lens)
        return weights @ x, weights


class OnlyWeightsLayer(FixedLayer):
    def forward(self, x, valid_lens=None):
        return super().forward(x, valid_lens)[1]


class StubLayer(BuggyLayer):
    def forward(self, x, valid_lens=None):
        raise NotImplementedError()


def test_attention_layer_accepts_fix(capsys):
    check_attention_layer(FixedLayer)
    assert "all checks passed" in capsys.readouterr().out


def test_attention_layer_rejects_stub_bug_and_mistakes():
    _fails(check_attention_layer, StubLayer, "not implemented")
    _fails(check_attention_layer, BuggyLayer, "query axis")
    _fails(check_attention_layer, NoScaleLayer, "not scaled")
    _fails(check_attention_layer, ScaleByDLayer, "divided by d_model")
    _fails(check_attention_layer, NoMaskLayer, "mask is ignored")
    _fails(check_attention_layer, FlippedMaskLayer, "mask is flipped")
    _fails(check_attention_layer, OutFromInputLayer, "weights @ v")
    _fails(check_attention_layer, OnlyWeightsLayer, "tuple")


# --------------------------------------------------------------------------------------------------
# (b) scores with keys shared by all heads (multi-query)
# --------------------------------------------------------------------------------------------------
def sk_reference(q, k):
    return q @ k.unsqueeze(-3).transpose(-2, -1) / math.sqrt(q.shape[-1])


def test_shared_key_accepts_reference(capsys):
    check_shared_key_scores(sk_reference)
    check_shared_key_scores(lambda q, k: torch.einsum("...hqd,...kd->...hqk", q, k) / q.shape[-1] ** 0.5)
    assert "all checks passed" in capsys.readouterr().out


def test_shared_key_rejects_stub_and_mistakes():
    _fails(check_shared_key_scores, _stub, "not implemented")
    _fails(check_shared_key_scores, lambda q, k: q @ k.unsqueeze(-3).transpose(-2, -1), "no scaling")
    _fails(check_shared_key_scores, lambda q, k: sk_reference(q, k) * math.sqrt(q.shape[-1]) / q.shape[-1],
           "divided by d")
    _fails(check_shared_key_scores, lambda q, k: sk_reference(q, k) / math.sqrt(q.shape[-3]), "H * d")
    _fails(check_shared_key_scores, lambda q, k: sk_reference(q, k).softmax(-1), "returned the softmax")
    _fails(check_shared_key_scores, lambda q, k: sk_reference(q, k).transpose(-2, -1), "transposed")
    # a batch of one: squeeze() without an axis passes the other cases and is caught on case 3
    message = _fails(check_shared_key_scores, lambda q, k: sk_reference(q, k).squeeze(), "case 3", "squeezed")
    assert "Hint" in message
    # unsqueeze(1) only works when there is exactly one leading axis
    _fails(check_shared_key_scores, lambda q, k: q @ k.unsqueeze(1).transpose(-2, -1) / math.sqrt(q.shape[-1]),
           "case 1", "k.unsqueeze(-3)")


def test_shared_key_rejects_writing_into_q():
    def scales_in_place(q, k):
        q /= math.sqrt(q.shape[-1])
        return q @ k.unsqueeze(-3).transpose(-2, -1)

    _fails(check_shared_key_scores, scales_in_place, "wrote into its input `q`", "in place")


def test_batch_of_one_cases_catch_squeeze():
    def ms_squeezed(scores, valid_lens):
        allowed = _allowed(scores, valid_lens)
        filled = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
        return (torch.softmax(filled, dim=-1) * allowed).squeeze()

    _fails(check_masked_softmax, ms_squeezed, "(1, 1, 4)", "axes of size 1 are gone")


# ---- exercise 5: the variance of a scaled score --------------------------------------------------------------
def test_score_variance_accepts_the_derivation(capsys):
    reset_hints()
    d, var = SCORE_VARIANCE_SETTING["d"], SCORE_VARIANCE_SETTING["entry_variance"]
    check_score_variance(var**2, 1 / (var * math.sqrt(d)))
    assert capsys.readouterr().out.count("all checks passed") == 2


@pytest.mark.parametrize("scaled, scale, message", [
    (None, None, "still None"),                    # the stub
    (2.0, 0.125, "sigma\\^2 \\* sigma\\^2"),      # sigma^2 once
    (1.0, 0.125, "only when the entries have variance 1"),
    (64.0, 0.125, "before the scaling"),
    (32.0, 0.125, "d sigma\\^2"),
    (4.0, 0.25, "right scale only for unit-variance"),
    (4.0, 1 / 16, "the square root"),
    (4.0, 1 / 64, "c Var"),
    (4.0, 0.5, "not the growth with d"),
    (4.0, None, "still None"),
    (7.0, 0.125, "is not right"),
])
def test_score_variance_rejects(scaled, scale, message):
    reset_hints()
    with pytest.raises(CheckFailed, match=message):
        check_score_variance(scaled, scale)
