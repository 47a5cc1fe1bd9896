"""course_lib.checks.pooling: each checker accepts the reference and rejects the stub and typical mistakes."""

import math

import pytest
import torch

from course_lib.attention import masked_softmax, nadaraya_watson
from course_lib.checks.core import CheckFailed
from course_lib.checks.pooling import (
    BANDWIDTH_LIMIT_DATA,
    check_bandwidth_limits,
    check_fit_bandwidth,
    check_gaussian_weights,
    check_loo_weights,
    heldout_mse,
    loo_mse,
    reference_bandwidth,
    reference_gaussian_weights,
    reference_loo_weights,
)
from course_lib.checks.thinking import reset_hints
from course_lib.data.regression import regression_problem, true_function


def stub(*_args):
    raise NotImplementedError()


# ------------------------------------------------------------------------------ the problem and references
def test_regression_problem_is_seeded_sorted_and_in_range():
    a, b = regression_problem(0), regression_problem(0)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    assert a.x_train.shape == (50,) and a.x_test.shape == (50,)
    assert torch.all(a.x_train[1:] >= a.x_train[:-1])
    assert 0 <= float(a.x_train.min()) and float(a.x_train.max()) <= 5
    assert torch.allclose(a.y_test, true_function(a.x_test))
    assert not torch.equal(regression_problem(1).x_train, a.x_train)
    with pytest.raises(ValueError, match="n_train"):
        regression_problem(0, n_train=1)


def test_reference_weights_agree_with_nadaraya_watson():
    x = torch.linspace(0, 5, 7)
    w = reference_gaussian_weights(x, x, 0.7)
    d2 = (x[:, None] - x[None, :]) ** 2
    assert torch.allclose(w, torch.softmax(-d2 / (2 * 0.7**2), dim=-1), atol=1e-6)
    loo = reference_loo_weights(x, 0.7)
    assert torch.all(loo.diagonal() == 0)
    assert torch.allclose(loo.sum(-1), torch.ones(7))
    est = nadaraya_watson(x, x, x, bandwidth=0.7)
    assert torch.allclose(w @ x, est, atol=1e-6)


def test_reference_bandwidth_minimises_the_leave_one_out_loss():
    p = regression_problem(0)
    h = reference_bandwidth(p.x_train, p.y_train)
    assert 0.05 < h < 1.0
    best = loo_mse(p.x_train, p.y_train, h)
    for other in (h / 2, h * 2, 0.05, 3.0):
        assert loo_mse(p.x_train, p.y_train, other) > best
    assert heldout_mse(p, h) < heldout_mse(p, 0.03) and heldout_mse(p, h) < heldout_mse(p, 3.0)


# ------------------------------------------------------------------------------ gaussian_weights
def test_gaussian_weights_accepts_reference(capsys):
    check_gaussian_weights(reference_gaussian_weights)

    def by_hand(q, k, h):
        e = torch.exp(-((q[:, None] - k[None, :]) ** 2) / (2 * h * h))
        return e / e.sum(dim=1, keepdim=True)

    check_gaussian_weights(by_hand)
    assert "gaussian_weights: all checks passed" in capsys.readouterr().out


def _d2(q, k):
    return (q[:, None] - k[None, :]) ** 2


@pytest.mark.parametrize(
    "wrong, message",
    [
        (stub, "not implemented yet"),
        (lambda q, k, h: torch.softmax(-_d2(q, k) / h**2, dim=-1), "1/2 is missing"),
        (lambda q, k, h: torch.softmax(-_d2(q, k) / (2 * h), dim=-1), "must be squared"),
        (lambda q, k, h: torch.softmax(-_d2(q, k) / (2 * h**2), dim=0), "over the queries"),
        (lambda q, k, h: torch.softmax(_d2(q, k) / (2 * h**2), dim=-1), "sign is flipped"),
        (lambda q, k, h: torch.exp(-_d2(q, k) / (2 * h**2)), "not normalised"),
        (lambda q, k, h: torch.softmax(-_d2(q, k).sqrt() / (2 * h**2), dim=-1), "squared distance"),
        (lambda q, k, h: torch.softmax(-_d2(q, k) / (2 * h**2), dim=-1).T, "expected shape"),
    ],
)
def test_gaussian_weights_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check_gaussian_weights(wrong)


# ------------------------------------------------------------------------------ loo_weights
def test_loo_weights_accepts_reference(capsys):
    check_loo_weights(reference_loo_weights)

    def by_hand(x, h):
        e = torch.exp(-((x[:, None] - x[None, :]) ** 2) / (2 * h**2)) * (1 - torch.eye(len(x)))
        return e / e.sum(dim=-1, keepdim=True)

    check_loo_weights(by_hand)
    assert "loo_weights: all checks passed" in capsys.readouterr().out


def _scores(x, h):
    return -((x[:, None] - x[None, :]) ** 2) / (2 * h**2)


