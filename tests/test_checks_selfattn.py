"""Lesson 05 checkers accept the reference and reject the stub and typical mistakes, with hints."""

import math

import pytest
import torch

from course_lib.checks.core import CheckFailed
from course_lib.checks.selfattn import (
    PERMUTATION_OPTIONS,
    check_causal_mask,
    check_permutation_predictions,
    check_positional_self_attention,
    check_sinusoidal_encoding,
)
from course_lib.checks.thinking import reset_hints


def stub(*args, **kwargs):
    raise NotImplementedError()


# ---- causal mask ---------------------------------------------------------------------------------
def test_causal_mask_accepts_reference(capsys):
    check_causal_mask(lambda t: torch.ones(t, t, dtype=torch.bool).tril())
    assert "causal_mask: all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, message", [
    (stub, "not implemented yet"),
    (lambda t: torch.ones(t, t, dtype=torch.bool).triu(1), "polarity is inverted"),
    (lambda t: torch.ones(t, t, dtype=torch.bool).tril(-1), "off by one on the diagonal"),
    (lambda t: torch.ones(t, t, dtype=torch.bool).triu(), "see the future"),
    (lambda t: torch.ones(t, t, dtype=torch.bool), "nothing is masked"),
    (lambda t: torch.ones(t, t).tril(), "dtype torch.float32"),
])
def test_causal_mask_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check_causal_mask(wrong)


# ---- sinusoidal encoding -------------------------------------------------------------------------
def pe_ok(max_len, d):
    pos = torch.arange(max_len, dtype=torch.float32)[:, None]
    angles = pos / 10000 ** (torch.arange(0, d, 2, dtype=torch.float32) / d)
    pe = torch.zeros(max_len, d)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(angles), torch.cos(angles)
    return pe


def pe_swapped(max_len, d):
    pe = pe_ok(max_len, d)
    return torch.stack([pe[:, 1::2], pe[:, 0::2]], dim=-1).reshape(max_len, d)


def pe_concat(max_len, d):
    pe = pe_ok(max_len, d)
    return torch.cat([pe[:, 0::2], pe[:, 1::2]], dim=-1)


def pe_pair_exponent(max_len, d):
    pos = torch.arange(max_len, dtype=torch.float32)[:, None]
    angles = pos / 10000 ** (torch.arange(d // 2, dtype=torch.float32) / d)
    pe = torch.zeros(max_len, d)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(angles), torch.cos(angles)
    return pe


def pe_from_one(max_len, d):
    return pe_ok(max_len + 1, d)[1:]


def test_sinusoidal_accepts_reference(capsys):
    check_sinusoidal_encoding(pe_ok)
    assert "sinusoidal_encoding: all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, message", [
    (stub, "not implemented yet"),
    (pe_swapped, "swapped"),
    (pe_concat, "concatenated"),
    (pe_pair_exponent, "exponent"),
    (pe_from_one, "start at 1"),
    (lambda max_len, d: pe_ok(max_len, d).T, "expected shape"),
])
def test_sinusoidal_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check_sinusoidal_encoding(wrong)


# ---- positions before attention ------------------------------------------------------------------
def _attend(q, k, v, scale=True):
    s = q @ k.transpose(-2, -1)
    if scale:
        s = s / math.sqrt(q.shape[-1])
    return torch.softmax(s, -1) @ v


def psa_ok(x, pe, w_q, w_k, w_v):
    h = x + pe
    return _attend(h @ w_q, h @ w_k, h @ w_v)


def psa_after(x, pe, w_q, w_k, w_v):
    return _attend(x @ w_q, x @ w_k, x @ w_v) + pe


def psa_none(x, pe, w_q, w_k, w_v):
    return _attend(x @ w_q, x @ w_k, x @ w_v)


def psa_qk_only(x, pe, w_q, w_k, w_v):
    h = x + pe
    return _attend(h @ w_q, h @ w_k, x @ w_v)


def psa_unscaled(x, pe, w_q, w_k, w_v):
    h = x + pe
    return _attend(h @ w_q, h @ w_k, h @ w_v, scale=False)


def test_positional_self_attention_accepts_reference(capsys):
    check_positional_self_attention(psa_ok)
    assert "positional_self_attention: all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, message", [
    (stub, "not implemented yet"),
    (psa_after, "added \\*after\\* attention"),
    (psa_none, "not used at all"),
    (psa_qk_only, "not to the values"),
    (psa_unscaled, "sqrt\\(d\\)"),
    (lambda x, pe, *w: x @ pe, "is wrong"),
    (lambda x, pe, *w: x[:, :, :2] @ pe, "raised RuntimeError"),
])
def test_positional_self_attention_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check_positional_self_attention(wrong)


# ---- exercise 4: permute the tokens ------------------------------------------------------------------------------
def test_permutation_predictions_accept_the_truth(capsys):
    reset_hints()
    check_permutation_predictions("b", "c")
    assert capsys.readouterr().out.count("all checks passed") == 2
    assert len(PERMUTATION_OPTIONS) == 4


@pytest.mark.parametrize("plain, positions, message", [
    (None, None, "still None"),                  # the stub
    ("a", "c", "rows of the result move"),
    ("c", "c", "no new vectors appear"),
    ("d", "c", "not a reversal"),
    ("b", "b", "that is what happens without positions"),
    ("b", "a", "new place"),
    ("b", "d", "not a reversal"),
])
def test_permutation_predictions_reject(plain, positions, message):
    reset_hints()
    with pytest.raises(CheckFailed, match=message):
        check_permutation_predictions(plain, positions)
