"""Explorers of lesson 17: generation time with and without the KV cache; a head's position pattern (ALiBi, RoPE).

KV caching and multi-query attention: Shazeer 2019 (arXiv:1911.02150); ALiBi: Press et al. 2022
(arXiv:2108.12409); RoPE: Su et al. 2021 (arXiv:2104.09864). Introduced in lesson 17.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor

from course_lib.attention import alibi_bias
from course_lib.viz import show_heatmaps, to_numpy
from course_lib.widgets._layout import LABEL_STYLE, fit_dropdown, hide_if_single

__all__ = ["CacheSpeedView", "cache_speed_view", "cache_explorer", "alibi_pattern", "PatternView", "pattern_view",
           "pattern_explorer"]


@dataclass
class CacheSpeedView:
    """What the cache explorer shows for one generated length."""

    length: int  # tokens generated
    seconds_without: float  # median seconds to generate them, running the whole sequence each step
    seconds_with: float  # median seconds with the KV cache
    speedup: float  # seconds_without / seconds_with
    tokens_per_second_without: float
    tokens_per_second_with: float


def cache_speed_view(lengths: Sequence[int], seconds_without: Sequence[float], seconds_with: Sequence[float],
                     length: int) -> CacheSpeedView:
    """Pick the measurement at ``length`` (one of ``lengths``) from a table of generation times."""
    if not (len(lengths) == len(seconds_without) == len(seconds_with)) or not lengths:
        raise ValueError(f"lengths, seconds_without and seconds_with must be non-empty and of one length, got "
                         f"{len(lengths)}, {len(seconds_without)} and {len(seconds_with)}")
    if any(not s > 0 for s in (*seconds_without, *seconds_with)):
        raise ValueError("every time must be > 0 seconds")
    if length not in lengths:
        raise ValueError(f"length must be one of the measured lengths {list(lengths)}, got {length!r}")
    i = list(lengths).index(length)
    without, with_cache = float(seconds_without[i]), float(seconds_with[i])
    return CacheSpeedView(length=int(length), seconds_without=without, seconds_with=with_cache,
                          speedup=without / with_cache, tokens_per_second_without=length / without,
                          tokens_per_second_with=length / with_cache)


def _draw_cache(lengths: Sequence[int], seconds_without: Sequence[float], seconds_with: Sequence[float],
                view: CacheSpeedView):
    fig, ax = plt.subplots(figsize=(5.5, 3.2), constrained_layout=True)
    ax.plot(lengths, seconds_without, "o-", label="without cache")
    ax.plot(lengths, seconds_with, "s-", label="with KV cache")
    ax.axvline(view.length, color="grey", linestyle=":")
    ax.set(xlabel="generated tokens", ylabel="median seconds", xscale="log", yscale="log",
           title=f"{view.length} tokens: {view.speedup:.1f}x faster with the cache")
    ax.set_xscale("log", base=2)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return fig


def cache_explorer(lengths: Sequence[int], seconds_without: Sequence[float], seconds_with: Sequence[float]):
    """A slider over the measured generated lengths; returns the ipywidgets box."""
    import ipywidgets as widgets
    from IPython.display import display

    slider = widgets.SelectionSlider(options=[int(n) for n in lengths], value=int(lengths[-1]),
                                     description="tokens", style=LABEL_STYLE)
    text = widgets.HTML()
    out = widgets.Output()

    def update(_=None) -> None:
        view = cache_speed_view(lengths, seconds_without, seconds_with, slider.value)
        text.value = (f"without cache: {view.tokens_per_second_without:.0f} tokens/s &nbsp; with cache: "
                      f"{view.tokens_per_second_with:.0f} tokens/s &nbsp; speed-up {view.speedup:.1f}x")
        with out:
            out.clear_output(wait=True)
            fig = _draw_cache(lengths, seconds_without, seconds_with, view)
            display(fig)
            plt.close(fig)

    slider.observe(update, names="value")
    update()
    return widgets.VBox([slider, text, out])


def alibi_pattern(num_heads: int, length: int) -> Tensor:
    """(H, T, T) causal attention weights that the ALiBi bias alone gives (all scores 0 before the bias)."""
    bias = alibi_bias(num_heads, length)  # (H, T, T)
    allowed = torch.ones(length, length, dtype=torch.bool).tril()
    return torch.softmax(bias.masked_fill(~allowed, float("-inf")), dim=-1)


@dataclass
class PatternView:
    """One head's attention pattern, and how far back it looks."""

    weights: np.ndarray  # (T, T)
    title: str
    mean_distance: float  # average over queries of sum_j w_ij (i - j): how many tokens back the head reads
    num_heads: int


def pattern_view(patterns: Mapping[str, Tensor | np.ndarray], kind: str, head: int) -> PatternView:
    """Pick head ``head`` of the (H, T, T) causal pattern named ``kind``."""
    if kind not in patterns:
        raise ValueError(f"kind must be one of {list(patterns)}, got {kind!r}")
    w = to_numpy(patterns[kind])
    if w.ndim != 3 or w.shape[1] != w.shape[2]:
        raise ValueError(f"patterns[{kind!r}] must have shape (H, T, T), got {tuple(w.shape)}")
    if isinstance(head, bool) or not isinstance(head, (int, np.integer)):
        raise TypeError(f"head must be an int, got {type(head).__name__}")
    if not 0 <= head < w.shape[0]:
        raise ValueError(f"head must lie in [0, {w.shape[0] - 1}] for patterns of shape {tuple(w.shape)}, got {head}")
    length = w.shape[1]
    distance = np.arange(length)[:, None] - np.arange(length)[None, :]  # (T, T): i - j
    chosen = w[head]
    mean_distance = float((chosen * distance).sum(axis=-1).mean())
    return PatternView(weights=chosen, title=f"{kind}, head {head}", mean_distance=mean_distance,
                       num_heads=int(w.shape[0]))


def pattern_explorer(patterns: Mapping[str, Tensor | np.ndarray]):
    """Dropdowns for the pattern (e.g. "ALiBi bias alone", "RoPE model") and the head; returns the box."""
    import ipywidgets as widgets
    from IPython.display import display

    kinds = list(patterns)
    kind = hide_if_single(fit_dropdown(widgets.Dropdown(options=kinds, value=kinds[0], description="pattern")))
    head = hide_if_single(fit_dropdown(widgets.Dropdown(options=list(range(to_numpy(patterns[kinds[0]]).shape[0])),
                                                        value=0, description="head")))
    out = widgets.Output()

    def update(_=None) -> None:
        view = pattern_view(patterns, kind.value, head.value)
        with out:
            out.clear_output(wait=True)
            fig = show_heatmaps(view.weights, titles=[f"{view.title}: reads {view.mean_distance:.1f} tokens back "
                                                      f"on average"], xlabel="key position",
                                ylabel="query position")
            display(fig)
            plt.close(fig)

    kind.observe(update, names="value")
    head.observe(update, names="value")
    update()
    return widgets.VBox([widgets.HBox([kind, head]), out])
