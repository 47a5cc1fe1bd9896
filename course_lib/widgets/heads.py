"""Head picker: choose a layer and a head, see that head's attention weights (lesson 06 and later).

Looking at heads one at a time follows Vaswani et al. 2017 (arXiv:1706.03762, figures 3-5) and
Clark et al. 2019, "What does BERT look at?" (arXiv:1906.04341).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor

from course_lib._validate import check_int
from course_lib.viz import show_heatmaps, to_numpy
from course_lib.widgets._layout import fit_dropdown, hide_if_single

__all__ = ["HeadView", "head_view", "head_explorer"]


@dataclass
class HeadView:
    """What the picker draws for one (layer, head). Introduced in lesson 06."""

    weights: np.ndarray  # (T_q, T_k), the chosen head's attention weights
    title: str
    x_tokens: list[str]  # the keys' labels
    y_tokens: list[str]  # the queries' labels
    top_key: list[int]  # for each query, the key it attends to most
    num_layers: int
    num_heads: int


def _as_layers(weights: Tensor | np.ndarray) -> np.ndarray:
    if not isinstance(weights, (Tensor, np.ndarray)):
        raise TypeError(f"weights must be a torch.Tensor or numpy array, got {type(weights).__name__}")
    w = to_numpy(weights)
    if w.ndim == 3:
        w = w[None]  # (1, H, T_q, T_k): a single layer
    if w.ndim != 4:
        raise ValueError(f"weights must have shape (L, H, T_q, T_k) or (H, T_q, T_k), got {tuple(w.shape)}")
    return w


def head_view(
    weights: Tensor | np.ndarray,
    layer: int = 0,
    head: int = 0,
    *,
    tokens: Sequence[str] | None = None,
    key_tokens: Sequence[str] | None = None,
) -> HeadView:
    """Pick one head from weights (L, H, T_q, T_k) or (H, T_q, T_k).

    ``tokens`` label the queries (and the keys too, unless ``key_tokens`` is given, as in cross-attention).
    Introduced in lesson 06.
    """
    w = _as_layers(weights)
    num_layers, num_heads, t_q, t_k = w.shape
    for name, value, limit in (("layer", layer, num_layers), ("head", head, num_heads)):
        if not 0 <= check_int(name, value) < limit:
            raise ValueError(f"{name} must lie in [0, {limit - 1}] for weights of shape {tuple(w.shape)}, got {value}")
    y_tokens = [str(t) for t in tokens] if tokens is not None else [str(i) for i in range(t_q)]
    x_tokens = [str(t) for t in key_tokens] if key_tokens is not None else (
        y_tokens if tokens is not None and t_q == t_k else [str(i) for i in range(t_k)])
    if len(y_tokens) != t_q:
        raise ValueError(f"tokens has {len(y_tokens)} labels for T_q = {t_q} queries")
    if len(x_tokens) != t_k:
        raise ValueError(f"key_tokens has {len(x_tokens)} labels for T_k = {t_k} keys")
    chosen = w[layer, head]  # (T_q, T_k)
    title = f"layer {layer}, head {head}" if num_layers > 1 else f"head {head}"
    return HeadView(weights=chosen, title=title, x_tokens=x_tokens, y_tokens=y_tokens,
                    top_key=[int(i) for i in chosen.argmax(axis=-1)], num_layers=num_layers, num_heads=num_heads)


def head_explorer(
    weights: Tensor | np.ndarray,
    *,
    tokens: Sequence[str] | None = None,
    key_tokens: Sequence[str] | None = None,
):
    """Dropdowns for layer and head over weights (L, H, T_q, T_k) or (H, T_q, T_k); returns the ipywidgets box.

    Introduced in lesson 06.
    """
    import ipywidgets as widgets
    from IPython.display import display

    w = _as_layers(weights.detach() if isinstance(weights, torch.Tensor) else weights)
    # A single layer (weights (H, T_q, T_k)) leaves nothing to choose: its dropdown is hidden.
    layer = hide_if_single(fit_dropdown(widgets.Dropdown(options=list(range(w.shape[0])), value=0,
                                                         description="layer")))
    head = hide_if_single(fit_dropdown(widgets.Dropdown(options=list(range(w.shape[1])), value=0,
                                                        description="head")))
    out = widgets.Output()

    def update(_=None) -> None:
        view = head_view(w, layer.value, head.value, tokens=tokens, key_tokens=key_tokens)
        with out:
            out.clear_output(wait=True)
            fig = show_heatmaps(view.weights, titles=[view.title], xticklabels=view.x_tokens,
                                yticklabels=view.y_tokens, vmax=1.0)
            display(fig)
            plt.close(fig)

    layer.observe(update, names="value")
    head.observe(update, names="value")
    update()
    return widgets.VBox([widgets.HBox([layer, head]), out])
