"""Bandwidth explorer for Nadaraya-Watson attention pooling (lesson 02): move h, switch the kernel.

Nadaraya 1964 (https://doi.org/10.1137/1109020), Watson 1964 (https://www.jstor.org/stable/25049340).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import torch
from torch import Tensor

from course_lib._validate import check_tensor
from course_lib.attention import KERNELS, nadaraya_watson
from course_lib.viz import to_numpy
from course_lib.widgets._layout import fit_dropdown, labelled

__all__ = ["PoolingView", "pooling_view", "pooling_explorer"]


@dataclass
class PoolingView:
    """Everything the explorer draws for one bandwidth and one kernel. Introduced in lesson 02."""

    estimate: Tensor  # (n_q,), the attention-pooled prediction at each query
    weights: Tensor  # (n_q, n_k), row i = how query i spreads its attention over the training keys
    mse: float | None  # mean squared error of the estimate against y_true, when y_true is given
    bandwidth: float
    kernel: str


def _check_1d(name: str, t: object) -> Tensor:
    return check_tensor(name, t, dim=1, floating=True, layout="(n,)")
    return t


def pooling_view(
    x_train: Tensor,
    y_train: Tensor,
    x_query: Tensor,
    bandwidth: float,
    *,
    kernel: str = "gaussian",
    y_true: Tensor | None = None,
) -> PoolingView:
    """Nadaraya-Watson estimate and weights at ``x_query`` from keys ``x_train`` and values ``y_train``.

    All inputs are 1-D; ``y_true`` (same length as ``x_query``) adds the MSE of the estimate.
    Introduced in lesson 02.
    """
    for name, t in (("x_train", x_train), ("y_train", y_train), ("x_query", x_query)):
        _check_1d(name, t)
    if x_train.shape != y_train.shape:
        raise ValueError(f"x_train and y_train must have the same shape, got {tuple(x_train.shape)} and "
                         f"{tuple(y_train.shape)}")
    if y_true is not None and _check_1d("y_true", y_true).shape != x_query.shape:
        raise ValueError(f"y_true must match x_query's shape {tuple(x_query.shape)}, got {tuple(y_true.shape)}")
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    if not float(bandwidth) > 0:
        raise ValueError(f"bandwidth must be > 0, got {bandwidth}")
    with torch.no_grad():
        estimate, weights = nadaraya_watson(x_query, x_train, y_train, bandwidth=float(bandwidth),
                                            return_weights=True, kernel=kernel)
    mse = None if y_true is None else float(((estimate - y_true) ** 2).mean())
    return PoolingView(estimate=estimate, weights=weights, mse=mse, bandwidth=float(bandwidth), kernel=kernel)


def _draw(view: PoolingView, x_train: Tensor, y_train: Tensor, x_query: Tensor, y_true: Tensor | None):
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    left.scatter(to_numpy(x_train), to_numpy(y_train), s=14, c="grey", alpha=0.7, label="training pairs (keys, values)")
    if y_true is not None:
        left.plot(to_numpy(x_query), to_numpy(y_true), "k--", lw=1, label="truth")
    left.plot(to_numpy(x_query), to_numpy(view.estimate), c="tab:red", lw=2, label="estimate")
    left.set_xlabel("x")
    left.set_ylabel("y")
    left.legend(fontsize=7)
    mse = "" if view.mse is None else f", MSE {view.mse:.3f}"
    left.set_title(f"{view.kernel} kernel, h = {view.bandwidth:.3g}{mse}", fontsize=9)
    image = right.imshow(to_numpy(view.weights), cmap="Reds", vmin=0, aspect="auto")
    right.set_xlabel("keys (training x, sorted)")
    right.set_ylabel("queries")
    right.set_title("attention weights", fontsize=9)
    fig.colorbar(image, ax=right, shrink=0.8)
    return fig


def pooling_explorer(
    x_train: Tensor,
    y_train: Tensor,
    x_query: Tensor,
    y_true: Tensor | None = None,
    *,
    bandwidth: float = 0.5,
) -> Any:
    """A log-scale bandwidth slider and a kernel dropdown; draws the estimate and the weight heatmap.

    Returns the ipywidgets box. Introduced in lesson 02.
    """
    import ipywidgets as widgets
    from IPython.display import display

    pooling_view(x_train, y_train, x_query, bandwidth, y_true=y_true)  # validate once, before any widget
    h = labelled(widgets.FloatLogSlider(value=bandwidth, base=10, min=-2, max=1, step=0.05, description="bandwidth h"))
    kernel = fit_dropdown(widgets.Dropdown(options=list(KERNELS), value="gaussian", description="kernel"))
    out = widgets.Output()

    def update(_=None) -> None:
        view = pooling_view(x_train, y_train, x_query, h.value, kernel=kernel.value, y_true=y_true)
        with out:
            out.clear_output(wait=True)
            fig = _draw(view, x_train, y_train, x_query, y_true)
            display(fig)
            plt.close(fig)

    h.observe(update, names="value")
    kernel.observe(update, names="value")
    update()
    return widgets.VBox([widgets.HBox([h, kernel]), out])

