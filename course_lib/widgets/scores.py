"""Query / temperature / mask explorer: move a query among 2-D keys and watch the weights (lessons 01, 03)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor

from course_lib._validate import check_choice
from course_lib.attention import masked_softmax
from course_lib.viz import to_numpy
from course_lib.widgets._layout import labelled

__all__ = ["ScoresView", "scores_view", "scores_explorer", "SIMILARITIES", "distinct_labels"]

#: How the explorer compares the query with each key.
SIMILARITIES = ("dot", "scaled_dot", "neg_distance")


@dataclass
class ScoresView:
    """Everything the explorer draws for one position of the sliders. Introduced in lesson 01."""

    scores: Tensor  # (n_keys,)
    weights: Tensor  # (n_keys,), sums to 1 over the valid keys (0 if none is valid)
    output: Tensor  # (d_v,), the weighted average of the values
    valid: Tensor  # (n_keys,) bool


def scores_view(
    query: Tensor,
    keys: Tensor,
    values: Tensor,
    *,
    temperature: float = 1.0,
    valid_len: int | None = None,
    scoring: Literal["dot", "scaled_dot", "neg_distance"] = "scaled_dot",
) -> ScoresView:
    """Scores of one query against every key, softmax at a temperature, keys past ``valid_len`` masked.

    query (d,), keys (n, d), values (n, d_v). ``temperature`` divides the scores: near 0 the weights
    approach a one-hot argmax (hard attention), large values approach the uniform average.
    ``scoring`` is one of ``SIMILARITIES``. Introduced in lesson 01.
    """
    if query.dim() != 1 or keys.dim() != 2 or query.shape[0] != keys.shape[1]:
        raise ValueError(f"query must be (d,) and keys (n, d) with the same d, got query {tuple(query.shape)} "
                         f"and keys {tuple(keys.shape)}")
    if values.dim() != 2 or values.shape[0] != keys.shape[0]:
        raise ValueError(f"values must be (n, d_v) with n = {keys.shape[0]} keys, got {tuple(values.shape)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    check_choice("scoring", scoring, SIMILARITIES)
    n = keys.shape[0]
    valid_len = n if valid_len is None else valid_len
    if not 0 <= valid_len <= n:
        raise ValueError(f"valid_len must lie in [0, {n}], got {valid_len}")
    if scoring == "dot":
        scores = keys @ query
    elif scoring == "scaled_dot":
        scores = keys @ query / keys.shape[1] ** 0.5
    else:
        scores = -((keys - query) ** 2).sum(dim=1)
    valid = torch.arange(n) < valid_len
    weights = masked_softmax((scores / temperature)[None], mask=valid[None])[0]
    return ScoresView(scores=scores, weights=weights, output=weights @ values, valid=valid)


def distinct_labels(labels: list[str]) -> list[str]:
    """Labels that repeat get their index: ["cup", "cup", "red cup"] -> ["cup (0)", "cup (1)", "red cup"].

    Introduced in lesson 01 (four keys were all called "cup").
    """
    names = [str(name) for name in labels]
    return [f"{name} ({i})" if names.count(name) > 1 else name for i, name in enumerate(names)]


def _draw(view: ScoresView, query: Tensor, keys: Tensor, labels: list[str], title: str,
          limits: tuple[float, float] | None = None):
    """The plane (keys, query) and the weights. ``limits`` fixes both axes of the plane (the slider range),
    so the picture does not rescale as the query moves; the legend sits outside the data."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4), constrained_layout=True,
                                      gridspec_kw={"width_ratios": [1.25, 1]})
    k = to_numpy(keys)
    w = to_numpy(view.weights)
    valid = to_numpy(view.valid).astype(bool)
    left.scatter(k[valid, 0], k[valid, 1], s=60 + 600 * w[valid], c=w[valid], cmap="Reds", vmin=0, vmax=1,
                 edgecolors="black")
    if (~valid).any():
        left.scatter(k[~valid, 0], k[~valid, 1], s=60, marker="x", c="grey")
    for (x, y), name in zip(k, labels, strict=False):
        left.annotate(name, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    q = to_numpy(query)
    left.scatter([q[0]], [q[1]], marker="*", s=250, c="tab:blue")
    if limits is not None:
        left.set_xlim(*limits)
        left.set_ylim(*limits)
    left.set_aspect("equal", adjustable="box")
    # Legend entries of a fixed size, whatever the weights (a scatter's own handle takes its first point's size).
    handles = [plt.Line2D([], [], ls="", marker="o", ms=8, mfc="tab:red", mec="black", label="keys (size = weight)"),
               plt.Line2D([], [], ls="", marker="*", ms=12, color="tab:blue", label="query")]
    if (~valid).any():
        handles.append(plt.Line2D([], [], ls="", marker="x", ms=7, color="grey", label="masked keys"))
    left.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    left.set_title(title, fontsize=9)
    right.bar(range(len(w)), w, color=["tab:red" if v else "lightgrey" for v in valid])
    right.set_xticks(range(len(w)), labels=labels, rotation=45, fontsize=8)
    right.set_ylim(0, 1)
    right.set_ylabel("attention weight")
    return fig


def scores_explorer(
    keys: Tensor,
    values: Tensor,
    *,
    labels: list[str] | None = None,
    scoring: Literal["dot", "scaled_dot", "neg_distance"] = "scaled_dot",
):
    """Sliders for the query's two coordinates, the temperature and the number of valid keys.

    keys must be 2-D points (n, 2) so that they can be drawn. Returns the ipywidgets box. Introduced in lesson 01.
    """
    import ipywidgets as widgets
    from IPython.display import display

    if keys.dim() != 2 or keys.shape[1] != 2:
        raise ValueError(f"scores_explorer draws keys in the plane: keys must be (n, 2), got {tuple(keys.shape)}")
    n = keys.shape[0]
    labels = distinct_labels(labels or [f"k{i}" for i in range(n)])
    lo, hi = float(keys.min()) - 1.0, float(keys.max()) + 1.0
    qx = labelled(widgets.FloatSlider(value=float(np.clip(0.5, lo, hi)), min=lo, max=hi, step=0.1,
                                      description="query x"))
    qy = labelled(widgets.FloatSlider(value=float(np.clip(0.5, lo, hi)), min=lo, max=hi, step=0.1,
                                      description="query y"))
    temp = labelled(widgets.FloatLogSlider(value=1.0, base=10, min=-2, max=2, step=0.1, description="temperature"))
    length = labelled(widgets.IntSlider(value=n, min=0, max=n, description="valid keys"))
    out = widgets.Output()

    def update(_=None) -> None:
        query = torch.tensor([qx.value, qy.value], dtype=keys.dtype)
        view = scores_view(query, keys, values, temperature=temp.value, valid_len=length.value, scoring=scoring)
        with out:
            out.clear_output(wait=True)
            fig = _draw(view, query, keys, labels, f"{scoring} scores, temperature {temp.value:.2g}", (lo, hi))
            display(fig)
            plt.close(fig)

    for w in (qx, qy, temp, length):
        w.observe(update, names="value")
    update()
    return widgets.VBox([widgets.HBox([qx, qy]), widgets.HBox([temp, length]), out])

