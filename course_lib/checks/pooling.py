"""Checkers for lesson 02 (attention pooling): Gaussian weights, leave-one-out weights, a fitted bandwidth.

Nadaraya-Watson kernel regression: Nadaraya 1964 (https://doi.org/10.1137/1109020) and Watson 1964
(https://www.jstor.org/stable/25049340).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from course_lib.attention import masked_softmax, nadaraya_watson
from course_lib.checks.core import (
    CheckFailed,
    as_number,
    call_learner,
    compare,
    learner_backward,
    passed,
    require_callable,
)
from course_lib.checks.thinking import StepHints, check_number
from course_lib.data.regression import RegressionProblem, regression_problem

__all__ = [
    "reference_gaussian_weights",
    "reference_loo_weights",
    "loo_mse",
    "heldout_mse",
    "reference_bandwidth",
    "check_gaussian_weights",
    "check_loo_weights",
    "check_fit_bandwidth",
    "BANDWIDTH_LIMIT_DATA",
    "check_bandwidth_limits",
]


# --------------------------------------------------------------------------------------------------
# References on the problem of lesson 02 (the problem itself lives in course_lib.data.regression)
# --------------------------------------------------------------------------------------------------
def reference_gaussian_weights(queries: Tensor, keys: Tensor, bandwidth: float | Tensor) -> Tensor:
    """(n_q,), (n_k,) -> (n_q, n_k) Gaussian kernel weights, each row a softmax over the keys.

    Introduced in lesson 02.
    """
    return nadaraya_watson(queries, keys, torch.zeros_like(keys), bandwidth=bandwidth, return_weights=True)[1]


def reference_loo_weights(x_train: Tensor, bandwidth: float | Tensor) -> Tensor:
    """(n,) -> (n, n) Gaussian weights of each training point over all the *other* training points.

    Introduced in lesson 02.
    """
    h = torch.as_tensor(bandwidth, dtype=x_train.dtype)
    scores = -((x_train[:, None] - x_train[None, :]) ** 2) / (2 * h**2)  # (n, n)
    others = ~torch.eye(len(x_train), dtype=torch.bool)  # True = may attend: everyone but yourself
    return masked_softmax(scores, mask=others)


def loo_mse(x_train: Tensor, y_train: Tensor, bandwidth: float | Tensor) -> Tensor:
    """Leave-one-out training loss: predict each y_i from the other points only. Introduced in lesson 02."""
    return ((reference_loo_weights(x_train, bandwidth) @ y_train - y_train) ** 2).mean()


def heldout_mse(problem: RegressionProblem, bandwidth: float | Tensor) -> float:
    """Mean squared error of the Gaussian Nadaraya-Watson estimate against the truth on the test grid.

    Introduced in lesson 02.
    """
    estimate = nadaraya_watson(problem.x_test, problem.x_train, problem.y_train, bandwidth=bandwidth)
    return float(((estimate - problem.y_test) ** 2).mean())


def reference_bandwidth(x_train: Tensor, y_train: Tensor) -> float:
    """The bandwidth that minimises the leave-one-out loss, by a fine grid search over log h.

    Introduced in lesson 02.
    """
    grid = torch.logspace(math.log10(0.02), math.log10(5.0), 400, dtype=torch.float64)  # (G,)
    x, y = x_train.double(), y_train.double()
    d2 = (x[:, None] - x[None, :]) ** 2  # (n, n)
    scores = -d2[None] / (2 * grid[:, None, None] ** 2)  # (G, n, n), one slice per bandwidth
    others = ~torch.eye(len(x), dtype=torch.bool)  # (n, n)
    weights = masked_softmax(scores, mask=others)  # (G, n, n)
    losses = ((weights @ y - y) ** 2).mean(dim=-1)  # (G,)
    return float(grid[int(torch.argmin(losses))])


# --------------------------------------------------------------------------------------------------
# Exercise (a): Gaussian kernel weights
# --------------------------------------------------------------------------------------------------
def check_gaussian_weights(gaussian_weights: Callable[[Tensor, Tensor, float], Tensor]) -> None:
    """Check ``gaussian_weights(queries, keys, bandwidth)`` -> (n_q, n_k) = softmax_k(-(q - k)^2 / (2 h^2)).

    Introduced in lesson 02.
    """
    require_callable(gaussian_weights, "gaussian_weights")
    g = torch.Generator().manual_seed(3)
    # (n_q, n_k, h): bandwidths away from 1 and 1/2 so that every mistake below changes the result.
    cases = [(4, 6, 0.5), (5, 5, 2.0), (7, 3, 0.7), (6, 6, 1.5), (1, 8, 0.3)]
    for n_q, n_k, h in cases:
        queries = torch.sort(torch.rand(n_q, generator=g) * 5).values
        keys = torch.sort(torch.rand(n_k, generator=g) * 5).values
        case = f"queries {tuple(queries.shape)}, keys {tuple(keys.shape)}, bandwidth {h}"
        expected = reference_gaussian_weights(queries, keys, h)
        d2 = (queries[:, None] - keys[None, :]) ** 2  # (n_q, n_k) squared distances
        mistakes = {
            "the 1/2 is missing: the Gaussian kernel is exp(-(q - k)^2 / (2 h^2))": torch.softmax(-d2 / h**2, dim=-1),
            "the bandwidth must be squared: divide (q - k)^2 by 2 h^2, not 2 h": torch.softmax(-d2 / (2 * h), dim=-1),
            "the softmax runs over the queries (dim=0); each query's weights sum to 1 over the keys (dim=-1)":
                torch.softmax(-d2 / (2 * h**2), dim=0),
            "the sign is flipped: near keys must get large weights, so the score is MINUS the squared distance":
                torch.softmax(d2 / (2 * h**2), dim=-1),
            "the weights are not normalised: divide exp(...) by its sum over the keys (or use a softmax)":
                torch.exp(-d2 / (2 * h**2)),
            "you used the distance |q - k| where the Gaussian needs the squared distance (q - k)^2":
                torch.softmax(-d2.sqrt() / (2 * h**2), dim=-1),
        }
        got = call_learner(gaussian_weights, queries, keys, h, name="gaussian_weights")
        compare(got, expected, "gaussian_weights", case=case, mistakes=mistakes)
    queries, keys = torch.linspace(0, 4, 5), torch.linspace(0.5, 4.5, 7)
    _check_learnable_bandwidth(lambda h: call_learner(gaussian_weights, queries, keys, h, name="gaussian_weights"),
                               lambda h: reference_gaussian_weights(queries, keys, h), "gaussian_weights")
    passed("gaussian_weights")


def _check_learnable_bandwidth(run: Callable[[Tensor], Tensor], reference: Callable[[Tensor], Tensor],
                               name: str) -> None:
    """The bandwidth may be a tensor that requires grad (exercise (c) learns it): the weights must stay
    differentiable in h, with the reference's gradient."""
    h = torch.tensor(0.8, requires_grad=True)
    case = "a bandwidth given as a tensor that requires grad, h = tensor(0.8)"
    got = run(h)
    if not isinstance(got, Tensor):
        raise CheckFailed(f"{name} on {case} should return a tensor, got {type(got).__name__}")
    compare(got.detach(), reference(h).detach(), name, case=case)
    if not got.requires_grad:
        raise CheckFailed(f"{name} on {case}: the weights do not depend on h for autograd, so exercise (c) could "
                          f"not learn it. Hint: keep h a tensor; float(h), h.item() or math.exp/math.sqrt on h "
                          f"cut the gradient (use torch functions or plain arithmetic on the tensor)")
    upstream = torch.linspace(-1.0, 1.0, got.numel()).reshape(got.shape)
    learner_backward(got, name, upstream)
    h_ref = torch.tensor(0.8, requires_grad=True)
    (reference(h_ref) * upstream).sum().backward()
    assert h_ref.grad is not None
    got_grad = h.grad if h.grad is not None else torch.zeros(())
    compare(got_grad, h_ref.grad, f"{name} (gradient with respect to h)", case=case, atol=1e-4)


