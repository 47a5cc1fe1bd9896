"""Temperature explorer: one fixed query, a slider from near 0 (hard attention) to large (uniform) (lesson 04).

Softmax with a temperature, as in the Gumbel-softmax paper (Jang et al. 2017, arXiv:1611.01144) and in
distillation (Hinton et al. 2015, arXiv:1503.02531): weights = softmax(scores / temperature).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import matplotlib.pyplot as plt
import torch
from torch import Tensor

from course_lib._validate import check_float, check_tensor
from course_lib.viz import to_numpy
from course_lib.widgets._layout import labelled

__all__ = ["TemperatureView", "temperature_view", "temperature_explorer"]


@dataclass
class TemperatureView:
    """What the explorer draws for one temperature. Introduced in lesson 04."""

    scores: Tensor  # (n,), scaled dot products q.k / sqrt(d)
    weights: Tensor  # (n,), softmax(scores / temperature)
    output: Tensor  # (d_v,), weights @ values
    hard_index: int  # the key that argmax (hard attention) would pick
    entropy: float  # of the weights, in nats: 0 for one-hot, log(n) for uniform
    effective_keys: float  # exp(entropy): how many keys the query "really" reads, 1 .. n


def temperature_view(query: Tensor, keys: Tensor, values: Tensor, temperature: float) -> TemperatureView:
    """Weights and output of one query at one temperature: query (d,), keys (n, d), values (n, d_v).

    Introduced in lesson 04.
    """
    for name, t, dims in (("query", query, 1), ("keys", keys, 2), ("values", values, 2)):
        check_tensor(name, t, dim=dims)
    if keys.shape[1] != query.shape[0] or keys.shape[0] == 0:
        raise ValueError(f"keys must be (n, d) with n >= 1 and d = {query.shape[0]} (the query's size), "
                         f"got keys {tuple(keys.shape)}")
    if values.shape[0] != keys.shape[0]:
        raise ValueError(f"values must be (n, d_v) with n = {keys.shape[0]} keys, got {tuple(values.shape)}")
    check_float("temperature", temperature, minimum=0.0, exclusive_minimum=True)
    scores = keys @ query / math.sqrt(query.shape[0])  # (n,)
    weights = torch.softmax(scores / temperature, dim=0)  # (n,)
    entropy = float(-(weights * torch.log(weights.clamp_min(torch.finfo(weights.dtype).tiny))).sum())
    return TemperatureView(scores=scores, weights=weights, output=weights @ values,
                           hard_index=int(scores.argmax()), entropy=entropy, effective_keys=math.exp(entropy))


def _draw(view: TemperatureView, values: Tensor, labels: list[str], temperature: float):
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.3), constrained_layout=True)
    w = to_numpy(view.weights)
    colours = ["tab:red" if i == view.hard_index else "tab:grey" for i in range(len(w))]
    left.bar(range(len(w)), w, color=colours)
    left.set_xticks(range(len(w)), labels=labels, fontsize=8)
    left.set_ylim(0, 1)
    left.set_ylabel("attention weight")
    left.set_title(f"temperature {temperature:.3g}: {view.effective_keys:.2f} effective keys", fontsize=9)
    v = to_numpy(values)
    right.scatter(v[:, 0], v[:, 1], s=40 + 400 * w, c=w, cmap="Reds", vmin=0, vmax=1, edgecolors="black")
    for (x, y), name in zip(v[:, :2], labels, strict=False):
        right.annotate(name, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    mean = v.mean(axis=0)  # (d_v,)
    right.scatter([mean[0]], [mean[1]], marker="+", s=120, c="tab:green", label="uniform average")
    out = to_numpy(view.output)
    right.scatter([out[0]], [out[1]], marker="*", s=250, c="tab:blue", label="output")
    right.set_title("values (first two coordinates) and the output", fontsize=9)
    right.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    return fig


def temperature_explorer(query: Tensor, keys: Tensor, values: Tensor, *, labels: list[str] | None = None):
    """A log-scale temperature slider (0.01 .. 100) for one fixed query; returns the ipywidgets box.

    The right panel draws the values' first two coordinates, so values need ``d_v >= 2``. Introduced in lesson 04.
    """
    import ipywidgets as widgets
    from IPython.display import display

    if values.dim() != 2 or values.shape[1] < 2:
        raise ValueError(f"temperature_explorer draws values in the plane: values must be (n, d_v >= 2), "
                         f"got {tuple(values.shape)}")
    labels = labels or [f"k{i}" for i in range(keys.shape[0])]
    temp = labelled(widgets.FloatLogSlider(value=1.0, base=10, min=-2, max=2, step=0.05, description="temperature"))
    out = widgets.Output()

    def update(_=None) -> None:
        view = temperature_view(query, keys, values, temp.value)
        with out:
            out.clear_output(wait=True)
            fig = _draw(view, values, labels, temp.value)
            display(fig)
            plt.close(fig)

    temp.observe(update, names="value")
    update()
    return widgets.VBox([temp, out])
