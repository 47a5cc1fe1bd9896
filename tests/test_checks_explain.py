"""The lesson-18 checkers accept the reference and reject the stub and typical wrong answers."""

from __future__ import annotations

import pytest
import torch

from course_lib.checks.core import CheckFailed
from course_lib.checks.explain import (
    UNIFORM_OPTIONS,
    check_permute_rows,
    check_rollout,
    check_uniform_prediction,
    check_uniform_rollout_value,
    uniform_prediction_truth,
)
from course_lib.checks.thinking import reset_hints
from course_lib.explain import attention_rollout, permute_weights


def stub(*args, **kwargs):
    raise NotImplementedError()


def fails(checker, fn, match: str | None = None) -> None:
    with pytest.raises(CheckFailed, match=match):
        checker(fn)


def test_rollout(capsys):
    check_rollout(attention_rollout)
    assert "all checks passed" in capsys.readouterr().out
    fails(check_rollout, stub, "not implemented")

    def plain(w):
        out = torch.eye(w.shape[-1], dtype=w.dtype)
        for a in w:
            out = a @ out
        return out

    def unnormalised(w):
        eye = torch.eye(w.shape[-1], dtype=w.dtype)
        out = eye
        for a in w:
            out = (a + eye) @ out
        return out

    def wrong_order(w):
        eye = torch.eye(w.shape[-1], dtype=w.dtype)
        out = eye
        for a in w:
            out = out @ (0.5 * a + 0.5 * eye)
        return out

    def last_only(w):
        return 0.5 * w[-1] + 0.5 * torch.eye(w.shape[-1], dtype=w.dtype)

    def averaged(w):
        return (0.5 * w + 0.5 * torch.eye(w.shape[-1], dtype=w.dtype)).mean(0)

    fails(check_rollout, plain, "residual")
    fails(check_rollout, unnormalised, "renormalised")
    fails(check_rollout, wrong_order, "wrong order")
    fails(check_rollout, last_only, "last layer")
    fails(check_rollout, averaged, "averaged")
    fails(check_rollout, lambda w: w[0], "No known mistake")
    fails(check_rollout, lambda w: w, "shape")


def test_permute_rows(capsys):
    check_permute_rows(lambda w, m, g: permute_weights(w, m, generator=g))
    assert "all checks passed" in capsys.readouterr().out
    fails(check_permute_rows, stub, "not implemented")

    def with_padding(w, m, g):  # shuffles over all keys, padding included
        return w[:, torch.randperm(w.shape[1], generator=g)]

    def one_for_all(w, m, g):  # the same permutation of the real keys for every row
        order = torch.randperm(5, generator=g)
        out = w.clone()
        for r in range(len(w)):
            n = int(m[r].sum())
            keep = order[order < n]
            out[r, :n] = w[r, :n][keep]
        return out

    def new_random(w, m, g):  # random weights, renormalised
        r = torch.rand(w.shape, generator=g) * m
        return r / r.sum(-1, keepdim=True)

    def renormalised(w, m, g):
        out = permute_weights(w, m, generator=g)
        return (out + 0.01 * m) / (out + 0.01 * m).sum(-1, keepdim=True)

    fails(check_permute_rows, with_padding, "padded key")
    fails(check_permute_rows, one_for_all, "on its own")
    fails(check_permute_rows, new_random, "same weights")
    fails(check_permute_rows, renormalised, "same weights")
    fails(check_permute_rows, lambda w, m, g: w.clone(), "original order")
    fails(check_permute_rows, lambda w, m, g: w[:, :3], "shape")


def test_uniform_rollout_value(capsys):
    reset_hints()
    check_uniform_rollout_value(0.75 / 4 + 0.25)
    assert "Why" in capsys.readouterr().out
    with pytest.raises(CheckFailed, match="still None"):
        check_uniform_rollout_value(None)
    with pytest.raises(CheckFailed, match="without the residual"):
        check_uniform_rollout_value(0.25)
    with pytest.raises(CheckFailed, match="one layer"):
        check_uniform_rollout_value(0.625)
    with pytest.raises(CheckFailed, match="renormalising"):
        check_uniform_rollout_value(1.75)
    with pytest.raises(CheckFailed, match="Hint 3 of 3"):
        check_uniform_rollout_value(0.9)
    with pytest.raises(CheckFailed, match="number"):
        check_uniform_rollout_value("0.4375")


def test_uniform_prediction_truth_is_computed_from_the_record():
    def record(all_acc, all_uni, cue_acc, cue_uni):
        return {"table": [{"model": "tagger (10), all tokens", "accuracy": all_acc, "uniform": all_uni},
                          {"model": "tagger (10), cue entities", "accuracy": cue_acc, "uniform": cue_uni}]}

    assert uniform_prediction_truth(record(0.98, 0.97, 0.84, 0.70)) == "b"
    assert uniform_prediction_truth(record(0.98, 0.80, 0.84, 0.70)) == "a"
    assert uniform_prediction_truth(record(0.98, 0.80, 0.84, 0.83)) == "c"
    assert uniform_prediction_truth(record(0.98, 0.97, 0.84, 0.83)) == "d"


def test_uniform_prediction(capsys):
    reset_hints()
    correct = uniform_prediction_truth()  # lesson 18's measured result (the committed copy on a fresh clone)
    check_uniform_prediction(correct.upper())
    assert "Why" in capsys.readouterr().out
    with pytest.raises(CheckFailed, match="still Ellipsis"):
        check_uniform_prediction(...)
    for wrong in sorted(set(UNIFORM_OPTIONS) - {correct}):
        with pytest.raises(CheckFailed, match="is not right"):
            check_uniform_prediction(wrong)
    with pytest.raises(CheckFailed, match="not one of the options"):
        check_uniform_prediction("e")