# --------------------------------------------------------------------------------------------------
# Exercise (b): leave-one-out weights
# --------------------------------------------------------------------------------------------------
def check_loo_weights(loo_weights: Callable[[Tensor, float], Tensor]) -> None:
    """Check ``loo_weights(x_train, bandwidth)`` -> (n, n) Gaussian weights with the diagonal excluded.

    Introduced in lesson 02.
    """
    require_callable(loo_weights, "loo_weights")
    g = torch.Generator().manual_seed(4)
    for n, h in [(6, 0.8), (9, 0.4), (4, 2.0), (12, 0.6)]:
        x = torch.sort(torch.rand(n, generator=g) * 5).values
        case = f"x_train of shape ({n},), bandwidth {h}"
        expected = reference_loo_weights(x, h)
        scores = -((x[:, None] - x[None, :]) ** 2) / (2 * h**2)  # (n, n)
        eye = torch.eye(n, dtype=torch.bool)
        kept = torch.softmax(scores, dim=-1)
        mistakes = {
            "the diagonal is kept: each point still sees itself, which is exactly what leave-one-out forbids "
            "(setting the diagonal score to 0 changes nothing, it already is 0: it must become -inf, or use "
            "masked_softmax)": kept,
            "the mask has the wrong polarity: True means 'may attend', so use ~eye (everyone but yourself), "
            "not eye": masked_softmax(scores, mask=eye),
            "you used a causal (lower-triangular) mask: leave-one-out removes only the point itself, every "
            "other point stays": masked_softmax(scores, mask=torch.ones(n, n, dtype=torch.bool).tril(-1)),
            "the diagonal weights were zeroed after the softmax without renormalising: each row must sum to 1 "
            "again": kept.masked_fill(eye, 0.0),
            "the softmax runs over the wrong axis: normalise each row (dim=-1)": masked_softmax(scores.T, mask=~eye).T,
        }
        got = call_learner(loo_weights, x, h, name="loo_weights")
        compare(got, expected, "loo_weights", case=case, mistakes=mistakes)
    x = torch.linspace(0, 3, 6)
    _check_learnable_bandwidth(lambda h: call_learner(loo_weights, x, h, name="loo_weights"),
                               lambda h: reference_loo_weights(x, h), "loo_weights")
    passed("loo_weights")


