"""The synthetic 1-D regression problem of lesson 02 (Nadaraya 1964, Watson 1964 kernel regression).

Introduced in lesson 02.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from course_lib._validate import check_float, check_int

__all__ = ["true_function", "RegressionProblem", "regression_problem"]


def true_function(x: Tensor) -> Tensor:
    """The noiseless target of lesson 02: f(x) = 2 sin(x) + x^0.8. Introduced in lesson 02."""
    return 2 * torch.sin(x) + x**0.8


@dataclass
class RegressionProblem:
    """Noisy training pairs on sorted x in [0, 5] and a noiseless test grid. Introduced in lesson 02."""

    x_train: Tensor  # (n_train,), sorted
    y_train: Tensor  # (n_train,), true_function(x_train) + noise
    x_test: Tensor  # (n_test,), an even grid on [0, 5)
    y_test: Tensor  # (n_test,), true_function(x_test), no noise


def regression_problem(seed: int = 0, *, n_train: int = 50, n_test: int = 50, noise: float = 0.5) -> RegressionProblem:
    """The 1-D problem of lesson 02: y = 2 sin(x) + x^0.8 + N(0, noise^2), x sorted, uniform on [0, 5].

    Introduced in lesson 02.

    Args:
        seed: seed of the training inputs and noise.
        n_train: number of noisy training pairs (at least 2).
        n_test: number of points on the noiseless test grid (at least 1).
        noise: standard deviation of the noise.
    """
    seed = check_int("seed", seed)
    n_train = check_int("n_train", n_train, minimum=2)
    n_test = check_int("n_test", n_test, minimum=1)
    noise = check_float("noise", noise, minimum=0.0)
    g = torch.Generator().manual_seed(seed)
    x_train = torch.sort(torch.rand(n_train, generator=g) * 5).values  # (n_train,)
    y_train = true_function(x_train) + noise * torch.randn(n_train, generator=g)  # (n_train,)
    x_test = torch.arange(n_test, dtype=torch.float32) * (5 / n_test)  # (n_test,)
    return RegressionProblem(x_train, y_train, x_test, true_function(x_test))