@pytest.mark.parametrize(
    "wrong, message",
    [
        (stub, "not implemented yet"),
        (lambda x, h: torch.softmax(_scores(x, h), dim=-1), "diagonal is kept"),
        (lambda x, h: torch.softmax(_scores(x, h).masked_fill(~torch.eye(len(x), dtype=torch.bool), -math.inf), -1),
         "wrong polarity"),
        (lambda x, h: torch.softmax(_scores(x, h).masked_fill(torch.eye(len(x), dtype=torch.bool), 0.0), -1),
         "diagonal is kept.*changes nothing"),
        (lambda x, h: masked_softmax(_scores(x, h), mask=torch.ones(len(x), len(x), dtype=torch.bool).tril(-1)),
         "causal"),
        (lambda x, h: torch.softmax(_scores(x, h), dim=-1) * (1 - torch.eye(len(x))), "without renormalising"),
        (lambda x, h: reference_loo_weights(x, h).T, "wrong axis"),
        (lambda x, h: reference_loo_weights(x, 1.0), "largest difference"),
    ],
)
def test_loo_weights_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check_loo_weights(wrong)


# ------------------------------------------------------------------------------ fit_bandwidth
def _train(x, y, loo=True, steps=200, lr=0.05, log=False):
    log_h = torch.zeros((), requires_grad=True)
    opt = torch.optim.Adam([log_h], lr=lr)
    for _ in range(steps):
        h = log_h.exp()
        w = reference_loo_weights(x, h) if loo else reference_gaussian_weights(x, x, h)
        loss = ((w @ y - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float(log_h.detach()) if log else float(log_h.detach().exp())


def test_fit_bandwidth_accepts_a_trained_bandwidth_and_returns_it(capsys):
    h = check_fit_bandwidth(_train)
    assert 0.1 < h < 0.5
    assert check_fit_bandwidth(lambda x, y: torch.tensor(reference_bandwidth(x, y))) > 0
    assert "fit_bandwidth: all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, message",
    [
        (stub, "not implemented yet"),
        (lambda x, y: _train(x, y, loo=False), "far too small.*leave-one-out"),
        (lambda x, y: _train(x, y, log=True), "positive.*log_h"),
        (lambda x, y: 1.0, "far too large"),  # the untrained starting value
        (lambda x, y: 0.01, "far too small"),
        (lambda x, y: 0.0, "positive"),
        (lambda x, y: float("nan"), "diverged"),
        (lambda x, y: torch.ones(3), "one number"),
        (lambda x, y: "0.3", "as a float"),
        (lambda x, y: 1.5 * reference_bandwidth(x, y), "worse than the reference"),
    ],
)
def test_fit_bandwidth_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check_fit_bandwidth(wrong)


def gw_float_h(queries, keys, bandwidth):
    h = float(bandwidth)  # cuts the gradient: exercise (c) can no longer learn h
    return torch.softmax(-((queries[:, None] - keys[None, :]) ** 2) / (2 * h**2), dim=-1)


def loo_item_h(x, bandwidth):
    h = bandwidth.item() if isinstance(bandwidth, torch.Tensor) else bandwidth
    return reference_loo_weights(x, h)


def test_weights_must_stay_differentiable_in_a_tensor_bandwidth():
    with pytest.raises(CheckFailed, match=r"gaussian_weights on a bandwidth given as a tensor.*float\(h\)"):
        check_gaussian_weights(gw_float_h)
    with pytest.raises(CheckFailed, match=r"loo_weights on a bandwidth given as a tensor.*cut the gradient"):
        check_loo_weights(loo_item_h)


def test_weights_reject_writing_into_the_queries():
    def centres_in_place(queries, keys, bandwidth):
        queries -= 0  # a no-op keeps them equal ...
        queries.mul_(1.0)
        out = reference_gaussian_weights(queries, keys, bandwidth)
        queries.zero_()  # ... this does not
        return out

    with pytest.raises(CheckFailed, match="gaussian_weights wrote into its input `queries`"):
        check_gaussian_weights(centres_in_place)


def test_fit_bandwidth_accepts_numpy_scalars(capsys):
    import numpy as np

    h = check_fit_bandwidth(lambda x, y: np.float32(reference_bandwidth(x, y)))
    assert isinstance(h, float)
    with pytest.raises(CheckFailed, match="the bandwidth as a float"):
        check_fit_bandwidth(lambda x, y: "0.3")


# ---- (d) the two limits of the bandwidth -----------------------------------------------------------------------
def test_bandwidth_limits_accept_the_truth(capsys):
    reset_hints()
    y = BANDWIDTH_LIMIT_DATA["y_train"]
    check_bandwidth_limits(-2.0, torch.tensor(float(y.mean())))
    assert capsys.readouterr().out.count("all checks passed") == 2


@pytest.mark.parametrize("small, large, message", [
    (None, None, "still None"),                  # the stub
    (2.0, -2.0, "the limit h -> infinity"),      # limits swapped
    (-1.0, 2.0, "straight-line interpolation"),
    (3.0, 2.0, "second nearest key"),
    (0.5, 2.0, "mean of the two neighbours"),
    (-2.0, 8.0, "sum of the y"),
    (-2.0, 0.0, "normalised"),
    (-2.0, -2.0, "the limit h -> 0"),
    (-2.0, "2", "should be a number"),
    (1.7, 2.0, "is not right"),
])
def test_bandwidth_limits_reject(small, large, message):
    reset_hints()
    with pytest.raises(CheckFailed, match=message):
        check_bandwidth_limits(small, large)