# --------------------------------------------------------------------------------------------------
# Exercise (c): fit the bandwidth
# --------------------------------------------------------------------------------------------------
def check_fit_bandwidth(fit_bandwidth: Callable[[Tensor, Tensor], float | Tensor], seeds: tuple[int, ...] = (0, 2),
                        tolerance: float = 0.1) -> float:
    """Check ``fit_bandwidth(x_train, y_train) -> h`` on lesson 02's problem; return h for the first seed.

    h must be a positive finite number within a factor 2 of the bandwidth that minimises the
    leave-one-out loss, and its held-out MSE (against the truth) at most ``tolerance`` (relative) worse
    than that reference's.
    """
    require_callable(fit_bandwidth, "fit_bandwidth")
    first: float | None = None
    for seed in seeds:
        problem = regression_problem(seed)
        got = call_learner(fit_bandwidth, problem.x_train.clone(), problem.y_train.clone(), name="fit_bandwidth")
        h = as_number(got, "fit_bandwidth", f"the problem with seed {seed}", what="the bandwidth as a float")
        case = f"the problem with seed {seed}"
        if not math.isfinite(h):
            raise CheckFailed(f"fit_bandwidth returned {h} on {case}: the training diverged (learning rate too large?)")
        if h <= 0:
            raise CheckFailed(f"fit_bandwidth returned h = {h:.4g} on {case}, but a bandwidth is positive. Hint: did "
                              f"you return log_h instead of h = exp(log_h)?")
        h_ref = reference_bandwidth(problem.x_train, problem.y_train)
        mse, mse_ref = heldout_mse(problem, h), heldout_mse(problem, h_ref)
        if h < h_ref / 2:
            raise CheckFailed(f"fit_bandwidth returned h = {h:.4f} on {case}, far too small (the leave-one-out "
                              f"optimum is near {h_ref:.2f}); held-out MSE {mse:.4f} vs {mse_ref:.4f}. Hint: without "
                              f"leave-one-out each point sees itself and h shrinks towards 0 (memorising); use "
                              f"loo_weights in the loss")
        if h > 2 * h_ref:
            raise CheckFailed(f"fit_bandwidth returned h = {h:.4f} on {case}, far too large (the leave-one-out "
                              f"optimum is near {h_ref:.2f}); held-out MSE {mse:.4f} vs {mse_ref:.4f}. Hint: train "
                              f"for more steps or with a larger learning rate, and make sure h is what you update")
        if mse > mse_ref * (1 + tolerance):
            raise CheckFailed(f"fit_bandwidth returned h = {h:.4f} on {case}: held-out MSE {mse:.4f}, more than "
                              f"{tolerance:.0%} worse than the reference fit (h = {h_ref:.4f}, MSE {mse_ref:.4f}). "
                              f"Hint: train a little longer")
        first = h if first is None else first
    passed("fit_bandwidth")
    assert first is not None
    return first


# --------------------------------------------------------------------------------------------------
# Exercise (d): predict the two limits of the bandwidth
# --------------------------------------------------------------------------------------------------
#: The data of exercise (d): four training points and one query between them.
BANDWIDTH_LIMIT_DATA: dict[str, Tensor] = {
    "x_train": torch.tensor([0.0, 1.0, 2.5, 4.0]),
    "y_train": torch.tensor([1.0, 3.0, -2.0, 6.0]),
    "query": torch.tensor(2.2),
}

_SMALL_H, _LARGE_H = 0.02, 1.0e4  # "h -> 0" and "h -> infinity", computed with nadaraya_watson itself


def check_bandwidth_limits(prediction_small_h: object, prediction_large_h: object) -> None:
    """Check the predicted Nadaraya-Watson estimate at ``BANDWIDTH_LIMIT_DATA["query"]`` as h -> 0 and h -> infinity.

    The truth is ``nadaraya_watson`` run with a tiny and with a huge bandwidth. Introduced in lesson 02.
    """
    data = BANDWIDTH_LIMIT_DATA
    x, y, query = data["x_train"], data["y_train"], data["query"]
    small = float(nadaraya_watson(query[None], x, y, bandwidth=_SMALL_H)[0])
    large = float(nadaraya_watson(query[None], x, y, bandwidth=_LARGE_H)[0])
    distance = (x - query).abs()
    nearest = int(distance.argmin())
    second = int(distance.argsort()[1])
    left = int((x <= query).nonzero().max())
    right = int((x > query).nonzero().min())
    interpolated = float(y[left] + (y[right] - y[left]) * (query - x[left]) / (x[right] - x[left]))
    tol = {"rel_tol": 1e-4, "abs_tol": 1e-4}
    check_number(
        prediction_small_h, "prediction_small_h", small,
        StepHints("02-bandwidth-small", [
            "write the weights softmax_i(-(x - x_i)^2 / (2h^2)) and let h shrink: which score falls fastest, and "
            "which one is left largest?",
            "as h -> 0 the key nearest to the query takes all the weight (the gaps between the scores grow like "
            "1/h^2): the estimate is the y of the nearest x_i",
        ]),
        why=f"as h -> 0 all the weight goes to the nearest key, x = {float(x[nearest]):g}, so the estimate is its "
            f"y = {float(y[nearest]):g}: attention becomes a hard lookup (nearest neighbour)",
        mistakes={"that is the mean of all the y: the limit h -> infinity, not h -> 0": float(y.mean()),
                  "that is a straight-line interpolation between the two neighbours; Nadaraya-Watson with a tiny "
                  "bandwidth does not interpolate, it copies one y": interpolated,
                  f"that is the y of x = {float(x[second]):g}, the second nearest key; measure the distance |x - x_i|":
                      float(y[second]),
                  "that is the mean of the two neighbours' y; the nearer one wins outright":
                      float((y[left] + y[right]) / 2)},
        **tol,
    )
    check_number(
        prediction_large_h, "prediction_large_h", large,
        StepHints("02-bandwidth-large", [
            "as h grows, what happens to every score -(x - x_i)^2 / (2h^2)? and to the softmax of scores that "
            "are all nearly equal?",
            "all the scores go to 0, so every weight goes to 1/n: the estimate is the plain mean of the y "
            "(average pooling)",
        ]),
        why=f"as h -> infinity every score goes to 0 and every weight to 1/{len(x)}: the estimate is the mean of "
            f"the y, {float(y.mean()):g}, whatever the query (average pooling)",
        mistakes={"that is the y of the nearest key: the limit h -> 0, not h -> infinity": float(y[nearest]),
                  "that is the sum of the y; the weights still sum to 1, so it is their mean": float(y.sum()),
                  "the kernel values all go to 0, but the weights are normalised: they go to 1/n, not 0": 0.0,
                  "that is a straight-line interpolation between the two neighbours; far keys count as much as "
                  "near ones here": interpolated},
        **tol,
    )
